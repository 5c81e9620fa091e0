package sign

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/internal/registry"
)

// Refusals of Verify; test them with errors.Is.
var (
	// ErrNotSigned: the manifest has no signature image, or it holds no signature layer.
	ErrNotSigned = errors.New("not signed")
	// ErrUntrusted: signatures exist but none is a valid signature of this digest by a trusted key.
	ErrUntrusted = errors.New("no valid signature by a trusted key")
)

// Limits on what Verify reads.
const (
	// MaxPayloadBytes bounds one payload (cosign's are a few hundred bytes).
	MaxPayloadBytes = 1 << 20
	// MaxSignatures bounds the signature layers checked (cosign refuses more than 1000).
	MaxSignatures = 1000
)

// VerifyOptions configure Verify.
type VerifyOptions struct {
	Options
	// Keys are the trusted public keys; a signature by any of them is accepted. Required.
	Keys []*ecdsa.PublicKey
}

// Verified is the signature Verify accepted.
type Verified struct {
	// Ref is REPO@DIGEST, the manifest verified, and Digest its digest.
	Ref    string `json:"ref"`
	Digest string `json:"digest"`
	// SignatureRef is REPO:sha256-<hex>.sig.
	SignatureRef string `json:"signatureRef"`
	// KeyID names the trusted key that signed.
	KeyID string `json:"keyID"`
	// Identity is the repository the signer named (critical.identity.docker-reference); it
	// differs from Ref's after a copy and is not checked, as cosign does not.
	Identity string `json:"identity"`
	// Optional holds the payload's optional claims.
	Optional map[string]any `json:"optional,omitempty"`
	// Annotations are the verified manifest's annotations (covered by its digest).
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Verify checks that the manifest ref (REPO:TAG or REPO@DIGEST) names carries a valid
// cosign signature by one of the trusted keys: a layer of REPO:sha256-<hex>.sig whose
// signature verifies with a key over a payload that names this very digest. A tag is
// resolved once; the digest verified is the one reported.
func Verify(ctx context.Context, ref string, o VerifyOptions) (*Verified, error) {
	v, err := NewVerifier(ctx, o.Options)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", ref, err)
	}
	return v.Verify(ref, o.Keys...)
}

// Verifier verifies many manifests over shared registry connections; safe for concurrent use.
type Verifier struct{ c *client }

// NewVerifier returns a Verifier using ctx for all its requests.
func NewVerifier(ctx context.Context, o Options) (*Verifier, error) {
	c, err := newClient(ctx, o, false)
	if err != nil {
		return nil, err
	}
	return &Verifier{c: c}, nil
}

// Verify is the package's Verify with the Verifier's connections.
func (vf *Verifier) Verify(ref string, keys ...*ecdsa.PublicKey) (*Verified, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("verify %s: no trusted public key given", ref)
	}
	target, ann, err := vf.c.resolve(ref)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", ref, err)
	}
	v, err := vf.c.verify(target, keys)
	if err != nil {
		if ref != target.String() {
			return nil, fmt.Errorf("verify %s (%s): %w", ref, target.DigestStr(), err)
		}
		return nil, fmt.Errorf("verify %s: %w", ref, err)
	}
	v.Annotations = ann
	vf.c.o.log().Debug("verified", "ref", v.Ref, "key", v.KeyID)
	return v, nil
}

func (c *client) verify(target name.Digest, keys []*ecdsa.PublicKey) (*Verified, error) {
	sigTag, err := signatureRef(target)
	if err != nil {
		return nil, err
	}
	var reasons []string
	checked := 0
	where := sigTag.String()
	tagged, err := remote.Image(sigTag, c.remote...)
	switch {
	case err == nil:
		v, r, n, err := c.checkSignatures(tagged, sigTag.String(), target, keys)
		if v != nil || err != nil {
			return v, err
		}
		reasons, checked = r, n
	case !registry.IsNotFound(err):
		return nil, fmt.Errorf("read signatures %s: %w", sigTag, err)
	}
	// Signatures stored as OCI 1.1 referrers, on a registry with the referrers API.
	refs, apiErr := c.referrers(target)
	if apiErr != nil && !errors.Is(apiErr, ErrNoReferrersAPI) {
		return nil, apiErr
	}
	for _, d := range refs {
		ref := target.Context().Digest(d.Digest.String())
		img, err := remote.Image(ref, c.remote...)
		if err != nil {
			return nil, fmt.Errorf("read signature referrer %s: %w", ref, err)
		}
		v, r, n, err := c.checkSignatures(img, "referrer "+ref.String(), target, keys)
		if v != nil || err != nil {
			return v, err
		}
		reasons, checked = append(reasons, r...), checked+n
		where = sigTag.String() + " and the signature referrers"
	}
	switch {
	case checked > 0:
	case tagged == nil && len(refs) == 0 && apiErr == nil:
		return nil, fmt.Errorf("%w: there is no signature image %s nor a signature referrer", ErrNotSigned, sigTag)
	case tagged == nil && len(refs) == 0:
		return nil, fmt.Errorf("%w: there is no signature image %s", ErrNotSigned, sigTag)
	case len(refs) == 0:
		return nil, fmt.Errorf("%w: the signature image %s holds no %s layer", ErrNotSigned, sigTag, MediaTypeSimpleSigning)
	default:
		return nil, fmt.Errorf("%w: %s hold no %s layer", ErrNotSigned, where, MediaTypeSimpleSigning)
	}
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = KeyID(k)
	}
	return nil, fmt.Errorf("%w (%s) in %s: %s", ErrUntrusted, strings.Join(ids, ", "), where, strings.Join(reasons, "; "))
}

// checkSignatures looks for a layer of img (a signature image, named sigRef) that is a valid
// signature of target by one of keys. It returns the verified signature, or why each layer was
// refused and how many were checked.
func (c *client) checkSignatures(img v1.Image, sigRef string, target name.Digest, keys []*ecdsa.PublicKey) (*Verified, []string, int, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, nil, 0, fmt.Errorf("read signatures %s: %w", sigRef, err)
	}
	var reasons []string
	checked := 0
	for i, l := range m.Layers {
		if string(l.MediaType) != MediaTypeSimpleSigning {
			continue
		}
		if checked++; checked > MaxSignatures {
			reasons = append(reasons, fmt.Sprintf("more than %d signatures: the rest are not checked", MaxSignatures))
			break
		}
		where := fmt.Sprintf("signature %d (layer %s)", i+1, l.Digest)
		b64 := l.Annotations[AnnotationSignature]
		if b64 == "" {
			reasons = append(reasons, where+": no "+AnnotationSignature+" annotation")
			continue
		}
		if l.Size > MaxPayloadBytes {
			reasons = append(reasons, fmt.Sprintf("%s: payload of %d bytes is over the limit of %d", where, l.Size, MaxPayloadBytes))
			continue
		}
		payload, err := readLayer(img, l.Digest)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("read %s of %s: %w", where, sigRef, err)
		}
		h := sha256.Sum256(payload)
		var key *ecdsa.PublicKey
		for _, k := range keys {
			if verifiesWith(b64, h[:], k) {
				key = k
				break
			}
		}
		if key == nil {
			reasons = append(reasons, where+": made by none of the trusted keys (or the payload was altered)")
			continue
		}
		p, err := payloadOK(payload, target.DigestStr())
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("%s by trusted key %s: %v", where, KeyID(key), err))
			continue
		}
		return &Verified{
			Ref: target.String(), Digest: target.DigestStr(), SignatureRef: strings.TrimPrefix(sigRef, "referrer "),
			KeyID: KeyID(key), Identity: p.Critical.Identity.DockerReference, Optional: p.Optional,
		}, nil, checked, nil
	}
	return nil, reasons, checked, nil
}

// readLayer reads one payload blob; go-containerregistry checks it against its digest.
func readLayer(img v1.Image, d v1.Hash) ([]byte, error) {
	l, err := img.LayerByDigest(d)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, MaxPayloadBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxPayloadBytes {
		return nil, fmt.Errorf("payload is over the limit of %d bytes", MaxPayloadBytes)
	}
	return b, nil
}
