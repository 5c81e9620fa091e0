package bundle

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// FuzzArchiveImport feeds arbitrary bytes (plain or gzip-compressed tar) to the archive
// extraction: it must not panic, must stay within its 1 MiB bound, must write nothing outside
// its directory, and what it accepts is a layout whose every blob matches its name.
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
		err := extractLayout(file, dir, 1<<20)
		ents, _ := os.ReadDir(root)
		if len(ents) != 2 {
			t.Fatalf("files written outside the layout directory: %v", ents)
		}
		if err != nil {
			return
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
