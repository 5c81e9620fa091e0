// Package bundle publishes, pulls, renders and copies bundles: Helm charts in OCI whose values
// carry the content-based image references of a build, plus commit and CI metadata.
//
//   - Publish packs a chart directory with the images of a build report (stages.Report) injected into values.yaml
//     (strata.image/tag/digest.<name>, strata.repo, strata.commit, mirrored under global.strata)
//     and MetadataFile (Metadata), and pushes it with Helm's OCI media types: blobs first, the
//     manifest last in one PUT by tag.
//   - Pull extracts a bundle's chart into a directory, safely (no traversal, size limits).
//   - Render renders a chart directory with Helm's engine, client-only, deterministically, and
//     annotates every object with the bundle's commit, git, bundle and CI references; the Argo
//     CD plugin and `strata bundle render` share it.
//   - Copy moves a bundle and every image it references, by digest, to another repository or
//     through an OCI layout tar archive, rewriting the values and images lock.
//
// docs/bundles.md describes the format and the commands.
package bundle
