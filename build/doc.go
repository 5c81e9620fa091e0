// Package build builds the images of strata.yaml stage by stage and stores every stage in an OCI
// registry under a content-based tag REPO:<digest>-<unix-millis>.
package build
