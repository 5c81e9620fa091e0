package integrity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	orasremote "oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/stages"
)

// Options configure Check.
type Options struct {
	// Registry says how the registry is reached (give it the registry itself, not a proxy).
	Registry registry.Options
	// Stages says the repository is a stages storage: at most one tag per stage digest.
	Stages bool
	// MaxBlob is the largest blob whose bytes are read and hashed; larger ones are only
	// resolved (size checked). 0 means 64 MiB.
	MaxBlob int64
}

// Report is what Check found in one repository.
type Report struct {
	Repo      string
	Tags      int
	Manifests int
	Blobs     int
	// Problems is every broken thing found, "TAG: what"; empty when the repository is whole.
	Problems []string
}

// Err is nil when the repository is whole, else an error listing the problems.
func (r *Report) Err() error {
	if len(r.Problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s is broken: %s", r.Repo, strings.Join(r.Problems, "; "))
}

// Check reads every tag of repo and everything it names. A repository that does not exist is
// whole (no tags). The error is for a check that could not run (the registry unreachable);
// what is broken is in Report.Problems.
func Check(ctx context.Context, repo string, o Options) (*Report, error) {
	if o.MaxBlob == 0 {
		o.MaxBlob = 64 << 20
	}
	r, err := o.Registry.Repository(repo)
	if err != nil {
		return nil, err
	}
	c := &checker{ctx: ctx, r: r, o: o, rep: &Report{Repo: repo}, manifests: map[string]bool{}, blobs: map[string]bool{}}
	var tags []string
	err = r.Tags(ctx, "", func(t []string) error {
		tags = append(tags, t...)
		return nil
	})
	if err != nil && !notFound(err) {
		return nil, fmt.Errorf("list tags of %s: %w", repo, err)
	}
	sort.Strings(tags)
	c.rep.Tags = len(tags)
	for _, tag := range tags {
		if err := c.tag(tag); err != nil {
			return nil, err
		}
	}
	if o.Stages {
		for d, ms := range stages.ByDigest(tags) {
			if len(ms) > 1 {
				c.problem(d, fmt.Sprintf("stage digest has %d tags %v", len(ms), ms))
			}
		}
	}
	sort.Strings(c.rep.Problems)
	return c.rep, nil
}

type checker struct {
	ctx       context.Context
	r         *orasremote.Repository
	o         Options
	rep       *Report
	manifests map[string]bool // digest -> checked and whole
	blobs     map[string]bool
}

func (c *checker) problem(where, what string) {
	c.rep.Problems = append(c.rep.Problems, where+": "+what)
}

func notFound(err error) bool {
	var er *errcode.ErrorResponse
	return errors.Is(err, errdef.ErrNotFound) || errors.As(err, &er) && er.StatusCode == http.StatusNotFound
}

// transient tells a failure to reach the registry (the check cannot run) from a broken content.
func transient(err error) bool {
	return err != nil && !notFound(err) && !errors.Is(err, content.ErrMismatchedDigest) &&
		!errors.Is(err, content.ErrTrailingData) && !errors.Is(err, io.ErrUnexpectedEOF)
}

func (c *checker) tag(tag string) error {
	desc, rc, err := c.r.FetchReference(c.ctx, tag)
	if err != nil {
		if transient(err) {
			return fmt.Errorf("resolve %s:%s: %w", c.rep.Repo, tag, err)
		}
		c.problem(tag, fmt.Sprintf("does not resolve: %v", err))
		return nil
	}
	b, err := content.ReadAll(rc, desc)
	rc.Close()
	if err != nil {
		c.problem(tag, fmt.Sprintf("manifest %s: %v", desc.Digest, err))
		return nil
	}
	return c.manifest(tag, desc, b)
}

// manifest checks the manifest desc (bytes b, already verified) and what it names.
func (c *checker) manifest(where string, desc ocispec.Descriptor, b []byte) error {
	if c.manifests[desc.Digest.String()] {
		return nil
	}
	c.rep.Manifests++
	var m struct {
		MediaType string               `json:"mediaType"`
		Config    *ocispec.Descriptor  `json:"config"`
		Layers    []ocispec.Descriptor `json:"layers"`
		Blobs     []ocispec.Descriptor `json:"blobs"`
		Manifests []ocispec.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		c.problem(where, fmt.Sprintf("manifest %s is not JSON: %v", desc.Digest, err))
		return nil
	}
	whole := true
	for _, child := range m.Manifests {
		rc, err := c.r.Manifests().Fetch(c.ctx, child)
		if err == nil {
			var cb []byte
			cb, err = content.ReadAll(rc, child)
			rc.Close()
			if err == nil {
				if err := c.manifest(where+" → "+child.Digest.String(), child, cb); err != nil {
					return err
				}
				continue
			}
		}
		if transient(err) {
			return fmt.Errorf("fetch manifest %s of %s: %w", child.Digest, c.rep.Repo, err)
		}
		whole = false
		c.problem(where, fmt.Sprintf("index %s names manifest %s: %v", desc.Digest, child.Digest, err))
	}
	var blobs []ocispec.Descriptor
	if m.Config != nil && m.Config.Digest != "" {
		blobs = append(blobs, *m.Config)
	}
	blobs = append(append(blobs, m.Layers...), m.Blobs...)
	for _, bd := range blobs {
		if len(bd.URLs) > 0 {
			continue // a foreign layer is not stored here
		}
		ok, err := c.blob(bd)
		if err != nil {
			return err
		}
		if !ok {
			whole = false
			c.problem(where, fmt.Sprintf("manifest %s names blob %s (%d bytes): %s", desc.Digest, bd.Digest, bd.Size, c.missing(bd)))
		}
	}
	if whole {
		c.manifests[desc.Digest.String()] = true
	}
	return nil
}

// blob reports whether blob d is stored with its size and digest.
func (c *checker) blob(d ocispec.Descriptor) (bool, error) {
	if ok, done := c.blobs[d.Digest.String()]; done {
		return ok, nil
	}
	ok, err := c.readBlob(d)
	if err != nil {
		return false, err
	}
	c.blobs[d.Digest.String()] = ok
	c.rep.Blobs++
	return ok, nil
}

func (c *checker) readBlob(d ocispec.Descriptor) (bool, error) {
	got, err := c.r.Blobs().Resolve(c.ctx, d.Digest.String())
	if err != nil {
		if transient(err) {
			return false, fmt.Errorf("resolve blob %s of %s: %w", d.Digest, c.rep.Repo, err)
		}
		return false, nil
	}
	if got.Size != d.Size {
		return false, nil
	}
	if d.Size > c.o.MaxBlob {
		return true, nil
	}
	rc, err := c.r.Blobs().Fetch(c.ctx, d)
	if err != nil {
		if transient(err) {
			return false, fmt.Errorf("fetch blob %s of %s: %w", d.Digest, c.rep.Repo, err)
		}
		return false, nil
	}
	defer rc.Close()
	vr := content.NewVerifyReader(rc, d)
	if _, err := io.Copy(io.Discard, vr); err != nil {
		return false, nil
	}
	return vr.Verify() == nil, nil
}

// missing says what is wrong with blob d, for the report.
func (c *checker) missing(d ocispec.Descriptor) string {
	got, err := c.r.Blobs().Resolve(c.ctx, d.Digest.String())
	switch {
	case err != nil:
		return "not stored"
	case got.Size != d.Size:
		return fmt.Sprintf("stored with %d bytes", got.Size)
	}
	return "stored bytes do not match the digest"
}
