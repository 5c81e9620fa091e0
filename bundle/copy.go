package bundle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content/oci"
	orasremote "oras.land/oras-go/v2/registry/remote"

	"strata.dev/strata/internal/registry"
)

// ArchivePrefix marks an OCI layout tar file in CopyOptions.From/To: "archive:FILE.tar".
const ArchivePrefix = "archive:"

// DefaultMaxArchiveBytes limits what is extracted from an archive.
const DefaultMaxArchiveBytes int64 = 16 << 30

// archiveImageTag is the tag of image NAME inside an archive.
func archiveImageTag(name string) string { return "image-" + name }

// CopyOptions configure Copy.
type CopyOptions struct {
	// From is the bundle, REPO:TAG, REPO@DIGEST or archive:FILE.tar.
	From string
	// To is REPO[:TAG] (TAG defaults to the source's) or archive:FILE.tar.
	To string
	// ImagesRepo is where the images go when To is a registry (default: the bundle's
	// repository, with the images' own tags).
	ImagesRepo string
	// Force replaces an existing destination tag with different content.
	Force bool
	// Registry says how registries are reached.
	Registry registry.Options
	// MaxChartBytes limits the chart (0: DefaultMaxChartBytes); MaxArchiveBytes what is read
	// from an archive (0: DefaultMaxArchiveBytes).
	MaxChartBytes   int64
	MaxArchiveBytes int64
	// Log receives progress (nil: discarded).
	Log *slog.Logger
}

// CopyResult is what Copy did.
type CopyResult struct {
	// Ref and Digest of the bundle at the destination (Ref is archive:FILE.tar for archives).
	Ref    string `json:"ref"`
	Digest string `json:"digest"`
	// Images are the new image refs by name.
	Images map[string]string `json:"images"`
	// Blobs (and manifests) copied, skipped because present, mounted from another repository;
	// bytes copied.
	Copied  int64 `json:"copied"`
	Skipped int64 `json:"skipped"`
	Mounted int64 `json:"mounted"`
	Bytes   int64 `json:"bytes"`
	// Signatures counts the cosign signature layers carried along: those of the images, and
	// the bundle's when the destination holds it unchanged (an archive).
	Signatures int `json:"signatures"`
	// Referrers counts the OCI 1.1 referrers carried along (signatures stored as referrers,
	// attestations, SBOMs), of the same manifests; none onto a registry without the referrers
	// API.
	Referrers int `json:"referrers"`
}

type copyStats struct{ copied, skipped, mounted, bytes atomic.Int64 }

func (s *copyStats) options(mountFrom []string) oras.CopyOptions {
	o := oras.CopyOptions{}
	o.PostCopy = func(_ context.Context, d ocispec.Descriptor) error {
		s.copied.Add(1)
		s.bytes.Add(d.Size)
		return nil
	}
	o.OnCopySkipped = func(context.Context, ocispec.Descriptor) error { s.skipped.Add(1); return nil }
	if len(mountFrom) > 0 {
		o.MountFrom = func(context.Context, ocispec.Descriptor) ([]string, error) { return mountFrom, nil }
		o.OnMounted = func(context.Context, ocispec.Descriptor) error { s.mounted.Add(1); return nil }
	}
	return o
}

// Copy copies a bundle and every image it references, by digest, to another repository or
// into/out of an OCI layout tar archive. At a registry destination the bundle's values and
// images lock are rewritten to the new image references; an archive holds the bundle as it was
// published plus the images, and is rewritten when it is copied on to a registry. Images first,
// the bundle last: a failure leaves no destination tag.
//
// Both ends are opened as oras Targets (a registry repository, or an OCI layout the archive is
// extracted into or written from); every image goes through the same oras copy.
func Copy(ctx context.Context, o CopyOptions) (*CopyResult, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.From == "" || o.To == "" {
		return nil, errors.New("copy: --from and --to are required")
	}
	src, err := openCopySource(ctx, o)
	if err != nil {
		return nil, err
	}
	defer src.close()
	dst, err := openCopyDestination(ctx, o, src.tag)
	if err != nil {
		return nil, err
	}
	defer dst.close()

	var stats copyStats
	res := &CopyResult{Images: map[string]string{}}
	names := src.bc.meta.ImageNames()
	meta := *src.bc.meta
	meta.Images = map[string]Image{}
	for _, n := range names {
		im := src.bc.meta.Images[n]
		placed, err := copyImage(ctx, src, dst, n, im, &stats)
		if err != nil {
			return nil, fmt.Errorf("copy: image %s (%s): %w", n, im.Ref, err)
		}
		meta.Images[n] = placed
		res.Images[n] = placed.Ref
		log.Info("copied image", "image", n, "ref", placed.Ref, "digest", im.Digest)
	}
	if res.Signatures, res.Referrers, err = carrySignatures(ctx, o, src, dst, log); err != nil {
		return nil, err
	}
	// An archive holds the bundle as published: its signatures go in before the tar is written.
	if dst.keepsBundle() {
		n, r, err := carryBundleSignature(ctx, o, src, dst, log)
		if err != nil {
			return nil, err
		}
		res.Signatures += n
		res.Referrers += r
	}
	if err := dst.putBundle(ctx, src, &meta, &stats, res, log); err != nil {
		return nil, err
	}
	if !dst.keepsBundle() && res.Digest == src.bc.manifestDesc.Digest.String() {
		n, r, err := carryBundleSignature(ctx, o, src, dst, log)
		if err != nil {
			return nil, err
		}
		res.Signatures += n
		res.Referrers += r
	}
	log.Info("copied bundle", "ref", res.Ref, "digest", res.Digest, "images", len(names), "copied", res.Copied, "skipped", res.Skipped, "mounted", res.Mounted, "bytes", res.Bytes)
	return res, nil
}

// copyImage copies image name of the source's lock to the destination, unless the destination
// already holds it under its reference, and returns its lock entry there.
func copyImage(ctx context.Context, src *copySource, dst copyDestination, name string, im Image, stats *copyStats) (Image, error) {
	from, err := src.image(name, im)
	if err != nil {
		return Image{}, err
	}
	to, placed := dst.image(name, im)
	if d, err := to.target.Resolve(ctx, to.ref); err == nil && d.Digest.String() == im.Digest {
		stats.skipped.Add(1) // already there under its reference
		return placed, nil
	}
	mount := from.mountFrom
	if !to.mountable(from) {
		mount = nil
	}
	source := from.name
	if source == "" {
		source = "the archive"
	}
	d, err := oras.Copy(ctx, blamedSource{from.target, source}, from.ref, to.target, to.ref, stats.options(mount))
	var se *sourceError
	if errors.As(err, &se) { // a failed read of the source, not the destination's fault
		return Image{}, se
	}
	if err != nil {
		return Image{}, fmt.Errorf("copy to %s: %w", to.name, err)
	}
	if d.Digest.String() != im.Digest {
		return Image{}, fmt.Errorf("copied digest %s differs from the lock's %s", d.Digest, im.Digest)
	}
	return placed, nil
}

// sourceError is a failed read of a copy's source: a blob or manifest that could not be
// fetched, or whose body broke off while it was pushed to the destination.
type sourceError struct {
	digest, from string
	err          error
}

func (e *sourceError) Error() string {
	return fmt.Sprintf("read %s from %s: %v", e.digest, e.from, e.err)
}

func (e *sourceError) Unwrap() error { return e.err }

// blamedSource is a copy's source whose failed reads are sourceErrors.
type blamedSource struct {
	oras.ReadOnlyTarget
	name string
}

func (s blamedSource) Fetch(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	rc, err := s.ReadOnlyTarget.Fetch(ctx, d)
	if err != nil {
		return nil, &sourceError{d.Digest.String(), s.name, err}
	}
	return &blamedReader{rc, d.Digest.String(), s.name}, nil
}

type blamedReader struct {
	io.ReadCloser
	digest, from string
}

func (r *blamedReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = &sourceError{r.digest, r.from, err}
	}
	return n, err
}

// imageEnd is one end of an image copy: the target and the reference in it; at a destination
// its name for errors; for a registry repository its name (repo) and, at a source, the
// repositories a blob may be mounted from.
type imageEnd struct {
	target    oras.Target
	ref       string
	name      string
	repo      string
	mountFrom []string
}

// mountable reports whether a blob of from may be mounted at e: both are repositories of the
// same registry.
func (e imageEnd) mountable(from imageEnd) bool {
	return e.repo != "" && from.repo != "" && sameRegistry(from.repo, e.repo)
}

// copySource is the bundle Copy reads: its target, tag and content, and where each image is.
type copySource struct {
	target oras.ReadOnlyTarget
	// tag is the source's tag, else the one of the bundle's version.
	tag   string
	bc    *bundleContent
	image func(name string, im Image) (imageEnd, error)
	// bundle is where the bundle is (its repository for a registry); layoutDir the OCI layout
	// an archive was extracted into.
	bundle    imageEnd
	layoutDir string
	close     func()
}

// openCopySource opens From: an archive extracted into a temporary OCI layout, or a registry
// repository whose images are read from their own repositories.
func openCopySource(ctx context.Context, o CopyOptions) (*copySource, error) {
	src := &copySource{close: func() {}}
	if file, ok := strings.CutPrefix(o.From, ArchivePrefix); ok {
		dir, err := os.MkdirTemp("", "strata-copy-from-")
		if err != nil {
			return nil, err
		}
		src.close = func() { os.RemoveAll(dir) }
		store, err := openArchive(ctx, file, dir, o.MaxArchiveBytes)
		if err != nil {
			src.close()
			return nil, fmt.Errorf("copy: %w", err)
		}
		if src.tag, err = archiveBundleTag(ctx, store); err == nil {
			src.bc, err = fetchBundle(ctx, store, src.tag, o.MaxChartBytes)
		}
		if err != nil {
			src.close()
			return nil, fmt.Errorf("copy: archive %s: %w", file, err)
		}
		src.target, src.layoutDir = store, dir
		src.bundle = imageEnd{target: store, name: o.From}
		src.image = func(name string, _ Image) (imageEnd, error) {
			return imageEnd{target: store, ref: archiveImageTag(name)}, nil
		}
	} else {
		r, err := fetchRef(ctx, "copy", o.Registry, o.From, o.MaxChartBytes)
		if err != nil {
			return nil, err
		}
		if !strings.Contains(r.reference, ":") { // a tag, not a digest
			src.tag = r.reference
		}
		src.target, src.bc = r.repo, r.bc
		src.bundle = imageEnd{target: r.repo, name: repoName(r.repo), repo: repoName(r.repo)}
		src.image = func(_ string, im Image) (imageEnd, error) {
			r, err := o.Registry.Repository(im.Repo)
			if err != nil {
				return imageEnd{}, err
			}
			return imageEnd{target: r, ref: im.Digest, name: im.Repo, repo: im.Repo, mountFrom: []string{r.Reference.Repository}}, nil
		}
	}
	if meta := src.bc.meta; meta == nil || len(meta.Images) == 0 {
		src.close()
		return nil, fmt.Errorf("copy %s: not a Strata bundle (no %s with images)", o.From, MetadataFile)
	}
	if src.tag == "" {
		_, t, err := ChartVersion(src.bc.meta.Version)
		if err != nil {
			src.close()
			return nil, fmt.Errorf("copy %s: %w", o.From, err)
		}
		src.tag = t
	}
	return src, nil
}

// openRepository parses and opens REGISTRY/PATH ([oci://] accepted); what names the flag the
// value came from in errors.
func openRepository(ro registry.Options, s, what string) (*orasremote.Repository, error) {
	name, err := ro.ParseRepository(strings.TrimPrefix(s, "oci://"))
	if err != nil {
		if what != "" {
			err = fmt.Errorf("%s: %w", what, err)
		}
		return nil, err
	}
	return ro.Repository(name.Name())
}

// copyDestination is where Copy puts the images, then the bundle.
type copyDestination interface {
	// image says where image name goes and what its lock entry is once there.
	image(name string, im Image) (imageEnd, Image)
	// putBundle stores the bundle, meta listing the copied images, and fills res.
	putBundle(ctx context.Context, src *copySource, meta *Metadata, stats *copyStats, res *CopyResult, log *slog.Logger) error
	// bundle is where the bundle goes; keepsBundle says it is stored unchanged (same digest).
	bundle() imageEnd
	keepsBundle() bool
	close()
}

// openCopyDestination opens To: an archive written from a temporary OCI layout next to it, or
// a registry repository (TAG defaults to the source's tag).
func openCopyDestination(ctx context.Context, o CopyOptions, srcTag string) (copyDestination, error) {
	if file, ok := strings.CutPrefix(o.To, ArchivePrefix); ok {
		dir, err := os.MkdirTemp(filepath.Dir(file), ".strata-copy-to-")
		if err != nil {
			return nil, fmt.Errorf("copy: %w", err)
		}
		store, err := oci.NewWithContext(ctx, dir)
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("copy: %w", err)
		}
		return &archiveDestination{file: file, dir: dir, store: store, ref: o.To}, nil
	}
	repoStr, tag := o.To, srcTag
	if i := strings.LastIndex(o.To, ":"); i > strings.LastIndex(o.To, "/") {
		repoStr, tag = o.To[:i], o.To[i+1:]
	}
	repo, err := openRepository(o.Registry, repoStr, "--to")
	if err != nil {
		return nil, fmt.Errorf("copy: %w", err)
	}
	images := repo
	if o.ImagesRepo != "" {
		if images, err = openRepository(o.Registry, o.ImagesRepo, "--images-repo"); err != nil {
			return nil, fmt.Errorf("copy: %w", err)
		}
	}
	return &registryDestination{repo: repo, tag: tag, images: images, force: o.Force, maxChartBytes: o.MaxChartBytes}, nil
}

// registryDestination copies the images to one repository under their own tags and publishes the
// bundle rewritten to point there.
type registryDestination struct {
	repo, images  *orasremote.Repository
	tag           string
	force         bool
	maxChartBytes int64
}

func (d *registryDestination) image(_ string, im Image) (imageEnd, Image) {
	repo := repoName(d.images)
	ref := im.Tag
	if ref == "" {
		ref = im.Digest
	}
	return imageEnd{target: d.images, ref: ref, name: repo, repo: repo}, moved(im, repo)
}

func (d *registryDestination) putBundle(ctx context.Context, src *copySource, meta *Metadata, stats *copyStats, res *CopyResult, log *slog.Logger) error {
	repo := repoName(d.repo)
	meta.Repo = repoName(d.images)
	meta.Bundle = repo + ":" + d.tag
	meta.Chart = path.Base(d.repo.Reference.Repository)
	art, err := buildArtifact(meta.Chart, meta.Version, src.bc.files, meta, d.maxChartBytes)
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	pr, err := pushArtifact(ctx, d.repo, d.tag, art, d.force, log, nil)
	if err != nil {
		return fmt.Errorf("copy to %s:%s: %w", repo, d.tag, err)
	}
	res.Ref, res.Digest = repo+":"+d.tag, pr.Digest
	res.fill(stats)
	res.Copied += int64(pr.BlobsPushed)
	res.Skipped += int64(pr.BlobsSkipped)
	if pr.Unchanged {
		res.Skipped++
	}
	res.Bytes += pr.BytesPushed
	return nil
}

func (d *registryDestination) bundle() imageEnd {
	return imageEnd{target: d.repo, name: repoName(d.repo), repo: repoName(d.repo)}
}

func (d *registryDestination) keepsBundle() bool { return false }

func (d *registryDestination) close() {}

func repoName(r *orasremote.Repository) string {
	return r.Reference.Registry + "/" + r.Reference.Repository
}

// archiveDestination copies the bundle as published and the images (tagged image-NAME) into an
// OCI layout, then writes it as the tar file.
type archiveDestination struct {
	file, dir, ref string
	store          *oci.Store
}

func (d *archiveDestination) image(name string, im Image) (imageEnd, Image) {
	return imageEnd{target: d.store, ref: archiveImageTag(name), name: d.ref}, im
}

func (d *archiveDestination) putBundle(ctx context.Context, src *copySource, _ *Metadata, stats *copyStats, res *CopyResult, _ *slog.Logger) error {
	digest := src.bc.manifestDesc.Digest.String()
	if _, err := oras.Copy(ctx, src.target, digest, d.store, src.tag, stats.options(nil)); err != nil {
		return fmt.Errorf("copy: bundle: %w", err)
	}
	if err := writeLayoutTar(d.dir, d.file); err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	res.Ref, res.Digest = d.ref, digest
	res.fill(stats)
	return nil
}

func (d *archiveDestination) bundle() imageEnd { return imageEnd{target: d.store, name: d.ref} }

func (d *archiveDestination) keepsBundle() bool { return true }

func (d *archiveDestination) close() { os.RemoveAll(d.dir) }

func (r *CopyResult) fill(s *copyStats) {
	r.Copied, r.Skipped, r.Mounted, r.Bytes = s.copied.Load(), s.skipped.Load(), s.mounted.Load(), s.bytes.Load()
}

// moved is the lock entry of im once copied to repo.
func moved(im Image, repo string) Image {
	nim := Image{Repo: repo, Tag: im.Tag, Digest: im.Digest, Ref: repo + "@" + im.Digest}
	if im.Tag != "" {
		nim.Ref = repo + ":" + im.Tag + "@" + im.Digest
	}
	return nim
}

func sameRegistry(a, b string) bool {
	ra, _, _ := strings.Cut(a, "/")
	rb, _, _ := strings.Cut(b, "/")
	return strings.EqualFold(ra, rb)
}
