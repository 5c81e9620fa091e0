package config

import (
	"fmt"
	"strings"
)

// werfKeysSummary adds the werf keys of parse_werfkeys.go to an image's corpus summary.
func werfKeysSummary(im *Image, add func(k, v string), f *[]string) {
	add("cacheVersion", im.CacheVersion)
	add("network", im.Network)
	if len(im.AddHost) > 0 {
		*f = append(*f, "addHost"+fmt.Sprint(im.AddHost))
	}
	if len(im.Platform) > 0 {
		*f = append(*f, "platform"+fmt.Sprint(im.Platform))
	}
	if im.DisableGitAfterPatch {
		*f = append(*f, "disableGitAfterPatch")
	}
	for _, s := range im.Secrets {
		src := "env:" + s.Env
		switch {
		case s.Src != "":
			src = "src:" + s.Src
		case s.Value != "":
			src = "value"
		}
		*f = append(*f, "secret("+s.ID+"<"+src+")")
	}
	if s := im.ImageSpec; s != nil {
		var parts []string
		if s.Author != "" {
			parts = append(parts, "author="+s.Author)
		}
		for _, b := range []struct {
			n string
			v bool
		}{{"clearHistory", s.ClearHistory}, {"clearWerfLabels", s.ClearWerfLabels}, {"keepEssentialWerfLabels", s.KeepEssentialWerfLabels},
			{"clearCmd", s.ClearCmd}, {"clearEntrypoint", s.ClearEntrypoint}, {"clearUser", s.ClearUser}, {"clearWorkingDir", s.ClearWorkingDir}} {
			if b.v {
				parts = append(parts, b.n)
			}
		}
		for _, l := range []struct {
			n string
			v []string
		}{{"removeLabels", s.RemoveLabels}, {"removeVolumes", s.RemoveVolumes}, {"removeEnv", s.RemoveEnv}, {"volumes", s.Volumes},
			{"expose", s.Expose}, {"cmd", s.Cmd}, {"entrypoint", s.Entrypoint}} {
			if l.v != nil {
				parts = append(parts, l.n+fmt.Sprintf("%q", l.v))
			}
		}
		for _, m := range []struct {
			n string
			v map[string]string
		}{{"labels", s.Labels}, {"env", s.Env}} {
			if len(m.v) > 0 {
				parts = append(parts, m.n+"="+kv(m.v))
			}
		}
		for _, x := range []struct{ n, v string }{{"user", s.User}, {"workingDir", s.WorkingDir}, {"stopSignal", s.StopSignal}} {
			if x.v != "" {
				parts = append(parts, x.n+"="+x.v)
			}
		}
		if h := s.Healthcheck; h != nil {
			parts = append(parts, fmt.Sprintf("healthcheck%q/%s/%s/%s/%d", h.Test, h.Interval, h.Timeout, h.StartPeriod, h.Retries))
		}
		*f = append(*f, "imageSpec("+strings.Join(parts, " ")+")")
	}
}
