package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/faultproxy"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// checkCopy asserts every image of the bundle at ref is in imagesRepo with the source digest,
// and that rendering the copy names only imagesRepo.
func checkCopy(t *testing.T, ref, imagesRepo string, rep *stages.Report) {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "chart")
	p, err := Pull(ctx, PullOptions{Ref: ref, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ro := registry.Options{}
	ir, _ := ro.Repository(imagesRepo)
	for _, im := range rep.Images {
		got := p.Metadata.Images[im.Name]
		if got.Digest != im.ManifestDigest || got.Repo != imagesRepo || got.Ref != imagesRepo+":"+im.Tag+"@"+im.ManifestDigest {
			t.Errorf("lock entry %s = %+v", im.Name, got)
		}
		d, err := ir.Resolve(ctx, im.Tag)
		if err != nil || d.Digest.String() != im.ManifestDigest {
			t.Errorf("image %s at the destination: %v, %v", im.Name, d.Digest, err)
		}
	}
	out, err := Render(ctx, RenderOptions{ChartDir: dir, BundleRef: p.Ref})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), rep.Repo) {
		t.Errorf("render of the copy still names the source repository %s:\n%s", rep.Repo, out)
	}
	if n := strings.Count(string(out), "image: "+imagesRepo+":"); n != 2 {
		t.Errorf("render of the copy has %d images in %s, want 2:\n%s", n, imagesRepo, out)
	}
	vals, _ := os.ReadFile(filepath.Join(dir, "values.yaml"))
	if strings.Contains(string(vals), rep.Repo) {
		t.Errorf("values.yaml still names %s:\n%s", rep.Repo, vals)
	}
}

func TestCopyRegistryAndArchive(t *testing.T) {
	ctx := context.Background()
	rep := pushImages(t, "web", "worker")
	src := testenv.Repo(t, "src") + "/app"
	res, err := Publish(ctx, publishOpts(t, rep, src, "2.0.0"))
	if err != nil {
		t.Fatal(err)
	}

	// registry -> registry (same registry: blobs are mounted, not uploaded)
	dst := testenv.Repo(t, "dst") + "/app"
	cr, err := Copy(ctx, CopyOptions{From: src + ":2.0.0", To: dst})
	if err != nil {
		t.Fatal(err)
	}
	if cr.Ref != dst+":2.0.0" || cr.Mounted == 0 {
		t.Errorf("copy result %+v", cr)
	}
	checkCopy(t, dst+":2.0.0", dst, rep)
	// again: everything is present, the bundle is unchanged
	cr2, err := Copy(ctx, CopyOptions{From: src + "@" + res.Digest, To: dst})
	if err != nil {
		t.Fatal(err)
	}
	if cr2.Digest != cr.Digest || cr2.Copied != 0 || cr2.Skipped == 0 {
		t.Errorf("second copy %+v (first %+v)", cr2, cr)
	}

	// registry -> archive -> registry, images to their own repository
	archive := filepath.Join(t.TempDir(), "bundle.tar")
	ar, err := Copy(ctx, CopyOptions{From: src + ":2.0.0", To: ArchivePrefix + archive})
	if err != nil {
		t.Fatal(err)
	}
	if ar.Digest != res.Digest {
		t.Errorf("archive holds %s, published %s", ar.Digest, res.Digest)
	}
	dst2 := testenv.Repo(t, "air") + "/renamed"
	imgs2 := testenv.Repo(t, "air-images")
	cr3, err := Copy(ctx, CopyOptions{From: ArchivePrefix + archive, To: dst2 + ":2.0.0", ImagesRepo: imgs2})
	if err != nil {
		t.Fatal(err)
	}
	if cr3.Bytes == 0 {
		t.Errorf("import copied nothing: %+v", cr3)
	}
	checkCopy(t, dst2+":2.0.0", imgs2, rep)
	// the chart was renamed after the new repository, so plain Helm pulls it
	manifest := helmPullAndRender(t, dst2, "2.0.0")
	if !strings.Contains(manifest, imgs2+":") {
		t.Errorf("helm render of the imported bundle:\n%s", manifest)
	}
}

func writeTar(t *testing.T, gz bool, entries map[string][]byte) string {
	t.Helper()
	var buf bytes.Buffer
	var w = &buf
	tw := tar.NewWriter(w)
	var zbuf bytes.Buffer
	if gz {
		zw := gzip.NewWriter(&zbuf)
		tw = tar.NewWriter(zw)
		defer func() {}()
		for n, b := range entries {
			tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg})
			tw.Write(b)
		}
		tw.Close()
		zw.Close()
		w = &zbuf
	} else {
		for n, b := range entries {
			tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg})
			tw.Write(b)
		}
		tw.Close()
	}
	p := filepath.Join(t.TempDir(), "a.tar")
	if err := os.WriteFile(p, w.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCopyRefusesBadArchives(t *testing.T) {
	ctx := context.Background()
	dst := "127.0.0.1:5000/strata-test/never-written/app"
	layout := []byte(`{"imageLayoutVersion":"1.0.0"}`)
	cases := map[string]struct {
		file string
		max  int64
		want string
	}{
		"path traversal": {writeTar(t, false, map[string][]byte{"oci-layout": layout, "../../etc/evil": []byte("x")}), 0, "path traversal"},
		"foreign file":   {writeTar(t, false, map[string][]byte{"oci-layout": layout, "blobs/sha256/../../x": []byte("x")}), 0, "not part of an OCI layout"},
		"decompression bomb": {writeTar(t, true, map[string][]byte{
			"oci-layout": layout, "blobs/sha256/" + strings.Repeat("a", 64): make([]byte, 8<<20)}), 1 << 20, "more than 1048576 bytes"},
		"not a layout": {writeTar(t, false, map[string][]byte{"oci-layout": layout}), 0, "no index.json"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Copy(ctx, CopyOptions{From: ArchivePrefix + c.file, To: dst, MaxArchiveBytes: c.max})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			if name == "decompression bomb" && !errors.Is(err, ErrLimit) {
				t.Errorf("not ErrLimit: %v", err)
			}
		})
	}
}

func TestReadChartArchiveRefusesTraversalAndBombs(t *testing.T) {
	mk := func(entries map[string][]byte) []byte {
		p := writeTar(t, true, entries)
		b, _ := os.ReadFile(p)
		return b
	}
	if _, _, err := readChartArchive(mk(map[string][]byte{"app/../../x": []byte("x")}), 0); err == nil || !strings.Contains(err.Error(), "escapes") {
		t.Errorf("traversal: %v", err)
	}
	if _, _, err := readChartArchive(mk(map[string][]byte{"app/Chart.yaml": make([]byte, 2<<20)}), 1<<20); !errors.Is(err, ErrLimit) {
		t.Errorf("bomb: %v", err)
	}
}

// Copy to another registry (go-containerregistry's registry server on its own port): no mount
// is possible, every blob is uploaded, and the copy renders with the new registry only.
func TestCopyToAnotherRegistry(t *testing.T) {
	ctx := context.Background()
	rep := pushImages(t, "web", "worker")
	src := testenv.Repo(t, "src") + "/app"
	if _, err := Publish(ctx, publishOpts(t, rep, src, "3.0.0")); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	dst := host + "/mirror/app"
	cr, err := Copy(ctx, CopyOptions{From: src + ":3.0.0", To: dst})
	if err != nil {
		t.Fatal(err)
	}
	if cr.Mounted != 0 || cr.Copied == 0 || cr.Bytes == 0 {
		t.Errorf("copy to another registry: %+v", cr)
	}
	checkCopy(t, dst+":3.0.0", dst, rep)
}

// Copy to another registry (the fault proxy: no mount) through transient faults — a 503 on
// the first blob upload, the response to its retry lost, a 429 on a manifest check, a 503 on
// the ping — succeeds, and the destination holds every image and the bundle.
func TestCopyThroughFaults(t *testing.T) {
	ctx := context.Background()
	rep := pushImages(t, "web", "worker")
	src := testenv.Repo(t, "src") + "/app"
	if _, err := Publish(ctx, publishOpts(t, rep, src, "4.0.0")); err != nil {
		t.Fatal(err)
	}
	upload503 := &faultproxy.Rule{Method: http.MethodPut, Path: "/blobs/uploads/", Status: http.StatusServiceUnavailable}
	uploadLost := &faultproxy.Rule{Method: http.MethodPut, Path: "/blobs/uploads/", Lose: true}
	p := faultproxy.Start(t, testenv.Registry(t), upload503, uploadLost,
		&faultproxy.Rule{Method: http.MethodHead, Path: "/manifests/", Status: http.StatusTooManyRequests, RetryAfter: "0"},
		&faultproxy.Rule{Method: http.MethodGet, Path: "/v2/", Status: http.StatusServiceUnavailable})
	dst := p.Via(testenv.Repo(t, "faulty") + "/app")
	cr, err := Copy(ctx, CopyOptions{From: src + ":4.0.0", To: dst})
	if err != nil {
		t.Fatalf("copy through transient faults: %v", err)
	}
	if p.Hits(upload503) != 1 || p.Hits(uploadLost) != 1 {
		t.Errorf("faults not injected: 503 %d, lost %d", p.Hits(upload503), p.Hits(uploadLost))
	}
	if cr.Mounted != 0 || cr.Copied == 0 {
		t.Errorf("copy result %+v", cr)
	}
	checkCopy(t, dst+":4.0.0", dst, rep)
}
