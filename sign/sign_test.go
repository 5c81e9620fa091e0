package sign

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
)

// pushImage pushes a small random image to repo:tag and returns its manifest digest.
func pushImage(t *testing.T, repo, tag string) string {
	t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sigManifest(t *testing.T, repo, d string) *v1.Manifest {
	t.Helper()
	tag, _ := SignatureTag(d)
	ref, _ := name.NewTag(repo+":"+tag, name.Insecure)
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSignVerify(t *testing.T) {
	ctx := context.Background()
	repo := testenv.Repo(t, "app")
	d := pushImage(t, repo, "v1")
	k1, k2 := newKey(t), newKey(t)
	opts := Options{Registry: registry.Options{}}

	s, err := Sign(ctx, repo+":v1", SignOptions{Options: opts, Key: k1})
	if err != nil {
		t.Fatal(err)
	}
	if s.Digest != d || s.Ref != repo+"@"+d || s.Signatures != 1 || s.Unchanged {
		t.Fatalf("signed %+v", s)
	}
	sigTag, _ := SignatureTag(d)
	if s.SignatureRef != repo+":"+sigTag {
		t.Fatalf("signature ref %s", s.SignatureRef)
	}

	// cosign's layout: OCI manifest, one simple-signing layer with the signature annotation
	m := sigManifest(t, repo, d)
	if m.MediaType != "application/vnd.oci.image.manifest.v1+json" || m.Config.MediaType != "application/vnd.oci.image.config.v1+json" {
		t.Fatalf("media types %s / %s", m.MediaType, m.Config.MediaType)
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != MediaTypeSimpleSigning || m.Layers[0].Annotations[AnnotationSignature] == "" {
		t.Fatalf("layers %+v", m.Layers)
	}

	v, err := Verify(ctx, repo+":v1", VerifyOptions{Options: opts, Keys: []*ecdsa.PublicKey{&k1.PublicKey}})
	if err != nil {
		t.Fatal(err)
	}
	if v.Digest != d || v.KeyID != KeyID(&k1.PublicKey) || v.Identity != repo {
		t.Fatalf("verified %+v", v)
	}

	// signing again with the same key adds nothing
	again, err := Sign(ctx, repo+"@"+d, SignOptions{Options: opts, Key: k1})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Unchanged || again.Signatures != 1 || again.SignatureDigest != s.SignatureDigest {
		t.Fatalf("re-sign %+v (first %+v)", again, s)
	}

	// a second key appends a layer; each key alone verifies, and so does a list of trusted keys
	second, err := Sign(ctx, repo+":v1", SignOptions{Options: opts, Key: k2, Annotations: map[string]any{"ci": "pipeline 7"}})
	if err != nil {
		t.Fatal(err)
	}
	if second.Signatures != 2 || len(sigManifest(t, repo, d).Layers) != 2 {
		t.Fatalf("second signature %+v", second)
	}
	v2, err := Verify(ctx, repo+"@"+d, VerifyOptions{Options: opts, Keys: []*ecdsa.PublicKey{&k2.PublicKey}})
	if err != nil {
		t.Fatal(err)
	}
	if v2.KeyID != KeyID(&k2.PublicKey) || v2.Optional["ci"] != "pipeline 7" {
		t.Fatalf("verified with k2 %+v", v2)
	}
	if _, err := Verify(ctx, repo+":v1", VerifyOptions{Options: opts, Keys: []*ecdsa.PublicKey{&newKey(t).PublicKey, &k1.PublicKey}}); err != nil {
		t.Fatalf("one trusted key of two: %v", err)
	}
}

func TestVerifyRefusals(t *testing.T) {
	ctx := context.Background()
	repo := testenv.Repo(t, "app")
	signed := pushImage(t, repo, "v1")
	k := newKey(t)
	opts := Options{}
	trusted := VerifyOptions{Options: opts, Keys: []*ecdsa.PublicKey{&k.PublicKey}}
	if _, err := Sign(ctx, repo+":v1", SignOptions{Options: opts, Key: k}); err != nil {
		t.Fatal(err)
	}

	t.Run("missing signature", func(t *testing.T) {
		d := pushImage(t, repo, "unsigned")
		_, err := Verify(ctx, repo+":unsigned", trusted)
		tag, _ := SignatureTag(d)
		if !errors.Is(err, ErrNotSigned) || !strings.Contains(err.Error(), repo+":"+tag) || !strings.Contains(err.Error(), repo+":unsigned") {
			t.Fatalf("unsigned: %v", err)
		}
	})

	t.Run("wrong key", func(t *testing.T) {
		other := newKey(t)
		_, err := Verify(ctx, repo+":v1", VerifyOptions{Options: opts, Keys: []*ecdsa.PublicKey{&other.PublicKey}})
		if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), KeyID(&other.PublicKey)) || !strings.Contains(err.Error(), "none of the trusted keys") {
			t.Fatalf("wrong key: %v", err)
		}
	})

	t.Run("tag moved to another manifest", func(t *testing.T) {
		// the tag that was signed now points at other content: the new digest has no signature
		moved := pushImage(t, repo, "moving")
		if _, err := Sign(ctx, repo+":moving", SignOptions{Options: opts, Key: k}); err != nil {
			t.Fatal(err)
		}
		tampered := pushImage(t, repo, "moving")
		_, err := Verify(ctx, repo+":moving", trusted)
		if !errors.Is(err, ErrNotSigned) || !strings.Contains(err.Error(), tampered) {
			t.Fatalf("moved tag: %v", err)
		}
		if _, err := Verify(ctx, repo+"@"+moved, trusted); err != nil {
			t.Fatalf("the signed digest itself still verifies: %v", err)
		}
	})

	t.Run("signature for another digest", func(t *testing.T) {
		// copy the signature image of `signed` to the signature tag of another manifest
		other := pushImage(t, repo, "other")
		src, _ := SignatureTag(signed)
		dst, _ := SignatureTag(other)
		srcRef, _ := name.NewTag(repo+":"+src, name.Insecure)
		dstRef, _ := name.NewTag(repo+":"+dst, name.Insecure)
		img, err := remote.Image(srcRef)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(dstRef, img); err != nil {
			t.Fatal(err)
		}
		_, err = Verify(ctx, repo+":other", trusted)
		if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "payload signs "+signed+", not "+other) {
			t.Fatalf("replayed signature: %v", err)
		}
	})

	t.Run("no keys, no manifest", func(t *testing.T) {
		if _, err := Verify(ctx, repo+":v1", VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "no trusted public key") {
			t.Fatalf("no keys: %v", err)
		}
		if _, err := Verify(ctx, repo+":absent", trusted); err == nil || !strings.Contains(err.Error(), repo+":absent is not in the registry") {
			t.Fatalf("absent: %v", err)
		}
		if _, err := Sign(ctx, repo+":absent", SignOptions{Key: k}); err == nil || !strings.Contains(err.Error(), "is not in the registry") {
			t.Fatalf("sign absent: %v", err)
		}
	})
}

func TestPayloadFormat(t *testing.T) {
	b, err := json.Marshal(NewPayload("reg.example/app", "sha256:"+strings.Repeat("0", 64), nil))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"critical":{"identity":{"docker-reference":"reg.example/app"},"image":{"docker-manifest-digest":"sha256:` +
		strings.Repeat("0", 64) + `"},"type":"cosign container image signature"},"optional":null}`
	if string(b) != want {
		t.Fatalf("payload\n got %s\nwant %s", b, want)
	}
	if _, err := ParsePayload([]byte(`{"critical":{"type":"atomic container signature"}}`)); err == nil || !strings.Contains(err.Error(), "atomic container signature") {
		t.Fatalf("foreign type: %v", err)
	}
}

func TestCopySignatures(t *testing.T) {
	ctx := context.Background()
	src := testenv.Repo(t, "src")
	dst := testenv.Repo(t, "dst")
	d := pushImage(t, src, "v1")
	pushImage(t, dst, "v0")
	k1, k2 := newKey(t), newKey(t)
	if n, err := CopySignatures(ctx, src+"@"+d, dst, Options{}); err != nil || n != 0 {
		t.Fatalf("unsigned: %d %v", n, err)
	}
	if _, err := Sign(ctx, src+"@"+d, SignOptions{Key: k1}); err != nil {
		t.Fatal(err)
	}
	// the image itself goes to dst by digest, as bundle copy does
	srcRef, _ := name.NewDigest(src+"@"+d, name.Insecure)
	img, err := remote.Image(srcRef)
	if err != nil {
		t.Fatal(err)
	}
	dstRef, _ := name.NewTag(dst+":v1", name.Insecure)
	if err := remote.Write(dstRef, img); err != nil {
		t.Fatal(err)
	}
	if _, err := Sign(ctx, dst+"@"+d, SignOptions{Key: k2}); err != nil {
		t.Fatal(err)
	}
	n, err := CopySignatures(ctx, src+"@"+d, dst, Options{})
	if err != nil || n != 1 {
		t.Fatalf("copy: %d %v", n, err)
	}
	if len(sigManifest(t, dst, d).Layers) != 2 {
		t.Fatal("the destination's own signature was not kept")
	}
	for _, k := range []*ecdsa.PrivateKey{k1, k2} {
		if _, err := Verify(ctx, dst+":v1", VerifyOptions{Keys: []*ecdsa.PublicKey{&k.PublicKey}}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := CopySignatures(ctx, src+"@"+d, dst, Options{}); err != nil || n != 0 {
		t.Fatalf("copy again: %d %v", n, err)
	}
}
