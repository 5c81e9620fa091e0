package bundle

import (
	"archive/tar"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"strata.dev/strata/internal/testing/fuzztest"
)

// FuzzArchiveImport feeds arbitrary bytes (plain or gzip-compressed tar) to the archive
// extraction: it must not panic, must stay within its 1 MiB bound on disk and 64 MiB of heap
// (issue 19 item 4: a 6 MB file with a 1 GiB index.json took 3.1 GB), must write nothing
// outside its directory, and what it accepts is a layout whose every blob matches its name and
// is referenced from index.json (an unreferenced blob is refused), with every reachable blob
// present at its declared size.
func FuzzArchiveImport(f *testing.F) {
	seed := func(entries ...layoutEntryData) []byte {
		b, err := os.ReadFile(hostileArchive(f, entries...))
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	valid := testLayout(f, []byte("layer"))
	f.Add(seed(valid...))
	f.Add(seed(append(append([]layoutEntryData(nil), valid...), layoutEntryData{name: "blobs/sha256/" + strings.Repeat("e", 64), data: []byte("x")})...))
	f.Add(seed(append(append([]layoutEntryData(nil), valid...), layoutEntryData{name: "blobs/sha256/" + strings.Repeat("c", 64), typeflag: tar.TypeSymlink, link: "/etc/passwd"})...))
	f.Add(seed(valid[0], layoutEntryData{name: "index.json", zeros: 8 << 20}))
	f.Add(seed(valid[1], layoutEntryData{name: "../x", data: []byte("x")}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		root := t.TempDir()
		file := filepath.Join(root, "a.tar")
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(root, "layout")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		before := fuzztest.Snapshot(t, root)
		var err error
		fuzztest.Bounded(t, fuzztest.Bounds{Time: 20 * time.Second, Heap: 64 << 20}, "extractLayout", func() {
			err = extractLayout(file, dir, 1<<20)
		})
		before.Same(t, root, "layout")
		if err != nil {
			return
		}
		// Every blob accepted is reachable from index.json through manifests and indexes, with
		// the size its descriptor declares, and every reachable descriptor's blob is there.
		reached := map[string]int64{}
		var walk func(descs []ocispec.Descriptor)
		walk = func(descs []ocispec.Descriptor) {
			for _, d := range descs {
				if _, ok := reached[d.Digest.Encoded()]; ok {
					continue
				}
				reached[d.Digest.Encoded()] = d.Size
				b, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", d.Digest.Encoded()))
				if err != nil {
					t.Fatalf("descriptor %s reachable from index.json, blob not extracted: %v", d.Digest, err)
				}
				if int64(len(b)) != d.Size {
					t.Fatalf("blob %s is %d bytes, its descriptor declares %d", d.Digest, len(b), d.Size)
				}
				var m struct {
					Config    *ocispec.Descriptor  `json:"config"`
					Layers    []ocispec.Descriptor `json:"layers"`
					Manifests []ocispec.Descriptor `json:"manifests"`
				}
				if strings.Contains(d.MediaType, "manifest") || strings.Contains(d.MediaType, "index") {
					if json.Unmarshal(b, &m) == nil {
						if m.Config != nil {
							walk([]ocispec.Descriptor{*m.Config})
						}
						walk(m.Layers)
						walk(m.Manifests)
					}
				}
			}
		}
		var index ocispec.Index
		idx, _ := os.ReadFile(filepath.Join(dir, "index.json"))
		if err := json.Unmarshal(idx, &index); err != nil {
			t.Fatalf("accepted a layout whose index.json does not parse: %v", err)
		}
		walk(index.Manifests)
		blobs, _ := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
		for _, b := range blobs {
			if _, ok := reached[b.Name()]; !ok {
				t.Errorf("blob %s extracted but not referenced from index.json", b.Name())
			}
		}
		var total int64
		walkErr := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err != nil || fi.IsDir() {
				return err
			}
			if !fi.Mode().IsRegular() {
				t.Errorf("%s is not a regular file", p)
			}
			total += fi.Size()
			rel, _ := filepath.Rel(dir, p)
			rel = filepath.ToSlash(rel)
			if hex, ok := strings.CutPrefix(rel, "blobs/sha256/"); ok {
				b, _ := os.ReadFile(p)
				if digest.SHA256.FromBytes(b).Encoded() != hex {
					t.Errorf("accepted blob %s does not match its name", rel)
				}
			} else if rel != "index.json" && rel != "oci-layout" {
				t.Errorf("accepted foreign file %s", rel)
			}
			return nil
		})
		if walkErr != nil {
			t.Fatal(walkErr)
		}
		if total > 1<<20 {
			t.Errorf("extracted %d bytes, bound 1 MiB", total)
		}
	})
}
