package build

import (
	"context"
	"errors"
	"sync"
	"testing"

	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testenv"
)

// losingLocker hands out file locks whose first lease per name is already lost, as a backend
// does when its lease expires between taking the lock and pushing.
type losingLocker struct {
	lock.Locker
	mu    sync.Mutex
	seen  map[string]int
	locks int
}

type lostLease struct {
	lock.Lease
	ch chan struct{}
}

func (l *lostLease) Lost() <-chan struct{} { return l.ch }
func (l *lostLease) Err() error            { return errors.New("lease expired") }

func (l *losingLocker) Lock(ctx context.Context, name string) (lock.Lease, error) {
	le, err := l.Locker.Lock(ctx, name)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.locks++
	l.seen[name]++
	if l.seen[name] == 1 {
		ch := make(chan struct{})
		close(ch)
		return &lostLease{Lease: le, ch: ch}, nil
	}
	return le, nil
}

func TestLostLeaseAbandonsPushAndRechecks(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "lease")
	g := newGitRepo(t)
	g.commit("init", map[string]string{"strata.yaml": "project: lease\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\ndocker:\n  CMD: [x]\n"})
	cnt := &counter{}
	lk := &losingLocker{Locker: fileLocker(t), seen: map[string]int{}}
	rep, err := Run(context.Background(), Options{Dir: g.dir, Repo: repo, Locker: lk, DockerHost: noEngine, Registry: registry.Options{Transport: cnt}})
	if err != nil {
		t.Fatal(err)
	}
	stages := rep.Image("app").Stages
	if len(stages) != 2 || stages[0].Status != StatusBuilt || stages[1].Status != StatusBuilt {
		t.Fatalf("stages: %+v", stages)
	}
	if lk.locks != 4 {
		t.Errorf("took %d locks for 2 stages, want 4 (each push abandoned once and re-locked)", lk.locks)
	}
	r, _ := registry.Options{}.ParseRepository(repo)
	tags, err := remoteList(context.Background(), registry.Options{}, r)
	if err != nil || len(tags) != 2 {
		t.Errorf("stored tags = %v (%v), want one per stage", tags, err)
	}
}
