// Package testenv gives Go tests the real servers started by scripts/testenv.sh: a Docker
// engine, an OCI registry and a kube-apiserver, all on 127.0.0.1.
//
// Addresses come from the environment (DOCKER_HOST, KUBECONFIG, STRATA_TEST_REGISTRY,
// STRATA_TEST_BASE_IMAGE) or, when unset, from the env file `scripts/testenv.sh up` writes
// (.testenv/env at the repository root, or $STRATA_TESTENV_DIR/env).
//
// A missing server skips the test with the command that starts it, except under CI=true, where it
// fails the test: CI must never pass by skipping.
package testenv
