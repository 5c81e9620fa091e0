package manifests_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/argoproj/argo-cd/v3/cmpserver/plugin"
	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	argoclient "github.com/argoproj/argo-cd/v3/pkg/client/clientset/versioned"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/manifests"
)

func TestPluginConfigIsValidForArgoCD(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "plugin.yaml"), manifests.PluginConfig(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := plugin.ReadPluginConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := plugin.ValidatePluginConfig(*cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Metadata.Name != "strata" || cfg.Spec.Version != "" {
		t.Errorf("plugin name %q version %q: Applications must be able to say plugin: {name: strata}", cfg.Metadata.Name, cfg.Spec.Version)
	}
	if got := strings.Join(cfg.Spec.Generate.Command, " "); got != "strata cmp generate" {
		t.Errorf("generate = %q", got)
	}
	if got := strings.Join(cfg.Spec.Discover.Find.Command.Command, " "); got != "strata cmp discover" || cfg.Spec.Discover.FileName != "" || cfg.Spec.Discover.Find.Glob != "" {
		t.Errorf("discover = %+v: want only find.command (the first defined method wins)", cfg.Spec.Discover)
	}
	names := map[string]string{}
	for _, p := range cfg.Spec.Parameters.Static {
		names[p.Name] = p.CollectionType
	}
	if _, ok := names["values"]; !ok || names["set"] != "map" {
		t.Errorf("static parameters = %v", names)
	}
	if _, ok := names["release-name"]; !ok {
		t.Errorf("static parameters = %v", names)
	}
}

// repoServer is the part of Argo CD's install the component patches.
const repoServer = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: argocd-repo-server
spec:
  selector: {matchLabels: {app.kubernetes.io/name: argocd-repo-server}}
  template:
    metadata: {labels: {app.kubernetes.io/name: argocd-repo-server}}
    spec:
      initContainers:
      - name: copyutil
        image: quay.io/argoproj/argocd:v3.3.10
        command: [/bin/cp, -n, /usr/local/bin/argocd, /var/run/argocd/argocd-cmp-server]
        volumeMounts: [{name: var-files, mountPath: /var/run/argocd}]
      containers:
      - name: argocd-repo-server
        image: quay.io/argoproj/argocd:v3.3.10
        volumeMounts:
        - {name: var-files, mountPath: /var/run/argocd}
        - {name: plugins, mountPath: /home/argocd/cmp-server/plugins}
      volumes:
      - {name: var-files, emptyDir: {}}
      - {name: plugins, emptyDir: {}}
`

func TestComponentAddsSidecarToRepoServer(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "strata"), manifests.ArgoCD()); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("argocd.yaml", repoServer)
	write("kustomization.yaml", "namespace: argocd\nresources: [argocd.yaml]\ncomponents: [strata]\n")
	var dep *appsv1.Deployment
	var cm *corev1.ConfigMap
	out := testenv.Kustomize(t, dir)
	for _, obj := range testenv.DecodeStrict(t, out) {
		switch o := obj.(type) {
		case *appsv1.Deployment:
			dep = o
		case *corev1.ConfigMap:
			cm = o
		}
	}
	if dep == nil || cm == nil {
		t.Fatalf("rendered:\n%s", out)
	}
	if cm.Name != "strata-cmp-plugin" || cm.Namespace != "argocd" || cm.Data["plugin.yaml"] != string(manifests.PluginConfig()) {
		t.Errorf("plugin ConfigMap %s/%s does not carry plugin.yaml", cm.Namespace, cm.Name)
	}
	checkSidecar(t, dep)
	spec := dep.Spec.Template.Spec
	byName := map[string]corev1.Container{}
	for _, c := range spec.Containers {
		byName[c.Name] = c
	}
	side, ok := byName["strata-cmp"]
	if _, repo := byName["argocd-repo-server"]; len(spec.Containers) != 2 || !ok || !repo {
		t.Fatalf("containers: %v", byName)
	}
	if strings.Join(side.Command, " ") != "/var/run/argocd/argocd-cmp-server" {
		t.Errorf("sidecar %s command %v", side.Name, side.Command)
	}
	sc := side.SecurityContext
	if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 999 || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("sidecar securityContext %+v: want runAsUser 999, runAsNonRoot", sc)
	}
	mounts := map[string]string{}
	for _, m := range side.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	for path, vol := range map[string]string{
		"/var/run/argocd":                            "var-files",
		"/home/argocd/cmp-server/plugins":            "plugins",
		"/home/argocd/cmp-server/config/plugin.yaml": "strata-cmp-plugin",
		"/tmp": "strata-cmp-tmp",
	} {
		if mounts[path] != vol {
			t.Errorf("sidecar mounts %s from %q, want %q", path, mounts[path], vol)
		}
	}
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	for _, name := range []string{"var-files", "plugins", "strata-cmp-tmp"} {
		if _, ok := vols[name]; !ok {
			t.Errorf("volume %s missing (have %v)", name, vols)
		}
	}
	if v := vols["strata-cmp-plugin"]; v.ConfigMap == nil || v.ConfigMap.Name != cm.Name {
		t.Errorf("plugin volume %+v does not name the ConfigMap %s", v, cm.Name)
	}
}

// The example Applications decode strictly into Argo CD's types and are accepted by the
// Application CRD of the test kube-apiserver (server-side dry run).
func TestExampleApplications(t *testing.T) {
	ex, err := fs.Glob(manifests.ArgoCD(), "examples/application-*.yaml")
	if err != nil || len(ex) < 2 {
		t.Fatalf("examples: %v %v", ex, err)
	}
	var apps []*v1alpha1.Application
	for _, name := range ex {
		b, err := fs.ReadFile(manifests.ArgoCD(), name)
		if err != nil {
			t.Fatal(err)
		}
		var app v1alpha1.Application
		if err := yaml.UnmarshalStrict(b, &app); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		src := app.Spec.Source
		if src == nil || src.Plugin == nil || src.Plugin.Name != "strata" {
			t.Errorf("%s: source does not use the strata plugin", name)
			continue
		}
		if src.Chart == "" && !strings.HasPrefix(src.RepoURL, "oci://") {
			t.Errorf("%s: neither a Helm-OCI (chart) nor an oci:// source", name)
		}
		apps = append(apps, &app)
	}

	cfg := testenv.KubeConfig(t)
	ctx := context.Background()
	if err := testenv.EnsureApplicationCRD(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	argo, err := argoclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, app := range apps {
		app.Namespace = "default"
		if _, err := argo.ArgoprojV1alpha1().Applications("default").Create(ctx, app, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Errorf("Application %s rejected by the CRD: %v", app.Name, err)
		}
	}
}
