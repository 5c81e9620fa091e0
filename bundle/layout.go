package bundle

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content/oci"

	"strata.dev/strata/sign"
)

// An archive (CopyOptions "archive:FILE.tar") is an OCI image layout in a tar file: the bundle
// under its tag, each image under image-NAME, and the cosign signature image of the bundle and
// of each image that has one under sha256-<hex>.sig (see signatures.go).

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

// archiveBundleTag finds the bundle's tag in an archive: the one tag that is neither an image's
// nor a signature's.
func archiveBundleTag(ctx context.Context, store *oci.Store) (string, error) {
	var tags []string
	err := store.Tags(ctx, "", func(ts []string) error {
		for _, t := range ts {
			if _, _, attached := sign.AttachedTo(t); !strings.HasPrefix(t, "image-") && !attached {
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

// maxLayoutDocBytes limits oci-layout, index.json and every manifest or index of an archive:
// they are read into memory, so their declared size is checked before reading.
const maxLayoutDocBytes = 4 << 20

// layoutScan is what the first pass over an archive found: the small documents (index.json,
// oci-layout, and every blob small enough to be a manifest, digest-verified), and the declared
// size of every blob entry.
type layoutScan struct {
	index, ociLayout []byte
	small            map[digest.Digest][]byte
	sizes            map[digest.Digest]int64
	names            map[digest.Digest]string
	max              int64
}

// layoutHeaderSlack is how many bytes of tar headers and padding an archive may hold beyond
// its entries' content.
const layoutHeaderSlack = 64 << 20

// extractLayout extracts an OCI layout tar (optionally gzip-compressed) into dir. Only the OCI
// layout's own entries are accepted (oci-layout, index.json, blobs/sha256/<hex>): path traversal,
// links and anything else are refused. Sizes are checked before anything is read: index.json and
// manifests are at most maxLayoutDocBytes, declared sizes add up to at most max. Every blob must
// be referenced from index.json (directly or through a manifest or index), have the size its
// descriptor declares and the digest its name says; an unreferenced blob is refused, not
// extracted. On error dir may hold partial content: the caller removes it.
func extractLayout(file, dir string, max int64) error {
	if max <= 0 {
		max = DefaultMaxArchiveBytes
	}
	scan, err := scanLayout(file, max)
	if err != nil {
		return err
	}
	refs, err := layoutReferences(file, scan)
	if err != nil {
		return err
	}
	var big []digest.Digest
	for d, size := range scan.sizes {
		want, ok := refs[d]
		if !ok {
			return fmt.Errorf("archive %s: entry %s is not referenced from index.json (unreferenced blob refused)", file, scan.names[d])
		}
		if want != size {
			return fmt.Errorf("archive %s: entry %s is %d bytes, its descriptor declares %d", file, scan.names[d], size, want)
		}
		if _, ok := scan.small[d]; !ok {
			big = append(big, d)
		}
	}
	for d := range refs {
		if _, ok := scan.sizes[d]; !ok {
			return fmt.Errorf("archive %s: blob %s referenced from index.json is missing", file, d)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return err
	}
	write := func(name string, data []byte) error {
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(name)), data, 0o644); err != nil {
			return fmt.Errorf("archive %s: %s: %w", file, name, err)
		}
		return nil
	}
	if err := write("index.json", scan.index); err != nil {
		return err
	}
	if scan.ociLayout != nil {
		if err := write("oci-layout", scan.ociLayout); err != nil {
			return err
		}
	}
	for d, data := range scan.small {
		if err := write("blobs/sha256/"+d.Encoded(), data); err != nil {
			return err
		}
	}
	if len(big) > 0 {
		return extractBlobs(file, dir, scan, big)
	}
	return nil
}

// openLayoutTar opens the archive's tar stream (gunzipped when it starts with gzip's magic).
// The decompressed stream is limited to max plus layoutHeaderSlack bytes of tar headers.
func openLayoutTar(file string, max int64) (*tar.Reader, func(), error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, fmt.Errorf("archive: %w", err)
	}
	br := bufio.NewReader(f)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("archive %s: %w", file, err)
		}
		r = zr
	}
	return tar.NewReader(&limitReader{r: r, left: max + layoutHeaderSlack}), func() { f.Close() }, nil
}

// nextLayoutEntry returns the next regular file of the layout, its name without "./", and its
// blob digest (empty for oci-layout and index.json); io.EOF at the end.
func nextLayoutEntry(file string, tr *tar.Reader) (*tar.Header, string, digest.Digest, error) {
	for {
		hdr, err := tr.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, "", "", io.EOF
			}
			return nil, "", "", fmt.Errorf("archive %s: %w", file, err)
		}
		name := strings.TrimPrefix(hdr.Name, "./")
		if name == "" || name == "." {
			continue
		}
		if !layoutEntry.MatchString(name) {
			return nil, "", "", fmt.Errorf("archive %s: entry %q is not part of an OCI layout (path traversal or foreign file refused)", file, hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if hdr.Size != 0 {
				return nil, "", "", fmt.Errorf("archive %s: directory entry %q has a size", file, hdr.Name)
			}
			continue
		case tar.TypeReg:
		default:
			return nil, "", "", fmt.Errorf("archive %s: entry %q is not a regular file (type %q)", file, hdr.Name, hdr.Typeflag)
		}
		if hdr.Size < 0 {
			return nil, "", "", fmt.Errorf("archive %s: entry %q has a negative size", file, hdr.Name)
		}
		var d digest.Digest
		if hex, ok := strings.CutPrefix(name, "blobs/sha256/"); ok {
			d = digest.NewDigestFromEncoded(digest.SHA256, hex)
		}
		return hdr, name, d, nil
	}
}

// scanLayout is the first pass: it checks every entry's name, type and declared size, reads
// index.json, oci-layout and the blobs small enough to be manifests (digest-verified), and
// skips the others.
func scanLayout(file string, max int64) (*layoutScan, error) {
	tr, done, err := openLayoutTar(file, max)
	if err != nil {
		return nil, err
	}
	defer done()
	s := &layoutScan{max: max, small: map[digest.Digest][]byte{}, sizes: map[digest.Digest]int64{}, names: map[digest.Digest]string{}}
	var declared int64
	seen := map[string]bool{}
	for {
		hdr, name, d, err := nextLayoutEntry(file, tr)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if seen[name] {
			return nil, fmt.Errorf("archive %s: entry %q appears twice", file, hdr.Name)
		}
		seen[name] = true
		declared += hdr.Size
		if declared > max || declared < 0 {
			return nil, fmt.Errorf("archive %s: entries declare more than %d bytes (at %s, %d bytes): %w", file, max, hdr.Name, hdr.Size, ErrLimit)
		}
		if d == "" || hdr.Size <= maxLayoutDocBytes {
			if hdr.Size > maxLayoutDocBytes {
				return nil, fmt.Errorf("archive %s: %s is %d bytes, more than the limit of %d: %w", file, hdr.Name, hdr.Size, maxLayoutDocBytes, ErrLimit)
			}
			data, err := io.ReadAll(io.LimitReader(tr, hdr.Size))
			if err != nil {
				return nil, fmt.Errorf("archive %s: %s: %w", file, hdr.Name, err)
			}
			switch {
			case name == "index.json":
				s.index = data
			case name == "oci-layout":
				s.ociLayout = data
			default:
				if got := digest.SHA256.FromBytes(data); got != d {
					return nil, fmt.Errorf("archive %s: entry %s has digest %s", file, hdr.Name, got)
				}
				s.small[d] = data
			}
		}
		if d != "" {
			s.sizes[d] = hdr.Size
			s.names[d] = hdr.Name
		}
	}
	if s.index == nil {
		return nil, fmt.Errorf("archive %s: not an OCI layout (no index.json)", file)
	}
	return s, nil
}

// layoutReferences walks the graph from index.json through the manifests and indexes (which
// must be among the scanned small blobs) and returns every referenced digest with its declared
// size.
func layoutReferences(file string, s *layoutScan) (map[digest.Digest]int64, error) {
	var index ocispec.Index
	if err := json.Unmarshal(s.index, &index); err != nil {
		return nil, fmt.Errorf("archive %s: index.json: %w", file, err)
	}
	refs := map[digest.Digest]int64{}
	var walk func(from string, descs []ocispec.Descriptor, depth int) error
	walk = func(from string, descs []ocispec.Descriptor, depth int) error {
		if depth > 8 {
			return fmt.Errorf("archive %s: %s: manifests nested more than 8 deep", file, from)
		}
		for _, desc := range descs {
			if err := desc.Digest.Validate(); err != nil || desc.Digest.Algorithm() != digest.SHA256 {
				return fmt.Errorf("archive %s: %s: descriptor digest %q is not a valid sha256 digest", file, from, desc.Digest)
			}
			if desc.Size < 0 {
				return fmt.Errorf("archive %s: %s: descriptor of %s declares a negative size", file, from, desc.Digest)
			}
			if prev, ok := refs[desc.Digest]; ok {
				if prev != desc.Size {
					return fmt.Errorf("archive %s: %s: blob %s declared as %d and %d bytes", file, from, desc.Digest, prev, desc.Size)
				}
				continue
			}
			refs[desc.Digest] = desc.Size
			var children []ocispec.Descriptor
			switch desc.MediaType {
			case ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex, dockerManifestType, dockerManifestListType:
				if desc.Size > maxLayoutDocBytes {
					return fmt.Errorf("archive %s: %s: manifest %s declares %d bytes, more than the limit of %d: %w", file, from, desc.Digest, desc.Size, maxLayoutDocBytes, ErrLimit)
				}
				data, ok := s.small[desc.Digest]
				if !ok {
					return fmt.Errorf("archive %s: %s: manifest %s is missing", file, from, desc.Digest)
				}
				var m struct {
					Config    *ocispec.Descriptor  `json:"config"`
					Layers    []ocispec.Descriptor `json:"layers"`
					Manifests []ocispec.Descriptor `json:"manifests"`
				}
				if err := json.Unmarshal(data, &m); err != nil {
					return fmt.Errorf("archive %s: manifest %s: %w", file, desc.Digest, err)
				}
				if m.Config != nil {
					children = append(children, *m.Config)
				}
				children = append(children, m.Layers...)
				children = append(children, m.Manifests...)
			}
			if err := walk("manifest "+desc.Digest.String(), children, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk("index.json", index.Manifests, 0); err != nil {
		return nil, err
	}
	return refs, nil
}

const (
	dockerManifestType     = "application/vnd.docker.distribution.manifest.v2+json"
	dockerManifestListType = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// extractBlobs is the second pass: it writes the blobs in want (referenced, sizes checked),
// each read through a reader limited to its size and digest-verified.
func extractBlobs(file, dir string, s *layoutScan, want []digest.Digest) error {
	wanted := map[digest.Digest]bool{}
	for _, d := range want {
		wanted[d] = true
	}
	tr, done, err := openLayoutTar(file, s.max)
	if err != nil {
		return err
	}
	defer done()
	for len(wanted) > 0 {
		hdr, name, d, err := nextLayoutEntry(file, tr)
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("archive %s changed while read: blob %s missing", file, want[0])
		}
		if err != nil {
			return err
		}
		if !wanted[d] {
			continue
		}
		delete(wanted, d)
		if hdr.Size != s.sizes[d] {
			return fmt.Errorf("archive %s changed while read: %s", file, hdr.Name)
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		out, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("archive %s: %s: %w", file, hdr.Name, err)
		}
		h := digest.SHA256.Digester()
		n, err := io.Copy(io.MultiWriter(out, h.Hash()), io.LimitReader(tr, hdr.Size))
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("archive %s: %s: %w", file, hdr.Name, err)
		}
		if n != hdr.Size {
			return fmt.Errorf("archive %s: %s: %d bytes read, %d declared", file, hdr.Name, n, hdr.Size)
		}
		if got := h.Digest(); got != d {
			return fmt.Errorf("archive %s: entry %s has digest %s", file, hdr.Name, got)
		}
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
