package build

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// heldLocker counts the stage locks held at the moment, and how many were taken.
type heldLocker struct {
	lock.Locker
	held, taken atomic.Int32
}

type heldLease struct {
	lock.Lease
	l    *heldLocker
	once sync.Once
}

func (l *heldLocker) Lock(ctx context.Context, name string) (lock.Lease, error) {
	le, err := l.Locker.Lock(ctx, name)
	if err != nil {
		return nil, err
	}
	l.held.Add(1)
	l.taken.Add(1)
	return &heldLease{Lease: le, l: l}, nil
}

func (h *heldLease) Unlock(ctx context.Context) error {
	h.once.Do(func() { h.l.held.Add(-1) })
	return h.Lease.Unlock(ctx)
}

// One tags listing of the stages storage per build serves every stage of every image; only
// publishing a stage re-lists (under its lock, bypassing the build's listing), once per stage.
func TestOneTagsListingPerBuild(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "listing")
	final := testenv.Repo(t, "listing-final")
	cnt := &counter{}
	reg := registry.Options{Transport: cnt}
	g := newGitRepo(t)
	g.commit("init", map[string]string{
		"strata.yaml": "project: ls\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\ngit:\n- to: /src\n  includePaths: [\"*.txt\"]\ndocker:\n  CMD: [cat, /src/a.txt]\n" +
			"---\nimage: tools\nfromImage: app\ndocker:\n  LABEL: {role: tools}\n" +
			"---\nimage: other\nfrom: " + base + "\nfromCacheVersion: other\ndocker:\n  USER: \"1000\"\n",
		"a.txt": "1",
	})
	ctx := context.Background()
	locker := &heldLocker{Locker: fileLocker(t)}
	cnt.held = func() bool { return locker.held.Load() > 0 }
	r, err := reg.ParseRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	stagesPath := r.RepositoryStr()
	run := func() (rep *stages.Report, listings, locked map[string]int) {
		t.Helper()
		cnt.reset()
		locker.taken.Store(0)
		rep, err := Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: locker, DockerHost: noEngine, FinalRepo: final, Parallel: 3})
		if err != nil {
			t.Fatal(err)
		}
		listings, locked = cnt.listings()
		return rep, listings, locked
	}
	count := func(rep *stages.Report) (total, built int) {
		for _, im := range rep.Images {
			for _, s := range im.Stages {
				total++
				// A discarded stage was published too: it re-listed under the lock.
				if s.Status == stages.StatusBuilt || s.Status == stages.StatusDiscarded {
					built++
				}
			}
		}
		return
	}
	check := func(what string, rep *stages.Report, got, locked map[string]int) {
		t.Helper()
		total, built := count(rep)
		if n := got[stagesPath] - locked[stagesPath]; n != 1 {
			t.Errorf("%s: %d listings of %s outside stage locks for %d stages, want 1 for the whole build", what, n, stagesPath, total)
		}
		if locked[stagesPath] != built || int(locker.taken.Load()) != built {
			t.Errorf("%s: %d re-listings under %d locks for %d published stages, want one per published stage", what, locked[stagesPath], locker.taken.Load(), built)
		}
		for p, n := range got {
			if p != stagesPath {
				t.Errorf("%s: listed %s %d times; only the stages storage is listed", what, p, n)
			}
		}
	}

	rep, got, locked := run()
	if total, built := count(rep); built != total || total != 6 {
		t.Fatalf("first build: %d of %d stages built, want 6 of 6: %+v", built, total, rep.Images)
	}
	check("first build", rep, got, locked)

	rep, got, locked = run()
	if _, built := count(rep); built != 0 {
		t.Fatalf("idle rebuild built %d stages", built)
	}
	check("idle rebuild", rep, got, locked)
	if got[stagesPath] != 1 {
		t.Errorf("idle rebuild: %d listings, want exactly 1", got[stagesPath])
	}

	// A mapped file changes: app gets a patch and a new dockerInstructions, tools a new stage.
	g.commit("a2", map[string]string{"a.txt": "2"})
	rep, got, locked = run()
	if _, built := count(rep); built != 3 {
		t.Fatalf("after a change: %d stages built, want 3: %+v", built, rep.Images)
	}
	check("after a change", rep, got, locked)
}
