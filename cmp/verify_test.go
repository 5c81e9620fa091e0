package cmp_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"strata.dev/strata/bundle"
	"strata.dev/strata/cmp"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/sign"
	"strata.dev/strata/stages"
)

// signedFixture is a bundle published to the test registry, its images, keys, and the
// directory Argo CD would hand the plugin.
type signedFixture struct {
	regPath string // REGISTRY/PATH (the Helm-OCI repoURL)
	repo    string // REGISTRY/PATH/NAME
	res     *bundle.PublishResult
	report  *stages.Report
	key     *ecdsa.PrivateKey
	pubFile string
	dir     string
	tmp     string
}

func newSignedFixture(t testing.TB, version string) *signedFixture {
	t.Helper()
	rep := testenv.BuildReport(t, "app", "web", "worker")
	f := &signedFixture{regPath: testenv.Repo(t, "bundles"), report: rep, tmp: t.TempDir()}
	f.repo = f.regPath + "/app"
	f.publish(t, version, "2026-11-22T10:00:00Z")
	k, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	f.key = k
	pub, _ := sign.MarshalPublicKey(&k.PublicKey)
	f.pubFile = filepath.Join(f.tmp, "ci.pub")
	if err := os.WriteFile(f.pubFile, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *signedFixture) publish(t testing.TB, version, date string) {
	t.Helper()
	res, err := bundle.Publish(context.Background(), bundle.PublishOptions{
		Repo: f.repo, Version: version, ChartDir: "../bundle/testdata/app", Report: f.report,
		Commit: bundle.Commit{Date: date}, Force: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.res = res
	// what Argo CD extracts for the Application
	f.dir = filepath.Join(f.tmp, "argocd-"+res.Digest[7:19])
	if _, err := os.Stat(f.dir); err != nil {
		if _, err := bundle.Pull(context.Background(), bundle.PullOptions{Ref: f.repo + "@" + res.Digest, Dir: f.dir}); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *signedFixture) sign(t testing.TB, ref string) {
	t.Helper()
	if _, err := sign.Sign(context.Background(), ref, sign.SignOptions{Key: f.key}); err != nil {
		t.Fatal(err)
	}
}

func (f *signedFixture) policy(t testing.TB, body string) string {
	t.Helper()
	p := filepath.Join(f.tmp, fmt.Sprintf("policy-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// helmEnv is the environment of a Helm-OCI source (repoURL REGISTRY/PATH, chart app).
func (f *signedFixture) helmEnv(extra ...string) []string {
	return append([]string{
		"ARGOCD_APP_NAME=app", "ARGOCD_APP_NAMESPACE=prod",
		"ARGOCD_APP_REVISION=" + f.res.Version, "ARGOCD_APP_SOURCE_REPO_URL=" + f.regPath,
		"ARGOCD_APP_SOURCE_TARGET_REVISION=" + f.res.Version,
	}, extra...)
}

func (f *signedFixture) generate(policy string, env []string) (string, error) {
	var out bytes.Buffer
	err := cmp.Generate(context.Background(), cmp.Options{Dir: f.dir, Environ: env, VerifyPolicy: policy}, &out)
	if err != nil && out.Len() > 0 {
		return out.String(), fmt.Errorf("output written despite the error %v", err)
	}
	return out.String(), err
}

func TestGenerateVerifiesByPolicy(t *testing.T) {
	f := newSignedFixture(t, "1.0.0")
	policy := f.policy(t, "rules:\n  - repositories: [\""+f.regPath+"/*\"]\n    keys: ["+f.pubFile+"]\n")

	unverified, err := f.generate("", f.helmEnv())
	if err != nil {
		t.Fatal(err)
	}
	// unsigned: refused, naming the rule and the signature tag
	_, err = f.generate(policy, f.helmEnv())
	sigTag, _ := sign.SignatureTag(f.res.Digest)
	if !errors.Is(err, sign.ErrNotSigned) || !strings.Contains(err.Error(), "rules[0] (line 2)") || !strings.Contains(err.Error(), sigTag) {
		t.Fatalf("unsigned bundle: %v", err)
	}

	f.sign(t, f.repo+":1.0.0")
	verified, err := f.generate(policy, f.helmEnv())
	if err != nil {
		t.Fatal(err)
	}
	if verified != unverified {
		t.Errorf("the verified render differs from the plain one")
	}
	// oci:// source: the digest Argo CD resolved is what is verified
	ociEnv := []string{"ARGOCD_APP_NAME=app", "ARGOCD_APP_NAMESPACE=prod", "ARGOCD_APP_REVISION=" + f.res.Digest, "ARGOCD_APP_SOURCE_REPO_URL=oci://" + f.repo}
	if _, err := f.generate(policy, ociEnv); err != nil {
		t.Fatalf("oci:// source: %v", err)
	}

	// signed by another key
	other, _ := sign.GenerateKey()
	otherPub, _ := sign.MarshalPublicKey(&other.PublicKey)
	wrong := f.policy(t, testenv.KeyPolicy(f.regPath+"/**", otherPub))
	if _, err := f.generate(wrong, f.helmEnv()); !errors.Is(err, sign.ErrUntrusted) {
		t.Fatalf("wrong key: %v", err)
	}

	// unmatched repositories: refused by default, rendered when allowed; skip rules render
	elsewhere := "rules:\n  - repositories: [\"other.example/**\"]\n    keys: [" + f.pubFile + "]\n"
	if _, err := f.generate(f.policy(t, elsewhere), f.helmEnv()); !errors.Is(err, sign.ErrPolicyRefused) || !strings.Contains(err.Error(), f.repo) {
		t.Fatalf("unmatched: %v", err)
	}
	if _, err := f.generate(f.policy(t, elsewhere+"unmatched: allow\n"), f.helmEnv()); err != nil {
		t.Fatalf("unmatched: allow: %v", err)
	}

	// the Application may require its own key on top of the policy
	appKey := "ARGOCD_ENV_STRATA_VERIFY_KEY=" + string(otherPub)
	if _, err := f.generate(policy, f.helmEnv(appKey)); !errors.Is(err, sign.ErrUntrusted) || !strings.Contains(err.Error(), "STRATA_VERIFY_KEY") {
		t.Fatalf("application key: %v", err)
	}
	skip := f.policy(t, "rules:\n  - repositories: [\"**\"]\n    skip: true\n")
	if _, err := f.generate(skip, f.helmEnv(appKey)); !errors.Is(err, sign.ErrUntrusted) {
		t.Fatalf("application key under a skip rule: %v", err)
	}
	if _, err := f.generate(skip, f.helmEnv()); err != nil {
		t.Fatalf("skip rule: %v", err)
	}
}

func TestGenerateVerifiesImages(t *testing.T) {
	f := newSignedFixture(t, "1.0.0")
	f.sign(t, f.repo+":1.0.0")
	policy := f.policy(t, "rules:\n  - repositories: [\""+f.regPath+"/*\"]\n    keys: ["+f.pubFile+"]\n    images: true\n")
	_, err := f.generate(policy, f.helmEnv())
	if !errors.Is(err, sign.ErrNotSigned) || !strings.Contains(err.Error(), "image web") || !strings.Contains(err.Error(), "image worker") || !strings.Contains(err.Error(), "images: true") {
		t.Fatalf("unsigned images: %v", err)
	}
	for _, im := range f.report.Images {
		f.sign(t, im.Repo+"@"+im.ManifestDigest)
	}
	if _, err := f.generate(policy, f.helmEnv()); err != nil {
		t.Fatalf("signed images: %v", err)
	}
}

// The tag moved (and was signed again) after Argo CD extracted the bundle: what Argo CD handed
// over is not what is signed now, and is not rendered.
func TestGenerateRefusesContentOtherThanSigned(t *testing.T) {
	f := newSignedFixture(t, "1.0.0")
	f.sign(t, f.repo+":1.0.0")
	handed := f.dir
	f.publish(t, "1.0.0", "2026-11-23T10:00:00Z") // same version, new content
	f.sign(t, f.repo+":1.0.0")
	f.dir = handed
	policy := f.policy(t, "rules:\n  - repositories: [\""+f.regPath+"/*\"]\n    keys: ["+f.pubFile+"]\n")
	if _, err := f.generate(policy, f.helmEnv()); err == nil || !strings.Contains(err.Error(), "the tag moved") {
		t.Fatalf("stale content: %v", err)
	}
}

func TestPolicyErrorsNameFileAndLine(t *testing.T) {
	dir := t.TempDir()
	for body, want := range map[string]string{
		"rules:\n  - repositories: [a/*]\n    kyes: [x.pub]\n":       "field kyes not found",
		"rules:\n  - repositories: [a/*]\n":                          "rules[0] (line 2): keys: at least one public key",
		"rules:\n  - repositories: [a/*]\n    keys: [missing.pub]\n": filepath.Join(dir, "missing.pub"),
		"unmatched: maybe\n":                                         `unmatched: "maybe"`,
		"rules:\n  - keys: [x.pub]\n":                                "repositories: at least one pattern",
	} {
		p := filepath.Join(dir, "policy.yaml")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := sign.LoadPolicy(p)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), p) {
			t.Errorf("policy %q: error %v, want it to name %s and say %q", body, err, p, want)
		}
	}
}

// Through Argo CD's own CMP server, the sidecar's STRATA_VERIFY_POLICY applies to
// `strata cmp generate`: an unsigned bundle fails with the reason, a signed one renders.
func TestGenerateThroughArgoCDServerVerifies(t *testing.T) {
	f := newSignedFixture(t, "1.0.0")
	t.Setenv("STRATA_VERIFY_POLICY", f.policy(t, "rules:\n  - repositories: [\""+f.regPath+"/*\"]\n    keys: ["+f.pubFile+"]\n"))
	srv := startServer(t)
	ctx := context.Background()
	out, err := srv.Generate(ctx, "", f.dir, f.helmEnv())
	if err == nil || !strings.Contains(err.Error(), "not signed") || len(out) != 0 {
		t.Fatalf("unsigned bundle through the CMP server: %v (%d objects)", err, len(out))
	}
	f.sign(t, f.repo+":1.0.0")
	out, err = srv.Generate(ctx, "", f.dir, f.helmEnv())
	if err != nil || len(out) == 0 {
		t.Fatalf("signed bundle through the CMP server: %v (%d objects)", err, len(out))
	}
}
