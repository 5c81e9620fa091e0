// Package lock defines the distributed lock Strata takes around publishing a stage (and around
// cleanup), and its local file implementation. Kubernetes and HTTP implementations live in
// sub-packages and satisfy the same Locker interface.
package lock
