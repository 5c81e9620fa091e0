package config

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"strata.dev/strata/internal/git"
	"strata.dev/strata/internal/testing/fuzztest"
)

// FuzzParse: no input makes the parser panic or hang (a "billion laughs" of aliases stops at the
// node bound); parsing is deterministic; every error names the file and, but for YAML syntax
// errors the YAML library reports without one, a line (strata.yaml:N: with N >= 1); every parsed
// image has its line.
func FuzzParse(f *testing.F) {
	for _, c := range corpusConfigs(f) {
		f.Add([]byte(c))
	}
	f.Add([]byte("project: p\nconfigVersion: 1\n---\nimage: a\nfrom: x\nshell: &a {install: [*a]}\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	// issue 19 item 7: anchors and aliases are plain YAML
	f.Add([]byte("project: p\nconfigVersion: 1\n---\nimage: a\nfrom: x\nshell: &s {install: [echo]}\n---\nimage: b\nfrom: x\nshell: *s\n"))
	f.Add([]byte("project: p\nconfigVersion: 1\n---\nx: &a [a,a,a,a,a,a,a,a,a]\ny: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nz: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nw: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"))
	f.Add([]byte("project: p\nconfigVersion: 1\n---\nimage: a\n<<: {from: x}\n"))
	lineErr := regexp.MustCompile(`^strata\.yaml:[1-9][0-9]*: |^strata\.yaml: yaml: (line [1-9]|[a-z])`)
	bounds := fuzztest.Bounds{Time: 20 * time.Second, Heap: 512 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c1, c2 *Config
		var err1, err2 error
		fuzztest.Bounded(t, bounds, "Parse", func() {
			c1, err1 = Parse("strata.yaml", data)
			c2, err2 = Parse("strata.yaml", data)
		})
		if (err1 == nil) != (err2 == nil) || (err1 != nil && err1.Error() != err2.Error()) || !reflect.DeepEqual(c1, c2) {
			t.Fatalf("two parses differ: %v / %v", err1, err2)
		}
		if err1 != nil {
			if !lineErr.MatchString(err1.Error()) {
				t.Errorf("error without strata.yaml:LINE: %v", err1)
			}
			return
		}
		for _, im := range c1.Images {
			if im.Line < 1 {
				t.Errorf("image %q without its line", im.Name)
			}
		}
	})
}

// FuzzRender: templates from the corpus and mutations of them render or fail within the time
// bound, never past the output bound, never panicking, errors naming the file; rendering is
// deterministic and parse(render(x)) is stable (the same twice, errors at file:line); the
// partials and .Files inputs come from one committed repository.
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
	bounds := fuzztest.Bounds{Time: 30 * time.Second, Heap: 512 << 20}
	lineErr := regexp.MustCompile(`^werf\.yaml:[1-9][0-9]*: |^werf\.yaml: yaml: (line [1-9]|[a-z])`)
	f.Fuzz(func(t *testing.T, data []byte) {
		run := func() (out []byte, err error) {
			fuzztest.Bounded(t, bounds, "render", func() {
				out, err = render(ctx, gr, &Rendered{File: "werf.yaml", Path: "werf.yaml", Dir: ".", Commit: head, Source: data}, o)
			})
			return out, err
		}
		out, err := run()
		if err != nil {
			if !strings.Contains(err.Error(), "werf.yaml") {
				t.Errorf("template error without the file: %v", err)
			}
			return
		}
		if int64(len(out)) > o.MaxRendered {
			t.Errorf("rendered %d bytes, over the limit", len(out))
		}
		// Rendering is deterministic (the inputs are one commit), and what it renders parses
		// the same twice, its errors at a line of the rendered file.
		again, err := run()
		if err != nil && strings.Contains(err.Error(), "rendering the templates took more than") {
			return // close to the time bound: the second run may cross it
		}
		if err != nil || !bytes.Equal(out, again) {
			t.Fatalf("a second render differs (err %v)", err)
		}
		c1, err1 := Parse("werf.yaml", out)
		c2, err2 := Parse("werf.yaml", out)
		if (err1 == nil) != (err2 == nil) || (err1 != nil && err1.Error() != err2.Error()) || !reflect.DeepEqual(c1, c2) {
			t.Fatalf("two parses of the rendered config differ: %v / %v", err1, err2)
		}
		if err1 != nil && !lineErr.MatchString(err1.Error()) {
			t.Errorf("error without werf.yaml:LINE: %v", err1)
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
