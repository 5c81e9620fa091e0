// Package kube loads Kubernetes client configuration the way kubectl does, for every part of
// Strata that talks to a cluster (Kubernetes locks, cleanup's workload scan, the image updater).
package kube
