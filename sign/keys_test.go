package sign

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
)

func TestEncryptedKeyRoundTrip(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := MarshalPrivateKey(k, []byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(pemBytes), "-----BEGIN "+PEMEncryptedSigstore+"-----") || !IsEncrypted(pemBytes) {
		t.Fatalf("not a cosign encrypted key:\n%s", pemBytes)
	}
	got, err := ParsePrivateKey(pemBytes, []byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(k) {
		t.Fatal("decrypted key differs")
	}
	if _, err := ParsePrivateKey(pemBytes, []byte("wrong")); err == nil || !strings.Contains(err.Error(), "wrong password") {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := ParsePrivateKey(pemBytes, nil); !errors.Is(err, ErrPasswordRequired) {
		t.Fatalf("no password: %v", err)
	}
	// the older block name cosign still reads
	blk, _ := pem.Decode(pemBytes)
	old := pem.EncodeToMemory(&pem.Block{Type: PEMEncryptedCosign, Bytes: blk.Bytes})
	if got, err := ParsePrivateKey(old, []byte("s3cret")); err != nil || !got.Equal(k) {
		t.Fatalf("ENCRYPTED COSIGN PRIVATE KEY: %v", err)
	}
	// an empty password is a password (cosign generate-key-pair accepts one)
	empty, err := MarshalPrivateKey(k, []byte{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParsePrivateKey(empty, []byte{}); err != nil || !got.Equal(k) {
		t.Fatalf("empty password: %v", err)
	}
}

func TestPlainKeys(t *testing.T) {
	k, _ := GenerateKey()
	sec1, _ := x509.MarshalECPrivateKey(k)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(k)
	for typ, der := range map[string][]byte{"EC PRIVATE KEY": sec1, "PRIVATE KEY": pkcs8} {
		got, err := ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), nil)
		if err != nil || !got.Equal(k) {
			t.Fatalf("%s: %v", typ, err)
		}
	}
	pub, err := MarshalPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	gotPub, err := ParsePublicKey(pub)
	if err != nil || !gotPub.Equal(&k.PublicKey) {
		t.Fatalf("public key: %v", err)
	}
	if !strings.HasPrefix(KeyID(gotPub), "sha256:") || len(KeyID(gotPub)) != len("sha256:")+16 {
		t.Fatalf("KeyID %q", KeyID(gotPub))
	}
}

func TestKeyRefusals(t *testing.T) {
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(p384)
	pubDER, _ := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	k, _ := GenerateKey()
	pub, _ := MarshalPublicKey(&k.PublicKey)
	for name, tc := range map[string]struct {
		err  error
		want string
	}{
		"not PEM":        {err: second(ParsePrivateKey([]byte("hello"), nil)), want: "no PEM block"},
		"P-384":          {err: second(ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil)), want: "want P-256"},
		"public as priv": {err: second(ParsePrivateKey(pub, nil)), want: `"PUBLIC KEY" is not a private key`},
		"P-384 public":   {err: second(ParsePublicKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))), want: "want P-256"},
		"priv as public": {err: second(ParsePublicKey(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))), want: "is not a public key"},
		"missing file":   {err: second(LoadPublicKey("/nonexistent/cosign.pub")), want: "/nonexistent/cosign.pub"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to say %q", name, tc.err, tc.want)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func TestSignatureTag(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	tag, err := SignatureTag(d)
	if err != nil || tag != "sha256-"+strings.Repeat("ab", 32)+".sig" {
		t.Fatalf("%q %v", tag, err)
	}
	if !IsSignatureTag(tag) || IsSignatureTag("1.0.0") || IsSignatureTag("sha256-xyz.sig") {
		t.Fatal("IsSignatureTag")
	}
	if _, err := SignatureTag("latest"); err == nil {
		t.Fatal("SignatureTag accepted a non-digest")
	}
	hex := strings.Repeat("ab", 32)
	for tag, want := range map[string]string{
		"sha256-" + hex + ".sig": "signatures", "sha256-" + hex + ".att": "attestations", "sha256-" + hex + ".sbom": "SBOM",
		"sha256-" + hex + ".txt": "", "sha256-xyz.sig": "", "latest": "", "sha256-" + hex: "", "sha256:" + hex + ".sig": "",
	} {
		subject, holds, ok := AttachedTo(tag)
		if holds != want || ok != (want != "") || ok && subject != d {
			t.Errorf("AttachedTo(%q) = %q, %q, %v; want %q", tag, subject, holds, ok, want)
		}
	}
}
