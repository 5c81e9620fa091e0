package imageupdater

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"strata.dev/strata/internal/testing/argocdtest"
	"strata.dev/strata/internal/testing/gitserver"
	"strata.dev/strata/internal/testing/testenv"
)

// One real Argo CD (with the ApplicationSet controller) for the package, started by the first
// test that needs it and stopped by TestMain.
var sharedArgo struct {
	once sync.Once
	a    *argocdtest.ArgoCD
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if a := sharedArgo.a; a != nil {
		if code != 0 {
			a.KeepDir = true
			fmt.Fprintf(os.Stderr, "Argo CD logs kept in %s/log\n", a.Dir)
		}
		a.Stop()
	}
	os.Exit(code)
}

func argoCD(t *testing.T) *argocdtest.ArgoCD {
	t.Helper()
	sharedArgo.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		sharedArgo.a, sharedArgo.err = argocdtest.Start(ctx, argocdtest.Options{ApplicationSet: true, Log: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	})
	if errors.Is(sharedArgo.err, argocdtest.ErrMissing) {
		testenv.Missing(t, "real Argo CD", sharedArgo.err)
	}
	if sharedArgo.err != nil {
		t.Fatalf("starting Argo CD: %v", sharedArgo.err)
	}
	return sharedArgo.a
}

// argoEnv is the kubeEnv of Argo CD's control-plane namespace: the updater watches it.
func argoEnv(t *testing.T, a *argocdtest.ArgoCD) *kubeEnv {
	cfg := testenv.KubeConfig(t)
	ensureCRD(t, cfg)
	return &kubeEnv{cfg: cfg, kube: a.Kube, argo: a.Argo, ns: a.Namespace}
}

// argoScene is one test's share of the shared Argo CD: the updater's view of its namespace, a
// git server, a bundle repository holding 1.0.0 and 1.2.0, and a suffix for unique names.
func argoScene(t *testing.T) (*argocdtest.ArgoCD, *kubeEnv, *gitserver.Server, string, string) {
	t.Helper()
	a := argoCD(t)
	repo := testenv.Repo(t, "shop")
	pushBundle(t, repo, "1.0.0", t0)
	pushBundle(t, repo, "1.2.0", t0.Add(time.Hour))
	u := testenv.UniqueName(t, "")
	return a, argoEnv(t, a), gitServer(t), repo, u[len(u)-8:]
}

// waitFor polls cond for up to 2 minutes, failing with Argo CD's log tails.
func waitFor(t *testing.T, a *argocdtest.ArgoCD, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 2*time.Minute {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("not %s in 2 min\ncontroller:%s\nrepo-server:%s\napplicationset:%s", what,
		a.LogTail("argocd-application-controller", 20), a.LogTail("argocd-repo-server", 10), a.LogTail("argocd-applicationset-controller", 20))
	return 0
}

func (k *kubeEnv) revisionOf(name string) string {
	a, err := k.argo.ArgoprojV1alpha1().Applications(k.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil || a.Spec.Source == nil {
		return ""
	}
	return a.Spec.Source.TargetRevision
}

func childYAML(name, ns, repo, rev string, ann map[string]string) string {
	i := strings.LastIndex(repo, "/")
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: %s\n  namespace: %s\n  annotations:\n", name, ns)
	for k, v := range ann {
		fmt.Fprintf(&b, "    %s: %q\n", k, v)
	}
	fmt.Fprintf(&b, "spec:\n  project: default\n  source:\n    repoURL: %s\n    chart: %s\n    targetRevision: %s\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: %s\n", repo[:i], repo[i+1:], rev, ns)
	return b.String()
}

// App of apps on a real Argo CD, its parent syncing the children's manifests from a real git
// server: with git write-back the updater commits the child's new targetRevision to the child's
// manifest, the parent syncs it and the child keeps it (another refresh and sync of the parent
// changes nothing). A sibling with the in-cluster method is moved, then put back by the
// parent's self-heal: the revert problem git write-back solves.
func TestAppOfAppsGitWriteBackSticks(t *testing.T) {
	a, k, srv, repo, sfx := argoScene(t)
	ctx := context.Background()
	shop, legacy, root := "shop-"+sfx, "legacy-"+sfx, "root-"+sfx
	url, err := srv.CreateRepo(ctx, "team/gitops", "main", map[string]string{
		"apps/shop.yaml": childYAML(shop, a.Namespace, repo, "1.0.0", map[string]string{
			AnnotationChartVersion: "1.x", AnnotationWriteBackMethod: "git:secret:" + a.Namespace + "/git-creds-" + sfx}),
		"apps/legacy.yaml": childYAML(legacy, a.Namespace, repo, "1.0.0", map[string]string{AnnotationChartVersion: "1.x"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AddRepository(ctx, "gitops-"+sfx, map[string]string{"type": "git", "url": url, "username": srv.Username, "password": srv.Password}); err != nil {
		t.Fatal(err)
	}
	k.secret(t, "git-creds-"+sfx, map[string]string{"username": srv.Username, "password": srv.Password})
	parent := &v1alpha1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: root, Namespace: a.Namespace},
		Spec: v1alpha1.ApplicationSpec{
			Project:     "default",
			Source:      &v1alpha1.ApplicationSource{RepoURL: url, Path: "apps", TargetRevision: "main"},
			Destination: v1alpha1.ApplicationDestination{Server: "https://kubernetes.default.svc", Namespace: a.Namespace},
			SyncPolicy:  &v1alpha1.SyncPolicy{Automated: &v1alpha1.SyncPolicyAutomated{SelfHeal: true}},
		},
	}
	if _, err := a.Argo.ArgoprojV1alpha1().Applications(a.Namespace).Create(ctx, parent, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = a.Argo.ArgoprojV1alpha1().Applications(a.Namespace).Delete(context.Background(), root, metav1.DeleteOptions{})
	})
	took := waitFor(t, a, "children synced by the parent", func() bool { return k.revisionOf(shop) == "1.0.0" && k.revisionOf(legacy) == "1.0.0" })
	t.Logf("parent synced its children in %s", took.Round(time.Millisecond))

	c, _, _ := k.startController(t, func(o *Options) { o.Namespaces = []string{a.Namespace}; o.GitWorkDir = t.TempDir() })
	// The children carry the parent's tracking-id once the informer has them.
	waitFor(t, a, "children tracked in the updater's cache", func() bool {
		app, ok := c.get(a.Namespace + "/" + shop)
		return ok && strings.HasPrefix(app.GetAnnotations()[annotationTrackingID], root+":")
	})
	start := time.Now()
	if res := c.runCycle(ctx); res.updated < 2 {
		t.Fatalf("cycle = %+v, want shop (git) and legacy (in the cluster) updated", res)
	}
	if got, _ := srv.File(ctx, "team/gitops", "main", "apps/shop.yaml"); !strings.Contains(got, "targetRevision: 1.2.0") {
		t.Fatalf("apps/shop.yaml after the cycle:\n%s", got)
	}
	waitFor(t, a, "child moved by the parent's sync of the git write", func() bool { return k.revisionOf(shop) == "1.2.0" })
	t.Logf("git write-back: cycle → child on 1.2.0 after the parent's sync in %s (the parent was asked to refresh)", time.Since(start).Round(time.Millisecond))
	k.movedOnce(t, legacy)
	k.warned(t, legacy, "managed by Application "+a.Namespace+"/"+root)
	took = waitFor(t, a, "in-cluster write reverted by the parent's self-heal", func() bool { return k.revisionOf(legacy) == "1.0.0" })
	t.Logf("in-cluster method: reverted by the parent in %s", took.Round(time.Millisecond))

	// It sticks: a hard refresh and sync of the parent at git's head keep 1.2.0, and the next
	// cycle commits nothing.
	head, _ := srv.Log(ctx, "team/gitops", "main")
	patch := []byte(`{"metadata":{"annotations":{"argocd.argoproj.io/refresh":"hard"}}}`)
	if _, err := a.Argo.ArgoprojV1alpha1().Applications(a.Namespace).Patch(ctx, root, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, a, "parent refreshed and Synced at git's head", func() bool {
		p, err := a.Argo.ArgoprojV1alpha1().Applications(a.Namespace).Get(ctx, root, metav1.GetOptions{})
		_, pending := p.Annotations["argocd.argoproj.io/refresh"]
		return err == nil && !pending && p.Status.Sync.Status == v1alpha1.SyncStatusCodeSynced && strings.HasPrefix(head[0], p.Status.Sync.Revision)
	})
	if got := k.revisionOf(shop); got != "1.2.0" {
		t.Errorf("after the parent's refresh and sync the child says %q, want 1.2.0", got)
	}
	c.runCycle(ctx)
	if after, _ := srv.Log(ctx, "team/gitops", "main"); len(after) != len(head) {
		t.Errorf("the next cycle committed again: %d → %d commits", len(head), len(after))
	}
	if got := k.revisionOf(shop); got != "1.2.0" {
		t.Errorf("child says %q after the next cycle, want 1.2.0", got)
	}
}

// movedOnce checks that the updater did write 1.0.0 -> 1.2.0 into Application name in the
// cluster (its BundleUpdated Event), whatever it says now.
func (k *kubeEnv) movedOnce(t *testing.T, name string) {
	t.Helper()
	for _, e := range k.events(t, name) {
		if e.Reason == reasonUpdated && strings.Contains(e.Message, "1.0.0 -> 1.2.0") && !strings.Contains(e.Message, "written to") {
			return
		}
	}
	t.Errorf("no in-cluster update of %s recorded", name)
}

// warned checks that Application name got a Warning Event saying what (the updater tells that
// an in-cluster write will be reverted).
func (k *kubeEnv) warned(t *testing.T, name, what string) {
	t.Helper()
	for _, e := range k.events(t, name) {
		if e.Reason == reasonIgnored && strings.Contains(e.Message, what) {
			return
		}
	}
	t.Errorf("no Warning Event on %s saying %q", name, what)
}

func (k *kubeEnv) applicationSet(t *testing.T, doc string) {
	t.Helper()
	var as v1alpha1.ApplicationSet
	if err := yaml.Unmarshal([]byte(doc), &as); err != nil {
		t.Fatalf("ApplicationSet: %v\n%s", err, doc)
	}
	as.Namespace = k.ns
	if _, err := k.argo.ArgoprojV1alpha1().ApplicationSets(k.ns).Create(context.Background(), &as, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create ApplicationSet %s: %v", as.Name, err)
	}
	t.Cleanup(func() {
		_ = k.argo.ArgoprojV1alpha1().ApplicationSets(k.ns).Delete(context.Background(), as.Name, metav1.DeleteOptions{})
	})
}

// refreshAppSet asks the ApplicationSet controller to reconcile name now and waits until it
// has (it removes the annotation at the end of the reconciliation).
func (k *kubeEnv) refreshAppSet(t *testing.T, a *argocdtest.ArgoCD, name string) {
	t.Helper()
	patch := []byte(`{"metadata":{"annotations":{"argocd.argoproj.io/application-set-refresh":"true"}}}`)
	if _, err := k.argo.ArgoprojV1alpha1().ApplicationSets(k.ns).Patch(context.Background(), name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, a, "ApplicationSet "+name+" reconciled", func() bool {
		as, err := k.argo.ArgoprojV1alpha1().ApplicationSets(k.ns).Get(context.Background(), name, metav1.GetOptions{})
		_, pending := as.Annotations["argocd.argoproj.io/application-set-refresh"]
		return err == nil && !pending
	})
}

// ApplicationSets on a real Argo CD (argocd-applicationset-controller). In-cluster write-back:
// the controller puts the generated Application's targetRevision back, unless the
// ApplicationSet's ignoreApplicationDifferences covers /spec/source/targetRevision. Git
// write-back through a git files generator: the updater writes the version into the generator's
// config file, asks the ApplicationSet to refresh, and the regenerated Application says it.
func TestApplicationSetWriteBack(t *testing.T) {
	a, k, srv, repo, sfx := argoScene(t)
	ctx := context.Background()
	i := strings.LastIndex(repo, "/")
	url, err := srv.CreateRepo(ctx, "team/appsets", "main", map[string]string{
		"apps/gen-" + sfx + "/config.yaml": "name: gen-" + sfx + "\nversion: 1.0.0\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AddRepository(ctx, "appsets-"+sfx, map[string]string{"type": "git", "url": url, "username": srv.Username, "password": srv.Password}); err != nil {
		t.Fatal(err)
	}
	k.secret(t, "git-creds-"+sfx, map[string]string{"username": srv.Username, "password": srv.Password})
	template := func(annotations string) string {
		return `
  goTemplate: true
  template:
    metadata:
      name: '{{.name}}'
      annotations:
        ` + AnnotationChartVersion + `: "1.x"
` + annotations + `
    spec:
      project: default
      source: {repoURL: ` + repo[:i] + `, chart: ` + repo[i+1:] + `, targetRevision: '{{.version}}'}
      destination: {server: https://kubernetes.default.svc, namespace: ` + a.Namespace + `}`
	}
	list := func(name string) string {
		return `
  generators:
  - list:
      elements:
      - {name: ` + name + `, version: 1.0.0}`
	}
	plain, ignoring, gen := "plain-"+sfx, "ignoring-"+sfx, "gen-"+sfx
	k.applicationSet(t, "metadata: {name: "+plain+"}\nspec:"+list(plain)+template(""))
	k.applicationSet(t, "metadata: {name: "+ignoring+"}\nspec:"+list(ignoring)+template("")+`
  ignoreApplicationDifferences:
  - jsonPointers: [/spec/source/targetRevision]`)
	k.applicationSet(t, "metadata: {name: "+gen+"}\nspec:"+`
  generators:
  - git:
      repoURL: `+url+`
      revision: main
      files: [{path: "apps/*/config.yaml"}]`+template(`        `+AnnotationWriteBackMethod+`: git:secret:git-creds-`+sfx+`
        `+AnnotationGitRepository+`: `+url+`
        `+AnnotationWriteBackTarget+`: 'helmvalues:/{{.path.path}}/config.yaml'
        `+AnnotationWriteBackKey+`: version`))
	took := waitFor(t, a, "Applications generated", func() bool {
		return k.revisionOf(plain) == "1.0.0" && k.revisionOf(ignoring) == "1.0.0" && k.revisionOf(gen) == "1.0.0"
	})
	t.Logf("ApplicationSets generated their Applications in %s", took.Round(time.Millisecond))

	c, _, _ := k.startController(t, func(o *Options) { o.Namespaces = []string{a.Namespace}; o.GitWorkDir = t.TempDir() })
	waitFor(t, a, "generated Applications in the updater's cache", func() bool {
		_, ok1 := c.get(a.Namespace + "/" + plain)
		_, ok2 := c.get(a.Namespace + "/" + gen)
		return ok1 && ok2
	})
	if res := c.runCycle(ctx); res.updated < 3 || res.failed != 0 {
		t.Fatalf("cycle = %+v, want %s, %s (in the cluster) and %s (git) updated", res, plain, ignoring, gen)
	}
	k.movedOnce(t, plain)
	k.warned(t, plain, "generated by ApplicationSet "+plain)
	took = waitFor(t, a, "in-cluster write reverted by the ApplicationSet controller", func() bool { return k.revisionOf(plain) == "1.0.0" })
	t.Logf("in-cluster method without ignoreApplicationDifferences: reverted in %s", took.Round(time.Millisecond))
	k.refreshAppSet(t, a, ignoring)
	if got := k.revisionOf(ignoring); got != "1.2.0" {
		t.Errorf("with ignoreApplicationDifferences on targetRevision the Application says %q after a reconciliation, want 1.2.0", got)
	}
	if got, _ := srv.File(ctx, "team/appsets", "main", "apps/"+gen+"/config.yaml"); got != "name: "+gen+"\nversion: 1.2.0\n" {
		t.Errorf("generator config after the cycle: %q", got)
	}
	took = waitFor(t, a, "Application regenerated from the git write", func() bool { return k.revisionOf(gen) == "1.2.0" })
	t.Logf("git method: regenerated on 1.2.0 in %s (the updater asked the ApplicationSet to refresh)", took.Round(time.Millisecond))
	k.refreshAppSet(t, a, gen)
	if got := k.revisionOf(gen); got != "1.2.0" {
		t.Errorf("after another reconciliation the generated Application says %q, want 1.2.0", got)
	}
}
