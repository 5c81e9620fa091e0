package bundle

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"oras.land/oras-go/v2/content/oci"
)

// An archive (CopyOptions "archive:FILE.tar") is an OCI image layout in a tar file: the bundle
// under its tag, each image under image-NAME.

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
