// Package bundle publishes, pulls, renders and copies bundles: Helm charts in OCI whose values
// carry the content-based image references of a build, plus commit and CI metadata.
package bundle
