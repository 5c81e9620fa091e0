package bundle

import (
	"context"
	"crypto/ecdsa"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/sign"
)

// Signatures travel registry -> archive -> another registry: the archive holds the signature
// images of both images and of the bundle (stored unchanged there); at the destination the
// images' signatures — one made by Strata, one by the real cosign CLI — pass `cosign verify
// --key --insecure-ignore-tlog` and Strata's verify. Importing again adds nothing.
func TestCopyCarriesSignaturesThroughArchives(t *testing.T) {
	ctx := context.Background()
	cosign := testenv.NewCosign(t, "")
	rep := pushImages(t, "web", "worker")
	src := testenv.Repo(t, "src") + "/app"
	pub, err := Publish(ctx, publishOpts(t, rep, src, "4.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	web, worker := rep.Images[0], rep.Images[1]

	// web and the bundle signed by Strata, worker by cosign.
	key, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{web.Repo + "@" + web.ManifestDigest, src + "@" + pub.Digest} {
		if _, err := sign.Sign(ctx, ref, sign.SignOptions{Key: key}); err != nil {
			t.Fatal(err)
		}
	}
	strataPub := filepath.Join(t.TempDir(), "strata.pub")
	pemPub, err := sign.MarshalPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(strataPub, pemPub, 0o644); err != nil {
		t.Fatal(err)
	}
	cosignKey, cosignPub := cosign.GenerateKeyPair(t)
	cosign.Sign(t, cosignKey, worker.Repo+"@"+worker.ManifestDigest)

	// registry -> archive: three signature images, tagged as cosign names them.
	archive := filepath.Join(t.TempDir(), "bundle.tar")
	ar, err := Copy(ctx, CopyOptions{From: src + ":4.0.0", To: ArchivePrefix + archive})
	if err != nil {
		t.Fatal(err)
	}
	if ar.Signatures != 3 {
		t.Errorf("into the archive: %d signatures carried, want 3 (web, worker, bundle)", ar.Signatures)
	}
	dir := t.TempDir()
	store, err := openArchive(ctx, archive, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	if err := store.Tags(ctx, "", func(ts []string) error { tags = append(tags, ts...); return nil }); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{web.ManifestDigest, worker.ManifestDigest, pub.Digest} {
		tag, _ := sign.SignatureTag(d)
		if !slices.Contains(tags, tag) {
			t.Errorf("archive tags %v lack %s", tags, tag)
		}
	}
	if tag, err := archiveBundleTag(ctx, store); err != nil || tag != "4.0.0" {
		t.Errorf("bundle tag of the archive: %q, %v", tag, err)
	}

	// archive -> another registry: the images' signatures arrive and verify.
	other := testenv.StartRegistry(t, "")
	dst := other + "/mirror/app"
	cr, err := Copy(ctx, CopyOptions{From: ArchivePrefix + archive, To: dst})
	if err != nil {
		t.Fatal(err)
	}
	if cr.Signatures != 2 {
		t.Errorf("out of the archive: %d signatures carried, want 2 (the bundle is rewritten)", cr.Signatures)
	}
	checkCopy(t, dst+":4.0.0", dst, rep)
	for _, c := range []struct{ pub, digest string }{{strataPub, web.ManifestDigest}, {cosignPub, worker.ManifestDigest}} {
		if out, err := cosign.Verify(c.pub, dst+"@"+c.digest); err != nil {
			t.Errorf("cosign verify at the destination %s: %v\n%s", c.digest, err, out)
		}
		k, err := sign.LoadPublicKey(c.pub)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sign.Verify(ctx, dst+"@"+c.digest, sign.VerifyOptions{Keys: []*ecdsa.PublicKey{k}}); err != nil {
			t.Errorf("Strata's verify at the destination: %v", err)
		}
	}
	again, err := Copy(ctx, CopyOptions{From: ArchivePrefix + archive, To: dst})
	if err != nil || again.Signatures != 0 {
		t.Errorf("second import: %d signatures added, %v; want none", again.Signatures, err)
	}
}
