package sign

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Signatures as OCI 1.1 referrers. On a registry that serves the referrers API
// (GET /v2/<name>/referrers/<digest>), Sign also stores each signature as cosign does in its OCI
// 1.1 mode: a manifest with artifactType ArtifactTypeSignature, a config of that media type, one
// simple-signing layer (the same payload and signature annotation as in the .sig image) and a
// subject naming the signed manifest. Verify looks at the referrers when the .sig image holds no
// signature it accepts. Registries without the API (distribution 2.8 here) get the .sig image
// only: no fallback tag of the referrers tag schema is written.

// ArtifactTypeSignature is the artifactType of a signature stored as a referrer.
const ArtifactTypeSignature = "application/vnd.dev.cosign.artifact.sig.v1+json"

// mediaTypeEmpty is the OCI empty descriptor's media type (some writers' referrer config).
const mediaTypeEmpty = "application/vnd.oci.empty.v1+json"

// ErrNoReferrersAPI: the registry does not serve the OCI 1.1 referrers API.
var ErrNoReferrersAPI = errors.New("the registry has no referrers API")

// ListReferrers lists every referrer of the manifest ref (REPO@DIGEST) names through the OCI 1.1
// referrers API (signatures, attestations, SBOMs, whatever their artifactType), or returns
// ErrNoReferrersAPI. The referrers tag schema's fallback tag is not read.
func ListReferrers(ctx context.Context, ref string, o Options) ([]v1.Descriptor, error) {
	c, err := newClient(ctx, o, false)
	if err != nil {
		return nil, err
	}
	r, err := o.Registry.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	d, ok := r.(name.Digest)
	if !ok {
		return nil, fmt.Errorf("list referrers of %s: want REPO@DIGEST", ref)
	}
	return c.allReferrers(d)
}

func (c *client) allReferrers(target name.Digest) ([]v1.Descriptor, error) {
	opts := append(slices.Clone(c.base), remote.WithReferrersTagFallback(false))
	idx, err := remote.Referrers(target, opts...)
	if err != nil {
		// go-containerregistry says so in words only, when the API is absent and the tag
		// fallback is off.
		if strings.Contains(err.Error(), "does not support the Referrers API") {
			return nil, ErrNoReferrersAPI
		}
		return nil, fmt.Errorf("list referrers of %s: %w", target, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("list referrers of %s: %w", target, err)
	}
	return m.Manifests, nil
}

// referrers lists the signature referrers of target, or ErrNoReferrersAPI.
func (c *client) referrers(target name.Digest) ([]v1.Descriptor, error) {
	all, err := c.allReferrers(target)
	if err != nil {
		return nil, err
	}
	var out []v1.Descriptor
	for _, d := range all {
		switch d.ArtifactType {
		case ArtifactTypeSignature:
			out = append(out, d)
		case "", mediaTypeEmpty:
			// Some registries (go-containerregistry's) list the config's media type, not the
			// manifest's artifactType: read the manifest to tell.
			desc, err := remote.Get(target.Context().Digest(d.Digest.String()), c.remote...)
			if err != nil {
				return nil, fmt.Errorf("read referrer %s of %s: %w", d.Digest, target, err)
			}
			var am struct {
				ArtifactType string `json:"artifactType"`
			}
			if json.Unmarshal(desc.Manifest, &am) == nil && am.ArtifactType == ArtifactTypeSignature {
				out = append(out, d)
			}
		}
	}
	return out, nil
}

// rawManifest is a manifest pushed as it is.
type rawManifest struct {
	b  []byte
	mt types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.b, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// referrerManifest is an OCI image manifest with an artifactType and a subject.
type referrerManifest struct {
	SchemaVersion int64           `json:"schemaVersion"`
	MediaType     types.MediaType `json:"mediaType"`
	ArtifactType  string          `json:"artifactType"`
	Config        v1.Descriptor   `json:"config"`
	Layers        []v1.Descriptor `json:"layers"`
	Subject       *v1.Descriptor  `json:"subject"`
}

// signReferrer stores a signature (payload, its base64 ASN.1 signature by pub) of target as a
// referrer when the registry serves the referrers API; a referrer by the same key over the
// same payload is not added twice. It reports whether the registry has the API and whether a
// referrer was pushed.
func (c *client) signReferrer(target name.Digest, payload []byte, sig string, pub *ecdsa.PublicKey, hash []byte) (supported, pushed bool, err error) {
	refs, err := c.referrers(target)
	if errors.Is(err, ErrNoReferrersAPI) {
		return false, false, nil
	}
	if err != nil {
		return true, false, err
	}
	layer := static.NewLayer(payload, MediaTypeSimpleSigning)
	ld, err := layer.Digest()
	if err != nil {
		return true, false, err
	}
	for _, d := range refs {
		img, err := remote.Image(target.Context().Digest(d.Digest.String()), c.remote...)
		if err != nil {
			return true, false, fmt.Errorf("read signature referrer %s: %w", d.Digest, err)
		}
		m, err := img.Manifest()
		if err != nil {
			return true, false, fmt.Errorf("read signature referrer %s: %w", d.Digest, err)
		}
		for _, l := range m.Layers {
			if l.Digest == ld && verifiesWith(l.Annotations[AnnotationSignature], hash, pub) {
				return true, false, nil
			}
		}
	}
	subject, err := remote.Head(target, c.remote...)
	if err != nil {
		return true, false, fmt.Errorf("read %s: %w", target, err)
	}
	// The config is that of an image of the payload layer, typed ArtifactTypeSignature, as
	// cosign writes it (its verify reads the layers through the config's diff IDs).
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: layer})
	if err != nil {
		return true, false, err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return true, false, err
	}
	config := static.NewLayer(cfg, ArtifactTypeSignature)
	var descs []v1.Descriptor
	for _, l := range []v1.Layer{config, layer} {
		if err := remote.WriteLayer(target.Context(), l, c.remote...); err != nil {
			return true, false, fmt.Errorf("push signature referrer: %w", err)
		}
		d, _ := l.Digest()
		size, _ := l.Size()
		mt, _ := l.MediaType()
		descs = append(descs, v1.Descriptor{MediaType: mt, Digest: d, Size: size})
	}
	descs[1].Annotations = map[string]string{AnnotationSignature: sig}
	b, err := json.Marshal(referrerManifest{
		SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: ArtifactTypeSignature,
		Config: descs[0], Layers: descs[1:],
		Subject: &v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size},
	})
	if err != nil {
		return true, false, err
	}
	h, _, err := v1.SHA256(strings.NewReader(string(b)))
	if err != nil {
		return true, false, err
	}
	ref := target.Context().Digest(h.String())
	if err := remote.Put(ref, rawManifest{b: b, mt: types.OCIManifestSchema1}, append(slices.Clone(c.base), remote.WithReferrersTagFallback(false))...); err != nil {
		return true, false, fmt.Errorf("push signature referrer %s: %w", ref, err)
	}
	return true, true, nil
}
