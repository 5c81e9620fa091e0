package buildtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"strata.dev/strata/build"
	"strata.dev/strata/cleanup"
	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/syncbuf"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// beforeLockLocker runs hook once, before taking the first lock the build asks for: in a build
// that publishes one stage, the publish lock of that stage, long after the build chose its
// stored parent.
type beforeLockLocker struct {
	lock.Locker
	once sync.Once
	hook func(name string)
}

func (l *beforeLockLocker) Lock(ctx context.Context, name string) (lock.Lease, error) {
	l.once.Do(func() { l.hook(name) })
	return l.Locker.Lock(ctx, name)
}

// TestAcceptancePublishAfterCleanupRestoresChosenParent: a build of a commit on a deleted branch
// chooses the stored stage P (gitLatestPatch of the branch's earlier commit); a whole
// `strata cleanup` runs after that choice and deletes P, which no kept image uses; only then
// does the build publish its new stage X on P. Cleanup cannot see X, so the builder itself puts
// P back: afterwards P is stored under its tag with the identical manifest, X is stored, every
// stage of the report is stored, and a second build reuses everything.
func TestAcceptancePublishAfterCleanupRestoresChosenParent(t *testing.T) {
	dockerHost := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "stages")
	ctx := context.Background()
	reg := registry.Options{}
	files := &lock.File{Dir: t.TempDir()}
	now := time.Now().Add(3 * time.Hour) // nothing counts as recently built
	g := &gitRepo{t: t, dir: t.TempDir(), now: now}
	g.run(0, "init", "-q", "-b", "main")
	project := testenv.UniqueName(t, "p")
	config := func(cmd string) string {
		return fmt.Sprintf(`project: %s
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
  CMD: ["cat", "%s"]
`, project, base, cmd)
	}
	commit := func(msg string, age time.Duration, files map[string]string) string {
		for p, c := range files {
			writeFile(t, g.dir, p, c)
		}
		g.run(age, "add", "-A")
		g.run(age, "commit", "-q", "-m", msg)
		return g.run(0, "rev-parse", "HEAD")
	}
	buildWith := func(what string, locker lock.Locker, log *slog.Logger) *stages.Report {
		t.Helper()
		rep, err := build.Run(ctx, build.Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: locker, DockerHost: dockerHost, Log: log})
		if err != nil {
			t.Fatalf("build %s: %v", what, err)
		}
		return rep
	}
	commit("c1", 6*day, map[string]string{"strata.yaml": config("/app/main.txt"), "src/main.txt": "main"})
	buildWith("c1", files, nil)
	g.run(0, "checkout", "-q", "-b", "topic")
	commit("t1", 5*day, map[string]string{"src/main.txt": "topic"})
	first := buildWith("t1", files, nil).Image("app")
	var p stages.StageReport
	for _, s := range first.Stages {
		if s.Name == "gitLatestPatch" {
			p = s
		}
	}
	if p.Status != stages.StatusBuilt {
		t.Fatalf("build of t1: stages %+v, want gitLatestPatch built", first.Stages)
	}
	// t2 changes only the CMD (outside the mapping): its build reuses P and publishes X on it.
	commit("t2", 4*day, map[string]string{"strata.yaml": config("/app/other.txt")})
	g.run(0, "checkout", "-q", "--detach")
	g.run(0, "branch", "-q", "-D", "topic")

	st, err := cleanup.OpenStorage(repo, reg)
	if err != nil {
		t.Fatal(err)
	}
	pManifest := manifestDigest(t, st, p.Tag)
	var res *cleanup.Result
	var lockName string
	locker := &beforeLockLocker{Locker: files, hook: func(name string) {
		lockName = name
		var err error
		if res, err = cleanup.Run(ctx, cleanup.Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: files, Now: now, Out: testWriter{t}}); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}}
	var logs syncbuf.Buffer
	rep := buildWith("t2", locker, slog.New(slog.NewTextHandler(&logs, nil))).Image("app")
	if res == nil {
		t.Fatal("cleanup did not run during the build")
	}
	x := rep.Stages[len(rep.Stages)-1]
	if x.Status != stages.StatusBuilt || lockName != stages.PublishLock(project, x.Digest) {
		t.Fatalf("build of t2: last stage %+v; cleanup ran when lock %q was asked for, want the publish lock of that stage", x, lockName)
	}
	if !slices.Contains(res.Deleted, pManifest) || len(res.Restored) != 0 {
		t.Fatalf("cleanup deleted %v and restored %v; want P's manifest %s deleted for good (X not yet published)", res.Deleted, res.Restored, pManifest)
	}
	var chosen bool
	for _, s := range rep.Stages {
		chosen = chosen || s.Tag == p.Tag && s.Status == stages.StatusReused
	}
	if !chosen {
		t.Fatalf("build of t2 did not reuse P %s: %+v", p.Tag, rep.Stages)
	}
	if got := manifestDigest(t, st, p.Tag); got != pManifest {
		t.Errorf("P %s: manifest %q after the build, want the identical %s", p.Tag, got, pManifest)
	}
	if want := fmt.Sprintf("restored parent stage %s (deleted while this build ran)", p.Tag); !strings.Contains(logs.String(), want) {
		t.Errorf("build log lacks %q:\n%s", want, logs.String())
	}
	for _, s := range rep.Stages {
		if manifestDigest(t, st, s.Tag) == "" {
			t.Errorf("stage %s %s (%s) of the report is not stored", s.Name, s.Tag, s.Status)
		}
	}
	again := buildWith("t2 again", files, nil).Image("app")
	for i, s := range again.Stages {
		if s.Status != stages.StatusReused || s.Tag != rep.Stages[i].Tag {
			t.Errorf("second build: %s %s %s, want reused %s", s.Name, s.Status, s.Tag, rep.Stages[i].Tag)
		}
	}
}

// manifestDigest returns the manifest digest stored under tag, or "" when the tag does not exist.
func manifestDigest(t *testing.T, st *cleanup.Storage, tag string) string {
	t.Helper()
	d, err := remote.Head(st.Repo.Tag(tag), st.Registry.Remote(context.Background())...)
	if err != nil {
		var te *transport.Error
		if errors.As(err, &te) && te.StatusCode == 404 {
			return ""
		}
		t.Fatal(err)
	}
	return d.Digest.String()
}
