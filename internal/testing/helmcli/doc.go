// Package helmcli finds the helm CLI that tests and benchmarks compare Strata with (the binary
// Argo CD's repo-server runs for Helm sources).
package helmcli
