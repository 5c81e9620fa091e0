//go:build tools

// Package kubetools pins the kube-apiserver main package for `go build`.
package kubetools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
