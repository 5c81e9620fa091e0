package build

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
)

// A werf.yaml in a subdirectory: git add: is a path from the repository root (werf's stapel
// semantics), so add: /svc/src reads svc's files; add: /src (a path relative to the config's
// directory) is an error naming the likely fix instead of an empty layer; dockerfile: is
// relative to context:, which may not leave the project directory. No engine is needed.
func TestSubdirectoryProjectPaths(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "subdir")
	reg := registry.Options{}
	g := newGitRepo(t)
	cfg := func(add string) string {
		return "project: sub\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\ngit:\n- add: " + add + "\n  to: /app\n"
	}
	g.commit("init", map[string]string{"svc/werf.yaml": cfg("/svc/src"), "svc/src/a.txt": "svc-a", "src/a.txt": "root-a"})
	ctx := context.Background()
	svcDir := filepath.Join(g.dir, "svc")
	rep, err := Run(ctx, Options{Dir: svcDir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: noEngine})
	if err != nil {
		t.Fatal(err)
	}
	fs := files(t, repo+":"+rep.Image("app").Tag, reg)
	if fs["/app/a.txt"] != "svc-a" {
		t.Errorf("/app/a.txt = %q, want svc's file", fs["/app/a.txt"])
	}

	g.commit("missing", map[string]string{"svc/werf.yaml": cfg("/nosuch")})
	_, err = Run(ctx, Options{Dir: svcDir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: noEngine})
	if err == nil || !strings.Contains(err.Error(), "git[0].add /nosuch: no such path in commit") || !strings.Contains(err.Error(), "did you mean /svc/nosuch?") {
		t.Errorf("missing add path: %v", err)
	}

	g.commit("context", map[string]string{"svc/werf.yaml": "project: sub\nconfigVersion: 1\n---\nimage: web\ndockerfile: Dockerfile\ncontext: ../..\n"})
	_, err = Run(ctx, Options{Dir: svcDir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: noEngine})
	if err == nil || !strings.Contains(err.Error(), `context: "../.." is outside the project directory`) {
		t.Errorf("context outside: %v", err)
	}

	g.commit("nodockerfile", map[string]string{"svc/werf.yaml": "project: sub\nconfigVersion: 1\n---\nimage: web\ndockerfile: Dockerfile\ncontext: src\n"})
	_, err = Run(ctx, Options{Dir: svcDir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: noEngine})
	if err == nil || !strings.Contains(err.Error(), `svc/src/Dockerfile is not in commit`) || !strings.Contains(err.Error(), `relative to context "src"`) {
		t.Errorf("missing dockerfile: %v", err)
	}
	g.commit("nocontext", map[string]string{"svc/werf.yaml": "project: sub\nconfigVersion: 1\n---\nimage: web\ndockerfile: Dockerfile\ncontext: web\n"})
	_, err = Run(ctx, Options{Dir: svcDir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: noEngine})
	if err == nil || !strings.Contains(err.Error(), `context web: no directory svc/web in commit`) {
		t.Errorf("missing context: %v", err)
	}
}
