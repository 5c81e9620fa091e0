package imageupdater

import (
	"context"
	"strings"
	"testing"
	"text/template"

	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"strata.dev/strata/internal/testing/gitserver"
	"strata.dev/strata/internal/testing/testenv"
)

// gitServer starts a real git server (git http-backend behind basic auth) for one test.
func gitServer(t testing.TB) *gitserver.Server {
	t.Helper()
	srv, err := gitserver.Start(gitserver.Options{})
	if err != nil {
		t.Fatalf("git server: %v", err)
	}
	t.Cleanup(srv.Close)
	return srv
}

func (k *kubeEnv) secret(t testing.TB, name string, data map[string]string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: k.ns}, StringData: data}
	if _, err := k.kube.CoreV1().Secrets(k.ns).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func childManifest(name, ns, repo, rev string) string {
	i := strings.LastIndex(repo, "/")
	return "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: " + name + "\n  namespace: " + ns +
		"\nspec:\n  project: default\n  source:\n    repoURL: " + repo[:i] + "\n    chart: " + repo[i+1:] + "\n    targetRevision: " + rev +
		"  # strata moves this\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: demo\n"
}

// git write-back against a real git server, for an app-of-apps child: the repository, branch
// and directory come from the parent (found through Argo CD's tracking-id annotation); the
// child's own manifest gets the new targetRevision in one commit with upstream's default
// message; the Application in the cluster is left to the parent's sync, which is asked for (the
// parent's refresh annotation). A second cycle commits nothing; a push that loses a race with
// another commit is fetched and applied again, keeping both; helmvalues with base:target
// branches and kustomization targets; an sshPrivateKey Secret is refused by name, and an
// Application with neither a parent nor git-repository is told to name one.
func TestGitWriteBack(t *testing.T) {
	ctx := context.Background()
	k := newKubeEnv(t)
	srv := gitServer(t)
	repo := testenv.Repo(t, "shop")
	pushBundle(t, repo, "1.0.0", t0)
	pushBundle(t, repo, "1.2.0", t0.Add(1))
	url, err := srv.CreateRepo(ctx, "team/gitops", "main", map[string]string{
		"apps/shop.yaml":              childManifest("shop", k.ns, repo, "1.0.0"),
		"apps/web/kustomization.yaml": "resources:\n- web.yaml\n",
		"apps/web/web.yaml":           childManifest("web", k.ns, repo, "1.0.0"),
		"values.yaml":                 "cart:\n  version: 1.0.0\n",
		"README.md":                   "gitops\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	values, err := srv.CreateRepo(ctx, "team/values", "main", map[string]string{"values.yaml": "cart:\n  version: 1.0.0\n"})
	if err != nil {
		t.Fatal(err)
	}
	k.secret(t, "git-creds", map[string]string{"username": srv.Username, "password": srv.Password})
	k.secret(t, "git-ssh", map[string]string{"sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----"})
	// Argo CD's repository Secret for the repository serves plain `git` (repocreds).
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "repo-gitops", Namespace: k.ns, Labels: map[string]string{"argocd.argoproj.io/secret-type": "repository"}},
		StringData: map[string]string{"url": url, "username": srv.Username, "password": srv.Password}}
	if _, err := k.kube.CoreV1().Secrets(k.ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	k.app(t, "root", nil, v1alpha1.ApplicationSource{RepoURL: url, Path: "apps", TargetRevision: "main"})
	tracked := func(name string, ann map[string]string) map[string]string {
		ann[annotationTrackingID] = "root:argoproj.io/Application:" + k.ns + "/" + name
		ann[AnnotationChartVersion] = "1.x"
		return ann
	}
	k.app(t, "shop", tracked("shop", map[string]string{AnnotationWriteBackMethod: "git:secret:" + k.ns + "/git-creds"}), helmSource(repo, "1.0.0"))
	k.app(t, "web", tracked("web", map[string]string{AnnotationWriteBackMethod: "git", AnnotationWriteBackTarget: "kustomization:web"}), helmSource(repo, "1.0.0"))
	k.app(t, "cart", map[string]string{AnnotationChartVersion: "1.x", AnnotationWriteBackMethod: "git:secret:git-creds",
		AnnotationGitRepository: values, AnnotationGitBranch: "main:image-updater-{{.AppName}}", AnnotationWriteBackTarget: "helmvalues:/values.yaml",
		AnnotationWriteBackKey: "cart.version"}, helmSource(repo, "1.0.0"))
	k.app(t, "ssh", tracked("ssh", map[string]string{AnnotationWriteBackMethod: "git:secret:git-ssh"}), helmSource(repo, "1.0.0"))
	k.app(t, "orphan", map[string]string{AnnotationChartVersion: "1.x", AnnotationWriteBackMethod: "git"}, helmSource(repo, "1.0.0"))

	c, _, logs := k.startController(t, func(o *Options) {
		o.GitWorkDir = t.TempDir()
		o.GitCommitUser, o.GitCommitEmail = "bot", "bot@example.com"
	})
	res := c.runCycle(ctx)
	if res.checked != 5 || res.updated != 3 || res.failed != 2 {
		t.Fatalf("cycle = %+v, want 5 checked, 3 updated, 2 failed (ssh, orphan)", res)
	}
	if evs := k.events(t, "orphan"); len(evs) == 0 || !strings.Contains(evs[0].Message, "set "+AnnotationGitRepository) || !strings.Contains(evs[0].Message, "no app-of-apps parent") {
		t.Errorf("orphan events %+v, want one asking for %s", evs, AnnotationGitRepository)
	}
	fileIn := func(repo, branch, p string) string {
		t.Helper()
		s, err := srv.File(ctx, repo, branch, p)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	file := func(branch, p string) string { t.Helper(); return fileIn("team/gitops", branch, p) }
	if got, want := file("main", "apps/shop.yaml"), childManifest("shop", k.ns, repo, "1.2.0"); got != want {
		t.Errorf("apps/shop.yaml:\n%s\nwant:\n%s", got, want)
	}
	var msg, shopCommit string
	log, _ := srv.Log(ctx, "team/gitops", "main")
	for _, l := range log {
		if strings.HasSuffix(l, ": build: automatic update of shop") {
			shopCommit = strings.Fields(l)[0]
		}
	}
	msg, _ = srv.Message(ctx, "team/gitops", shopCommit)
	if who, _ := srv.Author(ctx, "team/gitops", shopCommit); who != "bot <bot@example.com>" {
		t.Errorf("author %q", who)
	}
	if !strings.HasPrefix(msg, "build: automatic update of ") || !strings.Contains(msg, "updates image "+repo+" tag '1.0.0' to '1.2.0'") {
		t.Errorf("commit message %q", msg)
	}
	if k := file("main", "apps/web/kustomization.yaml"); !strings.Contains(k, "name: web") || !strings.Contains(k, `value: "1.2.0"`) {
		t.Errorf("kustomization:\n%s", k)
	}
	if got := fileIn("team/values", "image-updater-cart", "values.yaml"); got != "cart:\n  version: 1.2.0\n" {
		t.Errorf("values.yaml on image-updater-cart = %q", got)
	}
	if got := fileIn("team/values", "main", "values.yaml"); got != "cart:\n  version: 1.0.0\n" {
		t.Errorf("values.yaml on main changed: %q", got)
	}
	for _, name := range []string{"shop", "web", "cart"} {
		if got := revision(k.getApp(t, name), -1); got != "1.0.0" {
			t.Errorf("%s in the cluster: %s; git write-back must leave it to the parent's sync", name, got)
		}
	}
	if k.getApp(t, "root").Annotations["argocd.argoproj.io/refresh"] != "normal" {
		t.Error("the parent was not asked to refresh")
	}
	evs := k.events(t, "ssh")
	if len(evs) == 0 || !strings.Contains(evs[0].Message, "sshPrivateKey") {
		t.Errorf("ssh events %+v, want one naming sshPrivateKey", evs)
	}
	evs = k.events(t, "shop")
	if len(evs) != 1 || !strings.Contains(evs[0].Message, "apps/shop.yaml") {
		t.Errorf("shop events %+v, want one naming the file", evs)
	}

	// Idempotent: the files already say 1.2.0 (the cluster is still behind): no commit.
	main, _ := srv.Log(ctx, "team/gitops", "main")
	pushes := srv.Pushes()
	res = c.runCycle(ctx)
	if res.updated != 0 {
		t.Errorf("second cycle = %+v, want no update", res)
	}
	if after, _ := srv.Log(ctx, "team/gitops", "main"); len(after) != len(main) || srv.Pushes() != pushes {
		t.Errorf("second cycle committed: %d → %d commits, %d → %d pushes", len(main), len(after), pushes, srv.Pushes())
	}

	// A race: someone pushes just before our push. Ours is rejected, fetched, applied again.
	pushBundle(t, repo, "1.3.0", t0.Add(2))
	srv.BeforeNextPush("team/gitops", func() {
		if err := srv.Commit(ctx, "team/gitops", "main", "a colleague's change", map[string]string{"README.md": "changed\n"}); err != nil {
			t.Error(err)
		}
	})
	head, _ := srv.Log(ctx, "team/gitops", "main")
	if res := c.runCycle(ctx); res.updated != 3 {
		t.Errorf("cycle after 1.3.0 = %+v, want 3 updated", res)
	}
	if got := file("main", "apps/shop.yaml"); !strings.Contains(got, "targetRevision: 1.3.0  # strata") {
		t.Errorf("after the race apps/shop.yaml:\n%s", got)
	}
	if got := file("main", "apps/web/kustomization.yaml"); !strings.Contains(got, `value: "1.3.0"`) {
		t.Errorf("after the race kustomization:\n%s", got)
	}
	if file("main", "README.md") != "changed\n" {
		t.Error("the colleague's commit was lost")
	}
	after, _ := srv.Log(ctx, "team/gitops", "main")
	if len(after) != len(head)+3 || !srv.IsAncestor(ctx, "team/gitops", strings.Fields(head[0])[0], "main") {
		t.Errorf("history %q, want 3 new commits on top of %s (no force push)", after, head[0])
	}
	if !strings.Contains(logs.String(), "git push rejected") {
		t.Error("the rejected push was not logged")
	}
}

func TestCommitMessageTemplate(t *testing.T) {
	c := &controller{commitTemplate: template.Must(template.New("c").Parse("chore({{.AppNamespace}}/{{.AppName}}):{{range .AppChanges}} {{.Alias}} {{.OldTag}} -> {{.NewTag}}{{end}}"))}
	app := &unstructured.Unstructured{}
	app.SetName("shop")
	app.SetNamespace("argocd")
	got, err := c.commitMessage(app, commitChange{Image: "r/shop", Alias: "shop", OldTag: "1.0.0", NewTag: "1.1.0"})
	if err != nil || got != "chore(argocd/shop): shop 1.0.0 -> 1.1.0" {
		t.Errorf("message %q, %v", got, err)
	}
	name, err := c.branchName("main-{{.AppName}}-{{range .Images}}{{.NewTag}}{{end}}-{{.SHA256}}", app, commitChange{Image: "r/shop", NewTag: "1.1.0"})
	if err != nil || !strings.HasPrefix(name, "main-shop-1.1.0-") || len(name) != len("main-shop-1.1.0-")+64 {
		t.Errorf("branch %q, %v", name, err)
	}
}
