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

// copyDir copies a directory tree of regular files.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The quickstart example, in a subdirectory of a repository: a shell-stage image and a
// Dockerfile image; final images copied to another repository with extra tags.
func TestQuickstartDockerfileFinalRepoAddTag(t *testing.T) {
	host := testenv.DockerHost(t)
	testenv.BaseImage(t)
	repo := testenv.Repo(t, "qs")
	final := testenv.Repo(t, "qs-final")
	g := newGitRepo(t)
	copyDir(t, filepath.Join(testenv.RepoRoot(), "examples", "quickstart"), filepath.Join(g.dir, "deploy", "quickstart"))
	// git add: is a repository path from its root (werf): in a monorepo the example's
	// add: /app becomes /deploy/quickstart/app; context: and dockerfile: stay as they are.
	qs, err := os.ReadFile(filepath.Join(g.dir, "deploy", "quickstart", "strata.yaml"))
	if err != nil || !strings.Contains(string(qs), "- add: /app\n") {
		t.Fatalf("example strata.yaml: %v", err)
	}
	g.write(map[string]string{"README": "monorepo root",
		"deploy/quickstart/strata.yaml": strings.Replace(string(qs), "- add: /app\n", "- add: /deploy/quickstart/app\n", 1)})
	g.git("add", "-A")
	g.git("commit", "-q", "-m", "init")
	ctx := context.Background()
	o := Options{Dir: filepath.Join(g.dir, "deploy", "quickstart"), Repo: repo, Locker: fileLocker(t), DockerHost: host,
		FinalRepo: final, AddTags: []string{"{{.Image}}-{{.ShortCommit}}"}}
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	web, worker := rep.Image("web"), rep.Image("worker")
	if web == nil || worker == nil {
		t.Fatalf("images: %+v", rep.Images)
	}
	if len(worker.Stages) != 1 || worker.Stages[0].Name != "dockerfile" || worker.Stages[0].Status != stages.StatusBuilt {
		t.Errorf("worker stages: %+v", worker.Stages)
	}
	reg := registry.Options{}
	if !strings.HasPrefix(web.Ref, final+":") || !strings.HasPrefix(web.StageRef, repo+":") {
		t.Errorf("web ref %s stageRef %s", web.Ref, web.StageRef)
	}
	fs := files(t, web.Ref, reg)
	if fs["/srv/public/index.html"] == "" || !strings.HasPrefix(fs["/srv/installed/"+strings.Fields(fs["/srv/packages.txt"])[0]], "installed ") {
		t.Errorf("web files: %v", keys(fs))
	}
	if fs := files(t, worker.Ref, reg); !strings.Contains(fs["/bin/worker.sh"], "worker tick") {
		t.Errorf("worker image lacks /bin/worker.sh")
	}
	short := rep.Commit[:8]
	if len(web.ExtraTags) != 1 || web.ExtraTags[0] != final+":web-"+short {
		t.Errorf("extra tags: %v", web.ExtraTags)
	}
	img, err := remoteImage(ctx, reg, web.ExtraTags[0])
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := img.Digest(); d.String() != web.ManifestDigest {
		t.Errorf("extra tag digest %s, want %s", d, web.ManifestDigest)
	}
	cf, _ := img.ConfigFile()
	if cf.Config.WorkingDir != "/srv" || cf.Config.Labels[stages.LabelProject] != "quickstart" || cf.Config.Labels[stages.LabelParent] == "" {
		t.Errorf("web config: workdir %q labels %v", cf.Config.WorkingDir, cf.Config.Labels)
	}
	// Rebuild: the Dockerfile image too is reused, without the engine.
	o.DockerHost = noEngine
	rep2, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if s := rep2.Image("worker").Stages[0]; s.Status != stages.StatusReused || rep2.Image("worker").Ref != worker.Ref {
		t.Errorf("worker rebuild: %+v", s)
	}
	// Only a Dockerfile context change rebuilds it; a .dockerignore'd file does not.
	g.write(map[string]string{"deploy/quickstart/worker/.dockerignore": "*.md\n"})
	g.git("add", "-A")
	g.git("commit", "-q", "-m", "ignore")
	o.DockerHost = host
	rep3, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	d3 := rep3.Image("worker").Stages[0].Digest
	g.write(map[string]string{"deploy/quickstart/worker/NOTES.md": "ignored"})
	g.git("add", "-A")
	g.git("commit", "-q", "-m", "notes")
	o.DockerHost = noEngine
	rep4, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if s := rep4.Image("worker").Stages[0]; s.Digest != d3 || s.Status != stages.StatusReused {
		t.Errorf("ignored file changed the Dockerfile stage: %+v (was %s)", s, d3)
	}
}

func TestNoEngineClearError(t *testing.T) {
	base := testenv.BaseImage(t)
	g := newGitRepo(t)
	g.commit("init", map[string]string{"strata.yaml": head[:len(head)-4] + "---\nimage: a\nfrom: " + base + "\nshell:\n  install: [touch /x]\n"})
	_, err := Run(context.Background(), Options{Dir: g.dir, Repo: testenv.Repo(t, "noengine"), Locker: fileLocker(t), DockerHost: noEngine})
	if err == nil || !strings.Contains(err.Error(), "needs a Docker engine") || !strings.Contains(err.Error(), "install") {
		t.Errorf("error = %v", err)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
