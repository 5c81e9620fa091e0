package sign

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Cosign's names for the parts of a signature.
const (
	// MediaTypeSimpleSigning is the media type of a signature layer (its blob is the payload).
	MediaTypeSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	// AnnotationSignature holds a layer's base64 ECDSA signature over the payload.
	AnnotationSignature = "dev.cosignproject.cosign/signature"
	// PayloadType is the payload's critical.type.
	PayloadType = "cosign container image signature"
	// SignatureTagSuffix ends the tag signatures are stored under.
	SignatureTagSuffix = ".sig"
)

// Payload is the simple-signing JSON cosign signs: the claim that a manifest digest, in a
// repository, is what the key holder vouches for.
type Payload struct {
	Critical Critical       `json:"critical"`
	Optional map[string]any `json:"optional"`
}

// Critical is the part of a Payload a verifier must check.
type Critical struct {
	Identity Identity     `json:"identity"`
	Image    PayloadImage `json:"image"`
	Type     string       `json:"type"`
}

// Identity is the repository the signer named.
type Identity struct {
	DockerReference string `json:"docker-reference"`
}

// PayloadImage is the signed manifest digest.
type PayloadImage struct {
	DockerManifestDigest string `json:"docker-manifest-digest"`
}

// NewPayload is the payload cosign writes for repository repo (REGISTRY/PATH) at manifest
// digest d, with optional claims (nil: none).
func NewPayload(repo, d string, optional map[string]any) Payload {
	return Payload{
		Critical: Critical{
			Identity: Identity{DockerReference: repo},
			Image:    PayloadImage{DockerManifestDigest: d},
			Type:     PayloadType,
		},
		Optional: optional,
	}
}

// ParsePayload decodes a simple-signing payload and checks its type.
func ParsePayload(b []byte) (*Payload, error) {
	var p Payload
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("payload is not simple-signing JSON: %w", err)
	}
	if p.Critical.Type != PayloadType {
		return nil, fmt.Errorf("payload type is %q, want %q", p.Critical.Type, PayloadType)
	}
	return &p, nil
}

// SignatureTag returns the tag cosign stores the signatures of manifest digest d under:
// "sha256-<hex>.sig".
func SignatureTag(d string) (string, error) {
	dg, err := digest.Parse(d)
	if err != nil {
		return "", fmt.Errorf("manifest digest %q: %w", d, err)
	}
	return strings.Replace(dg.String(), ":", "-", 1) + SignatureTagSuffix, nil
}

// AttachedSuffixes end the tags cosign's tag scheme attaches to a manifest
// "sha256-<hex><suffix>", each naming what it holds: signatures, attestations, an SBOM.
var AttachedSuffixes = map[string]string{SignatureTagSuffix: "signatures", ".att": "attestations", ".sbom": "SBOM"}

// AttachedTo returns the manifest digest a tag of cosign's tag scheme ("sha256-<hex>.sig",
// ".att" or ".sbom") is attached to, and what the tag holds.
func AttachedTo(tag string) (subject, holds string, ok bool) {
	for suffix, what := range AttachedSuffixes {
		rest, found := strings.CutSuffix(tag, suffix)
		if !found {
			continue
		}
		alg, hex, found := strings.Cut(rest, "-")
		d := digest.Digest(alg + ":" + hex)
		if !found || d.Validate() != nil {
			return "", "", false
		}
		return d.String(), what, true
	}
	return "", "", false
}

// IsSignatureTag reports whether tag is one SignatureTag makes.
func IsSignatureTag(tag string) bool {
	rest, ok := strings.CutSuffix(tag, SignatureTagSuffix)
	if !ok {
		return false
	}
	alg, hex, ok := strings.Cut(rest, "-")
	if !ok {
		return false
	}
	return digest.Digest(alg+":"+hex).Validate() == nil
}
