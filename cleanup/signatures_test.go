package cleanup

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/sign"
)

type stage struct{ tag, manifest string }

// twoCommitProject is a project whose cleanup policy keeps the stages of HEAD's commit
// (branches: last 1) and not those of the commit before.
type twoCommitProject struct {
	t             *testing.T
	repo          name.Repository
	work, project string
	old, head     string
	now           time.Time
}

func newTwoCommitProject(t *testing.T, repo name.Repository) *twoCommitProject {
	t.Helper()
	p := &twoCommitProject{t: t, repo: repo, work: t.TempDir(), project: testenv.UniqueName(t, "p"), now: time.Now()}
	g := &gitRepo{t: t, dir: p.work, now: p.now}
	g.run(0, "init", "-q", "-b", "main")
	cfg := fmt.Sprintf("project: %s\nconfigVersion: 1\ncleanup:\n  branches:\n    last: 1\n---\nimage: app\nfrom: busybox\n", p.project)
	if err := os.WriteFile(filepath.Join(p.work, "strata.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	g.run(10*day, "add", "strata.yaml")
	p.old = g.commit("old", 10*day)
	p.head = g.commit("head", 1*day)
	return p
}

// push pushes a stage built age ago at commit.
func (p *twoCommitProject) push(age time.Duration, commit string) stage {
	p.t.Helper()
	tag, m := pushStage(p.t, p.repo, p.project, p.now.Add(-age), commit, "")
	return stage{tag, m}
}

// Cleanup keeps the signatures of the stages it keeps and deletes those (and attestations) of the
// stages it deletes, whether Strata or the real cosign CLI made them; what stays still verifies
// with cosign.
func TestCleanupDeletesSignaturesOfDeletedStagesOnly(t *testing.T) {
	cosign := testenv.NewCosign(t, "")
	repoName := testenv.Repo(t, "stages")
	ctx := context.Background()
	reg := registry.Options{}
	repo, err := reg.ParseRepository(repoName)
	if err != nil {
		t.Fatal(err)
	}
	p := newTwoCommitProject(t, repo)
	work, now := p.work, p.now
	keptStrata, keptCosign := p.push(1*day, p.head), p.push(1*day, p.head)
	delStrata, delCosign := p.push(10*day, p.old), p.push(10*day, p.old)

	// Signatures: Strata's key for two stages, cosign's own for the other two.
	key, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []stage{keptStrata, delStrata} {
		if _, err := sign.Sign(ctx, repoName+"@"+s.manifest, sign.SignOptions{Key: key}); err != nil {
			t.Fatal(err)
		}
	}
	cosignKey, cosignPub := cosign.GenerateKeyPair(t)
	for _, s := range []stage{keptCosign, delCosign} {
		cosign.Sign(t, cosignKey, repoName+"@"+s.manifest)
	}
	// An attestation-like tag next to one kept and one deleted stage (cosign's .att scheme).
	attach := func(s stage, suffix string) string {
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		tag := strings.Replace(s.manifest, ":", "-", 1) + suffix
		if err := remote.Write(repo.Tag(tag), img, reg.Remote(ctx)...); err != nil {
			t.Fatal(err)
		}
		return tag
	}
	sigTag := func(s stage) string {
		tag, err := sign.SignatureTag(s.manifest)
		if err != nil {
			t.Fatal(err)
		}
		return tag
	}
	keptAtt, delAtt := attach(keptStrata, ".att"), attach(delStrata, ".att")

	opts := Options{Dir: work, Repo: repoName, Registry: reg, Locker: &lock.File{Dir: t.TempDir()}, Now: now}
	var out bytes.Buffer
	opts.DryRun, opts.Out = true, &out
	res, err := Run(ctx, opts)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	t.Logf("dry run:\n%s", out.String())
	var planned []string
	for _, a := range res.Plan.Attached {
		planned = append(planned, a.Tag)
	}
	wantAttached := []string{sigTag(delStrata), sigTag(delCosign), delAtt}
	slices.Sort(wantAttached)
	if !slices.Equal(planned, wantAttached) {
		t.Errorf("planned attached deletions %v, want %v", planned, wantAttached)
	}
	for tag, want := range map[string]string{
		sigTag(delStrata): "signatures of " + short(delStrata.manifest), delAtt: "attestations of " + short(delStrata.manifest),
	} {
		if line := lineOf(out.String(), "delete "+tag); !strings.Contains(line, want) {
			t.Errorf("dry run line for %s: %q, want %q", tag, line, want)
		}
	}
	if !strings.Contains(out.String(), "(2 manifests + 3 signature/attestation/SBOM tags) [dry run]") {
		t.Errorf("dry-run summary does not count the attached tags:\n%s", out.String())
	}

	out.Reset()
	opts.DryRun = false
	if res, err = Run(ctx, opts); err != nil {
		t.Fatalf("cleanup: %v\n%s", err, out.String())
	}
	t.Logf("cleanup:\n%s", out.String())
	want := []string{keptStrata.tag, keptCosign.tag, sigTag(keptStrata), sigTag(keptCosign), keptAtt}
	slices.Sort(want)
	if got := listTags(t, repo); !slices.Equal(got, want) {
		t.Errorf("after cleanup:\n got  %v\n want %v", got, want)
	}
	slices.Sort(res.Attached)
	if !slices.Equal(res.Attached, wantAttached) {
		t.Errorf("Result.Attached %v, want %v", res.Attached, wantAttached)
	}

	// What stays verifies: Strata's signature with Strata, cosign's with the cosign CLI.
	if _, err := sign.Verify(ctx, repoName+"@"+keptStrata.manifest, sign.VerifyOptions{Keys: []*ecdsa.PublicKey{&key.PublicKey}}); err != nil {
		t.Errorf("kept stage signed by Strata: %v", err)
	}
	if out, err := cosign.Verify(cosignPub, repoName+"@"+keptCosign.manifest); err != nil {
		t.Errorf("cosign verify of a kept stage: %v\n%s", err, out)
	}
	// A second run has nothing left to delete.
	out.Reset()
	if res, err = Run(ctx, opts); err != nil || len(res.Plan.Delete) != 0 || len(res.Plan.Attached) != 0 {
		t.Errorf("second run: %v, plan %+v", err, res.Plan)
	}
}

// On a registry with the OCI 1.1 referrers API (go-containerregistry's, in process), where Strata
// stores each signature as a referrer too, cleanup deletes the referrers of the stages it
// deletes and keeps those of the stages it keeps.
func TestCleanupDeletesReferrersOfDeletedStages(t *testing.T) {
	ctx := context.Background()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.WithReferrersSupport(true), ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	reg := registry.Options{}
	repoName := strings.TrimPrefix(srv.URL, "http://") + "/stages"
	repo, err := reg.ParseRepository(repoName)
	if err != nil {
		t.Fatal(err)
	}
	p := newTwoCommitProject(t, repo)
	kept, deleted := p.push(1*day, p.head), p.push(10*day, p.old)
	key, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	referrers := map[string][]string{}
	for _, s := range []stage{kept, deleted} {
		signed, err := sign.Sign(ctx, repoName+"@"+s.manifest, sign.SignOptions{Key: key})
		if err != nil || !signed.Referrer {
			t.Fatalf("sign %s: %+v, %v; want a referrer", s.tag, signed, err)
		}
		refs, err := sign.ListReferrers(ctx, repoName+"@"+s.manifest, sign.Options{})
		if err != nil || len(refs) != 1 {
			t.Fatalf("referrers of %s: %v, %v", s.tag, refs, err)
		}
		referrers[s.manifest] = []string{refs[0].Digest.String()}
	}

	var out bytes.Buffer
	res, err := Run(ctx, Options{Dir: p.work, Repo: repoName, Registry: reg, Locker: &lock.File{Dir: t.TempDir()}, Now: p.now, Out: &out})
	if err != nil {
		t.Fatalf("cleanup: %v\n%s", err, out.String())
	}
	t.Logf("cleanup:\n%s", out.String())
	if !slices.Equal(res.Deleted, []string{deleted.manifest}) || !slices.Equal(res.Referrers, referrers[deleted.manifest]) {
		t.Errorf("deleted %v and referrers %v, want %s and %v", res.Deleted, res.Referrers, deleted.manifest, referrers[deleted.manifest])
	}
	if !strings.Contains(out.String(), "+ 1 signature/attestation/SBOM tags + 1 referrers") {
		t.Errorf("summary does not count the .sig tag and the referrer:\n%s", out.String())
	}
	if _, err := remote.Get(repo.Digest(referrers[deleted.manifest][0]), reg.Remote(ctx)...); !registry.IsNotFound(err) {
		t.Errorf("the deleted stage's referrer: %v, want not found", err)
	}
	if _, err := remote.Get(repo.Digest(referrers[kept.manifest][0]), reg.Remote(ctx)...); err != nil {
		t.Errorf("the kept stage's referrer: %v", err)
	}
	if _, err := sign.Verify(ctx, repoName+"@"+kept.manifest, sign.VerifyOptions{Keys: []*ecdsa.PublicKey{&key.PublicKey}}); err != nil {
		t.Errorf("the kept stage: %v", err)
	}
}
