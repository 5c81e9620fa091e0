// Package imageupdater is a controller that watches bundle repositories for new tags and moves
// Argo CD Applications to them (`strata image-updater run`).
//
// Applications opt in with the annotation argocd-image-updater.argoproj.io/chart-version (or
// strata.dev/bundle-constraint); their Helm-OCI or oci:// source names the bundle repository.
// Every interval the controller builds one registry view per cycle (one tags listing per
// repository, shared by all Applications on it, under a per-registry rate limit), picks the best
// tag by strategy (semver, newest-build, digest, alphabetical), and writes only the source's
// targetRevision with a resourceVersion-checked JSON patch, retrying on conflict. A registry
// webhook re-lists the pushed repository and checks its Applications at once. See
// docs/image-updater.md.
package imageupdater
