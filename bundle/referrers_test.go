package bundle

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"io"
	"log"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"

	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/sign"
)

// referrersRegistry is go-containerregistry's registry, in process, with the OCI 1.1 referrers
// API; it returns its host:port.
func referrersRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.WithReferrersSupport(true), ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// The OCI 1.1 referrers of the images and of the bundle where it is kept unchanged (Strata's
// signatures stored as referrers) travel with
// `bundle copy` registry -> registry and registry -> archive -> registry when both ends serve
// the referrers API; onto a registry without it (the test distribution) none is copied, the log
// says the .sig images carry the signatures, and those verify there.
func TestCopyCarriesReferrers(t *testing.T) {
	ctx := context.Background()
	host := referrersRegistry(t)
	rep := pushImagesTo(t, host+"/stages", "web", "worker")
	key, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range rep.Images {
		if s, err := sign.Sign(ctx, im.Repo+"@"+im.ManifestDigest, sign.SignOptions{Key: key}); err != nil || !s.Referrer {
			t.Fatalf("sign %s: %+v, %v; want a referrer", im.Name, s, err)
		}
	}
	src := host + "/app"
	pub, err := Publish(ctx, publishOpts(t, rep, src, "1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := sign.Sign(ctx, src+"@"+pub.Digest, sign.SignOptions{Key: key}); err != nil || !s.Referrer {
		t.Fatalf("sign the bundle: %+v, %v; want a referrer", s, err)
	}
	referrers := func(repo, d string) int {
		t.Helper()
		l, err := sign.ListReferrers(ctx, repo+"@"+d, sign.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return len(l)
	}

	// registry -> registry
	dst := referrersRegistry(t) + "/mirror/app"
	res, err := Copy(ctx, CopyOptions{From: src + ":1.0.0", To: dst})
	if err != nil {
		t.Fatal(err)
	}
	if res.Referrers != 2 {
		t.Errorf("registry -> registry: %d referrers carried, want 2", res.Referrers)
	}
	for _, im := range rep.Images {
		if n := referrers(dst, im.ManifestDigest); n != 1 {
			t.Errorf("image %s at %s: %d referrers, want 1", im.Name, dst, n)
		}
	}
	again, err := Copy(ctx, CopyOptions{From: src + ":1.0.0", To: dst})
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range rep.Images {
		if n := referrers(dst, im.ManifestDigest); n != 1 {
			t.Errorf("after copying again, image %s: %d referrers, want 1 (%+v)", im.Name, n, again)
		}
	}

	// registry -> archive -> registry
	archive := filepath.Join(t.TempDir(), "bundle.tar")
	// the archive holds the bundle as published: its referrer goes in too, and is of no use
	// (not copied) once the bundle is rewritten at a registry
	if res, err := Copy(ctx, CopyOptions{From: src + ":1.0.0", To: ArchivePrefix + archive}); err != nil || res.Referrers != 3 {
		t.Fatalf("into the archive: %+v, %v; want 3 referrers (the images', the bundle's)", res, err)
	}
	dst2 := referrersRegistry(t) + "/restored/app"
	if res, err := Copy(ctx, CopyOptions{From: ArchivePrefix + archive, To: dst2}); err != nil || res.Referrers != 2 {
		t.Fatalf("out of the archive: %+v, %v; want 2 referrers", res, err)
	}
	for _, im := range rep.Images {
		if n := referrers(dst2, im.ManifestDigest); n != 1 {
			t.Errorf("image %s at %s: %d referrers, want 1", im.Name, dst2, n)
		}
	}

	// onto a registry without the referrers API: the .sig images carry the signatures
	plain := testenv.Repo(t, "noreferrers") + "/app"
	var logs bytes.Buffer
	res, err = Copy(ctx, CopyOptions{From: src + ":1.0.0", To: plain, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if res.Referrers != 0 || res.Signatures != 2 {
		t.Errorf("onto a registry without the API: %+v, want 0 referrers and 2 signatures", res)
	}
	if !strings.Contains(logs.String(), "no referrers API") {
		t.Errorf("no log line says the destination has no referrers API:\n%s", logs.String())
	}
	for _, im := range rep.Images {
		if _, err := sign.Verify(ctx, res.Images[im.Name], sign.VerifyOptions{Keys: []*ecdsa.PublicKey{&key.PublicKey}}); err != nil {
			t.Errorf("image %s at %s: %v", im.Name, plain, err)
		}
	}
}
