// Package imageupdater is a controller that watches bundle repositories for new tags and moves
// Argo CD Applications to them (`strata image-updater run`).
//
// Applications opt in with argocd-image-updater.argoproj.io/image-list, chart-version or
// strata.dev/bundle-constraint; their Helm-OCI or oci:// source names the bundle repository.
// Informers and the registry webhook only queue Application keys in client-go's rate-limited
// work queue (controller.go); workers decide which tag each Application should point at
// (decide.go, from the annotations read in policy.go, alias-scoped options first) and write only
// the source's targetRevision with a resourceVersion-checked JSON patch, retrying on conflict
// (reconcile.go) — or, with write-back-method git, commit it where Argo CD reads it: the child's
// manifest in its app-of-apps parent's repository, a values file or a kustomization patch,
// pushed with the git CLI and never forced (writeback.go, writeback_edit.go). A failed check is
// requeued with per-key exponential backoff. Every interval a cycle builds a fresh registry view (one tags listing per repository, shared by all
// Applications on it, under a per-registry rate limit; registry.go) and queues every
// Application again. Annotation sizes, allow-tags expressions and each check's time are bounded,
// and everything honours cancellation, so one Application cannot stall the others. Webhook
// deliveries seen before are refused (webhook_replay.go).
// Applications are watched and read with client-go's dynamic client as unstructured objects
// (argoproj.io/v1alpha1 applications), so fields Strata does not know are never dropped and the
// strata binary links no Argo CD Go package. See docs/image-updater.md.
package imageupdater
