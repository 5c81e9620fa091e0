package kubelock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"strata.dev/strata/internal/lock"
)

// DefaultNamespace holds Strata's Leases unless another namespace is given.
const DefaultNamespace = "strata-synchronization"

// NameAnnotation carries the full lock name on each Lease (the object name is a hash of it).
const NameAnnotation = "strata.dev/lock-name"

// callTimeout bounds each apiserver request of a waiter, so a silently dropped connection is
// retried instead of hanging.
const callTimeout = 10 * time.Second

// Defaults for Options.
const (
	DefaultTTL        = 15 * time.Second
	DefaultRenewEvery = 5 * time.Second
)

// Options configure a Locker.
type Options struct {
	// Client talks to the apiserver. Required.
	Client kubernetes.Interface
	// Namespace holds the Leases; default DefaultNamespace. Created if missing.
	Namespace string
	// Owner is written to spec.holderIdentity (with a random suffix per lease); default
	// lock.DefaultOwner().
	Owner string
	// TTL is spec.leaseDurationSeconds (whole seconds, at least 1); default 15 s.
	TTL time.Duration
	// RenewEvery is the background renew period; default 5 s, must be below TTL.
	RenewEvery time.Duration
	// MaxWait caps the pause between two attempts of a waiter; default 2 s.
	MaxWait time.Duration
	// Log receives wait, takeover and lost-lease messages; nil discards them.
	Log *slog.Logger
}

// Locker implements lock.Locker with Leases.
type Locker struct {
	o Options

	nsMu    sync.Mutex
	nsReady bool
}

var _ lock.Locker = (*Locker)(nil)

// New checks the options and returns a Locker. The namespace is created on first use.
func New(o Options) (*Locker, error) {
	if o.Client == nil {
		return nil, errors.New("kubelock: Options.Client is required")
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.Owner == "" {
		o.Owner = lock.DefaultOwner()
	}
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	if o.TTL < time.Second {
		return nil, fmt.Errorf("kubelock: TTL %s is below the 1 s resolution of leaseDurationSeconds", o.TTL)
	}
	o.TTL = o.TTL.Truncate(time.Second)
	if o.RenewEvery == 0 {
		o.RenewEvery = DefaultRenewEvery
		if o.RenewEvery >= o.TTL {
			o.RenewEvery = o.TTL / 3
		}
	}
	if o.RenewEvery <= 0 || o.RenewEvery >= o.TTL {
		return nil, fmt.Errorf("kubelock: renew period %s must be positive and below the TTL %s", o.RenewEvery, o.TTL)
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 2 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Locker{o: o}, nil
}

// withRate lifts client-go's default client-side limit (5 requests/s), which would make waiters
// of a busy lock queue behind each other's polls.
func withRate(cfg *rest.Config) *rest.Config {
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	return cfg
}

// ClientFor returns a clientset for cfg with the rate limits Lockers need.
func ClientFor(cfg *rest.Config) (kubernetes.Interface, error) {
	cfg = withRate(rest.CopyConfig(cfg))
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client for %s: %w", cfg.Host, err)
	}
	return cs, nil
}

// LeaseName is the Lease object name for a lock name.
func LeaseName(name string) string { return "strata-" + lock.Key(name) }

// ensureNamespace creates the namespace once per Locker (again after a NotFound).
func (k *Locker) ensureNamespace(ctx context.Context) error {
	k.nsMu.Lock()
	defer k.nsMu.Unlock()
	if k.nsReady {
		return nil
	}
	ns := k.o.Namespace
	_, err := k.o.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	switch {
	case err == nil:
	case apierrors.IsNotFound(err), apierrors.IsForbidden(err):
		_, cerr := k.o.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		switch {
		case cerr == nil:
			k.o.Log.Info("created namespace for locks", "namespace", ns)
		case apierrors.IsAlreadyExists(cerr):
		case apierrors.IsForbidden(cerr) && apierrors.IsForbidden(err):
			// Not allowed to see or create namespaces: assume it exists; Lease calls will tell.
		default:
			return fmt.Errorf("create namespace %q: %w", ns, cerr)
		}
	default:
		return fmt.Errorf("get namespace %q: %w", ns, err)
	}
	k.nsReady = true
	return nil
}

func (k *Locker) forgetNamespace() {
	k.nsMu.Lock()
	k.nsReady = false
	k.nsMu.Unlock()
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// expired reports whether a Lease is past renewTime + leaseDurationSeconds at now.
func expired(l *coordinationv1.Lease, now time.Time) bool {
	return now.After(expiry(l))
}

func expiry(l *coordinationv1.Lease) time.Time {
	s := l.Spec
	if s.RenewTime == nil || s.LeaseDurationSeconds == nil {
		// A Lease without timing information cannot be renewed by anyone: treat it as expired.
		return time.Time{}
	}
	return s.RenewTime.Add(time.Duration(*s.LeaseDurationSeconds) * time.Second)
}

func holderOf(l *coordinationv1.Lease) lock.Holder {
	h := lock.Holder{}
	if l.Spec.HolderIdentity != nil {
		h.Owner = *l.Spec.HolderIdentity
	}
	if l.Spec.AcquireTime != nil {
		h.Since = l.Spec.AcquireTime.Time
	}
	return h
}

// Holder returns who holds the lock now, and whether it is held (an expired Lease is not).
func (k *Locker) Holder(ctx context.Context, name string) (lock.Holder, bool, error) {
	l, err := k.o.Client.CoordinationV1().Leases(k.o.Namespace).Get(ctx, LeaseName(name), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return lock.Holder{}, false, nil
	}
	if err != nil {
		return lock.Holder{}, false, fmt.Errorf("get lease %s/%s for lock %q: %w", k.o.Namespace, LeaseName(name), name, err)
	}
	return holderOf(l), !expired(l, time.Now()), nil
}

// Lock implements lock.Locker. It retries through apiserver outages until ctx ends.
func (k *Locker) Lock(ctx context.Context, name string) (lock.Lease, error) {
	leases := k.o.Client.CoordinationV1().Leases(k.o.Namespace)
	leaseName := LeaseName(name)
	identity := k.o.Owner + "/" + randomSuffix()
	ttlSeconds := int32(k.o.TTL / time.Second)
	log := k.o.Log.With("lock", name, "lease", k.o.Namespace+"/"+leaseName)

	pause := 50 * time.Millisecond
	var loggedHolder string
	var loggedErr bool
	wait := func(d time.Duration) error {
		if d > k.o.MaxWait {
			d = k.o.MaxWait
		}
		// ±25 % jitter so waiters released together do not hit the apiserver in step.
		d = d*3/4 + time.Duration(mrand.Int64N(int64(d)/2+1))
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return fmt.Errorf("lock %q (lease %s/%s): %w", name, k.o.Namespace, leaseName, context.Cause(ctx))
		case <-t.C:
			return nil
		}
	}
	transient := func(what string, err error) error {
		if permanent(err) {
			return fmt.Errorf("lock %q: %s (lease %s/%s): %w", name, what, k.o.Namespace, leaseName, err)
		}
		if !loggedErr {
			log.Warn("kubernetes lock: "+what+" failed; retrying", "error", err)
			loggedErr = true
		} else {
			log.Debug("kubernetes lock: "+what+" failed; retrying", "error", err)
		}
		pause = min(pause*2, k.o.MaxWait)
		return wait(pause)
	}

	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("lock %q (lease %s/%s): %w", name, k.o.Namespace, leaseName, context.Cause(ctx))
		}
		if err := k.ensureNamespace(ctx); err != nil {
			if werr := transient("namespace check", err); werr != nil {
				return nil, werr
			}
			continue
		}
		now := metav1.NewMicroTime(time.Now())
		want := &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{
				Name:        leaseName,
				Namespace:   k.o.Namespace,
				Annotations: map[string]string{NameAnnotation: name},
				Labels:      map[string]string{"app.kubernetes.io/managed-by": "strata"},
			},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       &identity,
				LeaseDurationSeconds: &ttlSeconds,
				AcquireTime:          &now,
				RenewTime:            &now,
			},
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		created, err := leases.Create(cctx, want, metav1.CreateOptions{})
		cancel()
		if err == nil {
			log.Debug("kubernetes lock acquired", "holder", identity)
			return k.hold(name, identity, created, now.Time), nil
		}
		switch {
		case apierrors.IsAlreadyExists(err):
		case apierrors.IsNotFound(err):
			// The namespace vanished: create it again.
			k.forgetNamespace()
			continue
		default:
			if ctx.Err() != nil {
				continue
			}
			if werr := transient("create lease", err); werr != nil {
				return nil, werr
			}
			continue
		}

		cctx, cancel = context.WithTimeout(ctx, callTimeout)
		cur, err := leases.Get(cctx, leaseName, metav1.GetOptions{})
		cancel()
		if apierrors.IsNotFound(err) {
			continue // released between our Create and Get: try again at once
		}
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			if werr := transient("get lease", err); werr != nil {
				return nil, werr
			}
			continue
		}
		loggedErr = false
		if expired(cur, time.Now()) {
			prev := holderOf(cur)
			take := cur.DeepCopy()
			if take.Annotations == nil {
				take.Annotations = map[string]string{}
			}
			take.Annotations[NameAnnotation] = name
			now = metav1.NewMicroTime(time.Now())
			take.Spec.HolderIdentity = &identity
			take.Spec.LeaseDurationSeconds = &ttlSeconds
			take.Spec.AcquireTime = &now
			take.Spec.RenewTime = &now
			transitions := int32(1)
			if take.Spec.LeaseTransitions != nil {
				transitions = *take.Spec.LeaseTransitions + 1
			}
			take.Spec.LeaseTransitions = &transitions
			cctx, cancel = context.WithTimeout(ctx, callTimeout)
			updated, err := leases.Update(cctx, take, metav1.UpdateOptions{})
			cancel()
			if err == nil {
				log.Info("took over expired lock", "previous holder", prev.String(), "expired at", expiry(cur).UTC().Format(time.RFC3339Nano))
				return k.hold(name, identity, updated, now.Time), nil
			}
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				continue // someone else won the takeover, or it was released: look again
			}
			if ctx.Err() != nil {
				continue
			}
			if werr := transient("take over lease", err); werr != nil {
				return nil, werr
			}
			continue
		}
		h := holderOf(cur)
		if h.Owner != loggedHolder {
			log.Info("waiting for lock", "holder", h.String())
			loggedHolder = h.Owner
			pause = 50 * time.Millisecond
		}
		pause = min(pause*3/2+10*time.Millisecond, k.o.MaxWait)
		d := pause
		if until := time.Until(expiry(cur)); until > 0 && until+10*time.Millisecond < d {
			d = until + 10*time.Millisecond
		}
		if err := wait(d); err != nil {
			return nil, err
		}
	}
}

// permanent reports errors retrying cannot fix: permissions and invalid requests.
func permanent(err error) bool {
	return apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err)
}

// hold returns the Lease of a Lease object we just wrote (at written), renewed by Keep.
func (k *Locker) hold(name, identity string, obj *coordinationv1.Lease, written time.Time) lock.Lease {
	where := "lease " + k.o.Namespace + "/" + obj.Name
	return lock.Keep(&leaseKeeper{k: k, name: name, identity: identity, obj: obj}, lock.KeepOptions{
		Name: name, TTL: k.o.TTL, RenewEvery: k.o.RenewEvery, Acquired: written, Where: where,
		Log: k.o.Log.With("lock", name, "lease", k.o.Namespace+"/"+obj.Name),
	})
}

// leaseKeeper renews and releases one held Lease with resourceVersion-checked writes.
type leaseKeeper struct {
	k        *Locker
	name     string
	identity string
	obj      *coordinationv1.Lease // our last written version; used by one goroutine at a time
}

// Renew implements lock.Keeper: an Update of renewTime. A Lease changed behind our back is read
// again: still ours (e.g. a label edit) is renewed at once, anyone else's is Gone.
func (l *leaseKeeper) Renew(ctx context.Context) error {
	leases := l.k.o.Client.CoordinationV1().Leases(l.k.o.Namespace)
	for {
		upd := l.obj.DeepCopy()
		now := metav1.NewMicroTime(time.Now())
		upd.Spec.RenewTime = &now
		res, err := leases.Update(ctx, upd, metav1.UpdateOptions{})
		switch {
		case err == nil:
			l.obj = res
			return nil
		case apierrors.IsNotFound(err):
			return lock.Gone(errors.New("the Lease was deleted by someone else"))
		case !apierrors.IsConflict(err):
			return err
		}
		cur, err := leases.Get(ctx, upd.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return lock.Gone(errors.New("the Lease was deleted by someone else"))
		case err != nil:
			return err
		case cur.Spec.HolderIdentity == nil || *cur.Spec.HolderIdentity != l.identity:
			return lock.Gone(fmt.Errorf("the Lease was taken over by %s", holderOf(cur).String()))
		}
		l.obj = cur
	}
}

// Release implements lock.Keeper: a Delete only of a Lease that is still ours (resourceVersion
// precondition).
func (l *leaseKeeper) Release(ctx context.Context) error {
	obj := l.obj
	rv := obj.ResourceVersion
	// Past the TTL the Lease expires anyway: never hang longer on an unreachable apiserver.
	ctx, cancel := context.WithTimeout(ctx, l.k.o.TTL)
	defer cancel()
	err := l.k.o.Client.CoordinationV1().Leases(obj.Namespace).Delete(ctx, obj.Name,
		metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}})
	switch {
	case err == nil, apierrors.IsNotFound(err), apierrors.IsConflict(err):
		return nil
	}
	return fmt.Errorf("unlock %q (lease %s/%s): %w; it expires by itself after %s", l.name, obj.Namespace, obj.Name, err, l.k.o.TTL)
}
