package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"strata.dev/strata/internal/testing/testenv"
)

// A chart written for werf, published with --werf-values --werf-env on the real registry,
// renders through 'strata cmp generate' (what Argo CD runs) to the build's refs; the same chart
// published without the flag is refused by the render check, naming werf's value.
func TestBundlePublishWerfValues(t *testing.T) {
	rep := testenv.BuildReport(t, "shop", "web")
	tmp := t.TempDir()
	reportFile := filepath.Join(tmp, "build.json")
	b, _ := json.Marshal(rep)
	chart := filepath.Join(tmp, "chart")
	for n, c := range map[string]string{
		reportFile:                                 string(b),
		filepath.Join(chart, "Chart.yaml"):         "apiVersion: v2\nname: shop\nversion: 0.1.0\n",
		filepath.Join(chart, "templates/web.yaml"): "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {env: {{ .Values.werf.env | quote }}, tag: {{ .Values.werf.tag.web | trunc 8 | quote }}}\n  annotations: {commit: {{ .Values.werf.commit.hash | quote }}, repo: {{ .Values.global.werf.repo | quote }}}\nspec:\n  containers:\n  - name: web\n    image: {{ .Values.werf.image.web | quote }}\n",
	} {
		if err := os.MkdirAll(filepath.Dir(n), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(n, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repo := testenv.Repo(t, "bundles") + "/shop"
	publish := []string{"bundle", "publish", "--repo", repo, "--tag", "1.0.0", "--build-report", reportFile, "--chart-dir", chart, "--dir", tmp}
	if _, _, err := run(t, publish...); err == nil || !strings.Contains(err.Error(), "werf") {
		t.Fatalf("werf chart published without --werf-values: %v", err)
	}
	if _, _, err := run(t, append(publish, "--werf-values", "--werf-env", "staging")...); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tmp, "pulled")
	if _, _, err := run(t, "bundle", "pull", repo+":1.0.0", "--dir", dir); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ARGOCD_APP_NAME", "shop")
	t.Setenv("ARGOCD_APP_NAMESPACE", "prod")
	out, _, err := run(t, "cmp", "generate", "--dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	im := rep.Images[0]
	for _, w := range []string{"image: " + im.Repo + ":" + im.Tag + "@" + im.ManifestDigest, "env: staging", "tag: \"" + im.Tag[:8] + "\"",
		"commit: " + rep.Commit, "repo: " + rep.Repo} {
		if !strings.Contains(out, w) {
			t.Errorf("cmp generate lacks %q:\n%s", w, out)
		}
	}
}
