package kubelock

import (
	"context"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"strata.dev/strata/internal/lock"
)

// Lock implements lock.Locker. It retries through apiserver outages until ctx ends.
func (k *Locker) Lock(ctx context.Context, name string) (lock.Lease, error) {
	a := &acquisition{
		k: k, name: name, leaseName: LeaseName(name),
		identity: k.o.Owner + "/" + randomSuffix(),
		log:      k.o.Log.With("lock", name, "lease", k.o.Namespace+"/"+LeaseName(name)),
		pause:    firstPause,
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, a.ended(ctx)
		}
		if l, err := a.attempt(ctx); l != nil || err != nil {
			return l, err
		}
	}
}

// firstPause is a waiter's first pause; it grows to Options.MaxWait.
const firstPause = 50 * time.Millisecond

// acquisition is one Lock call: the Lease it wants, under which identity, and how its waiting
// goes (the current pause, what it has logged).
type acquisition struct {
	k         *Locker
	name      string
	leaseName string
	identity  string
	log       *slog.Logger

	pause        time.Duration
	loggedHolder string
	loggedErr    bool
}

// attempt makes one pass: make sure the namespace exists, create the Lease, else read it and
// take it over if it has expired, else wait. It returns the lease once held, an error retrying
// cannot fix or the end of ctx, or neither when the caller should pass again.
func (a *acquisition) attempt(ctx context.Context) (lock.Lease, error) {
	if err := a.k.ensureNamespace(ctx); err != nil {
		return nil, a.retry(ctx, "namespace check", err)
	}
	l, err := a.create(ctx)
	switch {
	case err == nil:
		return l, nil
	case apierrors.IsAlreadyExists(err):
	case apierrors.IsNotFound(err):
		a.k.forgetNamespace() // the namespace vanished: create it again
		return nil, nil
	default:
		return nil, a.retry(ctx, "create lease", err)
	}
	cur, err := a.get(ctx)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil // released between our Create and Get: try again at once
	case err != nil:
		return nil, a.retry(ctx, "get lease", err)
	}
	a.loggedErr = false
	if !expired(cur, time.Now()) {
		return nil, a.waitFor(ctx, cur)
	}
	l, err = a.takeOver(ctx, cur)
	switch {
	case err == nil:
		return l, nil
	case apierrors.IsConflict(err), apierrors.IsNotFound(err):
		return nil, nil // someone else won the takeover, or it was released: look again
	}
	return nil, a.retry(ctx, "take over lease", err)
}

// create writes a new Lease naming us as the holder.
func (a *acquisition) create(ctx context.Context) (lock.Lease, error) {
	now := metav1.NewMicroTime(time.Now())
	ttl := a.ttlSeconds()
	want := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Name:        a.leaseName,
			Namespace:   a.k.o.Namespace,
			Annotations: map[string]string{NameAnnotation: a.name},
			Labels:      map[string]string{"app.kubernetes.io/managed-by": "strata"},
		},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       &a.identity,
			LeaseDurationSeconds: &ttl,
			AcquireTime:          &now,
			RenewTime:            &now,
		},
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	created, err := a.k.o.Client.CoordinationV1().Leases(a.k.o.Namespace).Create(cctx, want, metav1.CreateOptions{})
	cancel()
	if err != nil {
		return nil, err
	}
	a.log.Debug("kubernetes lock acquired", "holder", a.identity)
	return a.k.hold(a.name, a.identity, created, now.Time), nil
}

// get reads the current Lease.
func (a *acquisition) get(ctx context.Context) (*coordinationv1.Lease, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return a.k.o.Client.CoordinationV1().Leases(a.k.o.Namespace).Get(cctx, a.leaseName, metav1.GetOptions{})
}

// takeOver rewrites an expired Lease to name us, checked against the resourceVersion we read:
// of two racing waiters exactly one wins, the other gets a Conflict.
func (a *acquisition) takeOver(ctx context.Context, cur *coordinationv1.Lease) (lock.Lease, error) {
	take := cur.DeepCopy()
	if take.Annotations == nil {
		take.Annotations = map[string]string{}
	}
	take.Annotations[NameAnnotation] = a.name
	now := metav1.NewMicroTime(time.Now())
	ttl := a.ttlSeconds()
	take.Spec.HolderIdentity = &a.identity
	take.Spec.LeaseDurationSeconds = &ttl
	take.Spec.AcquireTime = &now
	take.Spec.RenewTime = &now
	transitions := int32(1)
	if take.Spec.LeaseTransitions != nil {
		transitions = *take.Spec.LeaseTransitions + 1
	}
	take.Spec.LeaseTransitions = &transitions
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	updated, err := a.k.o.Client.CoordinationV1().Leases(a.k.o.Namespace).Update(cctx, take, metav1.UpdateOptions{})
	cancel()
	if err != nil {
		return nil, err
	}
	a.log.Info("took over expired lock", "previous holder", holderOf(cur).String(), "expired at", expiry(cur).UTC().Format(time.RFC3339Nano))
	return a.k.hold(a.name, a.identity, updated, now.Time), nil
}

func (a *acquisition) ttlSeconds() int32 { return int32(a.k.o.TTL / time.Second) }

// waitFor logs a new holder of the live Lease cur and waits for a growing pause, or until just
// after cur expires if that comes first.
func (a *acquisition) waitFor(ctx context.Context, cur *coordinationv1.Lease) error {
	if h := holderOf(cur); h.Owner != a.loggedHolder {
		a.log.Info("waiting for lock", "holder", h.String())
		a.loggedHolder = h.Owner
		a.pause = firstPause
	}
	a.pause = min(a.pause*3/2+10*time.Millisecond, a.k.o.MaxWait)
	d := a.pause
	if until := time.Until(expiry(cur)); until > 0 && until+10*time.Millisecond < d {
		d = until + 10*time.Millisecond
	}
	return a.sleep(ctx, d)
}

// retry handles a failed apiserver call: an error retrying cannot fix is returned; any other is
// logged (a warning the first time in a row) and waited out with a doubling pause.
func (a *acquisition) retry(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return nil // the caller reports the end of ctx
	}
	if permanent(err) {
		return fmt.Errorf("lock %q: %s (lease %s/%s): %w", a.name, what, a.k.o.Namespace, a.leaseName, err)
	}
	if !a.loggedErr {
		a.log.Warn("kubernetes lock: "+what+" failed; retrying", "error", err)
		a.loggedErr = true
	} else {
		a.log.Debug("kubernetes lock: "+what+" failed; retrying", "error", err)
	}
	a.pause = min(a.pause*2, a.k.o.MaxWait)
	return a.sleep(ctx, a.pause)
}

// sleep waits d (at most MaxWait, ±25 % jitter so that waiters released together do not hit the
// apiserver in step), or until ctx ends.
func (a *acquisition) sleep(ctx context.Context, d time.Duration) error {
	d = min(d, a.k.o.MaxWait)
	d = d*3/4 + time.Duration(mrand.Int64N(int64(d)/2+1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return a.ended(ctx)
	case <-t.C:
		return nil
	}
}

// ended is the error of a Lock whose ctx ended.
func (a *acquisition) ended(ctx context.Context) error {
	return fmt.Errorf("lock %q (lease %s/%s): %w", a.name, a.k.o.Namespace, a.leaseName, context.Cause(ctx))
}

// permanent reports errors retrying cannot fix: permissions and invalid requests.
func permanent(err error) bool {
	return apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err)
}
