package kubelock

import (
	"context"
	"errors"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"strata.dev/strata/internal/lock"
)

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
