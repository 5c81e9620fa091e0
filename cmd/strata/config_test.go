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
	dir := t.TempDir()
	files := map[string]string{
		"werf.yaml":      "project: {{ .Files.Get \"NAME\" | trim }}\nconfigVersion: 1\n---\n{{ include \"img.tmpl\" (dict \"env\" .Env) }}\n",
		"NAME":           "shop\n",
		".werf/img.tmpl": "image: app\nfrom: alpine\ndocker:\n  ENV: {STAGE: {{ .env }}}\n",
	}
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
