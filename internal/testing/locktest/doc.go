// Package locktest is the conformance suite every lock backend (files, Kubernetes Leases, the
// HTTP sync server) passes: Run drives a Backend through exclusive acquire, release, waits that
// time out or are cancelled, lease loss, takeover from a killed holder and renewal. Exclusion is
// the contention check behind it, for backends' own load tests.
//
// Test-only: product packages never import it.
package locktest
