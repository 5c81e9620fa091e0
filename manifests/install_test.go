package manifests_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/manifests"
)

// kustomize renders the kustomization in dir with the kustomize API kubectl uses.
func kustomize(t *testing.T, dir string) resmap.ResMap {
	t.Helper()
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	return rm
}

// shipped copies manifests/argocd (as embedded) and manifests/argocd-install side by side into
// a fresh directory and returns the copy of argocd.
func shipped(t *testing.T) string {
	t.Helper()
	top := t.TempDir()
	if err := os.CopyFS(filepath.Join(top, "argocd"), manifests.ArgoCD()); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(top, "argocd-install"), os.DirFS("argocd-install")); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(top, "argocd")
}

// The examples render with kustomize into the two Applications and the repository Secret the
// Helm-OCI one needs, as Argo CD reads repository Secrets.
func TestExamplesKustomization(t *testing.T) {
	rm := kustomize(t, filepath.Join(shipped(t), "examples"))
	var secrets []corev1.Secret
	apps := map[string]v1alpha1.Application{}
	for _, r := range rm.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		switch r.GetKind() {
		case "Secret":
			var s corev1.Secret
			if err := yaml.UnmarshalStrict(b, &s); err != nil {
				t.Fatalf("Secret: %v", err)
			}
			secrets = append(secrets, s)
		case "Application":
			var a v1alpha1.Application
			if err := yaml.UnmarshalStrict(b, &a); err != nil {
				t.Fatalf("Application: %v", err)
			}
			apps[a.Name] = a
		default:
			t.Errorf("unexpected %s %s in the examples", r.GetKind(), r.GetName())
		}
	}
	if len(secrets) != 1 || len(apps) != 2 {
		t.Fatalf("%d Secrets and %d Applications, want 1 and 2", len(secrets), len(apps))
	}
	s := secrets[0]
	var helmOCI *v1alpha1.Application
	for _, a := range apps {
		if a.Namespace != "argocd" {
			t.Errorf("Application %s in namespace %q, want argocd", a.Name, a.Namespace)
		}
		if a.Spec.Source.Chart != "" {
			helmOCI = &a
		}
	}
	if helmOCI == nil {
		t.Fatal("no Helm-OCI (chart:) example")
	}
	// The fields Argo CD's repository Secrets have (util/db: secretToRepository).
	if s.Namespace != "argocd" || s.Labels["argocd.argoproj.io/secret-type"] != "repository" {
		t.Errorf("Secret %s/%s labels %v: Argo CD only reads repository Secrets labelled argocd.argoproj.io/secret-type=repository in its namespace", s.Namespace, s.Name, s.Labels)
	}
	want := map[string]string{"type": "helm", "enableOCI": "true", "url": helmOCI.Spec.Source.RepoURL}
	for k, v := range want {
		if s.StringData[k] != v {
			t.Errorf("Secret %s: %s = %q, want %q", s.Name, k, s.StringData[k], v)
		}
	}
	if s.StringData["name"] == "" {
		t.Errorf("Secret %s has no repository name", s.Name)
	}
	if _, ok := s.StringData["password"]; ok {
		t.Errorf("Secret %s carries a password: credentials stay commented out in the example", s.Name)
	}
}

// argocd-install is Argo CD's install.yaml (the URL pins the Argo CD version of go.mod) with the
// strata component. It renders with the real install.yaml from the Argo CD module in place of
// the URL.
func TestInstallKustomizationPatchesArgoCD(t *testing.T) {
	dir := shipped(t)
	install := installWithModuleManifests(t, dir)
	dep := repoServerOf(t, kustomize(t, install))
	checkSidecar(t, dep)
}

// installWithModuleManifests points argocd-install (beside dir) at the Argo CD module's install.yaml (checking
// that the shipped URL names the module's version) and returns the install directory.
func installWithModuleManifests(t *testing.T, dir string) string {
	t.Helper()
	modDir, err := testenv.ArgoCDModuleDir()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", testenv.ArgoCDModule).Output()
	if err != nil {
		t.Fatal(err)
	}
	version := strings.TrimSpace(string(out))
	install := filepath.Join(filepath.Dir(dir), "argocd-install")
	kpath := filepath.Join(install, "kustomization.yaml")
	k, err := os.ReadFile(kpath)
	if err != nil {
		t.Fatal(err)
	}
	url := "https://raw.githubusercontent.com/argoproj/argo-cd/" + version + "/manifests/install.yaml"
	if !strings.Contains(string(k), "- "+url+"\n") {
		t.Fatalf("argocd-install/kustomization.yaml does not install %s (the Argo CD of go.mod):\n%s", url, k)
	}
	b, err := os.ReadFile(filepath.Join(modDir, "manifests", "install.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(install, "argocd-install.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kpath, []byte(strings.Replace(string(k), url, "argocd-install.yaml", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return install
}

func repoServerOf(t *testing.T, rm resmap.ResMap) *appsv1.Deployment {
	t.Helper()
	for _, r := range rm.Resources() {
		if r.GetKind() == "Deployment" && r.GetName() == "argocd-repo-server" {
			b, err := r.AsYAML()
			if err != nil {
				t.Fatal(err)
			}
			var dep appsv1.Deployment
			if err := yaml.UnmarshalStrict(b, &dep); err != nil {
				t.Fatal(err)
			}
			return &dep
		}
	}
	t.Fatal("no argocd-repo-server Deployment in the rendered install")
	return nil
}

// checkSidecar checks the patched argocd-repo-server: Argo CD's own repo-server container and
// copyutil init container are kept, the strata sidecar runs Argo CD's CMP server as user 999 with
// the shared var-files and plugins volumes, plugin.yaml from the ConfigMap and its own /tmp.
func checkSidecar(t *testing.T, dep *appsv1.Deployment) {
	t.Helper()
	spec := dep.Spec.Template.Spec
	byName := map[string]corev1.Container{}
	for _, c := range spec.Containers {
		byName[c.Name] = c
	}
	side, ok := byName["strata-cmp"]
	if _, repo := byName["argocd-repo-server"]; !ok || !repo {
		t.Fatalf("containers %v: want argocd-repo-server and strata-cmp", byName)
	}
	if got := dep.Spec.Template.Annotations["kubectl.kubernetes.io/default-container"]; got != "argocd-repo-server" {
		t.Errorf("pod template annotation kubectl.kubernetes.io/default-container = %q, want argocd-repo-server (kubectl logs/exec without -c)", got)
	}
	copyutil := false
	for _, c := range spec.InitContainers {
		if c.Name == "copyutil" && strings.Contains(strings.Join(c.Args, " ")+strings.Join(c.Command, " "), "/var/run/argocd/argocd-cmp-server") {
			copyutil = true
		}
	}
	if !copyutil {
		t.Errorf("the copyutil init container that installs argocd-cmp-server into var-files is gone: %v", spec.InitContainers)
	}
	if strings.Join(side.Command, " ") != "/var/run/argocd/argocd-cmp-server" {
		t.Errorf("sidecar command %v", side.Command)
	}
	if sc := side.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 999 || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("sidecar securityContext %+v: want runAsUser 999, runAsNonRoot", sc)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range side.VolumeMounts {
		mounts[m.MountPath] = m
	}
	for path, vol := range map[string]string{
		"/var/run/argocd":                            "var-files",
		"/home/argocd/cmp-server/plugins":            "plugins",
		"/home/argocd/cmp-server/config/plugin.yaml": "strata-cmp-plugin",
		"/tmp": "strata-cmp-tmp",
	} {
		if mounts[path].Name != vol {
			t.Errorf("sidecar mounts %s from %q, want %q", path, mounts[path].Name, vol)
		}
	}
	if m := mounts["/home/argocd/cmp-server/config/plugin.yaml"]; m.SubPath != "plugin.yaml" {
		t.Errorf("plugin.yaml mount subPath %q", m.SubPath)
	}
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	if v := vols["var-files"]; v.EmptyDir == nil {
		t.Errorf("var-files volume %+v (from Argo CD's install)", v)
	}
	if v := vols["plugins"]; v.EmptyDir == nil {
		t.Errorf("plugins volume %+v (from Argo CD's install)", v)
	}
	if v := vols["strata-cmp-tmp"]; v.EmptyDir == nil {
		t.Errorf("strata-cmp-tmp volume %+v", v)
	}
	if v := vols["strata-cmp-plugin"]; v.ConfigMap == nil || v.ConfigMap.Name != "strata-cmp-plugin" {
		t.Errorf("plugin volume %+v does not name the ConfigMap strata-cmp-plugin", v)
	}
}

// Argo CD's CRDs from its Go module are installed on the test kube-apiserver; then everything
// argocd-install and argocd/examples render (Argo CD's whole install.yaml with the strata sidecar, the
// Applications, the repository Secret) passes a server-side dry-run apply, in a namespace of its
// own.
func TestInstallAndExamplesServerSideDryRun(t *testing.T) {
	cfg := testenv.KubeConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	modDir, err := testenv.ArgoCDModuleDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := ensureCRDs(ctx, cfg, filepath.Join(modDir, "manifests", "crds")); err != nil {
		t.Fatal(err)
	}

	dir := shipped(t)
	installWithModuleManifests(t, dir)
	ns := testenv.UniqueName(t, "argocd")
	top := filepath.Dir(dir)
	if err := os.WriteFile(filepath.Join(top, "kustomization.yaml"),
		[]byte("namespace: "+ns+"\nresources: [argocd-install, argocd/examples]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rm := kustomize(t, top)
	checkSidecar(t, repoServerOf(t, rm))

	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })

	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	kinds := map[string]int{}
	for _, r := range rm.Resources() {
		m, err := r.Map()
		if err != nil {
			t.Fatal(err)
		}
		obj := &unstructured.Unstructured{Object: m}
		gvk := obj.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Errorf("%s %s: %v", gvk.Kind, obj.GetName(), err)
			continue
		}
		var ri dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
		if mapping.Scope.Name() == "namespace" {
			if obj.GetNamespace() != ns {
				t.Errorf("%s %s in namespace %q, want %q", gvk.Kind, obj.GetName(), obj.GetNamespace(), ns)
			}
			ri = dyn.Resource(mapping.Resource).Namespace(obj.GetNamespace())
		}
		if _, err := ri.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: "strata-test", Force: true, DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Errorf("server-side dry-run apply of %s %s: %v", gvk.Kind, obj.GetName(), err)
			continue
		}
		kinds[gvk.Kind]++
	}
	for kind, n := range map[string]int{"Deployment": 1, "StatefulSet": 1, "CustomResourceDefinition": 3, "Application": 2, "Secret": 3, "ConfigMap": 8} {
		if kinds[kind] < n {
			t.Errorf("%d %s accepted, want at least %d (accepted: %v)", kinds[kind], kind, n, kinds)
		}
	}
}

// ensureCRDs creates the CRDs in dir that the cluster lacks (existing ones, maybe created by
// other tests, are left as they are) and waits until all of them are Established.
func ensureCRDs(ctx context.Context, cfg *rest.Config, dir string) error {
	cs, err := apiextclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(dir, "*-crd.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no CRDs in %s: %v", dir, err)
	}
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var crd apiextv1.CustomResourceDefinition
		if err := yaml.Unmarshal(b, &crd); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		names = append(names, crd.Name)
		if _, err := cs.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, &crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create CRD %s (%s): %w", crd.Name, f, err)
		}
	}
	for _, name := range names {
		if err := testenv.WaitCRDEstablished(ctx, cs, name); err != nil {
			return err
		}
	}
	return nil
}
