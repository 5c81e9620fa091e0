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
func Copy(ctx context.Context, o CopyOptions) (*CopyResult, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.From == "" || o.To == "" {
		return nil, errors.New("copy: --from and --to are required")
	}
	var stats copyStats
	res := &CopyResult{Images: map[string]string{}}

	// source
	var (
		bc        *bundleContent
		srcTag    string
		imageSrc  func(name string, im Image) (oras.ReadOnlyTarget, string, []string, error)
		srcBundle oras.ReadOnlyTarget
	)
	if file, ok := strings.CutPrefix(o.From, ArchivePrefix); ok {
		dir, err := os.MkdirTemp("", "strata-copy-from-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		if err := extractLayout(file, dir, o.MaxArchiveBytes); err != nil {
			return nil, fmt.Errorf("copy: %w", err)
		}
		store, err := oci.NewWithContext(ctx, dir)
		if err != nil {
			return nil, fmt.Errorf("copy: archive %s: %w", file, err)
		}
		if srcTag, err = archiveBundleTag(ctx, store); err != nil {
			return nil, fmt.Errorf("copy: archive %s: %w", file, err)
		}
		if bc, err = fetchBundle(ctx, store, srcTag, o.MaxChartBytes); err != nil {
			return nil, fmt.Errorf("copy: archive %s: %w", file, err)
		}
		srcBundle = store
		imageSrc = func(name string, _ Image) (oras.ReadOnlyTarget, string, []string, error) {
			return store, archiveImageTag(name), nil, nil
		}
	} else {
		repoStr, reference, err := splitRef(o.From)
		if err != nil {
			return nil, fmt.Errorf("copy: %w", err)
		}
		if _, err := o.Registry.ParseRepository(repoStr); err != nil {
			return nil, fmt.Errorf("copy: %w", err)
		}
		repo, err := o.Registry.Repository(repoStr)
		if err != nil {
			return nil, fmt.Errorf("copy: %w", err)
		}
		if bc, err = fetchBundle(ctx, repo, reference, o.MaxChartBytes); err != nil {
			return nil, fmt.Errorf("copy %s: %w", o.From, err)
		}
		srcTag = reference
		if strings.Contains(reference, ":") { // a digest
			srcTag = ""
		}
		srcBundle = repo
		imageSrc = func(name string, im Image) (oras.ReadOnlyTarget, string, []string, error) {
			r, err := o.Registry.Repository(im.Repo)
			if err != nil {
				return nil, "", nil, err
			}
			return r, im.Digest, []string{r.Reference.Repository}, nil
		}
	}
	if bc.meta == nil || len(bc.meta.Images) == 0 {
		return nil, fmt.Errorf("copy %s: not a Strata bundle (no %s with images)", o.From, MetadataFile)
	}
	if srcTag == "" {
		_, t, err := ChartVersion(bc.meta.Version)
		if err != nil {
			return nil, fmt.Errorf("copy %s: %w", o.From, err)
		}
		srcTag = t
	}
	names := bc.meta.ImageNames()

	// destination: archive
	if file, ok := strings.CutPrefix(o.To, ArchivePrefix); ok {
		dir, err := os.MkdirTemp(filepath.Dir(file), ".strata-copy-to-")
		if err != nil {
			return nil, fmt.Errorf("copy: %w", err)
		}
		defer os.RemoveAll(dir)
		store, err := oci.NewWithContext(ctx, dir)
		if err != nil {
			return nil, fmt.Errorf("copy: %w", err)
		}
		for _, n := range names {
			im := bc.meta.Images[n]
			src, ref, _, err := imageSrc(n, im)
			if err != nil {
				return nil, fmt.Errorf("copy: image %s: %w", n, err)
			}
			if _, err := oras.Copy(ctx, src, ref, store, archiveImageTag(n), stats.options(nil)); err != nil {
				return nil, fmt.Errorf("copy: image %s (%s): %w", n, im.Ref, err)
			}
			res.Images[n] = im.Ref
			log.Info("copied image", "image", n, "digest", im.Digest, "to", o.To)
		}
		if _, err := oras.Copy(ctx, srcBundle, bc.manifestDesc.Digest.String(), store, srcTag, stats.options(nil)); err != nil {
			return nil, fmt.Errorf("copy: bundle: %w", err)
		}
		if err := writeLayoutTar(dir, file); err != nil {
			return nil, fmt.Errorf("copy: %w", err)
		}
		res.Ref, res.Digest = o.To, bc.manifestDesc.Digest.String()
		res.fill(&stats)
		log.Info("copied bundle", "to", o.To, "tag", srcTag, "images", len(names), "copied", res.Copied, "skipped", res.Skipped, "bytes", res.Bytes)
		return res, nil
	}

	// destination: registry
	dstRepoStr, dstTag := o.To, srcTag
	if i := strings.LastIndex(o.To, ":"); i > strings.LastIndex(o.To, "/") {
		dstRepoStr, dstTag = o.To[:i], o.To[i+1:]
	}
	dstRepoName, err := o.Registry.ParseRepository(strings.TrimPrefix(dstRepoStr, "oci://"))
	if err != nil {
		return nil, fmt.Errorf("copy: --to: %w", err)
	}
	dstRepo, err := o.Registry.Repository(dstRepoName.Name())
	if err != nil {
		return nil, fmt.Errorf("copy: %w", err)
	}
	imagesRepoStr := dstRepoName.Name()
	if o.ImagesRepo != "" {
		ir, err := o.Registry.ParseRepository(o.ImagesRepo)
		if err != nil {
			return nil, fmt.Errorf("copy: --images-repo: %w", err)
		}
		imagesRepoStr = ir.Name()
	}
	imagesRepo, err := o.Registry.Repository(imagesRepoStr)
	if err != nil {
		return nil, fmt.Errorf("copy: %w", err)
	}
	meta := *bc.meta
	meta.Images = map[string]Image{}
	for _, n := range names {
		im := bc.meta.Images[n]
		src, ref, mount, err := imageSrc(n, im)
		if err != nil {
			return nil, fmt.Errorf("copy: image %s: %w", n, err)
		}
		if len(mount) > 0 && !sameRegistry(im.Repo, imagesRepoStr) {
			mount = nil
		}
		dstRef := im.Tag
		if dstRef == "" {
			dstRef = im.Digest
		}
		if d, err := imagesRepo.Resolve(ctx, dstRef); err == nil && d.Digest.String() == im.Digest {
			stats.skipped.Add(1) // already there under its tag
			nim := moved(im, imagesRepoStr)
			meta.Images[n] = nim
			res.Images[n] = nim.Ref
			log.Info("image already present", "image", n, "ref", nim.Ref)
			continue
		}
		d, err := oras.Copy(ctx, src, ref, imagesRepo, dstRef, stats.options(mount))
		if err != nil {
			return nil, fmt.Errorf("copy: image %s (%s) to %s: %w", n, im.Ref, imagesRepoStr, err)
		}
		if d.Digest.String() != im.Digest {
			return nil, fmt.Errorf("copy: image %s: copied digest %s differs from the lock's %s", n, d.Digest, im.Digest)
		}
		nim := moved(im, imagesRepoStr)
		meta.Images[n] = nim
		res.Images[n] = nim.Ref
		log.Info("copied image", "image", n, "ref", nim.Ref)
	}
	meta.Repo = imagesRepoStr
	meta.Bundle = dstRepoName.Name() + ":" + dstTag
	meta.Chart = path.Base(dstRepoName.RepositoryStr())
	art, err := buildArtifact(meta.Chart, meta.Version, bc.files, &meta, o.MaxChartBytes)
	if err != nil {
		return nil, fmt.Errorf("copy: %w", err)
	}
	pr, err := pushArtifact(ctx, dstRepo, dstTag, art, o.Force, log, nil)
	if err != nil {
		return nil, fmt.Errorf("copy to %s:%s: %w", dstRepoName.Name(), dstTag, err)
	}
	res.Ref, res.Digest = dstRepoName.Name()+":"+dstTag, pr.Digest
	res.fill(&stats)
	res.Copied += int64(pr.BlobsPushed)
	res.Skipped += int64(pr.BlobsSkipped)
	if pr.Unchanged {
		res.Skipped++
	}
	res.Bytes += pr.BytesPushed
	log.Info("copied bundle", "ref", res.Ref, "digest", res.Digest, "images", len(names), "copied", res.Copied, "skipped", res.Skipped, "mounted", res.Mounted, "bytes", res.Bytes)
	return res, nil
}

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
