package argocdtest

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/yaml"

	"strata.dev/strata/bundle"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// One Argo CD for the package, started by the first test that needs it.
var shared struct {
	once sync.Once
	a    *ArgoCD
	err  error
	took time.Duration
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.a != nil {
		if code != 0 {
			shared.a.KeepDir = true
			fmt.Fprintf(os.Stderr, "Argo CD logs kept in %s/log\n", shared.a.Dir)
		}
		shared.a.Stop()
	}
	os.Exit(code)
}

func argoCD(t testing.TB) *ArgoCD {
	t.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		shared.a, shared.err = Start(ctx, Options{Log: slog.New(slog.NewTextHandler(os.Stderr, nil))})
		shared.took = time.Since(start)
	})
	if errors.Is(shared.err, ErrMissing) {
		testenv.Missing(t, "real Argo CD", shared.err)
	}
	if shared.err != nil {
		t.Fatalf("starting Argo CD: %v", shared.err)
	}
	t.Logf("Argo CD started in %s (namespace %s)", shared.took.Round(time.Millisecond), shared.a.Namespace)
	return shared.a
}

const gitURL = "https://git.example.com/team/shop.git"

// published is a bundle in the test registry.
type published struct {
	base   string // REGISTRY/strata-test/<unique>: the Helm-OCI repoURL
	chart  string // bundle
	commit string
	res    *bundle.PublishResult
}

// publish publishes the chart dir as REGISTRY/strata-test/<unique>/bundle:version.
func publish(t testing.TB, chartDir, version string, skipRenderCheck bool) published {
	t.Helper()
	return republish(t, published{base: testenv.Repo(t, "bundles"), chart: "bundle"}, chartDir, version,
		strings.Repeat("c0ffee", 7)[:40], false, skipRenderCheck)
}

// republish publishes into p's repository for commit; force replaces an existing version.
func republish(t testing.TB, p published, chartDir, version, commit string, force, skipRenderCheck bool) published {
	t.Helper()
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	res, err := bundle.Publish(context.Background(), bundle.PublishOptions{
		Repo: p.base + "/" + p.chart, Version: version, ChartDir: chartDir,
		Report: &stages.Report{Project: "shop", Repo: p.base + "/shop", Commit: commit},
		Commit: bundle.Commit{Hash: commit, Date: at.Format(time.RFC3339)}, Branch: "main",
		GitURL: gitURL, SkipRenderCheck: skipRenderCheck, Force: force,
		Now: func() time.Time { return at },
	})
	if err != nil {
		t.Fatalf("publish %s %s: %v", chartDir, version, err)
	}
	p.commit, p.res = commit, res
	return p
}

// helmSource is a Helm-OCI source (chart:) rendered by the strata plugin, and registers the
// repository the way Argo CD documents it for Helm-OCI: type helm, enableOCI.
func (p published) helmSource(t testing.TB, a *ArgoCD) *v1alpha1.ApplicationSource {
	t.Helper()
	if err := a.AddRepository(context.Background(), testenv.UniqueName(t, "repo"), map[string]string{
		"type": "helm", "name": "bundles", "url": p.base, "enableOCI": "true", "insecureOCIForceHttp": "true",
	}); err != nil {
		t.Fatal(err)
	}
	return &v1alpha1.ApplicationSource{
		RepoURL: p.base, Chart: p.chart, TargetRevision: p.res.Version,
		Plugin: &v1alpha1.ApplicationSourcePlugin{Name: "strata"},
	}
}

// ociSource is an oci:// source (Argo CD ≥ 3.1) rendered by the strata plugin; its repository is
// of type oci.
func (p published) ociSource(t testing.TB, a *ArgoCD) *v1alpha1.ApplicationSource {
	t.Helper()
	url := "oci://" + p.base + "/" + p.chart
	if err := a.AddRepository(context.Background(), testenv.UniqueName(t, "repo"), map[string]string{
		"type": "oci", "name": "bundle", "url": url, "insecureOCIForceHttp": "true",
	}); err != nil {
		t.Fatal(err)
	}
	return &v1alpha1.ApplicationSource{
		RepoURL: url, Path: ".", TargetRevision: p.res.Version,
		Plugin: &v1alpha1.ApplicationSourcePlugin{Name: "strata"},
	}
}

// createApp creates an auto-syncing Application in namespace ns (a control-plane or an allowed
// app namespace) deploying src to a fresh destination namespace, which it returns.
func createApp(t testing.TB, a *ArgoCD, ns, name string, src *v1alpha1.ApplicationSource) (dest string) {
	t.Helper()
	ctx := context.Background()
	dest = testenv.UniqueName(t, "dest")
	if _, err := a.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: dest}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	app := &v1alpha1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.ApplicationSpec{
			Project:     "default",
			Source:      src,
			Destination: v1alpha1.ApplicationDestination{Server: "https://kubernetes.default.svc", Namespace: dest},
			SyncPolicy:  &v1alpha1.SyncPolicy{Automated: &v1alpha1.SyncPolicyAutomated{Prune: true}},
		},
	}
	if _, err := a.Argo.ArgoprojV1alpha1().Applications(ns).Create(ctx, app, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Application %s/%s: %v", ns, name, err)
	}
	t.Cleanup(func() {
		_ = a.Argo.ArgoprojV1alpha1().Applications(ns).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return dest
}

// waitApp polls the Application until done says so, failing the test after 2 minutes with its
// status and the tails of Argo CD's logs.
func waitApp(t testing.TB, a *ArgoCD, ns, name, what string, done func(*v1alpha1.Application) bool) *v1alpha1.Application {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	app := &v1alpha1.Application{}
	for time.Now().Before(deadline) {
		got, err := a.Argo.ArgoprojV1alpha1().Applications(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Logf("get Application %s/%s: %v (retrying)", ns, name, err)
		} else if app = got; done(app) {
			return app
		}
		time.Sleep(200 * time.Millisecond)
	}
	status, _ := yaml.Marshal(app.Status)
	t.Fatalf("Application %s/%s: not %s in 2 min; status:\n%s\nrepo-server:%s\ncontroller:%s\ncmp-server:%s", ns, name, what, status,
		a.LogTail("argocd-repo-server", 15), a.LogTail("argocd-application-controller", 15), a.LogTail("argocd-cmp-server", 15))
	return nil
}

// syncedAt: the Application is Synced on revision rev (any if empty) and its last sync succeeded.
func syncedAt(rev string) func(*v1alpha1.Application) bool {
	return func(app *v1alpha1.Application) bool {
		op := app.Status.OperationState
		return app.Status.Sync.Status == v1alpha1.SyncStatusCodeSynced &&
			(rev == "" || app.Status.Sync.Revision == rev) &&
			op != nil && op.Phase == "Succeeded" && (rev == "" || op.SyncResult != nil && op.SyncResult.Revision == rev)
	}
}

// checkLive checks the objects the sync created: the ConfigMap's data and, on every object, the
// commit annotations and Argo CD links Strata adds.
func checkLive(t testing.TB, a *ArgoCD, dest, release, greeting, commit string) {
	t.Helper()
	ctx := context.Background()
	cm, err := a.Kube.CoreV1().ConfigMaps(dest).Get(ctx, release+"-config", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("live ConfigMap: %v", err)
	}
	if cm.Data["greeting"] != greeting || cm.Data["release"] != release {
		t.Errorf("live ConfigMap data %v, want greeting %q and release %q", cm.Data, greeting, release)
	}
	dep, err := a.Kube.AppsV1().Deployments(dest).Get(ctx, release, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("live Deployment: %v", err)
	}
	for _, obj := range []metav1.Object{cm, dep} {
		an := obj.GetAnnotations()
		if an[bundle.AnnotationCommit] != commit {
			t.Errorf("%s: %s = %q, want %s", obj.GetName(), bundle.AnnotationCommit, an[bundle.AnnotationCommit], commit)
		}
		if link := an[bundle.AnnotationLinkCommit]; !strings.Contains(link, commit) || !strings.HasPrefix(link, "https://git.example.com/team/shop") {
			t.Errorf("%s: %s = %q, want a link to commit %s", obj.GetName(), bundle.AnnotationLinkCommit, link, commit)
		}
		if an[bundle.AnnotationGit] == "" || an[bundle.AnnotationBundle] == "" {
			t.Errorf("%s: annotations %v lack %s or %s", obj.GetName(), an, bundle.AnnotationGit, bundle.AnnotationBundle)
		}
	}
}

// comparisonError waits for the Application's ComparisonError condition and returns its message.
func comparisonError(t testing.TB, a *ArgoCD, ns, name string) string {
	t.Helper()
	var msg string
	waitApp(t, a, ns, name, "in ComparisonError", func(app *v1alpha1.Application) bool {
		for _, c := range app.Status.Conditions {
			if c.Type == v1alpha1.ApplicationConditionComparisonError {
				msg = c.Message
				return true
			}
		}
		return false
	})
	return msg
}

// refresh asks the controller for a hard refresh and waits until it has been done.
func refresh(t testing.TB, a *ArgoCD, ns, name string) *v1alpha1.Application {
	t.Helper()
	return refreshKind(t, a, ns, name, "hard")
}

// refreshKind asks for a "normal" or "hard" refresh and waits until it has been done: the
// controller removes the annotation in the same patch that writes the refreshed status
// (persistAppStatus). reconciledAt alone cannot tell: it has a resolution of one second.
func refreshKind(t testing.TB, a *ArgoCD, ns, name, kind string) *v1alpha1.Application {
	t.Helper()
	sent := time.Now().Truncate(time.Second)
	patch := []byte(`{"metadata":{"annotations":{"argocd.argoproj.io/refresh":"` + kind + `"}}}`)
	if _, err := a.Argo.ArgoprojV1alpha1().Applications(ns).Patch(context.Background(), name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	return waitApp(t, a, ns, name, kind+" refreshed", func(app *v1alpha1.Application) bool {
		_, pending := app.Annotations["argocd.argoproj.io/refresh"]
		return !pending && app.Status.ReconciledAt != nil && !app.Status.ReconciledAt.Time.Before(sent)
	})
}

// A Helm-OCI source (chart:) with the strata plugin: the real repo-server pulls the chart with
// helm, hands the directory to the sidecar over the plugin socket, the real controller syncs.
// Two hard refreshes with no change find no difference; plugin env entries (ARGOCD_ENV_*) and
// then plugin parameters change the render and the live objects.
func TestHelmOCISourceSyncs(t *testing.T) {
	t.Parallel()
	a := argoCD(t)
	p := publish(t, "testdata/bundle", "1.0.0", false)
	start := time.Now()
	dest := createApp(t, a, a.Namespace, "shop", p.helmSource(t, a))
	app := waitApp(t, a, a.Namespace, "shop", "Synced on 1.0.0", syncedAt("1.0.0"))
	t.Logf("Helm-OCI source: created → Synced in %s", time.Since(start).Round(time.Millisecond))
	checkLive(t, a, dest, "shop", "hello", p.commit)
	if n := len(app.Status.Resources); n != 2 {
		t.Errorf("Application lists %d resources, want 2 (ConfigMap, Deployment): %+v", n, app.Status.Resources)
	}
	for _, r := range app.Status.Resources {
		if r.Status != v1alpha1.SyncStatusCodeSynced {
			t.Errorf("resource %s/%s: %s, want Synced", r.Kind, r.Name, r.Status)
		}
	}

	// No volatile annotation: refreshing twice without a change finds nothing to sync.
	history := len(app.Status.History)
	for i := 0; i < 2; i++ {
		start := time.Now()
		app = refresh(t, a, a.Namespace, "shop")
		t.Logf("hard refresh %d: %s", i+1, time.Since(start).Round(time.Millisecond))
		if app.Status.Sync.Status != v1alpha1.SyncStatusCodeSynced {
			t.Fatalf("refresh %d: %s, want Synced (a diff without a change)", i+1, app.Status.Sync.Status)
		}
	}
	if len(app.Status.History) != history {
		t.Errorf("refreshes without a change synced again: history %d → %d", history, len(app.Status.History))
	}

	// A plugin env entry (ARGOCD_ENV_SET) changes the render; a parameter (set) wins over it.
	for _, step := range []struct {
		plugin   v1alpha1.ApplicationSourcePlugin
		greeting string
	}{
		{v1alpha1.ApplicationSourcePlugin{Name: "strata", Env: v1alpha1.Env{{Name: "SET", Value: "greeting=from-env"}}}, "from-env"},
		{v1alpha1.ApplicationSourcePlugin{Name: "strata", Env: v1alpha1.Env{{Name: "SET", Value: "greeting=from-env"}},
			Parameters: v1alpha1.ApplicationSourcePluginParameters{{Name: "set", OptionalMap: &v1alpha1.OptionalMap{Map: map[string]string{"greeting": "from-parameter"}}}}}, "from-parameter"},
	} {
		start := time.Now()
		updateApp(t, a, a.Namespace, "shop", func(app *v1alpha1.Application) { app.Spec.Source.Plugin = &step.plugin })
		defer func(greeting string) {
			t.Logf("greeting %s live after %s", greeting, time.Since(start).Round(time.Millisecond))
		}(step.greeting)
		waitApp(t, a, a.Namespace, "shop", "synced with greeting "+step.greeting, func(app *v1alpha1.Application) bool {
			if !syncedAt("1.0.0")(app) {
				return false
			}
			cm, err := a.Kube.CoreV1().ConfigMaps(dest).Get(context.Background(), "shop-config", metav1.GetOptions{})
			return err == nil && cm.Data["greeting"] == step.greeting
		})
		checkLive(t, a, dest, "shop", step.greeting, p.commit)
	}
}

// An oci:// source (Argo CD ≥ 3.1, repository type oci) with the strata plugin: Argo CD resolves
// the tag to the manifest digest, which is the revision the plugin sees and records.
func TestOCISourceSyncs(t *testing.T) {
	t.Parallel()
	a := argoCD(t)
	p := publish(t, "testdata/bundle", "1.0.0", false)
	start := time.Now()
	dest := createApp(t, a, a.Namespace, "shop-oci", p.ociSource(t, a))
	waitApp(t, a, a.Namespace, "shop-oci", "Synced on "+p.res.Digest, syncedAt(p.res.Digest))
	t.Logf("oci:// source: created → Synced in %s", time.Since(start).Round(time.Millisecond))
	checkLive(t, a, dest, "shop-oci", "hello", p.commit)
	cm, err := a.Kube.CoreV1().ConfigMaps(dest).Get(context.Background(), "shop-oci-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := cm.Annotations[bundle.AnnotationBundle]; !strings.Contains(got, p.res.Digest) {
		t.Errorf("%s = %q, want the digest %s Argo CD resolved", bundle.AnnotationBundle, got, p.res.Digest)
	}
}

// An Application outside the control-plane namespace (Applications in any namespace): Argo CD
// names it <namespace>_<name> to the plugin, and the release is still named after the app.
func TestAppInAnyNamespaceSyncs(t *testing.T) {
	t.Parallel()
	a := argoCD(t)
	p := publish(t, "testdata/bundle", "1.0.0", false)
	dest := createApp(t, a, a.AppNamespace, "shop", p.helmSource(t, a))
	waitApp(t, a, a.AppNamespace, "shop", "Synced on 1.0.0", syncedAt("1.0.0"))
	checkLive(t, a, dest, "shop", "hello", p.commit)
}

// A bundle that cannot render: the Application shows a ComparisonError carrying Strata's
// message (what failed and where), and nothing is synced.
func TestBrokenBundleIsAComparisonError(t *testing.T) {
	t.Parallel()
	a := argoCD(t)
	p := publish(t, "testdata/broken", "1.0.0", true)
	dest := createApp(t, a, a.Namespace, "broken", p.helmSource(t, a))
	msg := comparisonError(t, a, a.Namespace, "broken")
	for _, want := range []string{"strata", "templates/broken.yaml", "this bundle is broken on purpose"} {
		if !strings.Contains(msg, want) {
			t.Errorf("ComparisonError lacks %q:\n%s", want, msg)
		}
	}
	cms, err := a.Kube.CoreV1().ConfigMaps(dest).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cm := range cms.Items {
		if cm.Name != "kube-root-ca.crt" {
			t.Errorf("a broken bundle synced %s", cm.Name)
		}
	}
}

// A forced republish of the same version (new commit, same tag): Argo CD keeps serving the
// manifests it cached for that version until a Hard Refresh; after it the Application is
// OutOfSync, but automated sync does not apply a revision it already synced unless selfHeal is
// on. What docs/argocd.md tells operators.
func TestForcedRepublishNeedsHardRefreshAndSelfHeal(t *testing.T) {
	t.Parallel()
	a := argoCD(t)
	p := publish(t, "testdata/bundle", "1.0.0", false)
	dest := createApp(t, a, a.Namespace, "repub", p.helmSource(t, a))
	waitApp(t, a, a.Namespace, "repub", "Synced on 1.0.0", syncedAt("1.0.0"))
	checkLive(t, a, dest, "repub", "hello", p.commit)

	newer := republish(t, p, "testdata/bundle", "1.0.0", strings.Repeat("beef", 10), true, false)
	if newer.res.Digest == p.res.Digest {
		t.Fatalf("forced republish kept digest %s", p.res.Digest)
	}
	app := refreshKind(t, a, a.Namespace, "repub", "normal")
	if app.Status.Sync.Status != v1alpha1.SyncStatusCodeSynced {
		t.Errorf("after a normal refresh: %s, want Synced (manifests cached for 1.0.0)", app.Status.Sync.Status)
	}
	checkLive(t, a, dest, "repub", "hello", p.commit)

	app = refresh(t, a, a.Namespace, "repub")
	if app.Status.Sync.Status != v1alpha1.SyncStatusCodeOutOfSync {
		t.Errorf("after a Hard Refresh: %s, want OutOfSync (the new commit's annotations)", app.Status.Sync.Status)
	}
	time.Sleep(3 * time.Second) // automated sync would have started by now
	checkLive(t, a, dest, "repub", "hello", p.commit)

	start := time.Now()
	defer func() { t.Logf("selfHeal on → new commit live in %s", time.Since(start).Round(time.Millisecond)) }()
	updateApp(t, a, a.Namespace, "repub", func(app *v1alpha1.Application) { app.Spec.SyncPolicy.Automated.SelfHeal = true })
	waitApp(t, a, a.Namespace, "repub", "self-healed to the new commit", func(app *v1alpha1.Application) bool {
		cm, err := a.Kube.CoreV1().ConfigMaps(dest).Get(context.Background(), "repub-config", metav1.GetOptions{})
		return syncedAt("1.0.0")(app) && err == nil && cm.Annotations[bundle.AnnotationCommit] == newer.commit
	})
	checkLive(t, a, dest, "repub", "hello", newer.commit)
}

// A private registry (htpasswd): Argo CD reaches bundles with the credentials of the repository
// Secret types it documents — type helm + enableOCI for a Helm-OCI source, type oci for an
// oci:// source — and a wrong password is a ComparisonError naming the authentication failure.
//
// Not parallel: Publish takes the credentials from DOCKER_CONFIG (registry.Options.Keychain does
// not reach its oras-go client).
func TestPrivateRegistrySyncs(t *testing.T) {
	a := argoCD(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("ci:"+string(hash)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := testenv.StartRegistry(t, "auth:\n  htpasswd: {realm: strata, path: "+htpasswd+"}\n")
	dockerConfig := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("ci:s3cret"))
	if err := os.WriteFile(filepath.Join(dockerConfig, "config.json"), []byte(`{"auths":{"`+reg+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dockerConfig)
	pub := func(name string) published {
		p := published{base: reg + "/strata-test/" + testenv.UniqueName(t, name), chart: "bundle"}
		return republish(t, p, "testdata/bundle", "1.0.0", strings.Repeat("c0ffee", 7)[:40], false, false)
	}
	ctx := context.Background()
	add := func(fields map[string]string) {
		t.Helper()
		if err := a.AddRepository(ctx, testenv.UniqueName(t, "repo"), fields); err != nil {
			t.Fatal(err)
		}
	}
	plugin := &v1alpha1.ApplicationSourcePlugin{Name: "strata"}

	helm := pub("helm")
	add(map[string]string{"type": "helm", "name": "private-helm", "url": helm.base, "enableOCI": "true",
		"insecureOCIForceHttp": "true", "username": "ci", "password": "s3cret"})
	helmDest := createApp(t, a, a.Namespace, "private-helm", &v1alpha1.ApplicationSource{
		RepoURL: helm.base, Chart: "bundle", TargetRevision: "1.0.0", Plugin: plugin})

	oci := pub("oci")
	ociURL := "oci://" + oci.base + "/bundle"
	add(map[string]string{"type": "oci", "name": "private-oci", "url": ociURL,
		"insecureOCIForceHttp": "true", "username": "ci", "password": "s3cret"})
	ociDest := createApp(t, a, a.Namespace, "private-oci", &v1alpha1.ApplicationSource{
		RepoURL: ociURL, Path: ".", TargetRevision: "1.0.0", Plugin: plugin})

	wrong := pub("wrong")
	add(map[string]string{"type": "helm", "name": "private-wrong", "url": wrong.base, "enableOCI": "true",
		"insecureOCIForceHttp": "true", "username": "ci", "password": "not-it"})
	createApp(t, a, a.Namespace, "private-wrong", &v1alpha1.ApplicationSource{
		RepoURL: wrong.base, Chart: "bundle", TargetRevision: "1.0.0", Plugin: plugin})

	waitApp(t, a, a.Namespace, "private-helm", "Synced on 1.0.0", syncedAt("1.0.0"))
	checkLive(t, a, helmDest, "private-helm", "hello", helm.commit)
	waitApp(t, a, a.Namespace, "private-oci", "Synced on "+oci.res.Digest, syncedAt(oci.res.Digest))
	checkLive(t, a, ociDest, "private-oci", "hello", oci.commit)
	msg := comparisonError(t, a, a.Namespace, "private-wrong")
	if !strings.Contains(strings.ToLower(msg), "unauthorized") && !strings.Contains(msg, "401") {
		t.Errorf("wrong password: ComparisonError does not say unauthorized:\n%s", msg)
	}
}

// updateApp changes the named Application with change, re-reading it when the write conflicts: Argo
// CD's controller writes the status of the same object concurrently (a plain Get then Update failed
// with "the object has been modified" under load).
func updateApp(tb testing.TB, a *ArgoCD, ns, name string, change func(*v1alpha1.Application)) {
	tb.Helper()
	apps := a.Argo.ArgoprojV1alpha1().Applications(ns)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := apps.Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(cur)
		_, err = apps.Update(context.Background(), cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		tb.Fatalf("update Application %s/%s: %v", ns, name, err)
	}
}
