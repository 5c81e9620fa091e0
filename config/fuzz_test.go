package config

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"strata.dev/strata/internal/git"
)

// FuzzParse: no input makes the parser panic or hang; every error names the file.
func FuzzParse(f *testing.F) {
	for _, c := range corpusConfigs(f) {
		f.Add([]byte(c))
	}
	f.Add([]byte("project: p\nconfigVersion: 1\n---\nimage: a\nfrom: x\nshell: &a {install: [*a]}\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := Parse("strata.yaml", data)
		if err != nil && !strings.Contains(err.Error(), "strata.yaml") {
			t.Errorf("error without the file name: %v", err)
		}
	})
}

// FuzzRender: templates from the corpus and mutations of them render or fail within the time
// bound, never past the output bound, never panicking; the partials and .Files inputs come
// from one committed repository.
func FuzzRender(f *testing.F) {
	for _, c := range corpusConfigs(f) {
		if strings.Contains(c, "{{") {
			f.Add([]byte(c))
		}
	}
	f.Add([]byte(`{{ $s := "x" }}{{ range until 40 }}{{ $s = print $s $s }}{{ end }}`))
	f.Add([]byte(`{{ include "p.tmpl" . }}{{ .Files.Get "VERSION" }}{{ .Files.Glob "*" }}{{ .Commit.Date.Unix }}`))
	dir := f.TempDir()
	initRepo(f, dir, map[string]string{".werf/p.tmpl": "{{ define \"d\" }}x{{ end }}p", "VERSION": "1\n"})
	ctx := context.Background()
	gr, head, err := git.OpenHead(ctx, dir)
	if err != nil {
		f.Fatal(err)
	}
	o := Options{MaxSize: DefaultMaxSize, MaxRendered: 1 << 20, RenderTimeout: 2 * time.Second, LookupEnv: func(string) (string, bool) { return "", false }}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := render(ctx, gr, &Rendered{File: "werf.yaml", Path: "werf.yaml", Dir: ".", Commit: head, Source: data}, o)
		if err == nil && int64(len(out)) > o.MaxRendered {
			t.Errorf("rendered %d bytes, over the limit", len(out))
		}
	})
}

// initRepo commits files to a new repository in dir (for fuzz targets, which have no *testing.T).
func initRepo(f *testing.F, dir string, files map[string]string) {
	for p, c := range files {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"-c", "user.name=f", "-c", "user.email=f@f", "commit", "-qm", "f"}} {
		c := exec.Command("git", args...)
		c.Dir = dir
		if out, err := c.CombinedOutput(); err != nil {
			f.Fatalf("git %v: %v %s", args, err, out)
		}
	}
}

// corpusConfigs returns the config (the first file) of every corpus case.
func corpusConfigs(f *testing.F) []string {
	paths, _ := filepath.Glob("testdata/corpus/*.txt")
	var out []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		if _, after, ok := strings.Cut(string(b), " --\n"); ok {
			body, _, _ := strings.Cut(after, "\n-- ")
			out = append(out, body)
		}
	}
	return out
}
