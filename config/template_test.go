package config

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// werf.yaml is a Go template before it is YAML: sprig, env, required, .Files, partials in
// .werf/**/*.tmpl (and *.tpl) with include/define, tpl, .Env and .Commit; every file is read from
// the commit.
func TestRenderWerfTemplates(t *testing.T) {
	r := newRepo(t)
	commit := r.commit(map[string]string{
		"svc/werf.yaml": `{{ $_ := set . "Base" (env "BASE_IMAGE" "alpine:3.19") }}
project: {{ "Shop" | lower }}
configVersion: 1
---
{{- range list "api" "worker" }}
image: {{ . }}
from: {{ $.Base }}
fromCacheVersion: {{ $.Files.Get "VERSION" | trim | quote }}
shell:
{{- include "shell/install.tmpl" (dict "name" . "env" $.Env) | nindent 2 }}
---
{{- end }}
image: web
from: {{ required "WEB_BASE must be set" (env "WEB_BASE" "") }}
docker:
  LABEL:
{{- range $path, $content := .Files.Glob "conf/*.conf" }}
    {{ base $path | replace "." "-" }}: {{ $content | trim | quote }}
{{- end }}
    commit: {{ .Commit.Hash | trunc 7 | quote }}
    date: {{ .Commit.Date.Unix | quote }}
    greeting: {{ tpl "{{ .who }}-{{ upper .env }}" (dict "who" "hi" "env" .Env) | quote }}
`,
		"svc/VERSION":                  "  7\n",
		"svc/conf/a.conf":              "alpha\n",
		"svc/conf/b.conf":              "beta\n",
		"svc/conf/skip.txt":            "no",
		"svc/.werf/shell/install.tmpl": "{{ define \"inner\" }}echo {{ .name }}{{ end }}install:\n- {{ include \"inner\" . }} {{ .env }}",
		"svc/.werf/helpers.tpl":        `{{ define "unused" }}x{{ end }}`,
		"VERSION":                      "root version, not the project's",
	})
	// The work tree differs from the commit: the commit wins.
	r.write(map[string]string{"svc/VERSION": "8\n"})
	o := Options{Dir: filepath.Join(r.dir, "svc"), Env: "production", LookupEnv: envOf(map[string]string{"WEB_BASE": "nginx:1"})}
	cfg, err := Load(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Project != "shop" || len(cfg.Images) != 3 {
		t.Fatalf("project %q, %d images", cfg.Project, len(cfg.Images))
	}
	api, worker, web := cfg.Images[0], cfg.Images[1], cfg.Images[2]
	if api.Name != "api" || api.From != "alpine:3.19" || api.FromCacheVersion != "7" || strings.Join(api.Shell.Install, "|") != "echo api production" {
		t.Errorf("api = %+v", api)
	}
	if worker.Name != "worker" || strings.Join(worker.Shell.Install, "|") != "echo worker production" {
		t.Errorf("worker = %+v", worker)
	}
	l := web.Docker.Label
	if web.From != "nginx:1" || l["a-conf"] != "alpha" || l["b-conf"] != "beta" || len(l) != 5 || l["commit"] != commit[:7] || l["greeting"] != "hi-PRODUCTION" {
		t.Errorf("web = from %q labels %v", web.From, l)
	}
	if want := "1704164645"; l["date"] != want {
		t.Errorf("date %q, want %s", l["date"], want)
	}
}

func TestRenderErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		env   map[string]string
		want  []string
	}{
		{"env without default", map[string]string{"werf.yaml": meta + "image: a\nfrom: {{ env \"BASE\" }}\n"}, nil,
			[]string{"werf.yaml:5:", `the environment variable "BASE" must be set`}},
		{"required", map[string]string{"werf.yaml": meta + "image: a\nfrom: {{ required \"set BASE\" (env \"BASE\" \"\") }}\n"}, nil,
			[]string{"werf.yaml:5:", "set BASE"}},
		{"syntax error names the line", map[string]string{"werf.yaml": meta + "image: a\n\nfrom: {{ .Env \n"}, nil,
			[]string{"werf.yaml:6", "unclosed action"}},
		{"error in a partial names the partial", map[string]string{"werf.yaml": meta + "image: a\nfrom: x\n{{ include \"sub/p.tmpl\" . }}\n",
			".werf/sub/p.tmpl": "# partial\nshell:\n  install: [{{ required \"need .x\" .x }}]\n"}, nil,
			[]string{"sub/p.tmpl:3:", "need .x"}},
		{"partial syntax error", map[string]string{"werf.yaml": meta + "image: a\nfrom: {{ \"x\" }}\n", ".werf/p.tmpl": "{{ if }}\n"}, nil,
			[]string{".werf/p.tmpl", "p.tmpl:1:"}},
		{"missing include", map[string]string{"werf.yaml": meta + "{{ include \"nope\" . }}\n"}, nil,
			[]string{`no template "nope"`}},
		{"Files.Get missing", map[string]string{"werf.yaml": meta + "image: a\nfrom: {{ .Files.Get \"nope.txt\" }}\n"}, nil,
			[]string{"werf.yaml:5:", `.Files.Get "nope.txt": nope.txt is not in commit`}},
		{"Files.Get outside the project", map[string]string{"werf.yaml": meta + "image: a\nfrom: {{ .Files.Get \"../x\" }}\n"}, nil,
			[]string{`leaves the project directory`}},
		{"Files.Glob no match", map[string]string{"werf.yaml": meta + "{{ .Files.Glob \"*.nope\" }}\n"}, nil,
			[]string{`.Files.Glob "*.nope": no committed file matches`}},
		{"YAML error after rendering", map[string]string{"werf.yaml": meta + "{{ \"image: a\" }}\nfrom: x\nshel: {}\n"}, nil,
			[]string{"werf.yaml (rendered):6: shel: unknown key (did you mean \"shell\"?)"}},
		{"expandenv is not offered", map[string]string{"werf.yaml": meta + "image: a\nfrom: {{ expandenv \"$HOME\" }}\n"}, nil,
			[]string{`function "expandenv" not defined`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t)
			r.commit(tc.files)
			_, err := Load(context.Background(), Options{Dir: r.dir, LookupEnv: envOf(tc.env)})
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error = %v\nwant containing %q", err, w)
				}
			}
		})
	}
}

// Rendering is bounded in output size and in time.
func TestRenderBounded(t *testing.T) {
	r := newRepo(t)
	r.commit(map[string]string{"werf.yaml": meta + "{{ range until 100000 }}{{ range until 100000 }}xxxxxxxx{{ end }}{{ end }}\n"})
	start := time.Now()
	_, err := Render(context.Background(), Options{Dir: r.dir})
	if err == nil || !strings.Contains(err.Error(), "the rendered config is over 4194304 bytes") {
		t.Errorf("output bound: %v", err)
	}
	_, err = Render(context.Background(), Options{Dir: r.dir, MaxRendered: 1 << 40, RenderTimeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "rendering the templates took more than 300ms") {
		t.Errorf("time bound: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s", d)
	}
}

// A config without template actions is not run as a template (its lines are the file's lines).
func TestRenderPlainConfigUnchanged(t *testing.T) {
	r := newRepo(t)
	r.commit(map[string]string{"strata.yaml": meta + "image: a\nfrom: x\n"})
	out, err := Render(context.Background(), Options{Dir: r.dir})
	if err != nil || string(out.Data) != meta+"image: a\nfrom: x\n" {
		t.Errorf("render = %+v, %v", out, err)
	}
}

// Functions that can build a huge value from a few bytes of template fail instead of exhausting
// memory (issue 19: string doubling, huge repeat, huge ranges).
func TestRenderBoundsHostileValues(t *testing.T) {
	for _, tc := range []struct{ name, tpl, want string }{
		{"repeat", `{{ repeat 1000000000 "xy" }}`, "error calling repeat: the result would be 2000000000 bytes, over the limit of 4194304"},
		{"doubling", `{{ $s := "x" }}{{ range until 64 }}{{ $s = print $s $s }}{{ end }}`, "error calling print: the result would be 8388608 bytes"},
		{"doubling printf", `{{ $s := "x" }}{{ range until 64 }}{{ $s = printf "%s%s" $s $s }}{{ end }}`, "error calling printf: the result would be"},
		{"cat", `{{ $s := "x" }}{{ range until 64 }}{{ $s = cat $s $s }}{{ end }}`, "error calling cat: the result would be"},
		{"replace", `{{ $s := "ab" }}{{ range until 64 }}{{ $s = replace "a" $s $s }}{{ end }}`, "error calling replace: the result would be"},
		{"until", `{{ range until 100000000 }}{{ end }}`, "error calling until: 100000000 items, over the limit of 1000000"},
		{"untilStep", `{{ range untilStep 0 100000000 1 }}{{ end }}`, "error calling untilStep: 100000000 items"},
		{"seq", `{{ seq 100000000 }}`, "error calling seq: 99999999 items"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t)
			r.commit(map[string]string{"werf.yaml": meta + tc.tpl + "\n"})
			start := time.Now()
			_, err := Render(context.Background(), Options{Dir: r.dir})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v\nwant containing %q", err, tc.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
}
