// Package cmp is the Argo CD config-management plugin: it renders bundles inside Argo CD and
// annotates every resource with the commit, repository and CI links it came from.
package cmp
