package imageupdater

import (
	"context"
	"testing"
	"time"

	"strata.dev/strata/bundle"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// Acceptance (issue 7): bundles published with `strata bundle publish` (bundle.Publish); an
// Application on ">=1.0 <2" moves to 1.2.0 and stays; an oci:// Application on the digest
// strategy moves to the new digest when the tag is re-pointed.
func TestAcceptancePublishedBundles(t *testing.T) {
	k := newKubeEnv(t)
	repo := testenv.Repo(t, "app")
	publish := func(version, commit string, at time.Time, force bool) *bundle.PublishResult {
		t.Helper()
		res, err := bundle.Publish(context.Background(), bundle.PublishOptions{
			Repo: repo, Version: version, ChartDir: "testdata/bundle",
			Report: &stages.Report{Project: "app", Repo: repo, Commit: commit},
			Commit: bundle.Commit{Hash: commit, Date: at.Format(time.RFC3339)}, Branch: "main",
			GitURL: "https://git.example.com/team/app.git", Force: force,
			Now: func() time.Time { return at },
		})
		if err != nil {
			t.Fatalf("publish %s: %v", version, err)
		}
		return res
	}
	commit := func(n byte) string {
		b := make([]byte, 40)
		for i := range b {
			b[i] = "0123456789abcdef"[(int(n)+i)%16]
		}
		return string(b)
	}
	for i, v := range []string{"1.0.0", "1.1.0", "2.0.0-rc.1", "1.2.0"} {
		publish(v, commit(byte(i)), t0.Add(time.Duration(i)*time.Hour), false)
	}
	k.app(t, "range", map[string]string{AnnotationChartVersion: ">=1.0 <2"}, helmSource(repo, "1.0.0"))
	k.app(t, "pinned", map[string]string{AnnotationChartVersion: "1.2.0", AnnotationUpdateStrategy: "digest"}, ociSource(repo, "1.2.0"))

	c, _, _ := k.startController(t, nil)
	if res := c.runCycle(context.Background()); res.failed != 0 || res.updated != 2 {
		t.Fatalf("cycle = %+v, want 2 updated", res)
	}
	if got := revision(k.getApp(t, "range"), -1); got != "1.2.0" {
		t.Errorf("range: %q, want 1.2.0", got)
	}
	d1 := revision(k.getApp(t, "pinned"), -1)
	waitCached(t, c, k.ns, "range", k.getApp(t, "range").ResourceVersion)
	waitCached(t, c, k.ns, "pinned", k.getApp(t, "pinned").ResourceVersion)

	// Re-point 1.2.0 (new commit, --force).
	res := publish("1.2.0", commit(9), t0.Add(5*time.Hour), true)
	if res.Digest == d1 {
		t.Fatalf("re-published 1.2.0 has the same digest %s", d1)
	}
	if r := c.runCycle(context.Background()); r.failed != 0 || r.updated != 1 {
		t.Fatalf("second cycle = %+v, want 1 updated", r)
	}
	if got := revision(k.getApp(t, "pinned"), -1); got != res.Digest {
		t.Errorf("pinned: %q, want the new digest %s (was %s)", got, res.Digest, d1)
	}
	if got := revision(k.getApp(t, "range"), -1); got != "1.2.0" {
		t.Errorf("range moved away from 1.2.0: %q", got)
	}
}
