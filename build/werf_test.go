package build

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// A werf.yaml as werf users write it, built on the real engine and registry: a project in a
// subdirectory of a monorepo, a Go template with a partial in .werf/, .Files.Get, env and .Env,
// an image list, git add: from the repository root. A clone in another directory (another
// machine) computes the same digests and reuses every stage without the engine.
func TestWerfTemplatedSubdirectoryProject(t *testing.T) {
	host := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "werftpl")
	reg := registry.Options{}
	t.Setenv("STRATA_TEST_BASE_IMAGE", base)
	g := newGitRepo(t)
	g.commit("init", map[string]string{
		"apps/shop/werf.yaml": `project: shop
configVersion: 1
---
{{- range $name := list "api" "worker" }}
{{ include "image.tmpl" (dict "name" $name "root" $) }}
---
{{- end }}
image: [docs-a, docs-b]
from: {{ env "STRATA_TEST_BASE_IMAGE" }}
git:
- add: /apps/shop/docs
  to: /docs
`,
		"apps/shop/.werf/image.tmpl": `image: {{ .name }}
from: {{ env "STRATA_TEST_BASE_IMAGE" }}
git:
- add: /apps/shop/src
  to: /app
shell:
  install:
  - echo {{ .name }}-{{ .root.Files.Get "VERSION" | trim }}-{{ .root.Env }} > /which
docker:
  LABEL: {version: {{ .root.Files.Get "VERSION" | trim | quote }}}
`,
		"apps/shop/VERSION":      "1.4.2\n",
		"apps/shop/src/main.txt": "main",
		"apps/shop/docs/a.md":    "docs",
		"VERSION":                "not the project's",
	})
	ctx := context.Background()
	run := func(dir, dockerHost string) *stages.Report {
		t.Helper()
		rep, err := Run(ctx, Options{Dir: filepath.Join(dir, "apps", "shop"), Env: "prod", Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: dockerHost})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	first := run(g.dir, host)
	if len(first.Images) != 4 {
		t.Fatalf("images %+v", first.Images)
	}
	for _, name := range []string{"api", "worker"} {
		im := first.Image(name)
		fs := files(t, im.Ref, reg)
		if fs["/which"] != name+"-1.4.2-prod\n" || fs["/app/main.txt"] != "main" {
			t.Errorf("%s: /which %q /app/main.txt %q", name, fs["/which"], fs["/app/main.txt"])
		}
	}
	if fs := files(t, first.Image("docs-b").Ref, reg); fs["/docs/a.md"] != "docs" {
		t.Errorf("docs-b files %v", keys(fs))
	}

	clone := filepath.Join(t.TempDir(), "elsewhere")
	g.git("clone", "-q", g.dir, clone)
	again := run(clone, noEngine)
	for _, im := range first.Images {
		a := again.Image(im.Name)
		if a == nil || a.Ref != im.Ref {
			t.Errorf("%s: clone built %+v, want %s reused", im.Name, a, im.Ref)
			continue
		}
		for i, s := range a.Stages {
			if s.Status != stages.StatusReused || s.Digest != im.Stages[i].Digest {
				t.Errorf("%s/%s in the clone: %s %s, want reused %s", im.Name, s.Name, s.Status, s.Digest, im.Stages[i].Digest)
			}
		}
	}
}

// image: ~ (werf's nameless single image) builds; werf keys Strata cannot build yet stop the
// build before anything is built, naming file, line and key; a build.platform other than the
// base image's is refused naming both.
func TestNamelessImageAndUnsupportedKeys(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "nameless")
	reg := registry.Options{}
	g := newGitRepo(t)
	g.commit("init", map[string]string{"werf.yaml": "project: nl\nconfigVersion: 1\n---\nimage: ~\nfrom: " + base + "\ngit:\n- add: /src\n  to: /app\n", "src/a.txt": "a"})
	ctx := context.Background()
	rep, err := Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: noEngine})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Images) != 1 || rep.Images[0].Name != "" || files(t, rep.Images[0].Ref, reg)["/app/a.txt"] != "a" {
		t.Errorf("nameless image: %+v", rep.Images)
	}
	g.commit("ansible", map[string]string{"werf.yaml": "project: nl\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\nansible:\n  install:\n  - shell: make\n"})
	_, err = Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: noEngine})
	if err == nil || !strings.Contains(err.Error(), "werf.yaml:6: ansible is not supported") || !strings.Contains(err.Error(), "shell:") {
		t.Errorf("ansible: %v", err)
	}
	g.commit("platform", map[string]string{"werf.yaml": "project: nl\nconfigVersion: 1\nbuild:\n  platform: [linux/arm64]\n---\nimage: a\nfrom: " + base + "\n"})
	_, err = Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: noEngine})
	if other := "linux/arm64"; runtime.GOARCH != "arm64" && (err == nil || !strings.Contains(err.Error(), "platform "+other+": base image "+base+" is linux/"+runtime.GOARCH)) {
		t.Errorf("build.platform: %v", err)
	}
}

// With --dev the config comes from the snapshot of the work tree: an uncommitted config (new or
// edited) is used, and an uncommitted symlink in its place is refused like a committed one,
// without reading the target.
func TestDevConfigFromSnapshot(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "devcfg")
	g := newGitRepo(t)
	g.commit("init", map[string]string{"README": "x", "src/a.txt": "a"})
	g.write(map[string]string{"strata.yml": "project: devcfg\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\ngit:\n- add: /src\n  to: /app\n"})
	ctx := context.Background()
	o := Options{Dir: g.dir, Repo: repo, Locker: fileLocker(t), DockerHost: noEngine}
	if _, err := Run(ctx, o); err == nil || !strings.Contains(err.Error(), "uncommitted changes") {
		t.Fatalf("uncommitted config without --dev: %v", err)
	}
	o.Dev = true
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Project != "devcfg" || rep.Image("app") == nil || rep.Config != "strata.yml" {
		t.Errorf("--dev with a new config: %+v", rep)
	}
	secret := filepath.Join(t.TempDir(), "token")
	const marker = "SECRET-MARKER-dev"
	if err := os.WriteFile(secret, []byte("project: "+marker+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(g.dir, "strata.yml"))
	if err := os.Symlink(secret, filepath.Join(g.dir, "strata.yaml")); err != nil {
		t.Fatal(err)
	}
	_, err = Run(ctx, o)
	if err == nil || !strings.Contains(err.Error(), "strata.yaml is a symbolic link") || strings.Contains(err.Error(), marker) {
		t.Errorf("--dev with a symlinked config: %v", err)
	}
}
