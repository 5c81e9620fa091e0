package sign

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"strata.dev/strata/internal/testing/testenv"
)

// What Strata signs (with a key cosign generated, and with one Strata generated), cosign verify
// accepts; with another key it refuses.
func TestInteropCosignVerifiesStrata(t *testing.T) {
	ctx := context.Background()
	c := testenv.NewCosign(t, "interop-pass")
	repo := testenv.Repo(t, "app")
	d := pushImage(t, repo, "v1")

	cosignKey, cosignPub := c.GenerateKeyPair(t)
	b, err := os.ReadFile(cosignKey)
	if err != nil {
		t.Fatal(err)
	}
	if !IsEncrypted(b) {
		t.Fatalf("cosign.key is not an encrypted key:\n%s", b)
	}
	k, err := LoadPrivateKey(cosignKey, []byte("interop-pass"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Sign(ctx, repo+":v1", SignOptions{Key: k}); err != nil {
		t.Fatal(err)
	}
	out, err := c.Verify(cosignPub, repo+":v1")
	if err != nil {
		t.Fatalf("cosign verify of Strata's signature: %v\n%s", err, out)
	}
	if !strings.Contains(out, d) || !strings.Contains(out, `"docker-reference":"`+repo+`"`) {
		t.Fatalf("cosign verify output does not name the digest %s:\n%s", d, out)
	}

	// a Strata-generated encrypted key works in cosign sign, and its public key in cosign verify
	own := newKey(t)
	keyPEM, err := MarshalPrivateKey(own, []byte("interop-pass"))
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, _ := MarshalPublicKey(&own.PublicKey)
	ownKey, ownPub := filepath.Join(c.Dir, "strata.key"), filepath.Join(c.Dir, "strata.pub")
	if err := os.WriteFile(ownKey, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ownPub, pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	d2 := pushImage(t, repo, "v2")
	if _, err := Sign(ctx, repo+"@"+d2, SignOptions{Key: own}); err != nil {
		t.Fatal(err)
	}
	if out, err := c.Verify(ownPub, repo+"@"+d2); err != nil {
		t.Fatalf("cosign verify with a Strata-generated key: %v\n%s", err, out)
	}
	// cosign refuses Strata's signature under another key
	if out, err := c.Verify(cosignPub, repo+"@"+d2); err == nil {
		t.Fatalf("cosign verify accepted a signature by another key:\n%s", out)
	}
	// cosign signing with the same key finds Strata's signature a duplicate of its own (same
	// payload bytes, valid under the key): nothing is added
	c.Sign(t, ownKey, repo+"@"+d2)
	if n := len(sigManifest(t, repo, d2).Layers); n != 1 {
		t.Fatalf("cosign re-signing with Strata's key: %d signature layers, want 1 (payloads differ?)", n)
	}
	// with another key it appends a layer to the same signature image; both verify
	c.Sign(t, cosignKey, repo+"@"+d2)
	if n := len(sigManifest(t, repo, d2).Layers); n != 2 {
		t.Fatalf("after Strata and cosign signed with two keys: %d signature layers, want 2", n)
	}
	if out, err := c.Verify(cosignPub, repo+"@"+d2); err != nil {
		t.Fatalf("cosign verify of its own signature next to Strata's: %v\n%s", err, out)
	}
	cosignPubKey, err := LoadPublicKey(cosignPub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(ctx, repo+"@"+d2, VerifyOptions{Keys: []*ecdsa.PublicKey{cosignPubKey}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(ctx, repo+"@"+d2, VerifyOptions{Keys: []*ecdsa.PublicKey{&own.PublicKey}}); err != nil {
		t.Fatal(err)
	}
}

// What cosign signs, Strata verifies; refusals hold for cosign's signatures too.
func TestInteropStrataVerifiesCosign(t *testing.T) {
	ctx := context.Background()
	c := testenv.NewCosign(t, "")
	repo := testenv.Repo(t, "app")
	d := pushImage(t, repo, "v1")
	key, pubFile := c.GenerateKeyPair(t)
	c.Sign(t, key, repo+"@"+d)

	pub, err := LoadPublicKey(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Verify(ctx, repo+":v1", VerifyOptions{Keys: []*ecdsa.PublicKey{pub}})
	if err != nil {
		t.Fatal(err)
	}
	if v.Digest != d || v.Identity != repo {
		t.Fatalf("verified %+v", v)
	}
	// cosign's key with the empty password, read by Strata
	if _, err := LoadPrivateKey(key, []byte{}); err != nil {
		t.Fatalf("cosign key with empty password: %v", err)
	}
	if _, err := Verify(ctx, repo+":v1", VerifyOptions{Keys: []*ecdsa.PublicKey{&newKey(t).PublicKey}}); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("wrong key: %v", err)
	}
	pushImage(t, repo, "v1") // the tag moves to unsigned content
	if _, err := Verify(ctx, repo+":v1", VerifyOptions{Keys: []*ecdsa.PublicKey{pub}}); !errors.Is(err, ErrNotSigned) {
		t.Fatalf("moved tag: %v", err)
	}
	if out, err := c.Verify(pubFile, repo+":v1"); err == nil {
		t.Fatalf("cosign verify accepted the moved tag:\n%s", out)
	}
}
