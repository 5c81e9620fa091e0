package build

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/gitserver"
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

// A remote mapping over HTTP on 127.0.0.1 behind basic authentication (git http-backend):
// werf's basicAuth with the password from the environment, a file or the config fetches it;
// without credentials, or with an unset variable, the build stops naming the cause and never
// the password.
func TestRemoteGitBasicAuth(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "remoteauth")
	reg := registry.Options{}
	ctx := context.Background()
	srv, err := gitserver.Start(gitserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	url, err := srv.CreateRepo(ctx, "team/lib", "main", map[string]string{"lib/a.txt": "from http\n"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := func(auth string) string {
		return "project: remoteauth\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\ngit:\n- url: " + url + "\n  add: /lib\n  to: /lib\n" + auth
	}
	g := newGitRepo(t)
	t.Setenv("LIB_PASSWORD", srv.Password)
	var ref string
	for _, c := range []struct{ what, auth string }{
		{"env", "  basicAuth:\n    username: " + srv.Username + "\n    password: {env: LIB_PASSWORD}\n"},
		{"file", "  basicAuth:\n    username: " + srv.Username + "\n    password: {src: secrets/lib-password}\n"},
		{"value", "  basicAuth:\n    username: " + srv.Username + "\n    password: {value: " + srv.Password + "}\n"},
	} {
		g.commit(c.what, map[string]string{"werf.yaml": cfg(c.auth), "secrets/lib-password": srv.Password + "\n"})
		rep, err := Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: noEngine, GitCacheDir: t.TempDir()})
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		im := rep.Image("app")
		if fs := files(t, im.Ref, reg); fs["/lib/a.txt"] != "from http\n" {
			t.Errorf("%s: /lib/a.txt = %q", c.what, fs["/lib/a.txt"])
		}
		if ref != "" && im.Ref != ref {
			t.Errorf("%s: %s, want %s (credentials are no digest input)", c.what, im.Ref, ref)
		}
		ref = im.Ref
	}
	for _, c := range []struct{ what, auth, want string }{
		{"no credentials", "", "git remote " + url},
		{"unset variable", "  basicAuth:\n    username: u\n    password: {env: NO_SUCH_PASSWORD_VAR}\n", "environment variable NO_SUCH_PASSWORD_VAR is not set"},
		{"wrong password", "  basicAuth:\n    username: " + srv.Username + "\n    password: {value: wrong}\n", "git remote " + url},
	} {
		g.commit(c.what, map[string]string{"werf.yaml": cfg(c.auth)})
		_, err := Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: noEngine, GitCacheDir: t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), srv.Password) {
			t.Errorf("%s: %v, want an error naming %q, without the password", c.what, err, c.want)
		}
	}
}
