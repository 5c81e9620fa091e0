package build

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/internal/registry"
)

// restoreParents runs right after the stage child was published (or found stored by another
// builder) on parent. A build chooses a stored parent stage without a lock, long before it
// publishes the child: `strata cleanup` may delete that parent meanwhile. Cleanup puts back the
// parent chain of a stage published while it runs, but not of one published after its last
// look at the storage. So the builder looks once (one HEAD of the parent's tag) and, if the
// parent is gone, puts it back under the same tag with the exact manifest bytes and media type
// it read or published (same manifest digest; distribution keeps the blobs until its offline
// garbage collection), then walks up the chain while stages are missing, as far as it knows
// their manifests. A missing stage whose manifest this build never read is reported in a warning.
func (b *builder) restoreParents(ctx context.Context, child string, parent *state) error {
	for cur := parent; cur != nil; cur = cur.parent {
		ref := b.st.Ref(cur.tag)
		_, err := remote.Head(ref, b.st.repoRemote(ctx)...)
		if err == nil {
			// Stored: a cleanup keeps the parent chain of every stage it keeps.
			return nil
		}
		if !registry.IsNotFound(err) {
			return fmt.Errorf("check parent stage %s of %s: %w", cur.tag, child, err)
		}
		// Every place this build learns a stage's manifest digest also keeps its bytes, so a
		// stage unknown here has no digest to read it by either.
		desc, ok := b.st.kept(cur.tag)
		if !ok {
			b.o.Log.Warn(fmt.Sprintf("parent stage %s was deleted while this build ran and this build never read its manifest: it cannot be put back (the next build rebuilds it and the stages after it)", cur.tag),
				"tag", cur.tag, "child", child, "ref", ref.String())
			return nil
		}
		if err := remote.Put(ref, desc, b.st.repoRemote(ctx)...); err != nil {
			return fmt.Errorf("restore parent stage %s@%s of %s (deleted while this build ran): %w", cur.tag, desc.Digest, child, err)
		}
		b.o.Log.Info(fmt.Sprintf("restored parent stage %s (deleted while this build ran)", cur.tag), "tag", cur.tag, "manifest", desc.Digest.String(), "child", child)
	}
	return nil
}
