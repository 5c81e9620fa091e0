package lock

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// scripted is a Keeper whose Renew answers with renew and counts calls.
type scripted struct {
	renew            func() error
	renews, releases atomic.Int32
}

func (s *scripted) Renew(ctx context.Context) error {
	s.renews.Add(1)
	return s.renew()
}

func (s *scripted) Release(context.Context) error {
	s.releases.Add(1)
	return nil
}

func keepFor(k Keeper) (Lease, time.Time) {
	now := time.Now()
	return Keep(k, KeepOptions{Name: "p/d", TTL: time.Second, RenewEvery: 200 * time.Millisecond, Acquired: now, Where: "test backend"}), now
}

func TestKeepRenewsUntilUnlock(t *testing.T) {
	k := &scripted{renew: func() error { return nil }}
	l, _ := keepFor(k)
	time.Sleep(2200 * time.Millisecond) // more than two TTLs
	if IsLost(l) {
		t.Fatalf("lost while every renew succeeds: %v", l.Err())
	}
	if n := k.renews.Load(); n < 8 {
		t.Fatalf("%d renews in 2.2 s at a 200 ms period", n)
	}
	if err := l.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	_ = l.Unlock(context.Background())
	renews := k.renews.Load()
	time.Sleep(500 * time.Millisecond)
	if k.releases.Load() != 1 || k.renews.Load() != renews {
		t.Fatalf("after two Unlocks: %d releases, renews went on %d -> %d; want one release and no renew", k.releases.Load(), renews, k.renews.Load())
	}
}

func TestKeepLostAtOnceWhenGone(t *testing.T) {
	k := &scripted{renew: func() error { return Gone(errors.New("taken over by intruder")) }}
	l, _ := keepFor(k)
	select {
	case <-l.Lost():
	case <-time.After(2 * time.Second):
		t.Fatal("not lost after Renew said Gone")
	}
	if err := l.Err(); err == nil || err.Error() != `lock "p/d" lost: taken over by intruder` {
		t.Fatalf("Err() = %v", err)
	}
	if err := l.Unlock(context.Background()); err != nil || k.releases.Load() != 0 {
		t.Fatalf("Unlock of a lost lease: %v, %d releases; want no error and no release", err, k.releases.Load())
	}
}

func TestKeepLostAMarginBeforeTheTTL(t *testing.T) {
	k := &scripted{renew: func() error { return errors.New("backend unreachable") }}
	l, acquired := keepFor(k)
	select {
	case <-l.Lost():
	case <-time.After(3 * time.Second):
		t.Fatal("not lost with every renew failing")
	}
	lostAfter := time.Since(acquired)
	// TTL 1 s, margin min(TTL/5, period) = 200 ms: lost at 800 ms, before anyone may take over.
	if lostAfter < 800*time.Millisecond || lostAfter >= time.Second {
		t.Fatalf("lost %s after the last renew, want within [800ms, 1s)", lostAfter)
	}
	if n := k.renews.Load(); n < 4 {
		t.Fatalf("%d renew attempts before giving up, want retries every quarter period", n)
	}
	err := l.Err()
	for _, want := range []string{"no successful renew within the TTL", "safety margin", "test backend", "backend unreachable"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Err() = %v, want it to contain %q", err, want)
		}
	}
	if err := l.Unlock(context.Background()); err != nil || k.releases.Load() != 0 {
		t.Fatalf("Unlock of a lost lease: %v, %d releases", err, k.releases.Load())
	}
}
