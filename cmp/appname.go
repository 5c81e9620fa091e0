package cmp

import "strings"

// releaseNameOf is the default Helm release name for an Argo CD application name.
//
// With Applications in any namespace, Argo CD sets ARGOCD_APP_NAME to <namespace>_<name> for an
// Application outside the control-plane namespace. An underscore is never valid in a Helm release
// name, so, like Argo CD's own Helm rendering (argo.ParseInstanceName in reposerver/repository),
// the namespace part is dropped and only the name is used.
func releaseNameOf(appName string) string {
	if _, name, ok := strings.Cut(appName, "_"); ok {
		return name
	}
	return appName
}
