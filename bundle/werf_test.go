package bundle

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"strata.dev/strata/internal/testing/testenv"
)

// werfChart writes a chart written for werf: it reads only werf's service values.
func werfChart(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"Chart.yaml":  "apiVersion: v2\nname: werfapp\nversion: 0.1.0\n",
		"values.yaml": "# werf chart\nreplicas: 1\n",
		"templates/web.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    commit: {{ .Values.werf.commit.hash | quote }}
    commit-unix: {{ .Values.werf.commit.date.unix | quote }}
    repo: {{ .Values.global.werf.repo | quote }}
    env: {{ .Values.werf.env | default "none" | quote }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web, version: {{ .Values.werf.tag.web | trunc 63 | quote }}}
    spec:
      containers:
      - name: web
        image: {{ .Values.werf.image.web | quote }}
      - name: worker
        image: {{ index .Values.global.werf.image "worker" | quote }}
`,
	}
	for n, c := range files {
		p := filepath.Join(dir, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// A chart written for werf, published with WerfValues through the real registry, renders with
// plain Helm and with Strata's renderer to the build's exact refs; without WerfValues the
// publish fails on the render check, naming werf's value.
func TestPublishWerfChart(t *testing.T) {
	ctx := context.Background()
	rep := pushImages(t, "web", "worker")
	repo := testenv.Repo(t, "charts") + "/werfapp"
	o := publishOpts(t, rep, repo, "1.0.0")
	o.ChartDir = werfChart(t)
	if _, err := Publish(ctx, o); err == nil || !strings.Contains(err.Error(), "werf") {
		t.Fatalf("werf chart without werf values: %v", err)
	}
	o.WerfValues, o.WerfEnv = true, "production"
	res, err := Publish(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	web, worker := rep.Images[0], rep.Images[1]
	webRef := web.Repo + ":" + web.Tag + "@" + web.ManifestDigest
	workerRef := worker.Repo + ":" + worker.Tag + "@" + worker.ManifestDigest
	want := []string{
		"image: " + `"` + webRef + `"`,
		"image: " + `"` + workerRef + `"`,
		"commit: " + `"` + rep.Commit + `"`,
		`commit-unix: "1795341600"`, // 2026-11-22T10:00:00Z
		"repo: " + `"` + rep.Repo + `"`,
		`env: "production"`,
		"version: " + `"` + web.Tag[:63] + `"`,
	}
	manifest := helmPullAndRender(t, repo, "1.0.0")
	for _, w := range want {
		if !strings.Contains(manifest, w) {
			t.Errorf("helm template lacks %s:\n%s", w, manifest)
		}
	}

	dir := filepath.Join(t.TempDir(), "chart")
	p, err := Pull(ctx, PullOptions{Ref: "oci://" + repo + ":" + res.Tag, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if p.Metadata.Werf == nil || p.Metadata.Werf.Env != "production" {
		t.Errorf("metadata werf = %+v", p.Metadata.Werf)
	}
	out, err := Render(ctx, RenderOptions{ChartDir: dir, BundleRef: p.Ref})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		// Strata re-encodes the objects: quotes only where YAML needs them
		if !strings.Contains(string(out), w) && !strings.Contains(string(out), strings.ReplaceAll(w, `"`, "")) {
			t.Errorf("strata render lacks %s:\n%s", w, out)
		}
	}

	// the values themselves, werf's keys under werf and global.werf
	raw, _ := os.ReadFile(filepath.Join(dir, "values.yaml"))
	var v map[string]any
	if err := yaml.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	global := v["global"].(map[string]any)
	if global["env"] != "production" {
		t.Errorf("global.env = %v", global["env"])
	}
	for _, w := range []map[string]any{v["werf"].(map[string]any), global["werf"].(map[string]any)} {
		img, tag := w["image"].(map[string]any), w["tag"].(map[string]any)
		commit := w["commit"].(map[string]any)
		date := commit["date"].(map[string]any)
		if img["web"] != webRef || img["worker"] != workerRef || tag["web"] != web.Tag || tag["worker"] != worker.Tag ||
			w["repo"] != rep.Repo || w["name"] != "app" || w["env"] != "production" || commit["hash"] != rep.Commit ||
			date["unix"] != "1795341600" || date["human"] != "2026-11-22 10:00:00 +0000 UTC" {
			t.Errorf("werf values wrong:\n%s", raw)
		}
	}
	if v["strata"].(map[string]any)["image"].(map[string]any)["web"] != webRef {
		t.Errorf("strata values lost:\n%s", raw)
	}

	// copied to another repository: the werf values follow the images
	dst := testenv.Repo(t, "copied") + "/werfapp"
	cr, err := Copy(ctx, CopyOptions{From: repo + ":" + res.Tag, To: dst})
	if err != nil {
		t.Fatal(err)
	}
	copied := helmPullAndRender(t, dst, "1.0.0")
	if !strings.Contains(copied, `image: "`+cr.Images["web"]+`"`) || strings.Contains(copied, rep.Repo+":") {
		t.Errorf("copied bundle's werf image refs not rewritten (web: %s):\n%s", cr.Images["web"], copied)
	}
}

// Without WerfValues a bundle's values.yaml has no werf keys: the strata.* values only.
func TestInjectValuesWithoutWerf(t *testing.T) {
	m := &Metadata{Repo: "reg/stages", Images: map[string]Image{"web": {Repo: "reg/stages", Tag: "t1", Ref: "reg/stages:t1@sha256:1", Digest: "sha256:1"}}}
	out, err := injectValues([]byte("replicas: 1\n"), m)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	if _, ok := v["werf"]; ok {
		t.Errorf("werf values without WerfValues:\n%s", out)
	}
	if g := v["global"].(map[string]any); len(g) != 1 || g["strata"] == nil {
		t.Errorf("global = %v", g)
	}
	// unknown commit date: werf.commit.date still a map, so charts reading .unix render
	m.Werf = &Werf{}
	out, err = injectValues(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `unix: "0"`) || !strings.Contains(string(out), `env: ""`) {
		t.Errorf("werf values without a commit date:\n%s", out)
	}
}
