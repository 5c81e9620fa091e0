// Package buildtest holds the cleanup acceptance tests that run the real `strata build`; they live
// apart so that the cleanup package's own tests do not depend on package build.
package buildtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"strata.dev/strata/build"
	"strata.dev/strata/cleanup"
	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// TestAcceptanceRebuildOfKeptCommitsIsReused builds a history with `strata build` (a tag, a
// deleted branch, a stageDependencies change), cleans up, and rebuilds every kept commit: every
// stage of every image is reused. A rebuild of the deleted branch's commit must build again,
// which shows cleanup did delete what only it needed.
func TestAcceptanceRebuildOfKeptCommitsIsReused(t *testing.T) {
	dockerHost := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "stages")
	ctx := context.Background()
	reg := registry.Options{}
	locker := &lock.File{Dir: t.TempDir()}
	// The clock of cleanup is 3 hours ahead, so the stages built now are not "recent".
	now := time.Now().Add(3 * time.Hour)
	g := &gitRepo{t: t, dir: t.TempDir(), now: now}
	g.run(0, "init", "-q", "-b", "main")
	write := func(files map[string]string) {
		for p, c := range files {
			writeFile(t, g.dir, p, c)
		}
	}
	commit := func(msg string, age time.Duration) string {
		g.run(age, "add", "-A")
		g.run(age, "commit", "-q", "-m", msg)
		return g.run(0, "rev-parse", "HEAD")
	}
	buildHere := func(what string) *stages.Report {
		t.Helper()
		rep, err := build.Run(ctx, build.Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: locker, DockerHost: dockerHost, Parallel: 2})
		if err != nil {
			t.Fatalf("build %s: %v", what, err)
		}
		return rep
	}
	write(map[string]string{
		"strata.yaml": fmt.Sprintf(`project: %s
configVersion: 1
cleanup:
  branches: {last: 2, within: 7d}
  tags: {last: 1}
---
image: app
from: %s
git:
- add: /src
  to: /app
  stageDependencies:
    install: ["deps.txt"]
shell:
  install:
  - cat /app/deps.txt > /installed
docker:
  CMD: ["cat", "/app/main.txt"]
---
image: tools
fromImage: app
docker:
  LABEL: {role: tools}
`, testenv.UniqueName(t, "p"), base),
		"src/main.txt": "v1", "src/deps.txt": "dep-a",
	})
	c1 := commit("c1", 10*day)
	g.run(10*day, "tag", "-a", "v1", "-m", "v1")
	buildHere("c1")
	write(map[string]string{"src/main.txt": "v2"})
	commit("c2", 8*day)
	buildHere("c2")
	g.run(0, "checkout", "-q", "-b", "topic")
	write(map[string]string{"src/main.txt": "topic"})
	t1 := commit("t1", 5*day)
	buildHere("t1")
	g.run(0, "checkout", "-q", "main")
	g.run(0, "branch", "-q", "-D", "topic")
	write(map[string]string{"src/deps.txt": "dep-b"})
	c3 := commit("c3", 2*day)
	buildHere("c3")
	write(map[string]string{"src/main.txt": "v3"})
	c4 := commit("c4", 1*day)
	buildHere("c4")

	st, err := cleanup.OpenStorage(repo, reg)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := st.Tags(ctx)
	res, err := cleanup.Run(ctx, cleanup.Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: locker, Now: now, Out: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := st.Tags(ctx)
	if len(res.Deleted) == 0 || len(after) != len(before)-len(res.Plan.Delete) {
		t.Fatalf("cleanup deleted %d manifests (%d planned stages); tags %d -> %d", len(res.Deleted), len(res.Plan.Delete), len(before), len(after))
	}

	for name, c := range map[string]string{"c1 (tag v1)": c1, "c3": c3, "c4 (main)": c4} {
		g.run(0, "checkout", "-q", c)
		rep := buildHere(name)
		for _, im := range rep.Images {
			for _, s := range im.Stages {
				if s.Status != stages.StatusReused {
					t.Errorf("rebuild of kept commit %s: image %s stage %s is %s, want reused", name, im.Name, s.Name, s.Status)
				}
			}
		}
	}
	g.run(0, "checkout", "-q", t1)
	rep := buildHere("t1")
	built := 0
	for _, im := range rep.Images {
		for _, s := range im.Stages {
			if s.Status != stages.StatusReused {
				built++
			}
		}
	}
	if built == 0 {
		t.Error("rebuild of the deleted branch's commit reused everything: cleanup deleted nothing it alone needed")
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestAcceptancePublishRacingCleanupLosesNothing runs `strata build` of a new commit and
// `strata cleanup` at the same time, several rounds, with a policy that keeps only the branch
// tip: every stage of every build report, built or reused, is still in the storage afterwards.
func TestAcceptancePublishRacingCleanupLosesNothing(t *testing.T) {
	dockerHost := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "stages")
	ctx := context.Background()
	reg := registry.Options{}
	locker := &lock.File{Dir: t.TempDir()}
	now := time.Now().Add(3 * time.Hour) // nothing counts as recently built
	g := &gitRepo{t: t, dir: t.TempDir(), now: now}
	g.run(0, "init", "-q", "-b", "main")
	writeFile(t, g.dir, "strata.yaml", fmt.Sprintf(`project: %s
configVersion: 1
cleanup:
  branches: {last: 1, within: 7d}
  tags: {last: 0}
---
image: app
from: %s
git:
- add: /src
  to: /app
docker:
  CMD: ["cat", "/app/main.txt"]
`, testenv.UniqueName(t, "p"), base))
	st, err := cleanup.OpenStorage(repo, reg)
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 4; round++ {
		writeFile(t, g.dir, "src/main.txt", fmt.Sprintf("round %d", round))
		g.run(time.Duration(5-round)*day, "add", "-A")
		g.run(time.Duration(5-round)*day, "commit", "-q", "-m", fmt.Sprintf("round %d", round))
		var rep *stages.Report
		var buildErr, cleanErr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			rep, buildErr = build.Run(ctx, build.Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: locker, DockerHost: dockerHost})
		}()
		_, cleanErr = cleanup.Run(ctx, cleanup.Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: locker, Now: now})
		<-done
		if buildErr != nil || cleanErr != nil {
			t.Fatalf("round %d: build: %v; cleanup: %v", round, buildErr, cleanErr)
		}
		// A cleanup after the build keeps the tip's stages and deletes the previous tip's own.
		res, err := cleanup.Run(ctx, cleanup.Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: locker, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: build %v; cleanups deleted %d manifests after the build", round, statuses(rep), len(res.Deleted))
		tags, err := st.Tags(ctx)
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, tag := range tags {
			have[tag] = true
		}
		for _, im := range rep.Images {
			for _, s := range im.Stages {
				if !have[s.Tag] {
					t.Errorf("round %d: stage %s (%s, %s) of the build is gone", round, s.Name, s.Status, s.Tag)
				}
			}
		}
	}
}

func statuses(rep *stages.Report) []string {
	var out []string
	for _, im := range rep.Images {
		for _, s := range im.Stages {
			out = append(out, s.Name+"="+s.Status)
		}
	}
	return out
}

const day = 24 * time.Hour

// gitRepo runs git in dir with commit dates relative to now.
type gitRepo struct {
	t   *testing.T
	dir string
	now time.Time
}

func (g *gitRepo) run(age time.Duration, args ...string) string {
	g.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = g.dir
	date := g.now.Add(-age).Format(time.RFC3339)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_DATE="+date, "GIT_COMMITTER_DATE="+date,
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		g.t.Fatalf("git %v: %v: %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func writeFile(t *testing.T, dir, rel, content string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
