package imageupdater

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"

	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/manifests"
)

// renderManifests renders manifests/image-updater through an overlay (what `kubectl kustomize`
// does) and decodes every object strictly into its real Go type.
func renderManifests(t *testing.T, overlay string) []runtime.Object {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "base"), manifests.ImageUpdater()); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "overlay"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "overlay", "kustomization.yaml"), []byte(overlay), 0o644); err != nil {
		t.Fatal(err)
	}
	return testenv.DecodeStrict(t, testenv.Kustomize(t, filepath.Join(dir, "overlay")))
}

func TestManifestsRenderDecodeAndApply(t *testing.T) {
	objs := renderManifests(t, "resources: [../base]\n")
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[fmt.Sprintf("%T", o)]++
		switch o := o.(type) {
		case *appsv1.Deployment:
			c := o.Spec.Template.Spec.Containers[0]
			if !slices.Equal(c.Args[:2], []string{"image-updater", "run"}) || o.Namespace != "argocd" || o.Spec.Template.Spec.ServiceAccountName != "strata-image-updater" {
				t.Errorf("deployment: args %v namespace %q sa %q", c.Args, o.Namespace, o.Spec.Template.Spec.ServiceAccountName)
			}
		case *rbacv1.ClusterRole:
			for _, r := range o.Rules {
				if slices.Contains(r.Resources, "secrets") || slices.Contains(r.Verbs, "*") || slices.Contains(r.Resources, "*") {
					t.Errorf("base ClusterRole is not least-privilege: %+v", r)
				}
			}
		}
	}
	want := map[string]int{"*v1.ServiceAccount": 1, "*v1.ClusterRole": 1, "*v1.ClusterRoleBinding": 1, "*v1.Deployment": 1, "*v1.Service": 1}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Errorf("rendered kinds %v, want %v", kinds, want)
	}

	// Server-side dry-run of every object on the test apiserver.
	k := newKubeEnv(t)
	objs = renderManifests(t, fmt.Sprintf("resources: [../base]\ncomponents: [../base/pull-secrets]\nnamespace: %s\nnameSuffix: \"-%s\"\n", k.ns, k.ns[len(k.ns)-8:]))
	ctx := context.Background()
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *corev1.ServiceAccount:
			_, err = k.kube.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, dry)
		case *corev1.Service:
			_, err = k.kube.CoreV1().Services(o.Namespace).Create(ctx, o, dry)
		case *appsv1.Deployment:
			_, err = k.kube.AppsV1().Deployments(o.Namespace).Create(ctx, o, dry)
		case *rbacv1.ClusterRole:
			_, err = k.kube.RbacV1().ClusterRoles().Create(ctx, o, dry)
		case *rbacv1.ClusterRoleBinding:
			_, err = k.kube.RbacV1().ClusterRoleBindings().Create(ctx, o, dry)
		default:
			t.Errorf("unexpected object %T", o)
		}
		if err != nil {
			t.Errorf("server-side dry run of %T: %v", o, err)
		}
	}
}

// The RBAC in the manifests covers every call the controller makes: it runs a cycle (informer
// list/watch, pull secret, patch, Event) as the manifests' ServiceAccount.
func TestManifestsRBACCoversController(t *testing.T) {
	k := newKubeEnv(t)
	objs := renderManifests(t, fmt.Sprintf("resources: [../base]\ncomponents: [../base/pull-secrets]\nnamespace: %s\nnameSuffix: \"-%s\"\n", k.ns, k.ns[len(k.ns)-8:]))
	ctx := context.Background()
	var sa string
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *corev1.ServiceAccount:
			sa = o.Name
			_, err = k.kube.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRole:
			_, err = k.kube.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
			t.Cleanup(func() {
				_ = k.kube.RbacV1().ClusterRoles().Delete(context.Background(), o.Name, metav1.DeleteOptions{})
			})
		case *rbacv1.ClusterRoleBinding:
			if len(o.Subjects) != 1 || o.Subjects[0].Namespace != k.ns || !strings.HasPrefix(o.RoleRef.Name, "strata-image-updater") {
				t.Fatalf("binding %s: subjects %+v roleRef %+v", o.Name, o.Subjects, o.RoleRef)
			}
			_, err = k.kube.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
			t.Cleanup(func() {
				_ = k.kube.RbacV1().ClusterRoleBindings().Delete(context.Background(), o.Name, metav1.DeleteOptions{})
			})
		}
		if err != nil {
			t.Fatalf("create %T: %v", o, err)
		}
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "regcred", Namespace: k.ns},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{".dockerconfigjson": []byte(`{"auths":{"` + testenv.Registry(t) + `":{"username":"u","password":"p"}}}`)},
	}
	if _, err := k.kube.CoreV1().Secrets(k.ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	repo := testenv.Repo(t, "app")
	publishSeries(t, repo)
	k.app(t, "rbac", map[string]string{AnnotationChartVersion: "1.x", AnnotationPullSecret: "pullsecret:" + k.ns + "/regcred"}, helmSource(repo, "1.0.0"))

	asSA := rest.CopyConfig(k.cfg)
	asSA.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + k.ns + ":" + sa}
	c, _, logs := k.startController(t, func(o *Options) { o.RestConfig = asSA })
	if res := c.runCycle(ctx); res.updated != 1 || res.failed != 0 {
		t.Fatalf("cycle as %s = %+v, want 1 updated", sa, res)
	}
	if evs := k.events(t, "rbac"); len(evs) != 1 {
		t.Errorf("events = %d, want 1", len(evs))
	}
	if strings.Contains(logs.String(), "forbidden") {
		t.Errorf("forbidden calls:\n%s", logs.String())
	}
}
