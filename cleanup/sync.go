package cleanup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/stages"
)

// SyncOptions configure SyncStages.
type SyncOptions struct {
	From, To string // REGISTRY/PATH of the source and destination stages storages
	Registry registry.Options
	// Jobs is how many stages are copied at once; default 4.
	Jobs int
	Log  *slog.Logger
}

// SyncResult counts what SyncStages did.
type SyncResult struct {
	Copied  []string // stage tags copied
	Present []string // stage tags already at the destination with the same manifest
	// Conflicts are stage tags present at the destination with another manifest: stage tags are
	// never overwritten, so they are left as they are.
	Conflicts []string
}

// SyncStages copies every stage tag of From missing at To, by digest: the manifest is written
// byte for byte (same digest), blobs already present at the destination are skipped, and blobs in
// another repository of the same registry are mounted rather than uploaded.
func SyncStages(ctx context.Context, o SyncOptions) (*SyncResult, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	from, err := OpenStorage(o.From, o.Registry)
	if err != nil {
		return nil, fmt.Errorf("stages sync: --from: %w", err)
	}
	to, err := OpenStorage(o.To, o.Registry)
	if err != nil {
		return nil, fmt.Errorf("stages sync: --to: %w", err)
	}
	if from.Repo.String() == to.Repo.String() {
		return nil, fmt.Errorf("stages sync: --from and --to are the same repository %s", from.Repo)
	}
	srcTags, err := from.Tags(ctx)
	if err != nil {
		return nil, fmt.Errorf("stages sync: %w", err)
	}
	dstTags, err := to.Tags(ctx)
	if err != nil {
		return nil, fmt.Errorf("stages sync: %w", err)
	}
	atDest := map[string]bool{}
	for _, t := range dstTags {
		atDest[t] = true
	}
	jobs := o.Jobs
	if jobs <= 0 {
		jobs = 4
	}
	res := &SyncResult{}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	sem := make(chan struct{}, jobs)
	for _, tag := range srcTags {
		if _, ok := stages.ParseTag(tag); !ok {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			kind, err := syncOne(ctx, o, from, to, tag, atDest[tag])
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
			case kind == "copied":
				res.Copied = append(res.Copied, tag)
			case kind == "present":
				res.Present = append(res.Present, tag)
			case kind == "conflict":
				res.Conflicts = append(res.Conflicts, tag)
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return res, fmt.Errorf("stages sync: %w", errors.Join(errs...))
	}
	return res, nil
}

func syncOne(ctx context.Context, o SyncOptions, from, to *Storage, tag string, present bool) (string, error) {
	src := from.Repo.Tag(tag)
	dst := to.Repo.Tag(tag)
	desc, err := remote.Get(src, from.Remote(ctx)...)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", src, err)
	}
	if present {
		d, err := remote.Head(dst, to.Remote(ctx)...)
		if err != nil {
			return "", fmt.Errorf("read %s: %w", dst, err)
		}
		if d.Digest == desc.Digest {
			return "present", nil
		}
		o.Log.Warn("stage tag exists at the destination with another manifest; left as is", "tag", tag, "from", desc.Digest.String(), "to", d.Digest.String())
		return "conflict", nil
	}
	if err := remote.Push(dst, desc, o.Registry.Remote(ctx)...); err != nil {
		return "", fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	o.Log.Info("copied stage", "tag", tag, "manifest", desc.Digest.String())
	return "copied", nil
}
