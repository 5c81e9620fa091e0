package build

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// contextAddFiles puts working-tree files (untracked, or modified after the commit) into a
// Dockerfile image's context: the image gets them, their content is part of the digest (same
// content, same digest: reused without the engine), and a missing one fails the build naming it.
func TestDockerfileContextAddFiles(t *testing.T) {
	host := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "ctxadd")
	reg := registry.Options{}
	g := newGitRepo(t)
	g.commit("init", map[string]string{
		"strata.yaml":    "project: ctxadd\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\ncontext: app\ncontextAddFiles: [.env, conf.txt]\n",
		"app/Dockerfile": "FROM " + base + "\nCOPY .env /app/.env\nCOPY conf.txt /app/conf.txt\n",
		"app/conf.txt":   "committed",
		".gitignore":     ".env\n",
	})
	// Untracked .env, and conf.txt modified in the working tree after the commit.
	g.write(map[string]string{"app/.env": "A=1\n", "app/conf.txt": "local"})
	run := dockerfileRunner(t, g, repo, reg, "app")
	content := func(s stages.StageReport, env string) {
		t.Helper()
		fs := files(t, repo+":"+s.Tag, reg)
		if fs["/app/.env"] != env || fs["/app/conf.txt"] != "local" {
			t.Errorf("image %s: /app/.env %q /app/conf.txt %q, want %q %q", s.Tag, fs["/app/.env"], fs["/app/conf.txt"], env, "local")
		}
	}
	first := run(host)
	if first.Status != stages.StatusBuilt {
		t.Fatalf("first build: %+v", first)
	}
	content(first, "A=1\n")
	if s := run(noEngine); s.Digest != first.Digest || s.Status != stages.StatusReused {
		t.Errorf("same working tree: %+v, want %s reused", s, first.Digest)
	}

	g.write(map[string]string{"app/.env": "A=2\n"})
	second := run(host)
	if second.Digest == first.Digest || second.Status != stages.StatusBuilt {
		t.Errorf(".env changed: %+v, want a new digest built", second)
	}
	content(second, "A=2\n")

	// Back to the first content (rewritten, new mtime): the first digest, reused.
	g.write(map[string]string{"app/.env": "A=1\n"})
	if s := run(noEngine); s.Digest != first.Digest || s.Status != stages.StatusReused {
		t.Errorf("back to the first .env: %+v, want %s reused", s, first.Digest)
	}

	if err := os.Remove(filepath.Join(g.dir, "app", ".env")); err != nil {
		t.Fatal(err)
	}
	_, err := Run(context.Background(), Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: noEngine})
	if err == nil || !strings.Contains(err.Error(), "contextAddFiles: .env: no such file") {
		t.Errorf("missing .env: error %v, want it named", err)
	}
}

// contextAddFiles reads directories recursively and refuses symbolic links leaving the context.
func TestContextAddFilesPaths(t *testing.T) {
	outside := t.TempDir()
	dir := t.TempDir()
	mk := func(p, s string) {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mk("conf/a", "a")
	mk("conf/sub/b", "b")
	if err := os.Symlink("sub/b", filepath.Join(dir, "conf/link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "conf/a"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := contextAddFiles(dir, []string{"conf", "conf/a"})
	if err != nil {
		t.Fatal(err)
	}
	var list []string
	for _, f := range got {
		list = append(list, f.rel+" "+f.mode+" "+string(f.data))
	}
	if want := "conf/a 100755 a|conf/link 120000 sub/b|conf/sub/b 100644 b"; strings.Join(list, "|") != want {
		t.Errorf("files %q, want %q", strings.Join(list, "|"), want)
	}

	if err := os.Symlink(outside, filepath.Join(dir, "out")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "leak")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"out", "out/secret", "leak", "../x", "missing"} {
		if _, err := contextAddFiles(dir, []string{p}); err == nil {
			t.Errorf("contextAddFiles(%q) = nil error, want a refusal", p)
		} else if !strings.Contains(err.Error(), p) {
			t.Errorf("contextAddFiles(%q): %v, want the path named", p, err)
		}
	}
}

// werf adds contextAddFiles to the build context after its .dockerignore filter (werf's
// build context archive: the git archive is filtered by .dockerignore, then the listed
// working-tree files are written into it, replacing committed ones at the same paths). So a
// listed file that .dockerignore excludes still reaches the engine, and COPY finds it; a
// committed file .dockerignore excludes does not.
func TestContextAddFilesBypassDockerignore(t *testing.T) {
	host := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "ctxaddignore")
	reg := registry.Options{}
	g := newGitRepo(t)
	g.commit("init", map[string]string{
		"strata.yaml":       "project: ctxaddignore\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\ncontext: app\ncontextAddFiles: [secret.env]\n",
		"app/Dockerfile":    "FROM " + base + "\nCOPY secret.env /app/secret.env\nCOPY . /ctx/\n",
		"app/.dockerignore": "*.env\nignored.txt\n",
		"app/ignored.txt":   "committed, ignored",
		"app/kept.txt":      "kept",
		".gitignore":        "*.env\n",
	})
	g.write(map[string]string{"app/secret.env": "S=1\n"})
	s := dockerfileRunner(t, g, repo, reg, "app")(host)
	fs := files(t, repo+":"+s.Tag, reg)
	if fs["/app/secret.env"] != "S=1\n" || fs["/ctx/secret.env"] != "S=1\n" {
		t.Errorf("the listed file .dockerignore excludes: /app/secret.env %q, /ctx/secret.env %q; want it in the context", fs["/app/secret.env"], fs["/ctx/secret.env"])
	}
	if _, ok := fs["/ctx/ignored.txt"]; ok || fs["/ctx/kept.txt"] != "kept" {
		t.Errorf("committed files: /ctx/ignored.txt present %v, /ctx/kept.txt %q; want .dockerignore applied to them", ok, fs["/ctx/kept.txt"])
	}
}
