package build

import (
	"context"
	"fmt"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"strata.dev/strata/config"
	"strata.dev/strata/stages"
)

// imageSpecStage applies werf's imageSpec (merged with build.imageSpec) to the parent's image
// config, registry-side: no layer, no engine. It is the last stage of the image. gitRel: the
// image has git mappings; atHead: it follows a Dockerfile stage.
func (b *builder) imageSpecStage(im *Image, gitRel, atHead bool) stageSpec {
	spec := im.ImageSpec
	labels := specLabels(spec.Labels, im.Name, b.cfg.Project)
	return stageSpec{name: "imageSpec", gitRel: gitRel, atHead: atHead,
		digest: func(ctx context.Context, p *state) (string, bool, error) {
			d := newDigester("imageSpec")
			d.add(p.digest)
			imageSpecFields(d, spec, labels)
			return d.sum(), true, nil
		},
		build: func(ctx context.Context, p *state, _ string) (v1.Image, string, error) {
			img, err := b.parentImage(ctx, p)
			if err != nil {
				return nil, "", err
			}
			img, err = applyImageSpec(img, spec, labels)
			return img, p.commit, err
		}}
}

// imageSpecFields adds an imageSpec to a digest: every field, labels after their %image% and
// %project% templates are expanded (images of one `image: [a, b]` document differ there).
func imageSpecFields(d *digester, s *config.ImageSpec, labels map[string]string) {
	d.add("author", s.Author, "user", s.User, "workingDir", s.WorkingDir, "stopSignal", s.StopSignal)
	for _, f := range []bool{s.ClearHistory, s.KeepEssentialWerfLabels, s.ClearWerfLabels, s.ClearCmd, s.ClearEntrypoint, s.ClearUser, s.ClearWorkingDir} {
		d.add(fmt.Sprint(f))
	}
	d.dict("labels", labels)
	d.dict("env", s.Env)
	for _, l := range []struct {
		name string
		v    []string
	}{{"removeLabels", s.RemoveLabels}, {"removeVolumes", s.RemoveVolumes}, {"removeEnv", s.RemoveEnv}, {"volumes", s.Volumes}, {"expose", s.Expose}} {
		d.list(l.name, sortedCopy(l.v))
	}
	d.add("cmd", fmt.Sprint(s.Cmd != nil))
	d.list("cmd", s.Cmd)
	d.add("entrypoint", fmt.Sprint(s.Entrypoint != nil))
	d.list("entrypoint", s.Entrypoint)
	if h := s.Healthcheck; h != nil {
		d.list("healthcheck", h.Test)
		d.add(h.Interval, h.Timeout, h.StartPeriod, fmt.Sprint(h.Retries))
	}
}

func sortedCopy(l []string) []string {
	out := append([]string(nil), l...)
	sort.Strings(out)
	return out
}

// specLabels expands werf's label templates %image% and %project% in names and values.
func specLabels(in map[string]string, image, project string) map[string]string {
	if len(in) == 0 {
		return nil
	}
	r := strings.NewReplacer("%image%", image, "%project%", project)
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[r.Replace(k)] = r.Replace(v)
	}
	return out
}

// namePatterns matches names exactly or, written /REGEXP/, by regular expression.
type namePatterns struct {
	exact map[string]bool
	res   []*regexp.Regexp
}

func compilePatterns(l []string) (namePatterns, error) {
	p := namePatterns{exact: map[string]bool{}}
	for _, x := range l {
		if len(x) > 1 && strings.HasPrefix(x, "/") && strings.HasSuffix(x, "/") {
			re, err := regexp.Compile(x[1 : len(x)-1])
			if err != nil {
				return p, fmt.Errorf("%s: %w", x, err)
			}
			p.res = append(p.res, re)
			continue
		}
		p.exact[x] = true
	}
	return p, nil
}

func (p namePatterns) match(name string) bool {
	if p.exact[name] {
		return true
	}
	for _, re := range p.res {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

// werfLabel reports whether a label is one werf sets (on a base image werf built).
func werfLabel(k string) bool {
	return k == "werf" || strings.HasPrefix(k, "werf-") || strings.HasPrefix(k, "werf.io/") || strings.HasPrefix(k, "werf.")
}

// applyImageSpec changes the image config as werf's imageSpec stage does. Strata's own
// dev.strata.* labels are never removed (they are the stages storage contract and are set again
// on every stage).
func applyImageSpec(img v1.Image, s *config.ImageSpec, labels map[string]string) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image config: %w", err)
	}
	cf = cf.DeepCopy()
	c := &cf.Config
	if s.Author != "" {
		cf.Author = s.Author
	}
	if s.ClearHistory {
		cf.History = nil
	}
	// Labels.
	removeLabels, err := compilePatterns(s.RemoveLabels)
	if err != nil {
		return nil, fmt.Errorf("imageSpec.config.removeLabels %w", err)
	}
	for k := range c.Labels {
		if strings.HasPrefix(k, stages.LabelPrefix) {
			continue
		}
		if removeLabels.match(k) || (s.ClearWerfLabels && werfLabel(k)) {
			delete(c.Labels, k)
		}
	}
	if len(labels) > 0 && c.Labels == nil {
		c.Labels = map[string]string{}
	}
	for k, v := range labels {
		c.Labels[k] = v
	}
	// Env: removals, then additions expanded against the image's env ($VAR, ${VAR}).
	removeEnv, err := compilePatterns(s.RemoveEnv)
	if err != nil {
		return nil, fmt.Errorf("imageSpec.config.removeEnv %w", err)
	}
	before := map[string]string{}
	var env []string
	for _, e := range c.Env {
		k, v, _ := strings.Cut(e, "=")
		before[k] = v
		if !removeEnv.match(k) {
			env = append(env, e)
		}
	}
	expanded := make(map[string]string, len(s.Env))
	for k, v := range s.Env {
		expanded[k] = os.Expand(v, func(n string) string { return before[n] })
	}
	env = setEnv(env, expanded)
	c.Env = env
	// Volumes.
	for _, v := range s.RemoveVolumes {
		delete(c.Volumes, v)
		delete(c.Volumes, path.Clean(v))
	}
	if len(s.Volumes) > 0 && c.Volumes == nil {
		c.Volumes = map[string]struct{}{}
	}
	for _, v := range s.Volumes {
		c.Volumes[path.Clean(v)] = struct{}{}
	}
	if s.Expose != nil {
		c.ExposedPorts = map[string]struct{}{}
		for _, p := range s.Expose {
			c.ExposedPorts[portSpec(p)] = struct{}{}
		}
	}
	if h := s.Healthcheck; h != nil {
		if c.Healthcheck, err = healthConfig(h, "imageSpec.config.healthcheck"); err != nil {
			return nil, err
		}
	}
	// User, working directory, stop signal, entrypoint and cmd.
	switch {
	case s.ClearUser:
		c.User = ""
	case s.User != "":
		c.User = s.User
	}
	switch {
	case s.ClearWorkingDir:
		c.WorkingDir = ""
	case s.WorkingDir != "":
		c.WorkingDir = s.WorkingDir
	}
	if s.StopSignal != "" {
		c.StopSignal = s.StopSignal
	}
	if s.Entrypoint != nil {
		c.Entrypoint = s.Entrypoint
		if s.Cmd == nil {
			c.Cmd = nil // as docker does when ENTRYPOINT changes
		}
	}
	if s.Cmd != nil {
		c.Cmd = s.Cmd
	}
	if s.ClearEntrypoint {
		c.Entrypoint = nil
	}
	if s.ClearCmd {
		c.Cmd = nil
	}
	return mutate.ConfigFile(img, cf)
}
