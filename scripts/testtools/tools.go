//go:build tools

// Package testtools pins the programs the test environment builds and runs as real peers: the
// kube-apiserver of k8s.io/kubernetes (at the version Argo CD's module requires), the helm CLI
// the Argo CD repo-server runs for Helm-OCI sources, and (in ./argocd) the Argo CD components
// the tests start. They are one module so their shared packages (client-go, apimachinery, gRPC…)
// are compiled once; Strata's own module is not used, so Argo CD and helm are built with the
// dependency versions of their own go.mod files, as their releases are.
package testtools

import (
	_ "helm.sh/helm/v3/cmd/helm"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
