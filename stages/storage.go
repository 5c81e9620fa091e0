package stages

import (
	"context"
	"fmt"
	"sort"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/internal/registry"
)

// Storage is a stages storage: one repository of a registry. Its requests reuse one puller and
// one pusher, so the registry is pinged and a token fetched once per storage, not per request.
type Storage struct {
	Repo     name.Repository
	Registry registry.Options

	puller *remote.Puller
	pusher *remote.Pusher
}

// Open opens the stages storage REGISTRY/PATH.
func Open(repo string, reg registry.Options) (*Storage, error) {
	r, err := reg.ParseRepository(repo)
	if err != nil {
		return nil, err
	}
	s := &Storage{Repo: r, Registry: reg}
	// The context of a request is the one given to Remote: these only hold the transports.
	if s.puller, err = remote.NewPuller(reg.Remote(context.Background())...); err != nil {
		return nil, fmt.Errorf("stages storage %s: %w", r, err)
	}
	if s.pusher, err = remote.NewPusher(reg.Remote(context.Background())...); err != nil {
		return nil, fmt.Errorf("stages storage %s: %w", r, err)
	}
	return s, nil
}

// Remote returns the go-containerregistry options of a request to the storage.
func (s *Storage) Remote(ctx context.Context) []remote.Option {
	return append(s.Registry.Remote(ctx), remote.Reuse(s.puller), remote.Reuse(s.pusher))
}

// Ref is the reference of tag in the storage.
func (s *Storage) Ref(tag string) name.Tag { return s.Repo.Tag(tag) }

// Tags lists every tag of the repository, sorted; a repository that does not exist has none.
func (s *Storage) Tags(ctx context.Context) ([]string, error) {
	tags, err := remote.List(s.Repo, s.Remote(ctx)...)
	if err != nil {
		if registry.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list tags of %s: %w", s.Repo, err)
	}
	sort.Strings(tags)
	return tags, nil
}

// Read reads the manifest of a stored stage: its exact bytes, media type and digest.
func (s *Storage) Read(ctx context.Context, tag string) (*remote.Descriptor, error) {
	ref := s.Ref(tag)
	desc, err := remote.Get(ref, s.Remote(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("read stage %s: %w", ref, err)
	}
	return desc, nil
}

// Labels returns the labels of the image config of stage tag, whose manifest desc is as Read
// returned it.
func (s *Storage) Labels(tag string, desc *remote.Descriptor) (map[string]string, error) {
	img, err := desc.Image()
	if err != nil {
		return nil, fmt.Errorf("read stage %s: %w", s.Ref(tag), err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read config of stage %s: %w", s.Ref(tag), err)
	}
	return cf.Config.Labels, nil
}
