package bundle

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
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
	if err := dst.putBundle(ctx, src, &meta, &stats, res, log); err != nil {
		return nil, err
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
	d, err := oras.Copy(ctx, from.target, from.ref, to.target, to.ref, stats.options(mount))
	if err != nil {
		return Image{}, fmt.Errorf("copy to %s: %w", to.name, err)
	}
	if d.Digest.String() != im.Digest {
		return Image{}, fmt.Errorf("copied digest %s differs from the lock's %s", d.Digest, im.Digest)
	}
	return placed, nil
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
	close func()
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
		src.target = store
		src.image = func(name string, _ Image) (imageEnd, error) {
			return imageEnd{target: store, ref: archiveImageTag(name)}, nil
		}
	} else {
		repoStr, reference, err := splitRef(o.From)
		if err != nil {
			return nil, fmt.Errorf("copy: %w", err)
		}
		repo, err := openRepository(o.Registry, repoStr, "")
		if err != nil {
			return nil, fmt.Errorf("copy: %w", err)
		}
		if src.bc, err = fetchBundle(ctx, repo, reference, o.MaxChartBytes); err != nil {
			return nil, fmt.Errorf("copy %s: %w", o.From, err)
		}
		if !strings.Contains(reference, ":") { // a tag, not a digest
			src.tag = reference
		}
		src.target = repo
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

// openArchive extracts the OCI layout tar file into dir and opens it.
func openArchive(ctx context.Context, file, dir string, max int64) (*oci.Store, error) {
	if err := extractLayout(file, dir, max); err != nil {
		return nil, err
	}
	store, err := oci.NewWithContext(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", file, err)
	}
	return store, nil
}

// copyDestination is where Copy puts the images, then the bundle.
type copyDestination interface {
	// image says where image name goes and what its lock entry is once there.
	image(name string, im Image) (imageEnd, Image)
	// putBundle stores the bundle, meta listing the copied images, and fills res.
	putBundle(ctx context.Context, src *copySource, meta *Metadata, stats *copyStats, res *CopyResult, log *slog.Logger) error
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

// archiveBundleTag finds the bundle's tag in an archive: the one tag that is not an image's.
func archiveBundleTag(ctx context.Context, store *oci.Store) (string, error) {
	var tags []string
	err := store.Tags(ctx, "", func(ts []string) error {
		for _, t := range ts {
			if !strings.HasPrefix(t, "image-") {
				tags = append(tags, t)
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if len(tags) != 1 {
		return "", fmt.Errorf("want exactly one bundle tag in index.json, found %d (%s)", len(tags), strings.Join(tags, ", "))
	}
	return tags[0], nil
}

var layoutEntry = regexp.MustCompile(`^(oci-layout|index\.json|blobs/?|blobs/sha256/?|blobs/sha256/[a-f0-9]{64})$`)

// extractLayout extracts an OCI layout tar (optionally gzip-compressed) into dir. Only the OCI
// layout's own entries are accepted (oci-layout, index.json, blobs/sha256/<hex>): path traversal,
// links and anything else are refused, and at most max bytes are written.
func extractLayout(file, dir string, max int64) error {
	if max <= 0 {
		max = DefaultMaxArchiveBytes
	}
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("archive %s: %w", file, err)
		}
		r = zr
	}
	lr := &limitReader{r: r, left: max}
	tr := tar.NewReader(lr)
	var written int64
	n := 0
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if lr.exceeded {
				return fmt.Errorf("archive %s holds more than %d bytes: %w", file, max, ErrLimit)
			}
			return fmt.Errorf("archive %s: %w", file, err)
		}
		n++
		name := strings.TrimPrefix(hdr.Name, "./")
		if name == "" || name == "." {
			continue
		}
		if !layoutEntry.MatchString(name) {
			return fmt.Errorf("archive %s: entry %q is not part of an OCI layout (path traversal or foreign file refused)", file, hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(filepath.Join(dir, filepath.FromSlash(name)), 0o755); err != nil {
				return err
			}
			continue
		case tar.TypeReg:
		default:
			return fmt.Errorf("archive %s: entry %q is not a regular file (type %q)", file, hdr.Name, hdr.Typeflag)
		}
		if written+hdr.Size > max {
			return fmt.Errorf("archive %s: more than %d bytes (at %s): %w", file, max, hdr.Name, ErrLimit)
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		out, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("archive %s: %s: %w", file, hdr.Name, err)
		}
		c, err := io.Copy(out, io.LimitReader(tr, hdr.Size))
		out.Close()
		written += c
		if err != nil {
			if lr.exceeded {
				return fmt.Errorf("archive %s holds more than %d bytes: %w", file, max, ErrLimit)
			}
			return fmt.Errorf("archive %s: %s: %w", file, hdr.Name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		return fmt.Errorf("archive %s: not an OCI layout (no index.json)", file)
	}
	return nil
}

// writeLayoutTar writes the OCI layout in dir as a tar file, atomically (temporary file, rename).
func writeLayoutTar(dir, file string) error {
	var names []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriter(tmp)
	tw := tar.NewWriter(bw)
	for _, n := range names {
		p := filepath.Join(dir, filepath.FromSlash(n))
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: fi.Size(), ModTime: archiveTime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		_, err = io.Copy(tw, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("write archive %s: %w", file, err)
	}
	return nil
}
