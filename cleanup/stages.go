package cleanup

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/stages"
)

// labelPrefixes start the labels StageFromLabels reads: stages.LabelPrefix, which build writes,
// and older spellings.
var labelPrefixes = []string{stages.LabelPrefix, "strata.dev/", "strata."}

var commitHash = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)

func strataKey(k string) (string, bool) {
	for _, p := range labelPrefixes {
		if strings.HasPrefix(k, p) {
			return strings.TrimPrefix(k, p), true
		}
	}
	return "", false
}

// StageFromLabels fills a stage's label fields (project, parent, commits, image) from its
// image config labels.
func StageFromLabels(s *Stage, labels map[string]string) {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := strings.TrimSpace(labels[k])
		rest, ok := strataKey(k)
		if !ok || v == "" {
			continue
		}
		switch {
		case rest == "project":
			s.Project = v
		case rest == "parent" || rest == "parent-stage" || rest == "parentStage" || rest == "stage.parent":
			s.Parent = v
		case strings.HasPrefix(rest, "import.") && strings.HasSuffix(rest, ".source"):
			s.Sources = append(s.Sources, v)
		case rest == "image" || rest == "image.name" || rest == "image-name":
			s.Image = v
		case strings.Contains(strings.ToLower(rest), "commit") && commitHash.MatchString(v):
			s.Commits = append(s.Commits, v)
		}
	}
	s.Commits = uniq(s.Commits)
}

// Storage is a stages storage (one repository of a registry) read by cleanup.
type Storage struct {
	*stages.Storage
	// Jobs is how many manifests are read at once; default 8.
	Jobs int
}

// OpenStorage parses REGISTRY/PATH of a stages storage.
func OpenStorage(repo string, o registry.Options) (*Storage, error) {
	s, err := stages.Open(repo, o)
	if err != nil {
		return nil, err
	}
	return &Storage{Storage: s}, nil
}

// Stages reads the given tags (all when tags is nil): stage tags with their manifest digest and
// labels, and other tags with their manifest digest. A tag that vanished meanwhile is left out.
func (s *Storage) Stages(ctx context.Context, tags []string) ([]Stage, []Tagged, error) {
	if tags == nil {
		var err error
		if tags, err = s.Tags(ctx); err != nil {
			return nil, nil, err
		}
	}
	jobs := s.Jobs
	if jobs <= 0 {
		jobs = 8
	}
	type result struct {
		stage  *Stage
		other  *Tagged
		err    error
		absent bool
	}
	results := make([]result, len(tags))
	var wg sync.WaitGroup
	sem := make(chan struct{}, jobs)
	for i, tag := range tags {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			st, other, err := s.readTag(ctx, tag)
			if registry.IsNotFound(err) {
				results[i] = result{absent: true}
				return
			}
			results[i] = result{stage: st, other: other, err: err}
		}()
	}
	wg.Wait()
	var stages []Stage
	var others []Tagged
	var errs []error
	for _, r := range results {
		switch {
		case r.absent:
		case r.err != nil:
			errs = append(errs, r.err)
		case r.stage != nil:
			stages = append(stages, *r.stage)
		case r.other != nil:
			others = append(others, *r.other)
		}
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return stages, others, nil
}

func (s *Storage) readTag(ctx context.Context, tag string) (*Stage, *Tagged, error) {
	t, isStage := stages.ParseTag(tag)
	if !isStage {
		ref := s.Ref(tag)
		d, err := remote.Head(ref, s.Remote(ctx)...)
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", ref, err)
		}
		return nil, &Tagged{Tag: tag, ManifestDigest: d.Digest.String()}, nil
	}
	desc, err := s.Read(ctx, tag)
	if err != nil {
		return nil, nil, err
	}
	st := &Stage{Tag: tag, Digest: t.Digest, Created: t.Created(), ManifestDigest: desc.Digest.String()}
	if !desc.MediaType.IsImage() {
		// Not a single image (e.g. an index): no labels to read; it is kept only by use or age.
		return st, nil, nil
	}
	labels, err := s.Labels(tag, desc)
	if err != nil {
		return nil, nil, err
	}
	StageFromLabels(st, labels)
	return st, nil, nil
}

// Delete deletes one manifest by digest. On registries such as distribution 2.8 this also
// removes every tag pointing at it.
func (s *Storage) Delete(ctx context.Context, manifest string) error {
	if !strings.HasPrefix(manifest, "sha256:") {
		return fmt.Errorf("delete %s@%s: not a sha256 manifest digest", s.Repo, manifest)
	}
	d := s.Repo.Digest(manifest)
	if err := remote.Delete(d, s.Registry.Remote(ctx)...); err != nil {
		return fmt.Errorf("delete %s: %w", d, err)
	}
	return nil
}

// Manifest reads a manifest by digest: its exact bytes and media type, enough to put it back
// with Restore.
func (s *Storage) Manifest(ctx context.Context, manifest string) (*remote.Descriptor, error) {
	d := s.Repo.Digest(manifest)
	desc, err := remote.Get(d, s.Remote(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", d, err)
	}
	return desc, nil
}

// Restore puts a manifest read by Manifest back under tag; its digest is unchanged. The blobs it
// references must still be stored, as they are after a manifest deletion until a registry's
// (offline) garbage collection.
func (s *Storage) Restore(ctx context.Context, tag string, m *remote.Descriptor) error {
	ref := s.Repo.Tag(tag)
	if err := remote.Put(ref, m, s.Registry.Remote(ctx)...); err != nil {
		return fmt.Errorf("put %s@%s back: %w", ref, m.Digest, err)
	}
	return nil
}
