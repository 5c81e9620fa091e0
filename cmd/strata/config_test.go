package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// strata config render prints the committed config after its templates ran.
func TestConfigRender(t *testing.T) {
	dir := committedDir(t, map[string]string{
		"werf.yaml":      "project: {{ .Files.Get \"NAME\" | trim }}\nconfigVersion: 1\n---\n{{ include \"img.tmpl\" (dict \"env\" .Env) }}\n",
		"NAME":           "shop\n",
		".werf/img.tmpl": "image: app\nfrom: alpine\ndocker:\n  ENV: {STAGE: {{ .env }}}\n",
	})
	out, _, err := run(t, "config", "render", "--dir", dir, "--env", "staging")
	if err != nil {
		t.Fatal(err)
	}
	want := "project: shop\nconfigVersion: 1\n---\nimage: app\nfrom: alpine\ndocker:\n  ENV: {STAGE: staging}\n\n"
	if out != want {
		t.Errorf("render:\n%s\nwant:\n%s", out, want)
	}
	if _, _, err := run(t, "config", "render", "--dir", t.TempDir()); err == nil || !strings.Contains(err.Error(), "not in a git work tree") {
		t.Errorf("outside a repository: %v", err)
	}
}

// committedDir writes files into a fresh repository and commits them.
func committedDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"}} {
		c := exec.Command("git", args...)
		c.Dir = dir
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	return dir
}

// strata config list and graph print the images and what each needs, as werf's commands do.
func TestConfigListGraph(t *testing.T) {
	dir := committedDir(t, map[string]string{"werf.yaml": `project: p
configVersion: 1
---
image: base
from: alpine
---
{{- range list "api" "worker" }}
image: {{ . }}
fromImage: base
---
{{- end }}
artifact: tools
from: alpine
`})
	out, _, err := run(t, "config", "list", "--dir", dir)
	if err != nil || out != "base\napi\nworker\ntools\n" {
		t.Errorf("list: %q %v", out, err)
	}
	out, _, err = run(t, "config", "list", "--dir", dir, "--final-images-only")
	if err != nil || out != "base\napi\nworker\n" {
		t.Errorf("list --final-images-only: %q %v", out, err)
	}
	out, _, err = run(t, "config", "graph", "--dir", dir, "api", "base")
	want := "- image: base\n- image: api\n  dependsOn:\n    from: base\n"
	if err != nil || out != want {
		t.Errorf("graph api base:\n%s%v\nwant:\n%s", out, err, want)
	}
	if _, _, err := run(t, "config", "graph", "--dir", dir, "nope"); err == nil || !strings.Contains(err.Error(), `no image "nope"`) {
		t.Errorf("graph of an unknown image: %v", err)
	}
}
