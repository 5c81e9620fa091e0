package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// layoutEntryData is one entry of a test archive: data, or zeros (a run of that many zero
// bytes, generated as repeated gzip members so a GiB costs a few hundred KB), or a link.
type layoutEntryData struct {
	name     string
	data     []byte
	zeros    int64
	typeflag byte
	link     string
}

// hostileArchive writes entries as a gzip-compressed tar; only the last entry may be a zero
// run. The file is small whatever the zero run's size.
func hostileArchive(t testing.TB, entries ...layoutEntryData) string {
	t.Helper()
	var out bytes.Buffer
	member := func(b []byte) {
		zw, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
		zw.Write(b)
		zw.Close()
	}
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	var zeros int64
	for i, e := range entries {
		tf := e.typeflag
		if tf == 0 {
			tf = tar.TypeReg
		}
		size := int64(len(e.data))
		if e.zeros > 0 {
			if i != len(entries)-1 {
				t.Fatal("a zero run must be the last entry")
			}
			size = e.zeros
		}
		if tf != tar.TypeReg {
			size = 0
		}
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: size, Typeflag: tf, Linkname: e.link, Format: tar.FormatPAX}); err != nil {
			t.Fatal(err)
		}
		if e.zeros > 0 {
			// header written; the content, padding and end blocks are all zeros
			zeros = e.zeros + (512-e.zeros%512)%512 + 1024
			break
		}
		tw.Write(e.data)
		tw.Flush()
	}
	if zeros == 0 {
		tw.Close()
	}
	member(raw.Bytes())
	const chunk = 1 << 20
	var one bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&one, gzip.BestCompression)
	zw.Write(make([]byte, chunk))
	zw.Close()
	for ; zeros >= chunk; zeros -= chunk {
		out.Write(one.Bytes())
	}
	if zeros > 0 {
		member(make([]byte, zeros))
	}
	p := filepath.Join(t.TempDir(), "hostile.tar.gz")
	if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// testLayout is a valid one-image layout: index.json -> manifest -> config + layer. It returns
// the entries and the index.json.
func testLayout(t testing.TB, layer []byte) []layoutEntryData {
	t.Helper()
	blob := func(b []byte, mt string) (ocispec.Descriptor, layoutEntryData) {
		d := digest.SHA256.FromBytes(b)
		return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}, layoutEntryData{name: "blobs/sha256/" + d.Encoded(), data: b}
	}
	cfgDesc, cfg := blob([]byte(`{}`), ocispec.MediaTypeImageConfig)
	layerDesc, lay := blob(layer, ocispec.MediaTypeImageLayerGzip)
	m, _ := json.Marshal(ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfgDesc, Layers: []ocispec.Descriptor{layerDesc}})
	mDesc, man := blob(m, ocispec.MediaTypeImageManifest)
	mDesc.Annotations = map[string]string{ocispec.AnnotationRefName: "1.0.0"}
	idx, _ := json.Marshal(ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{mDesc}})
	idx = append([]byte(`{"schemaVersion":2,`), idx[1:]...)
	return []layoutEntryData{
		{name: "oci-layout", data: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{name: "index.json", data: idx},
		man, cfg, lay,
	}
}

// importArchive runs Copy from the archive with TMPDIR set to a fresh directory and returns
// the error, the bytes allocated meanwhile, and what was left in TMPDIR.
func importArchive(t *testing.T, file string) (error, uint64, []string) {
	t.Helper()
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := Copy(context.Background(), CopyOptions{From: ArchivePrefix + file, To: "127.0.0.1:5000/strata-test/never-written/app"})
	runtime.ReadMemStats(&after)
	ents, _ := os.ReadDir(tmp)
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	return err, after.TotalAlloc - before.TotalAlloc, left
}

func TestArchiveImportRefusesHostileArchives(t *testing.T) {
	valid := testLayout(t, []byte("layer"))
	unreferenced := "blobs/sha256/" + strings.Repeat("e", 64)
	bigManifest := func() []layoutEntryData {
		d := digest.Digest("sha256:" + strings.Repeat("b", 64))
		idx, _ := json.Marshal(ocispec.Index{Manifests: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: 64 << 20}}})
		return []layoutEntryData{{name: "index.json", data: idx}, {name: "blobs/sha256/" + d.Encoded(), zeros: 64 << 20}}
	}
	wrongSize := testLayout(t, make([]byte, 5<<20)) // a layer read in the second pass
	wrongSize[4].data = make([]byte, 5<<20+1)       // same name, one byte more
	cases := map[string]struct {
		entries []layoutEntryData
		want    []string
		limit   bool
	}{
		// issue 19 item 4: a 6 MB file holding a 1 GiB index.json took 3.1 GB RSS
		"1 GiB index.json": {[]layoutEntryData{{name: "oci-layout", data: valid[0].data}, {name: "index.json", zeros: 1 << 30}}, []string{"index.json", "1073741824 bytes", "limit"}, true},
		// issue 19 item 4: an unreferenced 4 GiB blob was written to TMPDIR
		"unreferenced blob":    {append(append([]layoutEntryData(nil), valid...), layoutEntryData{name: unreferenced, zeros: 256 << 20}), []string{unreferenced, "not referenced from index.json"}, false},
		"manifest over limit":  {bigManifest(), []string{"manifest sha256:bbbb", "67108864 bytes", "limit"}, true},
		"size not as declared": {wrongSize, []string{wrongSize[4].name, "is 5242881 bytes, its descriptor declares 5242880"}, false},
		"missing blob":         {valid[:4], []string{"blob sha256:" + strings.TrimPrefix(valid[4].name, "blobs/sha256/"), "missing"}, false},
		"symlink":              {append(append([]layoutEntryData(nil), valid...), layoutEntryData{name: "blobs/sha256/" + strings.Repeat("c", 64), typeflag: tar.TypeSymlink, link: "/etc/passwd"}), []string{"not a regular file"}, false},
		"absolute path":        {append(append([]layoutEntryData(nil), valid...), layoutEntryData{name: "/etc/cron.d/x", data: []byte("x")}), []string{`"/etc/cron.d/x"`, "not part of an OCI layout"}, false},
		"dot dot":              {append(append([]layoutEntryData(nil), valid...), layoutEntryData{name: "./../x", data: []byte("x")}), []string{`"./../x"`, "not part of an OCI layout"}, false},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			file := hostileArchive(t, c.entries...)
			err, alloc, left := importArchive(t, file)
			if err == nil {
				t.Fatal("imported")
			}
			for _, w := range append(c.want, "archive "+file) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if c.limit && !errors.Is(err, ErrLimit) {
				t.Errorf("not ErrLimit: %v", err)
			}
			if len(left) > 0 {
				t.Errorf("TMPDIR holds %v after the failure", left)
			}
			if alloc > 64<<20 {
				t.Errorf("allocated %d MiB reading a %d KiB archive", alloc>>20, fileSize(t, file)>>10)
			}
		})
	}
}

func fileSize(t *testing.T, p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestExtractLayoutChecksBigBlobs(t *testing.T) {
	layer := bytes.Repeat([]byte("strata"), 1<<20) // 6 MiB: read in the second pass
	good := testLayout(t, layer)
	dir := t.TempDir()
	if err := extractLayout(hostileArchive(t, good...), dir, 0); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(good[4].name)))
	if err != nil || !bytes.Equal(got, layer) {
		t.Fatalf("layer not extracted: %v", err)
	}
	store, err := openArchive(context.Background(), hostileArchive(t, good...), t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Resolve(context.Background(), "1.0.0"); err != nil {
		t.Errorf("extracted layout does not resolve its tag: %v", err)
	}

	bad := append([]layoutEntryData(nil), good...)
	other := bytes.Repeat([]byte("strata"), 1<<20)
	other[0] = 'S' // same size, other digest
	bad[4] = layoutEntryData{name: good[4].name, data: other}
	err = extractLayout(hostileArchive(t, bad...), t.TempDir(), 0)
	if err == nil || !strings.Contains(err.Error(), good[4].name) || !strings.Contains(err.Error(), "has digest") {
		t.Errorf("tampered layer: %v", err)
	}
	// the total bound applies to declared sizes, before anything is read
	err = extractLayout(hostileArchive(t, good...), t.TempDir(), 1<<20)
	if !errors.Is(err, ErrLimit) {
		t.Errorf("over the total bound: %v", err)
	}
}
