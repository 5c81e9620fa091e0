// Package demo runs the whole Strata chain on examples/quickstart the way a user meets it:
// strata build, strata bundle publish, an Argo CD Application moved by the image updater and
// synced by real Argo CD (internal/testing/argocdtest: repo server, application controller and
// the strata plugin in argocd-cmp-server); then one source change, and again.
//
// It drives the real `strata` binary (built from this module) against the servers of
// scripts/testenv.sh. `make demo` runs it; its test asserts the summary.
package demo
