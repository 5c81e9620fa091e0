//go:build tools

// Package internal pins, for `go mod tidy`, the libraries Strata is built on before every one of
// them is imported by product code. Never compiled into the binary.
package internal

import (
	_ "github.com/argoproj/argo-cd/v3/cmpserver"
	_ "github.com/argoproj/argo-cd/v3/cmpserver/apiclient"
	_ "github.com/argoproj/argo-cd/v3/cmpserver/plugin"
	_ "github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	_ "github.com/argoproj/argo-cd/v3/util/cmp"
	_ "github.com/docker/docker/client"
	_ "github.com/google/go-containerregistry/pkg/v1/remote"
	_ "github.com/spf13/cobra"
	_ "helm.sh/helm/v3/pkg/action"
	_ "helm.sh/helm/v3/pkg/chart/loader"
	_ "helm.sh/helm/v3/pkg/registry"
	_ "k8s.io/client-go/kubernetes"
	_ "oras.land/oras-go/v2"
)
