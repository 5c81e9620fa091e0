package imageupdater

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"strata.dev/strata/bundle"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/sign"
)

// signedSeries publishes 1.0.0, 1.1.0 and 1.2.0 of a bundle, signs 1.0.0 and 1.1.0 (not 1.2.0)
// with a fresh key and writes a policy trusting that key for the repository.
func signedSeries(t *testing.T) (repo, policyFile string) {
	t.Helper()
	repo = testenv.Repo(t, "app")
	for i, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		pushBundle(t, repo, v, t0.Add(time.Duration(i)*time.Hour))
	}
	key, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"1.0.0", "1.1.0"} {
		if _, err := sign.Sign(context.Background(), repo+":"+tag, sign.SignOptions{Key: key}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	pub, _ := sign.MarshalPublicKey(&key.PublicKey)
	if err := os.WriteFile(filepath.Join(dir, "ci.pub"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	policyFile = filepath.Join(dir, "policy.yaml")
	body := fmt.Sprintf("rules:\n  - repositories: [%q]\n    keys: [ci.pub]\n", repo)
	if err := os.WriteFile(policyFile, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return repo, policyFile
}

// Under a verification policy the updater skips the unsigned 1.2.0, moves to the signed 1.1.0
// and says why in a Warning Event naming the tag; the refusal is not repeated every cycle.
func TestVerifyPolicySkipsUnsignedCandidate(t *testing.T) {
	k := newKubeEnv(t)
	repo, policy := signedSeries(t)
	k.app(t, "semver", map[string]string{AnnotationChartVersion: "1.x"}, helmSource(repo, "1.0.0"))
	k.app(t, "oci", map[string]string{AnnotationChartVersion: "^1"}, ociSource(repo, "1.0.0"))
	k.app(t, "alpha", map[string]string{AnnotationChartVersion: "*", AnnotationUpdateStrategy: "alphabetical"}, ociSource(repo, "1.0.0"))
	k.app(t, "newest", map[string]string{AnnotationChartVersion: "*", AnnotationUpdateStrategy: "newest-build"}, ociSource(repo, "1.0.0"))

	c, _, logs := k.startController(t, func(o *Options) { o.VerifyPolicy = policy })
	res := c.runCycle(context.Background())
	if res.updated != 4 || res.failed != 0 {
		t.Fatalf("cycle = %+v, want 4 updated, 0 failed", res)
	}
	for _, name := range []string{"semver", "oci", "alpha", "newest"} {
		if got := revision(k.getApp(t, name), -1); got != "1.1.0" {
			t.Errorf("%s: targetRevision = %q, want the signed 1.1.0 (1.2.0 is unsigned)", name, got)
		}
		var refused int
		for _, ev := range k.events(t, name) {
			if ev.Reason == reasonRefused {
				refused++
				if ev.Type != "Warning" || !strings.Contains(ev.Message, "1.2.0 refused") || !strings.Contains(ev.Message, "not signed") {
					t.Errorf("%s: %s event %q, want a Warning naming 1.2.0 and why", name, reasonRefused, ev.Message)
				}
			}
		}
		if refused != 1 {
			t.Errorf("%s: %d %s events, want 1", name, refused, reasonRefused)
		}
	}
	if !strings.Contains(logs.String(), "candidate bundle refused") {
		t.Errorf("log does not name the refusal:\n%s", logs.String())
	}
	waitCached(t, c, k.ns, "semver", k.getApp(t, "semver").ResourceVersion)
	if res := c.runCycle(context.Background()); res.updated != 0 || res.failed != 0 {
		t.Fatalf("second cycle = %+v, want nothing to do", res)
	}
	if n := len(k.events(t, "semver")); n != 2 {
		t.Errorf("semver: %d events after two cycles, want 2 (one update, one refusal)", n)
	}
}

// Without a policy the same series moves to 1.2.0 as before; when every newer candidate is
// refused the Application stays, with the Warning.
func TestVerifyPolicyOffOrAllRefused(t *testing.T) {
	k := newKubeEnv(t)
	repo, policy := signedSeries(t)
	k.app(t, "free", map[string]string{AnnotationChartVersion: "1.x"}, helmSource(repo, "1.0.0"))
	c, _, _ := k.startController(t, nil)
	if res := c.runCycle(context.Background()); res.updated != 1 || res.failed != 0 {
		t.Fatalf("cycle without policy = %+v, want 1 updated", res)
	}
	if got := revision(k.getApp(t, "free"), -1); got != "1.2.0" {
		t.Errorf("without a policy: targetRevision = %q, want 1.2.0", got)
	}

	k2 := newKubeEnv(t)
	k2.app(t, "stuck", map[string]string{AnnotationChartVersion: "~1.2"}, helmSource(repo, "1.1.0"))
	c2, _, _ := k2.startController(t, func(o *Options) { o.VerifyPolicy = policy })
	if res := c2.runCycle(context.Background()); res.updated != 0 || res.failed != 0 {
		t.Fatalf("cycle = %+v, want no update and no failure", res)
	}
	if got := revision(k2.getApp(t, "stuck"), -1); got != "1.1.0" {
		t.Errorf("stuck: targetRevision = %q, want 1.1.0 kept", got)
	}
	evs := k2.events(t, "stuck")
	if len(evs) != 1 || evs[0].Reason != reasonRefused || !strings.Contains(evs[0].Message, "1.2.0") {
		t.Errorf("stuck: events %+v, want one %s naming 1.2.0", evs, reasonRefused)
	}
}

// A policy file that does not load stops the controller at start, saying where.
func TestVerifyPolicyBadFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(f, []byte("rules:\n  - repositories: [x]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := newController(Options{RestConfig: testenv.KubeConfig(t), VerifyPolicy: f})
	if err == nil || !strings.Contains(err.Error(), "rules[0]") || !strings.Contains(err.Error(), "keys") {
		t.Fatalf("err = %v, want the policy's rules[0] keys error", err)
	}
}

func TestSignatureTag(t *testing.T) {
	h := strings.Repeat("a", 64)
	for tag, want := range map[string]bool{"sha256-" + h + ".sig": true, "sha256-" + h + ".att": true, "sha256-" + h + ".sbom": true, "sha256-abc.sig": false, "sha512-" + h + ".sig": false, "1.2.0": false, "sha256-" + h: false} {
		if got := signatureTag(tag); got != want {
			t.Errorf("signatureTag(%q) = %v, want %v", tag, got, want)
		}
	}
}

// On a registry with authentication, verification uses the Application's pull-secret, as the
// tag listing does: the signed 1.1.0 is read and accepted, the unsigned 1.2.0 refused.
func TestVerifyPolicyUsesPullSecret(t *testing.T) {
	k := newKubeEnv(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("p4ss"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("ci:"+string(hash)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := startRegistry(t, "auth:\n  htpasswd: {realm: strata, path: "+htpasswd+"}\n")
	dcfg := t.TempDir()
	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{addr: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte("ci:p4ss"))}}})
	if err := os.WriteFile(filepath.Join(dcfg, "config.json"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dcfg)
	repo := addr + "/strata-test/" + testenv.UniqueName(t, "private")
	for i, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		pushBundle(t, repo, v, t0.Add(time.Duration(i)*time.Hour))
	}
	key, _ := sign.GenerateKey()
	if _, err := sign.Sign(context.Background(), repo+":1.1.0", sign.SignOptions{Key: key}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // the controller gets no credentials from there
	pub, _ := sign.MarshalPublicKey(&key.PublicKey)
	policy := filepath.Join(dir, "policy.yaml")
	body := testenv.KeyPolicy(repo, pub)
	if err := os.WriteFile(policy, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("IU_TEST_VERIFY_CREDS", "ci:p4ss")
	k.app(t, "private", map[string]string{AnnotationChartVersion: "1.x", AnnotationPullSecret: "env:IU_TEST_VERIFY_CREDS"}, helmSource(repo, "1.0.0"))
	c, _, _ := k.startController(t, func(o *Options) { o.VerifyPolicy = policy })
	if res := c.runCycle(context.Background()); res.updated != 1 || res.failed != 0 {
		t.Fatalf("cycle = %+v, want 1 updated", res)
	}
	if got := revision(k.getApp(t, "private"), -1); got != "1.1.0" {
		t.Errorf("private: %q, want the signed 1.1.0", got)
	}
}

// With images: true a bundle whose images are unsigned is refused even though the bundle is
// signed; once the images are signed the Application moves.
func TestVerifyPolicyImages(t *testing.T) {
	k := newKubeEnv(t)
	rep := testenv.BuildReport(t, "app", "web", "worker")
	regPath := testenv.Repo(t, "bundles")
	repo := regPath + "/app"
	key, _ := sign.GenerateKey()
	for _, v := range []string{"1.0.0", "1.1.0"} {
		res, err := bundle.Publish(context.Background(), bundle.PublishOptions{
			Repo: repo, Version: v, ChartDir: "../bundle/testdata/app", Report: rep, Commit: bundle.Commit{Date: "2026-11-22T10:00:00Z"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sign.Sign(context.Background(), repo+"@"+res.Digest, sign.SignOptions{Key: key}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	pub, _ := sign.MarshalPublicKey(&key.PublicKey)
	policy := filepath.Join(dir, "policy.yaml")
	for f, b := range map[string][]byte{filepath.Join(dir, "ci.pub"): pub, policy: []byte("rules:\n  - repositories: [\"" + regPath + "/*\"]\n    keys: [ci.pub]\n    images: true\n")} {
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	k.app(t, "imgs", map[string]string{AnnotationChartVersion: "1.x"}, helmSource(repo, "1.0.0"))
	c, _, _ := k.startController(t, func(o *Options) { o.VerifyPolicy = policy })
	if res := c.runCycle(context.Background()); res.updated != 0 || res.failed != 0 {
		t.Fatalf("cycle with unsigned images = %+v, want no update, no failure", res)
	}
	evs := k.events(t, "imgs")
	if got := revision(k.getApp(t, "imgs"), -1); got != "1.0.0" || len(evs) != 1 || evs[0].Reason != reasonRefused ||
		!strings.Contains(evs[0].Message, "images: true") || !strings.Contains(evs[0].Message, "not signed") {
		t.Fatalf("unsigned images: revision %q, events %+v; want 1.0.0 kept and one %s about images", got, evs, reasonRefused)
	}
	for _, im := range rep.Images {
		if _, err := sign.Sign(context.Background(), im.Repo+"@"+im.ManifestDigest, sign.SignOptions{Key: key}); err != nil {
			t.Fatal(err)
		}
	}
	if res := c.runCycle(context.Background()); res.updated != 1 || res.failed != 0 {
		t.Fatalf("cycle with signed images = %+v, want 1 updated", res)
	}
	if got := revision(k.getApp(t, "imgs"), -1); got != "1.1.0" {
		t.Errorf("signed images: %q, want 1.1.0", got)
	}
}
