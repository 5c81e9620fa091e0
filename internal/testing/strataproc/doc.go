// Package strataproc runs the strata binary for tests and benchmarks of concurrent builders:
// the binary built once per test process as it ships, a `strata sync-server` on a free port,
// and a one-image project in a fresh git repository.
//
// Test-only: product packages never import it.
package strataproc
