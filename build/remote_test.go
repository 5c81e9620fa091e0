package build

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// werf's `git: - url:` on the real engine and registry: a remote repository served over file://
// is cloned into the git cache, its branch resolved to a commit that is the digest input. The
// branch moving rebuilds from gitArchive with the new content; the same commit reached through
// another URL (a mirror), a tag or the commit itself reuses every stage; a fresh cache on
// another clone computes the same digests.
func TestRemoteGitMapping(t *testing.T) {
	host := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "remotegit")
	reg := registry.Options{}

	lib := newGitRepo(t)
	c1 := lib.commit("v1", map[string]string{"src/lib.txt": "lib 1", "README": "not mapped"})
	lib.git("tag", "v1")
	bare := filepath.Join(t.TempDir(), "lib.git")
	lib.git("clone", "-q", "--bare", lib.dir, bare)
	lib.git("remote", "add", "origin", bare)

	cfg := func(url, ref string) string {
		return `project: remotegit
configVersion: 1
---
image: app
from: ` + base + `
git:
- add: /app
  to: /app
- url: ` + url + `
` + ref + `  add: /src
  to: /lib
  stageDependencies:
    install: ["*.txt"]
shell:
  install: [cat /lib/lib.txt /app/main.txt > /both]
`
	}
	g := newGitRepo(t)
	g.commit("init", map[string]string{"werf.yaml": cfg("file://"+bare, "  branch: main\n"), "app/main.txt": "main"})
	ctx := context.Background()
	cache := t.TempDir()
	run := func(dir, dockerHost, cache string) *stages.ImageReport {
		t.Helper()
		rep, err := Run(ctx, Options{Dir: dir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: dockerHost, GitCacheDir: cache})
		if err != nil {
			t.Fatal(err)
		}
		return rep.Image("app")
	}
	first := run(g.dir, host, cache)
	fs := files(t, first.Ref, reg)
	if fs["/lib/lib.txt"] != "lib 1" || fs["/both"] != "lib 1main" || fs["/lib/README"] != "" || fs["/app/main.txt"] != "main" {
		t.Fatalf("first build: /lib/lib.txt %q /both %q files %v", fs["/lib/lib.txt"], fs["/both"], keys(fs))
	}
	reusedAll := func(what string, got *stages.ImageReport) {
		t.Helper()
		if got.Ref != first.Ref {
			t.Errorf("%s: %s, want %s reused", what, got.Ref, first.Ref)
		}
		for i, s := range got.Stages {
			if s.Status != stages.StatusReused || s.Digest != first.Stages[i].Digest {
				t.Errorf("%s: %s %s %s, want reused %s", what, s.Name, s.Status, s.Digest, first.Stages[i].Digest)
			}
		}
	}

	// Another clone of the project with an empty cache: same digests, nothing built.
	clone := filepath.Join(t.TempDir(), "elsewhere")
	g.git("clone", "-q", g.dir, clone)
	reusedAll("clone with a fresh cache", run(clone, noEngine, t.TempDir()))

	// The same commit through a mirror's URL, the tag, the commit: the same digests.
	mirror := filepath.Join(t.TempDir(), "mirror.git")
	lib.git("clone", "-q", "--bare", bare, mirror)
	for _, c := range []struct{ what, url, ref string }{
		{"mirror URL", mirror, "  branch: main\n"},
		{"tag", "file://" + bare, "  tag: v1\n"},
		{"commit", "file://" + bare, "  commit: " + c1 + "\n"},
		{"default branch", "file://" + bare, ""},
	} {
		g.commit(c.what, map[string]string{"werf.yaml": cfg(c.url, c.ref)})
		reusedAll(c.what, run(g.dir, noEngine, cache))
	}

	// The branch moves: gitArchive and the stages after it are built again, with the new
	// content (install depends on *.txt of the remote mapping).
	lib.commit("v2", map[string]string{"src/lib.txt": "lib 2"})
	lib.git("push", "-q", "origin", "main")
	g.commit("back to the branch", map[string]string{"werf.yaml": cfg("file://"+bare, "  branch: main\n")})
	second := run(g.dir, host, cache)
	st := statuses(second)
	if st["from"] != stages.StatusReused || st["gitArchive"] != stages.StatusBuilt || st["install"] != stages.StatusBuilt {
		t.Errorf("after the branch moved: %v", st)
	}
	if fs := files(t, second.Ref, reg); fs["/lib/lib.txt"] != "lib 2" || fs["/both"] != "lib 2main" {
		t.Errorf("after the branch moved: /lib/lib.txt %q /both %q", fs["/lib/lib.txt"], fs["/both"])
	}

	// A pinned commit still builds the old content, from the stored stages.
	g.commit("pin", map[string]string{"werf.yaml": cfg("file://"+bare, "  commit: "+c1[:12]+"\n")})
	reusedAll("pinned old commit", run(g.dir, noEngine, cache))

	// What cannot be resolved is named, before anything is built.
	for _, c := range []struct{ ref, add, want string }{
		{"  branch: nope\n", "", "branch nope"},
		{"  tag: v1\n", "/missing", "git[1].add /missing: no such path in file://" + bare},
	} {
		text := cfg("file://"+bare, c.ref)
		if c.add != "" {
			text = strings.Replace(text, "add: /src", "add: "+c.add, 1)
		}
		g.commit("bad", map[string]string{"werf.yaml": text})
		_, err := Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: noEngine, GitCacheDir: cache})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", c.ref, err, c.want)
		}
	}
}
