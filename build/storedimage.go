package build

import (
	"bytes"
	"context"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// storedImage is a stored stage read from the caches of this host: the manifest its tag reads
// (the tag cache: tags are never overwritten) and its config blob (content-addressed). Its
// layers are fetched from the storage only if something reads their content; a build on it
// reads their file lists from the layer cache and pushes none of them (the repository holds
// them).
type storedImage struct {
	st       *storage
	ctx      context.Context
	desc     *remote.Descriptor
	manifest *v1.Manifest
	config   []byte
}

// cachedStage returns the stage stored under tag as this host's caches know it, without a
// request, or false when they do not know its manifest or its config.
func (s *storage) cachedStage(ctx context.Context, tag string) (v1.Image, *remote.Descriptor, bool) {
	desc, ok := s.tagCache.get(s.Repo.String(), tag)
	if !ok || !desc.MediaType.IsImage() {
		return nil, nil, false
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return nil, nil, false
	}
	cfg, ok := s.tagCache.getBlob(m.Config.Digest)
	if !ok {
		return nil, nil, false
	}
	img, err := partial.CompressedToImage(&storedImage{st: s, ctx: ctx, desc: desc, manifest: m, config: cfg})
	if err != nil {
		return nil, nil, false
	}
	return img, desc, true
}

func (i *storedImage) RawConfigFile() ([]byte, error)      { return i.config, nil }
func (i *storedImage) MediaType() (types.MediaType, error) { return i.desc.MediaType, nil }
func (i *storedImage) RawManifest() ([]byte, error)        { return i.desc.Manifest, nil }
func (i *storedImage) Digest() (v1.Hash, error)            { return i.desc.Digest, nil }
func (i *storedImage) Manifest() (*v1.Manifest, error)     { return i.manifest.DeepCopy(), nil }
func (i *storedImage) ConfigName() (v1.Hash, error)        { return i.manifest.Config.Digest, nil }
func (i *storedImage) Size() (int64, error)                { return i.desc.Size, nil }
func (i *storedImage) ConfigFile() (*v1.ConfigFile, error) {
	return v1.ParseConfigFile(bytes.NewReader(i.config))
}

func (i *storedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == i.manifest.Config.Digest {
		return partial.ConfigLayer(i)
	}
	for _, l := range i.manifest.Layers {
		if l.Digest == h {
			return &storedLayer{img: i, desc: l}, nil
		}
	}
	return nil, fmt.Errorf("stage %s has no layer %s", i.desc.Digest, h)
}

// storedLayer is a layer of a storedImage: known by its descriptor, its content read from the
// storage when asked for.
type storedLayer struct {
	img  *storedImage
	desc v1.Descriptor
}

func (l *storedLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *storedLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *storedLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }

// DiffID is the one the stage's config lists for the layer (as a remote layer's is).
func (l *storedLayer) DiffID() (v1.Hash, error) { return partial.BlobToDiffID(l.img, l.desc.Digest) }

func (l *storedLayer) Compressed() (io.ReadCloser, error) {
	s := l.img.st
	rl, err := remote.Layer(s.Repo.Digest(l.desc.Digest.String()), s.repoRemote(l.img.ctx)...)
	if err != nil {
		return nil, err
	}
	return rl.Compressed()
}
