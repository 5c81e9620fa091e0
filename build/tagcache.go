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
)

// tagCache keeps the manifests of stored stages on disk, by repository and tag. Stage tags are
// never overwritten (a new stage gets a new millisecond tag), so a tag the build's listing
// shows reads the same manifest forever: an idle build answers from here what it would ask the
// registry per stage (commit labels for the ancestor check, the final manifest digest). A nil
// cache keeps nothing.
type tagCache struct{ dir string }

func newTagCache(dir string) *tagCache {
	if dir == "" {
		return nil
	}
	return &tagCache{dir: filepath.Join(dir, "manifests")}
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
	p := c.path(repo, tag)
	if _, err := os.Stat(p); err == nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return
	}
	_, err = f.Write(desc.Manifest)
	if cerr := f.Close(); err != nil || cerr != nil {
		os.Remove(f.Name())
		return
	}
	if os.Rename(f.Name(), p) != nil {
		os.Remove(f.Name())
	}
}
