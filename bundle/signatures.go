package bundle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	orasremote "oras.land/oras-go/v2/registry/remote"

	"strata.dev/strata/sign"
)

// Signatures travel with a copy in cosign's tag scheme: the signature image of a manifest
// REPO@sha256:<hex> is REPO:sha256-<hex>.sig. In an archive it is tagged the same in
// index.json, next to the bundle's tag and the image-NAME tags. An archive holds the bundle as
// published, so its signature stays valid there; a copy to a registry rewrites the bundle (a
// new digest), so only the images' signatures apply after it.

// carrySignatures copies the signature images of the copied images from src to dst: into an
// archive as they are, onto a registry merged with the signatures already there (layers missing
// appended, as `cosign copy` does), and their OCI 1.1 referrers (see carryReferrers). It returns
// how many signature layers and referrers it added.
func carrySignatures(ctx context.Context, o CopyOptions, src *copySource, dst copyDestination, log *slog.Logger) (total, refs int, err error) {
	for _, n := range src.bc.meta.ImageNames() {
		im := src.bc.meta.Images[n]
		from, err := src.image(n, im)
		if err != nil {
			return total, refs, err
		}
		to, _ := dst.image(n, im)
		added, err := copySignature(ctx, o, src, from, to, im.Digest)
		if err != nil {
			return total, refs, fmt.Errorf("copy: signatures of image %s (%s): %w", n, im.Digest, err)
		}
		total += added
		r, err := carryReferrers(ctx, o, from, to, im.Digest, log)
		if err != nil {
			return total, refs, fmt.Errorf("copy: referrers of image %s (%s): %w", n, im.Digest, err)
		}
		refs += r
	}
	if total > 0 || refs > 0 {
		log.Info("carried image signatures", "to", o.To, "added", total, "referrers", refs)
	}
	return total, refs, nil
}

// carryBundleSignature copies the signature image and the OCI 1.1 referrers of the bundle, when
// the destination holds it unchanged (same digest). It returns how many signature layers and
// referrers it added.
func carryBundleSignature(ctx context.Context, o CopyOptions, src *copySource, dst copyDestination, log *slog.Logger) (int, int, error) {
	d := src.bc.manifestDesc.Digest.String()
	added, err := copySignature(ctx, o, src, src.bundle, dst.bundle(), d)
	if err != nil {
		return 0, 0, fmt.Errorf("copy: signatures of the bundle (%s): %w", d, err)
	}
	if added > 0 {
		log.Info("carried the bundle's signatures", "to", o.To, "added", added)
	}
	refs, err := carryReferrers(ctx, o, src.bundle, dst.bundle(), d, log)
	if err != nil {
		return 0, 0, fmt.Errorf("copy: referrers of the bundle (%s): %w", d, err)
	}
	if refs > 0 {
		log.Info("carried the bundle's referrers", "to", o.To, "referrers", refs)
	}
	return added, refs, nil
}

// copySignature copies the signatures of manifest d from one end to the other. A manifest
// without signatures is no error and adds nothing.
func copySignature(ctx context.Context, o CopyOptions, src *copySource, from, to imageEnd, d string) (int, error) {
	tag, err := sign.SignatureTag(d)
	if err != nil {
		return 0, err
	}
	so := sign.Options{Registry: o.Registry, Log: o.Log}
	switch {
	case to.repo != "" && from.repo != "": // registry to registry
		return sign.CopySignatures(ctx, from.repo+"@"+d, to.repo, so)
	case to.repo != "": // archive to registry: merged with what is there
		desc, err := from.target.Resolve(ctx, tag)
		if errors.Is(err, errdef.ErrNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		h, err := v1.NewHash(desc.Digest.String())
		if err != nil {
			return 0, err
		}
		img, err := layout.Path(src.layoutDir).Image(h)
		if err != nil {
			return 0, fmt.Errorf("read %s from the archive: %w", tag, err)
		}
		return sign.AddSignatures(ctx, to.repo+"@"+d, img, o.From+" "+tag, so)
	default: // into an archive, as they are
		desc, err := oras.Copy(ctx, from.target, tag, to.target, tag, oras.CopyOptions{})
		if errors.Is(err, errdef.ErrNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		b, err := content.FetchAll(ctx, to.target, desc)
		if err != nil {
			return 0, err
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return 0, fmt.Errorf("%s: %w", tag, err)
		}
		return len(m.Layers), nil
	}
}

// carryReferrers copies the OCI 1.1 referrers of manifest d (signatures stored as referrers,
// attestations, SBOMs, and their own referrers) from one end to the other, with oras'
// ExtendedCopyGraph. A registry destination without the referrers API gets none (oras would
// write the referrers tag schema's fallback tag instead): the .sig image already carries the
// signatures there, and the log says so. It returns how many referrers it copied.
func carryReferrers(ctx context.Context, o CopyOptions, from, to imageEnd, d string, log *slog.Logger) (int, error) {
	src, ok := from.target.(content.ReadOnlyGraphStorage)
	if !ok {
		return 0, nil
	}
	node, err := from.target.Resolve(ctx, d)
	if err != nil {
		return 0, err
	}
	preds, err := src.Predecessors(ctx, node)
	if err != nil || len(preds) == 0 {
		return 0, err
	}
	if dst, ok := to.target.(*orasremote.Repository); ok {
		_, err := sign.ListReferrers(ctx, to.repo+"@"+d, sign.Options{Registry: o.Registry, Log: o.Log})
		if errors.Is(err, sign.ErrNoReferrersAPI) {
			log.Info("the destination has no referrers API: referrers not copied, the signatures travel as .sig images", "to", to.repo, "manifest", d, "referrers", len(preds))
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		_ = dst.SetReferrersCapability(true) // known now: never the fallback tag
	}
	count := 0
	opts := oras.ExtendedCopyGraphOptions{FindPredecessors: func(ctx context.Context, s content.ReadOnlyGraphStorage, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		p, err := s.Predecessors(ctx, desc)
		count += len(p)
		return p, err
	}}
	if err := oras.ExtendedCopyGraph(ctx, src, to.target, node, opts); err != nil {
		return 0, fmt.Errorf("copy referrers to %s: %w", to.name, err)
	}
	return count, nil
}
