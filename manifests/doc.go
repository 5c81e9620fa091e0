// Package manifests holds the install YAML (kustomize) for the Argo CD sidecar and the image
// updater, embedded so tests and `strata` can read exactly what users apply.
package manifests
