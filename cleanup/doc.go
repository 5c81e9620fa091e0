// Package cleanup keeps the stages storage small without deleting anything in use.
//
// It is built as three layers:
//
//   - Plan, a pure function: from the stages in the storage, the git references and their
//     history, the images pinned by bundles and used by clusters, and the Policy (read from the
//     `cleanup:` key of strata.yaml), it decides which stage tags to keep (each with its reasons)
//     and which manifests to delete.
//   - Collectors that gather those inputs from real systems: the registry (ListStages), the git
//     repository (ReadGit), bundle repositories (BundleUses) and Kubernetes clusters (ClusterUses).
//   - Run, which collects, plans and deletes under the synchronization lock, re-listing the
//     storage before each batch of deletions and after the last one: a stage published
//     meanwhile is never deleted, and a parent it is built on that was already deleted is put
//     back with its exact manifest.
//
// The package also holds the other stages maintenance commands: SyncStages copies stages between
// storages by digest, and HostCleanup removes Strata-made images from the local Docker engine.
package cleanup
