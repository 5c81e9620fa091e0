package manifests

import (
	"embed"
	"io/fs"
)

//go:embed argocd
var argocdFS embed.FS

// ArgoCD returns the kustomize Component that installs the strata plugin sidecar into
// argocd-repo-server (kustomization.yaml, plugin.yaml, repo-server-patch.yaml) and, under
// examples/, a kustomization of the example Applications (Helm-OCI and oci:// forms) and the
// repository Secret the Helm-OCI form needs. The kustomization that installs Argo CD with the
// component is manifests/argocd-install (beside it: a Component may not contain a kustomization
// that includes it).
func ArgoCD() fs.FS {
	sub, err := fs.Sub(argocdFS, "argocd")
	if err != nil {
		panic(err) // the directory is embedded: cannot happen
	}
	return sub
}

// PluginConfig returns the plugin.yaml of the strata config-management plugin.
func PluginConfig() []byte {
	b, err := fs.ReadFile(argocdFS, "argocd/plugin.yaml")
	if err != nil {
		panic(err) // embedded: cannot happen
	}
	return b
}
