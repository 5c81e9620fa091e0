package sign

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"strata.dev/strata/internal/registry"
)

// Options are what Sign and Verify share.
type Options struct {
	// Registry says how registries are reached.
	Registry registry.Options
	// Log receives progress (nil: discarded).
	Log *slog.Logger
}

func (o Options) log() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Log
}

// SignOptions configure Sign.
type SignOptions struct {
	Options
	// Key signs; required.
	Key *ecdsa.PrivateKey
	// Annotations are optional claims stored in the payload's "optional" object (cosign sign -a).
	Annotations map[string]any
}

// Signed is what Sign did.
type Signed struct {
	// Ref is REPO@DIGEST, the manifest signed.
	Ref    string `json:"ref"`
	Digest string `json:"digest"`
	// SignatureRef is REPO:sha256-<hex>.sig and SignatureDigest its manifest digest.
	SignatureRef    string `json:"signatureRef"`
	SignatureDigest string `json:"signatureDigest"`
	// KeyID names the public key of the signer.
	KeyID string `json:"keyID"`
	// Signatures counts the signatures now stored for the manifest.
	Signatures int `json:"signatures"`
	// Unchanged is true when the same key had already signed the same payload: nothing was pushed.
	Unchanged bool `json:"unchanged"`
	// Referrer is true when the registry serves the OCI 1.1 referrers API: the signature is
	// stored as a referrer of the manifest too (see referrers.go).
	Referrer bool `json:"referrer,omitempty"`
}

// Sign signs the manifest ref (REPO:TAG or REPO@DIGEST) names and adds the signature to the
// signature image REPO:sha256-<hex>.sig, creating it if needed. A tag is resolved once, so the
// digest signed is the one reported.
func Sign(ctx context.Context, ref string, o SignOptions) (*Signed, error) {
	if o.Key == nil {
		return nil, fmt.Errorf("sign %s: no key given", ref)
	}
	c, err := newClient(ctx, o.Options, true)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", ref, err)
	}
	target, _, err := c.resolve(ref)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", ref, err)
	}
	res, err := c.sign(target, o)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", target, err)
	}
	o.log().Info("signed", "ref", res.Ref, "signature", res.SignatureRef, "key", res.KeyID,
		"signatures", res.Signatures, "unchanged", res.Unchanged)
	return res, nil
}

// client reaches registries with one puller (and, to sign, one pusher), so tokens and
// connections are reused across calls.
type client struct {
	o      Options
	remote []remote.Option
	// base are the options without the shared puller and pusher (whose own options are fixed).
	base []remote.Option
}

func newClient(ctx context.Context, o Options, push bool) (*client, error) {
	opts := o.Registry.Remote(ctx)
	p, err := remote.NewPuller(opts...)
	if err != nil {
		return nil, err
	}
	c := &client{o: o, base: opts, remote: append(slices.Clone(opts), remote.Reuse(p))}
	if push {
		pu, err := remote.NewPusher(opts...)
		if err != nil {
			return nil, err
		}
		c.remote = append(c.remote, remote.Reuse(pu))
	}
	return c, nil
}

// resolve turns REPO:TAG or REPO@DIGEST into REPO@DIGEST, checking the manifest exists, and
// returns the manifest's annotations (from the one GET that resolves it).
func (c *client) resolve(ref string) (name.Digest, map[string]string, error) {
	r, err := c.o.Registry.ParseReference(ref)
	if err != nil {
		return name.Digest{}, nil, err
	}
	desc, err := remote.Get(r, c.remote...)
	if err != nil {
		if registry.IsNotFound(err) {
			return name.Digest{}, nil, fmt.Errorf("%s is not in the registry", ref)
		}
		return name.Digest{}, nil, fmt.Errorf("resolve %s: %w", ref, err)
	}
	var m struct {
		Annotations map[string]string `json:"annotations"`
	}
	_ = json.Unmarshal(desc.Manifest, &m) // annotations are informative; the digest is what counts
	return r.Context().Digest(desc.Digest.String()), m.Annotations, nil
}

// signatureRef is REPO:sha256-<hex>.sig for target.
func signatureRef(target name.Digest) (name.Tag, error) {
	tag, err := SignatureTag(target.DigestStr())
	if err != nil {
		return name.Tag{}, err
	}
	return target.Context().Tag(tag), nil
}

// emptySignatures is the base of a new signature image, as cosign makes it: OCI manifest and
// config media types, no layers.
func emptySignatures() v1.Image {
	return mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
}

func (c *client) sign(target name.Digest, o SignOptions) (*Signed, error) {
	payload, err := json.Marshal(NewPayload(target.Context().Name(), target.DigestStr(), o.Annotations))
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	h := sha256.Sum256(payload)
	sig, err := ecdsa.SignASN1(rand.Reader, o.Key, h[:])
	if err != nil {
		return nil, fmt.Errorf("sign payload: %w", err)
	}
	sigTag, err := signatureRef(target)
	if err != nil {
		return nil, err
	}
	res := &Signed{Ref: target.String(), Digest: target.DigestStr(), SignatureRef: sigTag.String(), KeyID: KeyID(&o.Key.PublicKey)}

	base, err := remote.Image(sigTag, c.remote...)
	switch {
	case registry.IsNotFound(err):
		base = emptySignatures()
	case err != nil:
		return nil, fmt.Errorf("read signatures %s: %w", sigTag, err)
	}
	m, err := base.Manifest()
	if err != nil {
		return nil, fmt.Errorf("read signatures %s: %w", sigTag, err)
	}
	layer := static.NewLayer(payload, MediaTypeSimpleSigning)
	ld, err := layer.Digest()
	if err != nil {
		return nil, err
	}
	b64 := base64.StdEncoding.EncodeToString(sig)
	// the same key over the same payload: cosign's duplicate rule, so re-signing is idempotent
	for _, l := range m.Layers {
		if l.Digest == ld && string(l.MediaType) == MediaTypeSimpleSigning && verifiesWith(l.Annotations[AnnotationSignature], h[:], &o.Key.PublicKey) {
			d, err := base.Digest()
			if err != nil {
				return nil, err
			}
			res.SignatureDigest, res.Signatures, res.Unchanged = d.String(), len(m.Layers), true
			return c.referrer(res, target, payload, b64, o, h[:])
		}
	}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:       layer,
		Annotations: map[string]string{AnnotationSignature: b64},
	})
	if err != nil {
		return nil, fmt.Errorf("add signature: %w", err)
	}
	if err := remote.Write(sigTag, img, c.remote...); err != nil {
		return nil, fmt.Errorf("push signatures %s: %w", sigTag, err)
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	res.SignatureDigest, res.Signatures = d.String(), len(m.Layers)+1
	return c.referrer(res, target, payload, b64, o, h[:])
}

// referrer also stores the signature as an OCI 1.1 referrer when the registry has the API.
func (c *client) referrer(res *Signed, target name.Digest, payload []byte, b64 string, o SignOptions, hash []byte) (*Signed, error) {
	supported, pushed, err := c.signReferrer(target, payload, b64, &o.Key.PublicKey, hash)
	if err != nil {
		return nil, fmt.Errorf("store the signature as a referrer (the %s image is pushed): %w", SignatureTagSuffix, err)
	}
	res.Referrer = supported
	if pushed {
		res.Unchanged = false
	}
	return res, nil
}

func verifiesWith(b64sig string, hash []byte, pub *ecdsa.PublicKey) bool {
	sig, err := base64.StdEncoding.DecodeString(b64sig)
	return err == nil && ecdsa.VerifyASN1(pub, hash, sig)
}

// payloadOK checks a payload's claims against the manifest digest it must name.
func payloadOK(b []byte, want string) (*Payload, error) {
	p, err := ParsePayload(b)
	if err != nil {
		return nil, err
	}
	if got := p.Critical.Image.DockerManifestDigest; got != want {
		return p, fmt.Errorf("payload signs %s, not %s", orNone(got), want)
	}
	return p, nil
}

func orNone(s string) string {
	if s == "" {
		return "no digest"
	}
	return s
}
