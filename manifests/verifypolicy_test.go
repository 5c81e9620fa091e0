package manifests_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/yaml"

	"strata.dev/strata/bundle"
	"strata.dev/strata/cmp"
	"strata.dev/strata/imageupdater"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/sign"
)

const policyPath = "/etc/strata-policy/policy.yaml"

// addComponent adds ../verify-policy to the components of the kustomization in dir.
func addComponent(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, "kustomization.yaml")
	k, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := string(k)
	if strings.Contains(s, "\ncomponents:\n") {
		s = strings.Replace(s, "\ncomponents:\n", "\ncomponents:\n- ../verify-policy\n", 1)
	} else {
		s += "components:\n- ../verify-policy\n"
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func renderedAs[T any](t *testing.T, rm resmap.ResMap, kind, name string) *T {
	t.Helper()
	for _, r := range rm.Resources() {
		if r.GetKind() == kind && r.GetName() == name {
			b, err := r.AsYAML()
			if err != nil {
				t.Fatal(err)
			}
			var v T
			if err := yaml.UnmarshalStrict(b, &v); err != nil {
				t.Fatalf("%s %s: %v", kind, name, err)
			}
			return &v
		}
	}
	t.Fatalf("no %s %s rendered", kind, name)
	return nil
}

// checkPolicyMount: container c of dep reads the policy ConfigMap at policyPath.
func checkPolicyMount(t *testing.T, dep *appsv1.Deployment, container string) {
	t.Helper()
	var c *corev1.Container
	for i := range dep.Spec.Template.Spec.Containers {
		if dep.Spec.Template.Spec.Containers[i].Name == container {
			c = &dep.Spec.Template.Spec.Containers[i]
		}
	}
	if c == nil {
		t.Fatalf("%s: no container %s", dep.Name, container)
	}
	env := ""
	for _, e := range c.Env {
		if e.Name == "STRATA_VERIFY_POLICY" {
			env = e.Value
		}
	}
	if env != policyPath {
		t.Errorf("%s/%s: STRATA_VERIFY_POLICY = %q, want %s", dep.Name, container, env, policyPath)
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		if m.MountPath == filepath.Dir(policyPath) && m.Name == "strata-verify-policy" && m.ReadOnly {
			mounted = true
		}
	}
	volume := false
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.Name == "strata-verify-policy" && v.ConfigMap != nil && v.ConfigMap.Name == "strata-verify-policy" {
			volume = true
		}
	}
	if !mounted || !volume {
		t.Errorf("%s/%s: policy ConfigMap mounted %v, volume %v; mounts %+v", dep.Name, container, mounted, volume, c.VolumeMounts)
	}
}

// manifests/verify-policy, added to the Argo CD install and to the updater, gives both the same
// policy ConfigMap, mounted where STRATA_VERIFY_POLICY points; the policy in it loads, and the
// plugin and the updater work with it: unsigned bundles of the team-a rule are refused, signed
// ones (images too) rendered, sandbox bundles rendered unsigned, others refused.
func TestVerifyPolicyComponent(t *testing.T) {
	dir := shipped(t)
	top := filepath.Dir(dir)
	for _, d := range []string{"image-updater", "verify-policy"} {
		if err := os.CopyFS(filepath.Join(top, d), os.DirFS(d)); err != nil {
			t.Fatal(err)
		}
	}
	install := installWithModuleManifests(t, dir)
	addComponent(t, install)
	addComponent(t, filepath.Join(top, "image-updater"))
	argo, updater := kustomize(t, install), kustomize(t, filepath.Join(top, "image-updater"))

	var cm *corev1.ConfigMap
	for _, rm := range []resmap.ResMap{argo, updater} {
		got := renderedAs[corev1.ConfigMap](t, rm, "ConfigMap", "strata-verify-policy")
		if got.Namespace != "argocd" || got.Data["policy.yaml"] == "" || got.Data["cosign.pub"] == "" {
			t.Fatalf("ConfigMap %s/%s data keys %v", got.Namespace, got.Name, keys(got.Data))
		}
		if cm != nil && (cm.Data["policy.yaml"] != got.Data["policy.yaml"] || cm.Data["cosign.pub"] != got.Data["cosign.pub"]) {
			t.Error("the install and the updater render different policies")
		}
		cm = got
	}
	repoServer := repoServerOf(t, argo)
	checkSidecar(t, repoServer)
	checkPolicyMount(t, repoServer, "strata-cmp")
	checkPolicyMount(t, renderedAs[appsv1.Deployment](t, updater, "Deployment", "strata-image-updater"), "image-updater")

	// The mounted files, as shipped: the policy loads and says what docs/signing.md says.
	mount := mountConfigMap(t, cm.Data)
	p, err := sign.LoadPolicy(filepath.Join(mount, "policy.yaml"))
	if err != nil {
		t.Fatalf("the shipped policy does not load: %v", err)
	}
	if r, err := p.For("registry.example.com/team-a/bundles/shop"); err != nil || r.Skip || !r.Images || len(r.BundleKeys) != 1 {
		t.Errorf("team-a rule: %+v, %v", r, err)
	}
	if r, err := p.For("registry.example.com/sandbox/x"); err != nil || r == nil || !r.Skip {
		t.Errorf("sandbox rule: %+v, %v", r, err)
	}
	if _, err := p.For("registry.example.com/other/x"); !errors.Is(err, sign.ErrPolicyRefused) {
		t.Errorf("unmatched repository: %v, want refused", err)
	}

	// The same policy with its registry pointed at the test registry and its key replaced by
	// one the test holds, through the plugin and the updater.
	ctx := context.Background()
	teamA, sandbox := testenv.Repo(t, "team-a"), testenv.Repo(t, "sandbox")
	key, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := sign.MarshalPublicKey(&key.PublicKey)
	data := map[string]string{
		"policy.yaml": strings.NewReplacer("registry.example.com/team-a", teamA, "registry.example.com/sandbox", sandbox).Replace(cm.Data["policy.yaml"]),
		"cosign.pub":  string(pub),
	}
	mount = mountConfigMap(t, data)
	policy := filepath.Join(mount, "policy.yaml")
	rep := testenv.BuildReport(t, "app", "web", "worker")
	generate := func(regPath string) error {
		t.Helper()
		res, err := bundle.Publish(ctx, bundle.PublishOptions{Repo: regPath + "/app", Version: "1.0.0", ChartDir: "../bundle/testdata/app",
			Report: rep, Commit: bundle.Commit{Date: "2026-11-22T10:00:00Z"}, Force: true})
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "chart")
		if _, err := bundle.Pull(ctx, bundle.PullOptions{Ref: res.Ref, Dir: dir}); err != nil {
			t.Fatal(err)
		}
		env := []string{"ARGOCD_APP_NAME=app", "ARGOCD_APP_NAMESPACE=prod", "ARGOCD_APP_REVISION=1.0.0",
			"ARGOCD_APP_SOURCE_REPO_URL=" + regPath, "ARGOCD_APP_SOURCE_TARGET_REVISION=1.0.0"}
		var out bytes.Buffer
		err = cmp.Generate(ctx, cmp.Options{Dir: dir, Environ: env, VerifyPolicy: policy}, &out)
		if err == nil && !strings.Contains(out.String(), "kind: ") {
			t.Errorf("generate %s rendered nothing", regPath)
		}
		return err
	}
	if err := generate(sandbox); err != nil {
		t.Errorf("sandbox bundle, unsigned: %v", err)
	}
	if err := generate(teamA); !errors.Is(err, sign.ErrNotSigned) {
		t.Errorf("team-a bundle, unsigned: %v, want not signed", err)
	}
	if _, err := sign.Sign(ctx, teamA+"/app:1.0.0", sign.SignOptions{Key: key}); err != nil {
		t.Fatal(err)
	}
	if err := generate(teamA); !errors.Is(err, sign.ErrNotSigned) || !strings.Contains(err.Error(), "image") {
		t.Errorf("team-a bundle signed, its images not: %v, want an image not signed (images: true)", err)
	}
	for _, im := range rep.Images {
		if _, err := sign.Sign(ctx, im.Repo+"@"+im.ManifestDigest, sign.SignOptions{Key: key}); err != nil {
			t.Fatal(err)
		}
	}
	if err := generate(teamA); err != nil {
		t.Errorf("team-a bundle and images signed: %v", err)
	}
	if err := generate(testenv.Repo(t, "other")); !errors.Is(err, sign.ErrPolicyRefused) {
		t.Errorf("a repository no rule names: %v, want refused", err)
	}

	// The updater starts with it (a policy it cannot load stops it at start).
	if err := imageupdater.Run(ctx, imageupdater.Options{RestConfig: testenv.KubeConfig(t), Namespaces: []string{testenv.UniqueName(t, "none")},
		Once: true, VerifyPolicy: policy}); err != nil {
		t.Errorf("image updater with the policy: %v", err)
	}
}

// mountConfigMap writes a ConfigMap's data as its volume would show it.
func mountConfigMap(t *testing.T, data map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range data {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
