package kubelock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
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
