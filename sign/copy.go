package sign

import (
	"context"
	"fmt"

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
	repo, err := o.Registry.ParseRepository(dstRepo)
	if err != nil {
		return 0, err
	}
	from, to := r.Context().Tag(srcTag), repo.Tag(srcTag)
	srcImg, err := remote.Image(from, c.remote...)
	if registry.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read signatures %s: %w", from, err)
	}
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
	o.log().Info("copied signatures", "from", from.String(), "to", to.String(), "added", len(adds))
	return len(adds), nil
}
