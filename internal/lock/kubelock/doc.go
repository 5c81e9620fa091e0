// Package kubelock implements lock.Locker with coordination.k8s.io/v1 Lease objects.
//
// One Lease per held lock, named "strata-" + lock.Key(name), in a namespace (default
// strata-synchronization, created if missing). Acquiring is a Create (AlreadyExists means the
// lock is held); an expired Lease (renewTime + leaseDurationSeconds in the past) is taken over
// with an Update checked against its resourceVersion, so of two racing waiters exactly one wins
// (the other gets 409 Conflict and keeps waiting). The holder renews in the background with
// resourceVersion-checked Updates; its Lease reports Lost when a renew finds the Lease taken
// over or deleted, or when no renew succeeded within the TTL (apiserver unreachable). Release is
// a Delete with a resourceVersion precondition: only a Lease that is still ours is deleted.
package kubelock
