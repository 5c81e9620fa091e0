// Package cachefile writes the entries of Strata's on-disk caches of things that never change
// for their name (manifests by tag, blobs and git objects by hash): each entry is written once,
// atomically, so a reader sees a whole entry or none.
package cachefile
