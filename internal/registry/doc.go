// Package registry is how Strata reaches OCI registries: reference parsing with plain HTTP for
// loopback and explicitly insecure registries, credentials from the docker config and its
// credential helpers, and ready-made options for go-containerregistry and oras-go.
package registry
