package sign

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/internal/testing/testenv"
)

func referrersOf(t *testing.T, ref string) []string {
	t.Helper()
	d, err := name.NewDigest(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Referrers(d, remote.WithReferrersTagFallback(false))
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range m.Manifests {
		out = append(out, r.ArtifactType+" "+r.Digest.String())
	}
	return out
}

// On a registry with the OCI 1.1 referrers API (go-containerregistry's, in process) a signature
// is stored both as the .sig image and as a referrer in cosign's OCI 1.1 form; signing again
// adds neither; Verify finds the signature through the referrers when the .sig image is gone;
// other keys are refused and an unsigned manifest is not signed.
func TestSignaturesAsReferrers(t *testing.T) {
	ctx := context.Background()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.WithReferrersSupport(true), ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	repo := strings.TrimPrefix(srv.URL, "http://") + "/team/app"
	d := pushImage(t, repo, "v1")
	k := newKey(t)

	s, err := Sign(ctx, repo+":v1", SignOptions{Key: k})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Referrer || s.Unchanged {
		t.Fatalf("signed %+v: want a new signature, stored as a referrer too", s)
	}
	refs := referrersOf(t, repo+"@"+d)
	if len(refs) != 1 {
		t.Fatalf("referrers %v, want one", refs)
	}
	if n := len(sigManifest(t, repo, d).Layers); n != 1 {
		t.Fatalf("the .sig image holds %d layers, want 1", n)
	}
	// the referrer is cosign's OCI 1.1 form: config typed as the artifact, the payload layer, the subject
	_, refDigest, _ := strings.Cut(refs[0], " ")
	ref, _ := name.NewDigest(repo+"@"+refDigest, name.Insecure)
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	if raw, _ := img.RawManifest(); !strings.Contains(string(raw), `"artifactType":"`+ArtifactTypeSignature+`"`) {
		t.Errorf("referrer manifest lacks artifactType %s:\n%s", ArtifactTypeSignature, raw)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Config.MediaType) != ArtifactTypeSignature || len(m.Layers) != 1 ||
		string(m.Layers[0].MediaType) != MediaTypeSimpleSigning || m.Layers[0].Annotations[AnnotationSignature] == "" ||
		m.Subject == nil || m.Subject.Digest.String() != d {
		t.Errorf("referrer manifest %+v", m)
	}

	again, err := Sign(ctx, repo+"@"+d, SignOptions{Key: k})
	if err != nil || !again.Unchanged || !again.Referrer {
		t.Fatalf("signing again: %+v, %v; want unchanged", again, err)
	}
	if refs := referrersOf(t, repo+"@"+d); len(refs) != 1 {
		t.Errorf("signing again added referrers: %v", refs)
	}

	// Without the .sig image, the referrer is found.
	sigTag, _ := SignatureTag(d)
	tagRef, _ := name.NewTag(repo+":"+sigTag, name.Insecure)
	if err := remote.Delete(tagRef); err != nil {
		t.Fatal(err)
	}
	v, err := Verify(ctx, repo+":v1", VerifyOptions{Keys: []*ecdsa.PublicKey{&k.PublicKey}})
	if err != nil {
		t.Fatalf("verify through the referrers: %v", err)
	}
	if v.Digest != d || v.SignatureRef != ref.String() {
		t.Errorf("verified %+v, want signature %s", v, ref)
	}
	if _, err := Verify(ctx, repo+":v1", VerifyOptions{Keys: []*ecdsa.PublicKey{&newKey(t).PublicKey}}); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "referrers") {
		t.Errorf("another key: %v", err)
	}
	pushImage(t, repo, "v2")
	if _, err := Verify(ctx, repo+":v2", VerifyOptions{Keys: []*ecdsa.PublicKey{&k.PublicKey}}); !errors.Is(err, ErrNotSigned) || !strings.Contains(err.Error(), "nor a signature referrer") {
		t.Errorf("unsigned: %v", err)
	}

}

// On a registry without the referrers API (the test distribution) the signature is the .sig
// image only: no referrer, no fallback tag of the referrers tag schema.
func TestNoReferrersWithoutTheAPI(t *testing.T) {
	ctx := context.Background()
	repo := testenv.Repo(t, "app")
	d := pushImage(t, repo, "v1")
	s, err := Sign(ctx, repo+"@"+d, SignOptions{Key: newKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	if s.Referrer {
		t.Errorf("signed %+v: the test registry has no referrers API", s)
	}
	r, _ := name.NewRepository(repo, name.Insecure)
	tags, err := remote.List(r)
	if err != nil {
		t.Fatal(err)
	}
	sigTag, _ := SignatureTag(d)
	slices.Sort(tags)
	if want := []string{sigTag, "v1"}; !slices.Equal(tags, want) {
		t.Errorf("tags %v, want %v", tags, want)
	}
}

// Referrers interop with the real cosign CLI in its OCI 1.1 mode: `cosign verify
// --experimental-oci11` accepts the referrer Strata stored (the .sig image deleted), and Strata
// verifies a signature `cosign sign --registry-referrers-mode=oci-1-1` stored.
func TestInteropReferrers(t *testing.T) {
	ctx := context.Background()
	c := testenv.NewCosign(t, "")
	t.Setenv("COSIGN_EXPERIMENTAL", "1") // cosign's OCI 1.1 modes are experimental
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.WithReferrersSupport(true), ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	repo := strings.TrimPrefix(srv.URL, "http://") + "/team/app"
	key, pubFile := c.GenerateKeyPair(t)
	k, err := LoadPrivateKey(key, []byte{})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := LoadPublicKey(pubFile)
	if err != nil {
		t.Fatal(err)
	}

	d := pushImage(t, repo, "strata")
	if _, err := Sign(ctx, repo+"@"+d, SignOptions{Key: k}); err != nil {
		t.Fatal(err)
	}
	sigTag, _ := SignatureTag(d)
	tagRef, _ := name.NewTag(repo+":"+sigTag, name.Insecure)
	if err := remote.Delete(tagRef); err != nil {
		t.Fatal(err)
	}
	if out, err := c.Verify(pubFile, repo+"@"+d); err == nil {
		t.Errorf("cosign verify without OCI 1.1 found a signature with the .sig image gone:\n%s", out)
	}
	args := append([]string{"verify", "--key", pubFile, "--insecure-ignore-tlog", "--experimental-oci11"}, testenv.CosignRegistryFlags...)
	if out, err := c.Run(append(args, repo+"@"+d)...); err != nil {
		t.Errorf("cosign verify --experimental-oci11 of Strata's referrer: %v\n%s", err, out)
	}

	d2 := pushImage(t, repo, "cosign")
	signArgs := append([]string{"sign", "--key", key, "--tlog-upload=false", "--yes", "--registry-referrers-mode=oci-1-1"}, testenv.CosignRegistryFlags...)
	if out, err := c.Run(append(signArgs, repo+"@"+d2)...); err != nil {
		t.Fatalf("cosign sign --registry-referrers-mode=oci-1-1: %v\n%s", err, out)
	}
	if _, err := Verify(ctx, repo+"@"+d2, VerifyOptions{Keys: []*ecdsa.PublicKey{pub}}); err != nil {
		t.Errorf("Strata's verify of cosign's referrer: %v (referrers %v)", err, referrersOf(t, repo+"@"+d2))
	}
}
