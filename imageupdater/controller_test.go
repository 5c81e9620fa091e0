package imageupdater

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"strata.dev/strata/internal/testing/testenv"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// publishSeries publishes 1.0.0, 1.1.0, 2.0.0-rc.1, 1.2.0 (in that order, an hour apart).
func publishSeries(t *testing.T, repo string) {
	for i, v := range []string{"1.0.0", "1.1.0", "2.0.0-rc.1", "1.2.0"} {
		pushBundle(t, repo, v, t0.Add(time.Duration(i)*time.Hour))
	}
}

func TestSemverMovesToBestTagAndStays(t *testing.T) {
	k := newKubeEnv(t)
	repo := testenv.Repo(t, "app")
	other := testenv.Repo(t, "other")
	publishSeries(t, repo)
	pushBundle(t, other, "0.1.0", t0)
	pushBundle(t, other, "0.2.0+build.7", t0.Add(time.Hour))

	k.app(t, "range", map[string]string{AnnotationChartVersion: ">=1.0 <2"}, helmSource(repo, "1.0.0"))
	k.app(t, "tilde", map[string]string{AnnotationChartVersion: "~1.0"}, helmSource(repo, "1.0.0"))
	k.app(t, "pre", map[string]string{AnnotationBundleConstraint: ">=1.0.0-0"}, helmSource(repo, "1.0.0"))
	k.app(t, "oci", map[string]string{AnnotationChartVersion: "^1"}, ociSource(repo, "1.0.0"))
	k.app(t, "build", map[string]string{AnnotationChartVersion: "*"}, helmSource(other, "0.1.0"))
	k.app(t, "multi", map[string]string{AnnotationChartVersion: "1.x"},
		v1alpha1.ApplicationSource{RepoURL: "https://git.example.com/values.git", TargetRevision: "main", Ref: "values"},
		helmSource(repo, "1.0.0"))
	k.app(t, "not-opted-in", nil, helmSource(repo, "1.0.0"))

	c, ct, logs := k.startController(t, nil)
	res := c.runCycle(context.Background())
	if res.checked != 6 || res.updated != 5 || res.failed != 0 {
		t.Fatalf("cycle = %+v, want 6 checked, 5 updated, 0 failed", res)
	}
	for name, want := range map[string]string{"range": "1.2.0", "tilde": "1.0.0", "pre": "2.0.0-rc.1", "oci": "1.2.0", "build": "0.2.0+build.7", "not-opted-in": "1.0.0"} {
		if got := revision(k.getApp(t, name), -1); got != want {
			t.Errorf("%s: targetRevision = %q, want %q", name, got, want)
		}
	}
	multi := k.getApp(t, "multi")
	if revision(multi, 1) != "1.2.0" || revision(multi, 0) != "main" {
		t.Errorf("multi: sources = %q, %q; want main, 1.2.0", revision(multi, 0), revision(multi, 1))
	}
	if n := ct.listings(repo); n != 1 {
		t.Errorf("tag listings of %s in one cycle = %d, want 1 (5 Applications share it)", repo, n)
	}
	if !strings.Contains(logs.String(), "from=1.0.0 to=1.2.0") {
		t.Errorf("log does not say old -> new:\n%s", logs.String())
	}
	// An Event on the Application says what moved.
	evs := k.events(t, "range")
	if len(evs) != 1 || evs[0].Reason != reasonUpdated || !strings.Contains(evs[0].Message, "1.0.0 -> 1.2.0") || evs[0].InvolvedObject.Kind != "Application" {
		t.Errorf("events on range = %+v, want one %s saying 1.0.0 -> 1.2.0", evs, reasonUpdated)
	}

	// Level-based: a second cycle writes nothing and lists each repository once more.
	before := k.getApp(t, "range").ResourceVersion
	waitCached(t, c, k.ns, "range", before)
	res = c.runCycle(context.Background())
	if res.updated != 0 || res.failed != 0 {
		t.Fatalf("second cycle = %+v, want no updates", res)
	}
	if after := k.getApp(t, "range").ResourceVersion; after != before {
		t.Errorf("second cycle rewrote the Application (resourceVersion %s -> %s)", before, after)
	}
	if n := ct.listings(repo); n != 2 {
		t.Errorf("tag listings after two cycles = %d, want 2", n)
	}
}

func TestNoDowngradeUnlessAllowed(t *testing.T) {
	k := newKubeEnv(t)
	repo := testenv.Repo(t, "app")
	publishSeries(t, repo)
	pushBundle(t, repo, "2.0.0", t0.Add(5*time.Hour))
	k.app(t, "keep", map[string]string{AnnotationChartVersion: "<2"}, helmSource(repo, "2.0.0"))
	k.app(t, "force", map[string]string{AnnotationChartVersion: "<2", AnnotationForceUpdate: "true"}, helmSource(repo, "2.0.0"))
	k.app(t, "downgrade", map[string]string{AnnotationChartVersion: "<2", AnnotationAllowDowngrade: "true"}, helmSource(repo, "2.0.0"))
	k.app(t, "allow", map[string]string{AnnotationChartVersion: "1.x", AnnotationAllowTags: `regexp:^1\.1\.`}, helmSource(repo, "1.0.0"))
	k.app(t, "ignore", map[string]string{AnnotationChartVersion: "1.x", AnnotationIgnoreTags: "1.2.*, 9.*"}, helmSource(repo, "1.0.0"))
	k.app(t, "alpha", map[string]string{AnnotationChartVersion: "", AnnotationUpdateStrategy: "name", AnnotationAllowTags: "regexp:^1"}, ociSource(repo, "1.0.0"))

	c, _, _ := k.startController(t, nil)
	if res := c.runCycle(context.Background()); res.failed != 0 {
		t.Fatalf("cycle = %+v", res)
	}
	// force-update keeps upstream's meaning (update an image not in use yet), which always
	// holds for a bundle source: it does not allow going back; strata.dev/allow-downgrade does.
	for name, want := range map[string]string{"keep": "2.0.0", "force": "2.0.0", "downgrade": "1.2.0", "allow": "1.1.0", "ignore": "1.1.0", "alpha": "1.2.0"} {
		if got := revision(k.getApp(t, name), -1); got != want {
			t.Errorf("%s: targetRevision = %q, want %q", name, got, want)
		}
	}
	if evs := k.events(t, "force"); len(evs) != 1 || evs[0].Reason != reasonIgnored || !strings.Contains(evs[0].Message, AnnotationAllowDowngrade) {
		t.Errorf("force: events %+v, want one %s pointing at %s", evs, reasonIgnored, AnnotationAllowDowngrade)
	}
}

func TestNewestBuildAndDigest(t *testing.T) {
	k := newKubeEnv(t)
	repo := testenv.Repo(t, "app")
	// Creation order differs from version and name order.
	pushBundleTag(t, repo, "0.0.0-a", "zeta", t0)
	pushBundleTag(t, repo, "0.0.0-b", "alpha", t0.Add(2*time.Hour))
	pushBundleTag(t, repo, "0.0.0-c", "mid", t0.Add(time.Hour))
	d1 := pushBundleTag(t, repo, "0.0.1", "latest", t0)

	k.app(t, "newest", map[string]string{AnnotationChartVersion: "", AnnotationUpdateStrategy: "latest", AnnotationIgnoreTags: "latest"}, ociSource(repo, "zeta"))
	k.app(t, "digest", map[string]string{AnnotationBundleConstraint: "latest", AnnotationUpdateStrategy: "digest"}, ociSource(repo, "latest"))

	c, _, _ := k.startController(t, nil)
	if res := c.runCycle(context.Background()); res.failed != 0 || res.updated != 2 {
		t.Fatalf("cycle = %+v, want 2 updated", res)
	}
	if got := revision(k.getApp(t, "newest"), -1); got != "alpha" {
		t.Errorf("newest-build: targetRevision = %q, want alpha (created last)", got)
	}
	if got := revision(k.getApp(t, "digest"), -1); got != d1 {
		t.Errorf("digest: targetRevision = %q, want %s", got, d1)
	}

	// Re-point latest: the digest Application follows; newest-build never goes back to an older build.
	d2 := pushBundleTag(t, repo, "0.0.2", "latest", t0.Add(3*time.Hour))
	waitCached(t, c, k.ns, "digest", k.getApp(t, "digest").ResourceVersion)
	waitCached(t, c, k.ns, "newest", k.getApp(t, "newest").ResourceVersion)
	if res := c.runCycle(context.Background()); res.failed != 0 || res.updated != 1 {
		t.Fatalf("second cycle = %+v, want 1 updated", res)
	}
	if got := revision(k.getApp(t, "digest"), -1); got != d2 || d1 == d2 {
		t.Errorf("digest after re-point: targetRevision = %q, want %s (was %s)", got, d2, d1)
	}
	if got := revision(k.getApp(t, "newest"), -1); got != "alpha" {
		t.Errorf("newest-build after re-point: %q, want alpha", got)
	}
}

// A concurrent edit of the same Application between the controller's read and its write
// survives, and the update still lands.
func TestConcurrentEditSurvives(t *testing.T) {
	k := newKubeEnv(t)
	repo := testenv.Repo(t, "app")
	publishSeries(t, repo)
	k.app(t, "race", map[string]string{AnnotationChartVersion: "1.x"}, helmSource(repo, "1.0.0"))
	c, _, logs := k.startController(t, nil)

	edits := 0
	c.beforeWrite = func(app *unstructured.Unstructured) {
		if edits > 0 {
			return
		}
		edits++
		// Another actor edits another field (and a label) after the controller read the object.
		patch := `{"metadata":{"labels":{"team":"blue"}},"spec":{"destination":{"namespace":"edited"}}}`
		if _, err := k.argo.ArgoprojV1alpha1().Applications(app.GetNamespace()).Patch(context.Background(), app.GetName(), types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Errorf("concurrent edit: %v", err)
		}
	}
	if res := c.runCycle(context.Background()); res.updated != 1 || res.failed != 0 {
		t.Fatalf("cycle = %+v, want 1 updated", res)
	}
	got := k.getApp(t, "race")
	if got.Spec.Source.TargetRevision != "1.2.0" || got.Spec.Destination.Namespace != "edited" || got.Labels["team"] != "blue" {
		t.Errorf("after race: targetRevision=%q destination.namespace=%q labels=%v; want 1.2.0, edited, team=blue",
			got.Spec.Source.TargetRevision, got.Spec.Destination.Namespace, got.Labels)
	}
	if !strings.Contains(logs.String(), "re-reading") {
		t.Errorf("the write did not meet the conflict:\n%s", logs.String())
	}
}

// A bad annotation or an unreachable registry: clear error in the log, a Warning Event, the
// error metric; the Application is untouched and the others still move.
func TestErrorsAreReportedAndControllerGoesOn(t *testing.T) {
	k := newKubeEnv(t)
	repo := testenv.Repo(t, "app")
	publishSeries(t, repo)
	k.app(t, "bad", map[string]string{AnnotationChartVersion: "not a constraint!!"}, helmSource(repo, "1.0.0"))
	k.app(t, "bad-strategy", map[string]string{AnnotationChartVersion: "1.x", AnnotationUpdateStrategy: "random"}, helmSource(repo, "1.0.0"))
	k.app(t, "down", map[string]string{AnnotationChartVersion: "1.x"}, helmSource("127.0.0.1:1/strata-test/nowhere", "1.0.0"))
	k.app(t, "nosecret", map[string]string{AnnotationChartVersion: "1.x", AnnotationPullSecret: "pullsecret:" + k.ns + "/missing"}, helmSource(repo, "1.0.0"))
	k.app(t, "good", map[string]string{AnnotationChartVersion: "1.x"}, helmSource(repo, "1.0.0"))

	c, _, logs := k.startController(t, nil)
	res := c.runCycle(context.Background())
	if res.failed != 4 || res.updated != 1 {
		t.Fatalf("cycle = %+v, want 4 failed, 1 updated", res)
	}
	if got := revision(k.getApp(t, "good"), -1); got != "1.2.0" {
		t.Errorf("good: %q, want 1.2.0", got)
	}
	for name, reason := range map[string]string{"bad": reasonInvalid, "bad-strategy": reasonInvalid, "down": reasonRegistry, "nosecret": reasonRegistry} {
		a := k.getApp(t, name)
		if a.Spec.Source.TargetRevision != "1.0.0" {
			t.Errorf("%s was touched: %q", name, a.Spec.Source.TargetRevision)
		}
		evs := k.events(t, name)
		if len(evs) != 1 || evs[0].Type != "Warning" || evs[0].Reason != reason {
			t.Errorf("%s: events %+v, want one Warning %s", name, evs, reason)
		}
	}
	l := logs.String()
	for _, want := range []string{`annotation argocd-image-updater.argoproj.io/chart-version: semver constraint \"not a constraint!!\"`, `unknown strategy \"random\"`, "127.0.0.1:1", "missing"} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %q:\n%s", want, l)
		}
	}
	// The same error is not repeated as a new Event every cycle; metrics count every failure.
	c.runCycle(context.Background())
	if evs := k.events(t, "bad"); len(evs) != 1 {
		t.Errorf("bad: %d events after two cycles, want 1", len(evs))
	}
	if got := metricValue(t, c, `strata_image_updater_errors_total{reason="InvalidBundleAnnotation"}`); got != "4" {
		t.Errorf("errors metric = %q, want 4", got)
	}
	// Registry down and the missing pull secret: two per cycle, counted under the registry reason.
	if got := metricValue(t, c, `strata_image_updater_errors_total{reason="`+reasonRegistry+`"}`); got != "4" {
		t.Errorf("registry errors metric = %q, want 4", got)
	}
}

// The per-registry rate limit throttles real requests: at 4 requests per second (burst 4), the
// 6 listings of a cycle over 6 repositories cannot finish in under 500 ms (a lower bound, not a
// speed target), and every Application is still updated.
func TestRateLimitThrottlesRegistryRequests(t *testing.T) {
	k := newKubeEnv(t)
	var repos []string
	for i := range 6 {
		repo := testenv.Repo(t, fmt.Sprintf("rl%d", i))
		pushBundle(t, repo, "1.0.0", t0)
		pushBundle(t, repo, "1.1.0", t0.Add(time.Hour))
		k.app(t, fmt.Sprintf("rl%d", i), map[string]string{AnnotationChartVersion: "1.x"}, helmSource(repo, "1.0.0"))
		repos = append(repos, repo)
	}
	c, ct, _ := k.startController(t, func(o *Options) {
		o.Registries = RegistriesConfig{Registries: []RegistryConfig{{Name: hostOf(repos[0]), Limit: 4}}}
	})
	start := time.Now()
	res := c.runCycle(context.Background())
	took := time.Since(start)
	if res.updated != 6 || res.failed != 0 {
		t.Fatalf("cycle = %+v, want 6 updated", res)
	}
	n := ct.total()
	// rate.Limiter: the first 4 pass at once, then one every 250 ms.
	if minimum := time.Duration(n-4) * 250 * time.Millisecond; took < minimum*9/10 {
		t.Errorf("%d requests in %v at 4 rps: want at least %v (not throttled)", n, took, minimum)
	}
	t.Logf("%d registry requests in %v at 4 rps", n, took)
}

// The update writes only targetRevision: every other field of the Application, whether Strata
// reads it or not (ignoreDifferences, info, syncPolicy, a plugin's env, Helm valuesObject with
// arbitrary content, status, other sources), reads back byte for byte the same.
func TestUpdateKeepsEveryOtherField(t *testing.T) {
	k := newKubeEnv(t)
	repo := testenv.Repo(t, "keep")
	publishSeries(t, repo)
	i := strings.LastIndex(repo, "/")
	raw := fmt.Sprintf(`{
  "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
  "metadata": {"name": "keep", "namespace": %q,
    "labels": {"team": "blue"},
    "annotations": {%q: "1.x", "notes.example.com/owner": "ops"}},
  "spec": {
    "project": "default",
    "destination": {"server": "https://kubernetes.default.svc", "namespace": "demo"},
    "sources": [
      {"repoURL": "https://git.example.com/values.git", "targetRevision": "main", "ref": "values"},
      {"repoURL": %q, "chart": %q, "targetRevision": "1.0.0", "name": "bundle",
       "helm": {"releaseName": "shop", "valueFiles": ["$values/prod.yaml"], "skipCrds": true,
         "valuesObject": {"replicas": 3, "ratio": 0.25, "nested": {"list": [1, "two", null, {"deep": true}]}, "empty": {}}}},
      {"repoURL": "https://git.example.com/cfg.git", "path": "cfg", "targetRevision": "v2",
       "plugin": {"name": "strata", "env": [{"name": "VALUES", "value": "a: 1"}],
         "parameters": [{"name": "set", "map": {"x": "1"}}, {"name": "arr", "array": []}]}}
    ],
    "ignoreDifferences": [{"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]},
      {"kind": "Secret", "jqPathExpressions": [".data"], "managedFieldsManagers": ["kube-controller-manager"]}],
    "info": [{"name": "Runbook", "value": "https://runbooks.example.com/shop"}],
    "revisionHistoryLimit": 3,
    "syncPolicy": {"automated": {"prune": true, "selfHeal": true},
      "syncOptions": ["CreateNamespace=true", "ServerSideApply=true"],
      "retry": {"limit": 5, "backoff": {"duration": "5s", "factor": 2, "maxDuration": "3m"}},
      "managedNamespaceMetadata": {"labels": {"env": "prod"}}}
  },
  "status": {"sync": {"status": "Synced", "revisions": ["abc", "1.0.0", "v2"]},
    "health": {"status": "Healthy"}, "sourceTypes": ["Directory", "Helm", "Plugin"],
    "reconciledAt": "2026-01-02T03:04:05Z"}
}`, k.ns, AnnotationChartVersion, repo[:i], repo[i+1:])
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(k.cfg)
	if err != nil {
		t.Fatal(err)
	}
	res := dyn.Resource(applications).Namespace(k.ns)
	ctx := context.Background()
	before, err := res.Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create Application: %v", err)
	}
	// The apiserver kept what the test wrote (the fields exist in Argo CD's CRD).
	for _, path := range [][]string{{"spec", "ignoreDifferences"}, {"spec", "info"}, {"status", "reconciledAt"}, {"spec", "syncPolicy", "managedNamespaceMetadata"}} {
		if _, found, _ := unstructured.NestedFieldNoCopy(before.Object, path...); !found {
			t.Fatalf("the apiserver dropped %s: the test checks nothing", strings.Join(path, "."))
		}
	}

	c, _, _ := k.startController(t, nil)
	if r := c.runCycle(ctx); r.updated != 1 || r.failed != 0 {
		t.Fatalf("cycle = %+v, want 1 updated", r)
	}
	after, err := res.Get(ctx, "keep", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srcs, _, _ := unstructured.NestedSlice(after.Object, "spec", "sources")
	if len(srcs) != 3 || srcs[1].(map[string]any)["targetRevision"] != "1.2.0" {
		t.Fatalf("sources after the update: %v, want the bundle source at 1.2.0", srcs)
	}
	// Apart from targetRevision and what the apiserver maintains, nothing changed.
	srcs[1].(map[string]any)["targetRevision"] = "1.0.0"
	if err := unstructured.SetNestedSlice(after.Object, srcs, "spec", "sources"); err != nil {
		t.Fatal(err)
	}
	for _, o := range []*unstructured.Unstructured{before, after} {
		for _, f := range []string{"resourceVersion", "generation", "managedFields"} {
			unstructured.RemoveNestedField(o.Object, "metadata", f)
		}
	}
	wantJSON, err := json.Marshal(before.Object)
	if err != nil {
		t.Fatal(err)
	}
	gotJSON, err := json.Marshal(after.Object)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Errorf("fields other than targetRevision changed:\n before %s\n after  %s", wantJSON, gotJSON)
	}
}
