// Package cmp is the Argo CD config-management plugin: it renders bundles inside Argo CD and
// annotates every resource with the commit, repository and CI links it came from.
//
// Argo CD's CMP server (in the sidecar) runs `strata cmp discover|parameters|generate` in the
// directory of the extracted bundle, with the Application's context in the environment
// (ARGOCD_APP_NAME, ARGOCD_APP_NAMESPACE, KUBE_VERSION, ARGOCD_APP_PARAMETERS, ...). Generate
// prints only Kubernetes objects on stdout; any failure is a non-zero exit with a message, never
// an empty success (Argo CD would prune everything). The JSON exchanged with Argo CD
// (ARGOCD_APP_PARAMETERS, parameter announcements) has local types checked against Argo CD's
// own in tests: the strata binary links no Argo CD Go package.
package cmp
