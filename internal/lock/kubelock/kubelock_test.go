package kubelock

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/testing/locktest"
	"strata.dev/strata/internal/testing/testenv"
)

// testNamespace returns a fresh namespace name, deleted when the test ends (the Locker creates it).
func testNamespace(t *testing.T, cs kubernetes.Interface) string {
	ns := testenv.UniqueName(t, "ns")
	t.Cleanup(func() {
		_ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	return ns
}

func newLocker(t testing.TB, cs kubernetes.Interface, ns, owner string, ttl, renew time.Duration) *Locker {
	t.Helper()
	k, err := New(Options{Client: cs, Namespace: ns, Owner: owner, TTL: ttl, RenewEvery: renew, MaxWait: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func clientFor(t testing.TB, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	cs, err := ClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestMutualExclusion(t *testing.T) {
	cs := clientFor(t, testenv.KubeConfig(t))
	ns := testNamespace(t, cs) // does not exist yet: 8 lockers create it concurrently
	var lockers []lock.Locker
	for i := 0; i < 8; i++ {
		lockers = append(lockers, newLocker(t, cs, ns, fmt.Sprintf("worker-%d", i), 5*time.Second, time.Second))
	}
	name := "project/" + testenv.UniqueName(t, "digest")
	if n := locktest.Exclusion(t, lockers, name, 5, 5*time.Millisecond); n != 40 {
		t.Fatalf("ran %d critical sections, want 40", n)
	}
	// Released locks leave no Lease behind.
	_, err := cs.CoordinationV1().Leases(ns).Get(context.Background(), LeaseName(name), metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("Lease after the last release: %v, want NotFound", err)
	}
}

func TestLeaseObject(t *testing.T) {
	cs := clientFor(t, testenv.KubeConfig(t))
	ns := testNamespace(t, cs)
	k := newLocker(t, cs, ns, "builder-a", 15*time.Second, 5*time.Second)
	name := "my-project/" + strings.Repeat("ab", 28)
	l, err := k.Lock(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(context.Background())
	obj, err := cs.CoordinationV1().Leases(ns).Get(context.Background(), LeaseName(name), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := obj.Annotations[NameAnnotation]; got != name {
		t.Errorf("annotation %s = %q, want %q", NameAnnotation, got, name)
	}
	if h := *obj.Spec.HolderIdentity; !strings.HasPrefix(h, "builder-a/") {
		t.Errorf("holderIdentity %q, want builder-a/<suffix>", h)
	}
	if *obj.Spec.LeaseDurationSeconds != 15 || obj.Spec.AcquireTime == nil || obj.Spec.RenewTime == nil {
		t.Errorf("spec %+v: want leaseDurationSeconds 15, acquireTime and renewTime", obj.Spec)
	}
	h, held, err := k.Holder(context.Background(), name)
	if err != nil || !held || !strings.HasPrefix(h.Owner, "builder-a/") {
		t.Errorf("Holder = %v, %v, %v", h, held, err)
	}
}

// putLease writes a Lease as a foreign holder would: renewed at renew, valid for ttl seconds.
func putLease(t *testing.T, cs kubernetes.Interface, ns, name, holder string, renew time.Time, ttl int32) {
	t.Helper()
	mt := metav1.NewMicroTime(renew)
	_, err := cs.CoordinationV1().Leases(ns).Create(context.Background(), &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: LeaseName(name), Namespace: ns},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &ttl, AcquireTime: &mt, RenewTime: &mt},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func TestTakeoverOnlyAfterExpiry(t *testing.T) {
	cs := clientFor(t, testenv.KubeConfig(t))
	ns := testNamespace(t, cs)
	k := newLocker(t, cs, ns, "waiter", 3*time.Second, time.Second)
	ctx := context.Background()
	if err := k.ensureNamespace(ctx); err != nil {
		t.Fatal(err)
	}

	t.Run("dead holder", func(t *testing.T) {
		name := testenv.UniqueName(t, "dead")
		renewed := time.Now()
		putLease(t, cs, ns, name, "ghost", renewed, 2)
		l, err := k.Lock(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Unlock(ctx)
		if at := time.Now(); at.Before(renewed.Add(2 * time.Second)) {
			t.Fatalf("took over at %s, before the ghost's lease expired at %s", at, renewed.Add(2*time.Second))
		}
		obj, err := cs.CoordinationV1().Leases(ns).Get(ctx, LeaseName(name), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(*obj.Spec.HolderIdentity, "waiter/") || obj.Spec.LeaseTransitions == nil || *obj.Spec.LeaseTransitions != 1 {
			t.Fatalf("after takeover: holder %q transitions %v", *obj.Spec.HolderIdentity, obj.Spec.LeaseTransitions)
		}
	})

	t.Run("racing takeover", func(t *testing.T) {
		// Many waiters on one expired Lease: resourceVersion checks let exactly one win at a time.
		name := testenv.UniqueName(t, "race")
		putLease(t, cs, ns, name, "ghost", time.Now().Add(-time.Minute), 1)
		var lockers []lock.Locker
		for i := 0; i < 6; i++ {
			lockers = append(lockers, newLocker(t, cs, ns, fmt.Sprintf("racer-%d", i), 3*time.Second, time.Second))
		}
		if n := locktest.Exclusion(t, lockers, name, 2, 20*time.Millisecond); n != 12 {
			t.Fatalf("ran %d critical sections, want 12", n)
		}
	})
}

// TestLostWhenTakenOver checks the lost reason names the new holder (the conformance suite
// covers a deleted Lease) and that Unlock leaves the new holder's Lease alone.
func TestLostWhenTakenOver(t *testing.T) {
	cs := clientFor(t, testenv.KubeConfig(t))
	ns := testNamespace(t, cs)
	k := newLocker(t, cs, ns, "holder", 3*time.Second, 300*time.Millisecond)
	ctx := context.Background()
	leases := cs.CoordinationV1().Leases(ns)

	name := testenv.UniqueName(t, "stolen")
	l, err := k.Lock(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := leases.Get(ctx, LeaseName(name), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	intruder := "intruder"
	obj.Spec.HolderIdentity = &intruder
	if _, err := leases.Update(ctx, obj, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Unlocking the lost lease leaves the new holder's Lease alone.
	locktest.WaitLost(t, l, 5*time.Second, "the Lease was taken over", "taken over by intruder")
	if cur, err := leases.Get(ctx, LeaseName(name), metav1.GetOptions{}); err != nil || *cur.Spec.HolderIdentity != intruder {
		t.Fatalf("the intruder's Lease after our Unlock: %v, %v", cur, err)
	}
}

func TestAPIServerRestartWhileWaiting(t *testing.T) {
	srv := testenv.StartAPIServer(t)
	cs := clientFor(t, srv.Config())
	ns := "strata-synchronization" // the default, on a private apiserver: created by the Locker
	name := testenv.UniqueName(t, "restart")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// TTL 60 s: the outage (kill, 2 s, start-up of a new apiserver on a busy machine) stays inside it.
	holder := newLocker(t, cs, ns, "holder", 60*time.Second, time.Second)
	hl, err := holder.Lock(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	// Waiters queue up behind the holder.
	const waiters = 4
	var done, inside, overlaps atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, waiters)
	for i := 0; i < waiters; i++ {
		k := newLocker(t, clientFor(t, srv.Config()), ns, fmt.Sprintf("waiter-%d", i), 60*time.Second, time.Second)
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := k.Lock(ctx, name)
			if err != nil {
				errs <- err
				return
			}
			if inside.Add(1) != 1 {
				overlaps.Add(1)
			}
			time.Sleep(50 * time.Millisecond)
			inside.Add(-1)
			done.Add(1)
			if err := l.Unlock(ctx); err != nil {
				errs <- err
			}
		}()
	}
	time.Sleep(time.Second)
	srv.Stop()
	time.Sleep(2 * time.Second) // waiters and the holder's renewer hit a dead apiserver
	srv.Start()
	if lock.IsLost(hl) {
		t.Fatalf("holder lost its lease during a short outage (TTL 60 s): %v", hl.Err())
	}
	if err := hl.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if done.Load() != waiters || overlaps.Load() != 0 {
		t.Fatalf("%d of %d waiters finished, %d overlaps", done.Load(), waiters, overlaps.Load())
	}

	// An outage longer than the TTL: the holder's lease is lost, with a reason.
	short := newLocker(t, cs, ns, "short", 2*time.Second, 500*time.Millisecond)
	l, err := short.Lock(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	locktest.WaitLost(t, l, 5*time.Second, "the apiserver went down past the TTL", "no successful renew within the TTL")
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestLostBeforeOthersMayTakeOver blocks the holder's renews and checks its lease is lost while
// the Lease is still unexpired: the holder stops trusting it before anyone may take it over.
func TestLostBeforeOthersMayTakeOver(t *testing.T) {
	cfg := testenv.KubeConfig(t)
	cs := clientFor(t, cfg)
	ns := testNamespace(t, cs)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var block atomic.Bool
	wrapped := rest.CopyConfig(cfg)
	wrapped.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if block.Load() && r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/leases/") {
				return nil, errors.New("renew blocked by the test")
			}
			return rt.RoundTrip(r)
		})
	}
	const ttl, renew = 3 * time.Second, time.Second
	name := testenv.UniqueName(t, "margin")
	l, err := newLocker(t, clientFor(t, wrapped), ns, "holder", ttl, renew).Lock(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	block.Store(true)
	lostAt := locktest.WaitLost(t, l, 2*ttl, "every renew failed", "safety margin")
	cur, err := cs.CoordinationV1().Leases(ns).Get(ctx, LeaseName(name), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if expired(cur, lostAt) {
		t.Fatalf("lease lost at %s, after the Lease expired at %s: others could already take it over", lostAt.Format(time.RFC3339Nano), expiry(cur).Format(time.RFC3339Nano))
	}
	t.Logf("lease lost %s before the Lease expired (margin %s)", expiry(cur).Sub(lostAt).Round(time.Millisecond), lock.Margin(ttl, renew))
}
