package sign

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/internal/registry"
)

// CopySignatures carries the signatures of the manifest src (REPO@DIGEST) to the same digest in
// repository dstRepo (REGISTRY/PATH), as `cosign copy` does: signature layers missing at the
// destination are appended to its signature image (created if needed). It returns how many
// were added; a manifest without signatures adds none and is no error.
func CopySignatures(ctx context.Context, src, dstRepo string, o Options) (int, error) {
	c, err := newClient(ctx, o, true)
	if err != nil {
		return 0, err
	}
	r, err := o.Registry.ParseReference(src)
	if err != nil {
		return 0, err
	}
	srcTag, err := SignatureTag(r.Identifier())
	if err != nil {
		return 0, fmt.Errorf("copy signatures of %s: want REPO@DIGEST: %w", src, err)
	}
	from := r.Context().Tag(srcTag)
	srcImg, err := remote.Image(from, c.remote...)
	if registry.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read signatures %s: %w", from, err)
	}
	return c.add(dstRepo+"@"+r.Identifier(), srcImg, from.String())
}

// AddSignatures adds the signatures of the signature image sigs (one read from an archive, say)
// to those of the manifest signed (REPO@DIGEST) in its registry, as CopySignatures does: layers
// missing there are appended to its signature image (created if needed). It returns how many
// were added. from names sigs in the log.
func AddSignatures(ctx context.Context, signed string, sigs v1.Image, from string, o Options) (int, error) {
	c, err := newClient(ctx, o, true)
	if err != nil {
		return 0, err
	}
	return c.add(signed, sigs, from)
}

func (c *client) add(signed string, srcImg v1.Image, from string) (int, error) {
	r, err := c.o.Registry.ParseReference(signed)
	if err != nil {
		return 0, err
	}
	tag, err := SignatureTag(r.Identifier())
	if err != nil {
		return 0, fmt.Errorf("add signatures to %s: want REPO@DIGEST: %w", signed, err)
	}
	to := r.Context().Tag(tag)
	srcMan, err := srcImg.Manifest()
	if err != nil {
		return 0, fmt.Errorf("read signatures %s: %w", from, err)
	}
	base, err := remote.Image(to, c.remote...)
	switch {
	case registry.IsNotFound(err):
		base = emptySignatures()
	case err != nil:
		return 0, fmt.Errorf("read signatures %s: %w", to, err)
	}
	dstMan, err := base.Manifest()
	if err != nil {
		return 0, fmt.Errorf("read signatures %s: %w", to, err)
	}
	have := map[string]bool{}
	for _, l := range dstMan.Layers {
		have[l.Digest.String()+" "+l.Annotations[AnnotationSignature]] = true
	}
	var adds []mutate.Addendum
	for _, l := range srcMan.Layers {
		if string(l.MediaType) != MediaTypeSimpleSigning || have[l.Digest.String()+" "+l.Annotations[AnnotationSignature]] {
			continue
		}
		layer, err := srcImg.LayerByDigest(l.Digest)
		if err != nil {
			return 0, fmt.Errorf("read signatures %s: %w", from, err)
		}
		adds = append(adds, mutate.Addendum{Layer: layer, Annotations: l.Annotations, MediaType: l.MediaType})
	}
	if len(adds) == 0 {
		return 0, nil
	}
	img, err := mutate.Append(base, adds...)
	if err != nil {
		return 0, err
	}
	if err := remote.Write(to, img, c.remote...); err != nil {
		return 0, fmt.Errorf("push signatures %s: %w", to, err)
	}
	c.o.log().Info("copied signatures", "from", from, "to", to.String(), "added", len(adds))
	return len(adds), nil
}
