package build

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"strata.dev/strata/internal/cachefile"
)

// tagCache keeps the manifests of stored stages on disk, by repository and tag. Stage tags are
// never overwritten (a new stage gets a new millisecond tag), so a tag the build's listing
// shows reads the same manifest forever: an idle build answers from here what it would ask the
// registry per stage (commit labels for the ancestor check, the final manifest digest). It also
// keeps the config blobs of those stages, by digest: with both, a build on a stored stage reads
// it without a request (storedImage). A nil cache keeps nothing.
type tagCache struct{ dir, blobs string }

func newTagCache(dir string) *tagCache {
	if dir == "" {
		return nil
	}
	return &tagCache{dir: filepath.Join(dir, "manifests"), blobs: filepath.Join(dir, "blobs")}
}

func (c *tagCache) path(repo, tag string) string {
	sum := sha256.Sum256([]byte(repo))
	return filepath.Join(c.dir, hex.EncodeToString(sum[:12]), tag)
}

// get returns the manifest stored for repo:tag, checked against its digest.
func (c *tagCache) get(repo, tag string) (*remote.Descriptor, bool) {
	if c == nil {
		return nil, false
	}
	raw, err := os.ReadFile(c.path(repo, tag))
	if err != nil {
		return nil, false
	}
	var m struct {
		MediaType types.MediaType `json:"mediaType"`
	}
	if json.Unmarshal(raw, &m) != nil || m.MediaType == "" {
		return nil, false
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return nil, false
	}
	return &remote.Descriptor{Descriptor: v1.Descriptor{MediaType: m.MediaType, Digest: h, Size: int64(len(raw))}, Manifest: raw}, true
}

// put stores the manifest of repo:tag (best effort: a cache that cannot be written is no cache).
func (c *tagCache) put(repo, tag string, desc *remote.Descriptor) {
	if c == nil || len(desc.Manifest) == 0 {
		return
	}
	var m struct {
		MediaType types.MediaType `json:"mediaType"`
	}
	if json.Unmarshal(desc.Manifest, &m) != nil || m.MediaType != desc.MediaType {
		return // the media type must be readable back from the bytes
	}
	cachefile.WriteOnce(c.path(repo, tag), desc.Manifest)
}

func (c *tagCache) blobPath(h v1.Hash) string {
	return filepath.Join(c.blobs, h.Algorithm+"-"+h.Hex)
}

// getBlob returns the blob h (a stage's config) if the cache holds it, checked against h.
func (c *tagCache) getBlob(h v1.Hash) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	raw, err := os.ReadFile(c.blobPath(h))
	if err != nil {
		return nil, false
	}
	if got, _, err := v1.SHA256(bytes.NewReader(raw)); err != nil || got != h {
		return nil, false
	}
	return raw, true
}

// putBlob stores the blob data (a stage's config) under its digest (best effort).
func (c *tagCache) putBlob(data []byte) {
	if c == nil || len(data) == 0 {
		return
	}
	h, _, err := v1.SHA256(bytes.NewReader(data))
	if err != nil {
		return
	}
	cachefile.WriteOnce(c.blobPath(h), data)
}
