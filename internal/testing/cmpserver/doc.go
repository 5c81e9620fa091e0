// Package cmpserver runs Argo CD's own config-management-plugin server in-process, with
// Strata's plugin.yaml, and talks to it the way argocd-repo-server does. Tests and the demo use
// it to render bundles exactly as Argo CD would.
package cmpserver
