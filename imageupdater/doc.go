// Package imageupdater is a controller that watches bundle repositories for new tags and moves
// Argo CD Applications to them (`strata image-updater run`).
//
// Applications opt in with the annotation argocd-image-updater.argoproj.io/chart-version (or
// strata.dev/bundle-constraint); their Helm-OCI or oci:// source names the bundle repository.
// Every interval the controller builds one registry view per cycle (one tags listing per
// repository, shared by all Applications on it, under a per-registry rate limit), picks the best
// tag by strategy (semver, newest-build, digest, alphabetical), and writes only the source's
// targetRevision with a resourceVersion-checked JSON patch, retrying on conflict. A registry
// webhook re-lists the pushed repository and checks its Applications at once. Applications are
// watched and read with client-go's dynamic client as unstructured objects (argoproj.io/v1alpha1
// applications), so fields Strata does not know are never dropped and the strata binary links
// no Argo CD Go package. See docs/image-updater.md.
package imageupdater
