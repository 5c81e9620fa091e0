//go:build tools

// Package argocdtools pins the programs the test environment runs as real Argo CD: the
// multi-call argocd binary (argocd-repo-server, argocd-application-controller,
// argocd-cmp-server, ...) and the helm CLI the repo-server runs for Helm-OCI sources.
package argocdtools

import (
	_ "github.com/argoproj/argo-cd/v3/cmd"
	_ "helm.sh/helm/v3/cmd/helm"
)
