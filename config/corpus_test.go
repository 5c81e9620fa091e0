package config

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"strata.dev/strata/internal/testing/corpus"
)

// TestCorpus loads every testdata/corpus/*.txt: werf.yaml/strata.yaml files written from werf's
// documentation, each with the files it reads, committed to a fresh repository (the format:
// internal/testing/corpus). The cases marked "build: yes" are also built by build's corpus test.
func TestCorpus(t *testing.T) {
	cases, err := corpus.All()
	if err != nil || len(cases) == 0 {
		t.Fatalf("corpus: %v (%d files)", err, len(cases))
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			r := newRepo(t)
			r.commit(c.Files)
			cfg, err := Load(context.Background(), Options{Dir: filepath.Join(r.dir, c.Dir), Env: c.WerfEnv, LookupEnv: envOf(c.Env)})
			if len(c.Errors) > 0 {
				for _, w := range c.Errors {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("error = %v\nwant containing %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := summary(cfg); got != strings.Join(c.Want, "\n") {
				t.Errorf("summary:\n%s\nwant:\n%s", got, strings.Join(c.Want, "\n"))
			}
			unsupported := append([]string(nil), cfg.Unsupported...)
			for _, im := range cfg.Images {
				for _, u := range im.Unsupported {
					unsupported = append(unsupported, u)
				}
			}
			if len(unsupported) != len(c.Unsupported) {
				t.Errorf("unsupported = %q, want %d naming %q", unsupported, len(c.Unsupported), c.Unsupported)
			}
			for i, k := range c.Unsupported {
				if i < len(unsupported) && !strings.Contains(unsupported[i], k) {
					t.Errorf("unsupported[%d] = %q, want it to name %q", i, unsupported[i], k)
				}
			}
			if c.Build && len(unsupported) > 0 {
				t.Errorf("build: yes on a case build refuses: %q", unsupported)
			}
		})
	}
	if len(cases) < 60 {
		t.Errorf("%d corpus files, want at least 60", len(cases))
	}
}

// summary is a compact, stable description of a parsed config: a project line, a cleanup line
// when the policy is not the default, then one line per image with its non-empty fields.
func summary(cfg *Config) string {
	out := []string{fmt.Sprintf("project %s dir=%s", cfg.Project, cfg.Dir)}
	if cfg.CacheVersion != "" {
		out[0] += " cacheVersion=" + cfg.CacheVersion
	}
	if p := cfg.Cleanup; fmt.Sprint(p) != fmt.Sprint(DefaultPolicy()) {
		var rs []string
		for _, r := range p.Branches {
			rs = append(rs, "branch "+r.String())
		}
		for _, r := range p.Tags {
			rs = append(rs, "tag "+r.String())
		}
		s := "cleanup " + strings.Join(rs, ", ") + " keepBuiltWithin=" + FormatDuration(p.KeepBuiltWithin)
		if len(p.Werf) > 0 {
			s += fmt.Sprintf(" werfKeys=%d", len(p.Werf))
		}
		out = append(out, s)
	}
	for _, im := range cfg.Images {
		name := im.Name
		if name == "" {
			name = "~"
		}
		f := []string{"image " + name}
		add := func(k, v string) {
			if v != "" {
				f = append(f, k+"="+v)
			}
		}
		if !im.Final {
			f = append(f, "final=false")
		}
		add("from", im.From)
		add("fromImage", im.FromImage)
		add("fromCacheVersion", im.FromCacheVersion)
		if im.FromLatest {
			f = append(f, "fromLatest")
		}
		add("dockerfile", im.Dockerfile)
		add("context", im.Context)
		add("target", im.Target)
		add("args", kv(im.Args))
		add("contextAddFiles", strings.Join(im.ContextAddFiles, ","))
		if im.Staged {
			f = append(f, "staged")
		}
		for _, g := range im.Git {
			s := g.Add + ">" + g.To
			if g.URL != "" {
				s = g.URL + "@" + g.Branch + g.Tag + g.Commit + " " + s
			}
			if len(g.IncludePaths) > 0 {
				s += " include" + fmt.Sprint(g.IncludePaths)
			}
			if len(g.ExcludePaths) > 0 {
				s += " exclude" + fmt.Sprint(g.ExcludePaths)
			}
			if g.Owner != "" || g.Group != "" {
				s += " owner=" + g.Owner + ":" + g.Group
			}
			var deps []string
			for _, st := range []string{"install", "beforeSetup", "setup"} {
				if d := g.StageDependencies[st]; len(d) > 0 {
					deps = append(deps, st+fmt.Sprint(d))
				}
			}
			if len(deps) > 0 {
				s += " deps=" + strings.Join(deps, ",")
			}
			f = append(f, "git("+s+")")
		}
		sh := im.Shell
		for _, st := range []struct {
			n string
			c []string
		}{{"beforeInstall", sh.BeforeInstall}, {"install", sh.Install}, {"beforeSetup", sh.BeforeSetup}, {"setup", sh.Setup}} {
			if len(st.c) > 0 {
				f = append(f, st.n+fmt.Sprintf("%q", st.c))
			}
		}
		add("shell.cacheVersion", sh.CacheVersion)
		add("stageCacheVersions", kv(sh.StageCacheVersion))
		d := im.Docker
		add("WORKDIR", d.Workdir)
		add("USER", d.User)
		add("ENV", kv(d.Env))
		add("LABEL", kv(d.Label))
		if len(d.Expose) > 0 {
			f = append(f, "EXPOSE"+fmt.Sprint(d.Expose))
		}
		if len(d.Volume) > 0 {
			f = append(f, "VOLUME"+fmt.Sprint(d.Volume))
		}
		if d.Cmd != nil {
			f = append(f, fmt.Sprintf("CMD%q", d.Cmd))
		}
		if d.Entrypoint != nil {
			f = append(f, fmt.Sprintf("ENTRYPOINT%q", d.Entrypoint))
		}
		if h := d.Healthcheck; h != nil {
			f = append(f, fmt.Sprintf("HEALTHCHECK%q", h.Test))
		}
		for _, x := range im.Import {
			src := "image:" + x.Image
			if x.Artifact != "" {
				src = "artifact:" + x.Artifact
			}
			if x.External != "" {
				src = "external:" + x.External
			}
			s := src + " " + x.Add + ">" + x.To
			if x.After != "" {
				s += " after=" + x.After
			}
			if x.Before != "" {
				s += " before=" + x.Before
			}
			if x.Stage != "" {
				s += " stage=" + x.Stage
			}
			if len(x.IncludePaths) > 0 {
				s += " include" + fmt.Sprint(x.IncludePaths)
			}
			if len(x.ExcludePaths) > 0 {
				s += " exclude" + fmt.Sprint(x.ExcludePaths)
			}
			if x.Owner != "" || x.Group != "" {
				s += " owner=" + x.Owner + ":" + x.Group
			}
			f = append(f, "import("+s+")")
		}
		for _, m := range im.Mount {
			f = append(f, "mount("+m.From+m.FromPath+">"+m.To+")")
		}
		for _, dep := range im.Dependencies {
			imps := map[string]string{}
			for _, x := range dep.Imports {
				imps[x.Type] = x.Target
			}
			f = append(f, "dependency("+dep.Image+" "+kv(imps)+")")
		}
		werfKeysSummary(im, add, &f)
		out = append(out, strings.Join(f, " "))
	}
	return strings.Join(out, "\n")
}

func kv(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	var s []string
	for k, v := range m {
		s = append(s, k+":"+v)
	}
	sort.Strings(s)
	return "{" + strings.Join(s, ",") + "}"
}
