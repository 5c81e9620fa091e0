package main

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"strata.dev/strata/bundle"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/sign"
	"strata.dev/strata/stages"
)

// writeKeyPair writes an encrypted cosign-format key (password pw) and its public key.
func writeKeyPair(t *testing.T, dir, name, pw string) (key, pub string) {
	t.Helper()
	k, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	kb, err := sign.MarshalPrivateKey(k, []byte(pw))
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := sign.MarshalPublicKey(&k.PublicKey)
	key, pub = filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
	if err := os.WriteFile(key, kb, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, pb, 0o644); err != nil {
		t.Fatal(err)
	}
	return key, pub
}

// signingReport pushes two images and writes a build report naming them.
func signingReport(t *testing.T, dir string) (string, *stages.Report) {
	t.Helper()
	rep := testenv.BuildReport(t, "app", "web", "worker")
	file := filepath.Join(dir, "build.json")
	b, _ := json.Marshal(rep)
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return file, rep
}

// publish --sign-key, bundle verify (with and without --images), sign, verify: end to end on
// the real registry, and the refusals a user sees.
func TestSignAndVerifyCommands(t *testing.T) {
	tmp := t.TempDir()
	key, pub := writeKeyPair(t, tmp, "ci", "pw-1")
	_, otherPub := writeKeyPair(t, tmp, "other", "pw-2")
	reportFile, rep := signingReport(t, tmp)
	repo := testenv.Repo(t, "bundles") + "/app"
	publish := []string{"bundle", "publish", "--repo", repo, "--tag", "1.0.0", "--build-report", reportFile,
		"--chart-dir", "../../bundle/testdata/app", "--commit-date", "2026-11-22T10:00:00Z", "--sign-key", key, "--json"}

	// no password: refused before anything is pushed
	t.Setenv("STRATA_SIGN_PASSWORD", "")
	os.Unsetenv("STRATA_SIGN_PASSWORD")
	t.Setenv("COSIGN_PASSWORD", "")
	os.Unsetenv("COSIGN_PASSWORD")
	if _, _, err := run(t, publish...); err == nil || !strings.Contains(err.Error(), "STRATA_SIGN_PASSWORD") || !strings.Contains(err.Error(), key) {
		t.Fatalf("publish without a password: %v", err)
	}
	if _, _, err := run(t, "verify", repo+":1.0.0", "--key", pub); err == nil || !strings.Contains(err.Error(), "is not in the registry") {
		t.Fatalf("nothing should have been pushed: %v", err)
	}
	t.Setenv("COSIGN_PASSWORD", "wrong")
	if _, _, err := run(t, publish...); err == nil || !strings.Contains(err.Error(), "wrong password") {
		t.Fatalf("publish with a wrong password: %v", err)
	}
	t.Setenv("STRATA_SIGN_PASSWORD", "pw-1") // wins over COSIGN_PASSWORD

	out, _, err := run(t, publish...)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		bundle.PublishResult
		Signature *sign.Signed `json:"signature"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if res.Signature == nil || res.Signature.Digest != res.Digest || res.Signature.Signatures != 1 {
		t.Fatalf("publish --sign-key result: %s", out)
	}
	// publishing again changes nothing, signature included
	out, _, err = run(t, publish...)
	if err != nil || !strings.Contains(out, `"unchanged": true`) || !strings.Contains(out, `"signatures": 1`) {
		t.Fatalf("re-publish: %v\n%s", err, out)
	}

	verified, _, err := run(t, "bundle", "verify", repo+":1.0.0", "--key", pub)
	if err != nil || strings.TrimSpace(verified) != repo+"@"+res.Digest {
		t.Fatalf("bundle verify: %q %v", verified, err)
	}
	if _, _, err := run(t, "bundle", "verify", "oci://"+repo+":1.0.0", "--key", otherPub, "--key", pub); err != nil {
		t.Fatalf("bundle verify with two keys, one right: %v", err)
	}
	if _, _, err := run(t, "bundle", "verify", repo+":1.0.0", "--key", otherPub); err == nil || !strings.Contains(err.Error(), sign.ErrUntrusted.Error()) {
		t.Fatalf("bundle verify with the wrong key: %v", err)
	}
	if _, _, err := run(t, "bundle", "verify", repo+":1.0.0"); err == nil || !strings.Contains(err.Error(), "no public key given") {
		t.Fatalf("bundle verify without a key: %v", err)
	}

	// --images: the images are not signed yet; then signed by `strata sign`, with a PEM key from env
	_, err = runErr(t, "bundle", "verify", repo+":1.0.0", "--key", pub, "--images")
	if err == nil || !strings.Contains(err.Error(), "2 of 2 images fail") || !strings.Contains(err.Error(), "image web") {
		t.Fatalf("bundle verify --images with unsigned images: %v", err)
	}
	imgKey, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := sign.MarshalPrivateKey(imgKey, nil)
	imgPub, _ := sign.MarshalPublicKey(&imgKey.PublicKey)
	t.Setenv("IMAGE_SIGNING_KEY", string(plain))
	t.Setenv("IMAGE_PUB", string(imgPub))
	for _, im := range rep.Images {
		if out, _, err := run(t, "sign", im.Ref, "--key", "env://IMAGE_SIGNING_KEY"); err != nil || strings.TrimSpace(out) != im.Repo+"@"+im.ManifestDigest {
			t.Fatalf("sign %s: %q %v", im.Ref, out, err)
		}
		if _, _, err := run(t, "verify", im.Ref, "--key", "env://IMAGE_PUB"); err != nil {
			t.Fatalf("verify %s: %v", im.Ref, err)
		}
	}
	if _, err := runErr(t, "bundle", "verify", repo+":1.0.0", "--key", pub, "--images"); err == nil || !strings.Contains(err.Error(), "2 of 2 images fail") {
		t.Fatalf("images signed by another key than --key: %v", err)
	}
	out, _, err = run(t, "bundle", "verify", repo+":1.0.0", "--key", pub, "--images", "--image-key", "env://IMAGE_PUB", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var bv bundleVerified
	if err := json.Unmarshal([]byte(out), &bv); err != nil || len(bv.Images) != 2 || bv.Images["web"].Digest != rep.Images[0].ManifestDigest {
		t.Fatalf("bundle verify --images --json: %v\n%s", err, out)
	}

	// bundle copy carries the images' signatures and signs the rewritten bundle at the destination
	dst := testenv.Repo(t, "copied") + "/app"
	out, _, err = run(t, "bundle", "copy", "--from", repo+":1.0.0", "--to", dst, "--sign-key", key, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var sc struct {
		Digest     string       `json:"digest"`
		Signatures int          `json:"signatures"`
		Signature  *sign.Signed `json:"signature"`
	}
	if err := json.Unmarshal([]byte(out), &sc); err != nil || sc.Signatures != 2 || sc.Signature == nil || sc.Signature.Digest != sc.Digest {
		t.Fatalf("bundle copy --sign-key: %v\n%s", err, out)
	}
	if _, _, err := run(t, "bundle", "verify", dst+":1.0.0", "--key", pub, "--images", "--image-key", "env://IMAGE_PUB"); err != nil {
		t.Fatalf("verify the copy: %v", err)
	}
}

func runErr(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, _, err := run(t, args...)
	return out, err
}

// A bundle Strata published and signed passes the real `cosign verify`.
func TestCosignVerifiesPublishedBundle(t *testing.T) {
	cosign := testenv.Cosign(t)
	tmp := t.TempDir()
	key, pub := writeKeyPair(t, tmp, "ci", "pw")
	t.Setenv("STRATA_SIGN_PASSWORD", "pw")
	reportFile, _ := signingReport(t, tmp)
	repo := testenv.Repo(t, "bundles") + "/app"
	out, _, err := run(t, "bundle", "publish", "--repo", repo, "--tag", "2.0.0", "--build-report", reportFile,
		"--chart-dir", "../../bundle/testdata/app", "--sign-key", key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cosign, "verify", "--key", pub, "--insecure-ignore-tlog", "--allow-insecure-registry", "--allow-http-registry", repo+":2.0.0")
	cmd.Env = append(os.Environ(), "HOME="+tmp, "TUF_ROOT="+filepath.Join(tmp, "tuf"))
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cosign verify %s: %v\n%s", strings.TrimSpace(out), err, b)
	}
	if _, d, _ := strings.Cut(strings.TrimSpace(out), "@"); !strings.Contains(string(b), d) {
		t.Fatalf("cosign verify output lacks %s:\n%s", d, b)
	}
}

// strata build --sign-key signs every final image; building again (everything reused) adds no
// second signature.
func TestBuildSignKey(t *testing.T) {
	base := testenv.BaseImage(t)
	dir := t.TempDir()
	cfg := "project: signed\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\ndocker:\n  USER: \"1000\"\n"
	if err := os.WriteFile(filepath.Join(dir, "strata.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x"}} {
		c := exec.Command("git", args...)
		c.Dir = dir
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	key, pub := writeKeyPair(t, t.TempDir(), "ci", "pw")
	t.Setenv("STRATA_SIGN_PASSWORD", "pw")
	repo := testenv.Repo(t, "stages")
	report := filepath.Join(t.TempDir(), "report.json")
	for i := 0; i < 2; i++ {
		if _, stderr, err := run(t, "build", "-q", "--dir", dir, "--repo", repo, "--report", report, "--sign-key", key); err != nil {
			t.Fatalf("strata build --sign-key: %v\n%s", err, stderr)
		}
	}
	rep, err := stages.ReadReport(report)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, "verify", rep.Images[0].Ref, "--key", pub, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var v sign.Verified
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Digest != rep.Images[0].ManifestDigest {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	s, err := sign.Sign(context.Background(), v.Ref, sign.SignOptions{Key: mustKey(t, key, "pw")})
	if err != nil || !s.Unchanged || s.Signatures != 1 {
		t.Fatalf("after two builds: %+v %v", s, err)
	}
}

func mustKey(t *testing.T, file, pw string) *ecdsa.PrivateKey {
	t.Helper()
	k, err := sign.LoadPrivateKey(file, []byte(pw))
	if err != nil {
		t.Fatal(err)
	}
	return k
}
