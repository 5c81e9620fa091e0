package imageupdater

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"strata.dev/strata/internal/testing/testenv"
)

// A failed check is retried from the work queue with per-key exponential backoff, long before
// the next cycle (an hour here); once the registry has the bundle the retry moves the
// Application and its backoff is reset. A healthy Application in the same run is checked once
// per cycle and never retried.
func TestFailedApplicationIsRetriedWithBackoff(t *testing.T) {
	k := newKubeEnv(t)
	healthy := testenv.Repo(t, "healthy")
	missing := testenv.Repo(t, "missing") // not pushed yet: the registry answers 404
	pushBundle(t, healthy, "1.0.0", t0)
	pushBundle(t, healthy, "1.1.0", t0.Add(time.Hour))
	k.app(t, "healthy", map[string]string{AnnotationChartVersion: "1.x"}, helmSource(healthy, "1.0.0"))
	k.app(t, "failing", map[string]string{AnnotationChartVersion: "1.x"}, helmSource(missing, "0.9.0"))

	const base = 100 * time.Millisecond
	c, ct, _ := k.startController(t, func(o *Options) {
		o.Interval = time.Hour
		o.RetryDelay = base
		o.RetryMaxDelay = 2 * time.Second
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.loop(ctx, nil) }()
	defer func() { cancel(); <-done }()

	waitRevision(t, k, "healthy", "1.1.0", 10*time.Second)
	const attempts = 5
	if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 15*time.Second, true, func(context.Context) (bool, error) {
		return len(ct.listingTimes(missing)) >= attempts, nil
	}); err != nil {
		t.Fatalf("failing Application: %d tag listings in 15 s, want %d retries before the hourly cycle", len(ct.listingTimes(missing)), attempts)
	}
	times := ct.listingTimes(missing)
	for i := 1; i < attempts; i++ {
		gap, want := times[i].Sub(times[i-1]), base<<(i-1)
		if gap < want*9/10 {
			t.Errorf("retry %d came %v after the previous check, want at least %v (exponential backoff)", i, gap, want)
		}
	}
	if evs := k.events(t, "failing"); len(evs) != 1 || evs[0].Reason != reasonRegistry {
		t.Errorf("failing: events %+v, want one %s (not one per retry)", evs, reasonRegistry)
	}

	// The bundle appears: the next retry moves the Application, and its backoff is forgotten.
	pushBundle(t, missing, "1.0.0", t0)
	waitRevision(t, k, "failing", "1.0.0", 10*time.Second)
	if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
		return c.queue.NumRequeues(k.ns+"/failing") == 0, nil
	}); err != nil {
		t.Errorf("failing: backoff not reset after success (%d requeues)", c.queue.NumRequeues(k.ns+"/failing"))
	}

	if n := ct.listings(healthy); n != 1 {
		t.Errorf("healthy repository listed %d times, want 1 (one cycle, no retries)", n)
	}
	if evs := k.events(t, "healthy"); len(evs) != 1 || evs[0].Reason != reasonUpdated {
		t.Errorf("healthy: events %+v, want one %s", evs, reasonUpdated)
	}
}
