package lock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// A Keeper renews and releases one lock held on a remote backend. Keep drives it; a backend
// implements only the two calls on its transport.
type Keeper interface {
	// Renew extends the lock by its TTL. ctx ends when the lease is about to be lost or is being
	// unlocked. An error made with Gone means the lock is no longer ours (deleted, taken over,
	// forgotten by the server); any other error is retried.
	Renew(ctx context.Context) error
	// Release gives the lock back. Keep calls it at most once, after renewing has stopped, and
	// only if the lease was not lost.
	Release(ctx context.Context) error
}

// Gone marks a Renew error that means the lock is no longer ours: the lease is lost at once,
// with err as the reason.
func Gone(err error) error { return &goneError{err} }

type goneError struct{ err error }

func (e *goneError) Error() string { return e.err.Error() }
func (e *goneError) Unwrap() error { return e.err }

// KeepOptions configure Keep.
type KeepOptions struct {
	// Name is the lock's name, for errors.
	Name string
	// TTL is how long the backend keeps the lock without a renew.
	TTL time.Duration
	// RenewEvery is the renew period; below TTL.
	RenewEvery time.Duration
	// Acquired is when the lock was last written as ours: the TTL runs from there.
	Acquired time.Time
	// Where names the lock on its backend in the lost error, e.g. "lease NS/NAME".
	Where string
	// Log receives the lost message and failed renews; nil discards them.
	Log *slog.Logger
}

// Keep returns the Lease of a lock held through k and renews it every RenewEvery until Unlock.
// The lease is lost when a Renew says Gone, or when no renew has succeeded for the TTL less
// Margin since the last one: others may take the lock over only at the TTL, so a step taken
// right after a Lost check cannot land after a takeover. A failed renew is retried every
// quarter period.
func Keep(k Keeper, o KeepOptions) Lease {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	l := &keptLease{k: k, o: o, lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go l.renew()
	return l
}

type keptLease struct {
	k Keeper
	o KeepOptions

	mu   sync.Mutex
	err  error
	lost chan struct{}

	stop   chan struct{}
	done   chan struct{}
	unlock sync.Once
}

func (l *keptLease) Lost() <-chan struct{} { return l.lost }

func (l *keptLease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *keptLease) markLost(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return
	}
	l.err = fmt.Errorf("lock %q lost: %w", l.o.Name, err)
	l.o.Log.Warn("lock lost", "error", err)
	close(l.lost)
}

// renew keeps the lock until stopped or lost. lastOK is when the last successful renew was
// sent: past lastOK + TTL the backend may hand the lock to someone else.
func (l *keptLease) renew() {
	defer close(l.done)
	base, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-l.stop:
			cancel()
		case <-base.Done():
		}
	}()
	ttl, every := l.o.TTL, l.o.RenewEvery
	margin := Margin(ttl, every)
	lastOK, next := l.o.Acquired, every
	var lastErr error
	for {
		deadline := lastOK.Add(ttl - margin)
		t := time.NewTimer(max(min(next, time.Until(deadline)), 0))
		select {
		case <-l.stop:
			t.Stop()
			return
		case <-t.C:
		}
		if !time.Now().Before(deadline) {
			l.markLost(fmt.Errorf("no successful renew within the TTL %s less a safety margin of %s (%s, last renewed %s); last error: %v",
				ttl, margin, l.o.Where, lastOK.UTC().Format(time.RFC3339Nano), lastErr))
			return
		}
		sent := time.Now()
		ctx, cancelReq := context.WithDeadline(base, deadline)
		err := l.k.Renew(ctx)
		cancelReq()
		if err == nil {
			lastOK, lastErr, next = sent, nil, every
			continue
		}
		if base.Err() != nil {
			return // unlocking
		}
		if g := (*goneError)(nil); errors.As(err, &g) {
			l.markLost(g.err)
			return
		}
		lastErr, next = err, every/4
		l.o.Log.Debug("renew failed; retrying", "error", err, "lost at", deadline.UTC().Format(time.RFC3339Nano))
	}
}

// Unlock stops renewing and, unless the lease was lost, releases the lock.
func (l *keptLease) Unlock(ctx context.Context) error {
	var err error
	l.unlock.Do(func() {
		close(l.stop)
		<-l.done
		if l.Err() != nil {
			return // lost: not ours to release
		}
		err = l.k.Release(ctx)
	})
	return err
}
