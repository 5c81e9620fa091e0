package imageupdater

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The Application's manifest is edited in place: only the bundle source's targetRevision
// changes, byte for byte everything else stays (comments, quoting, other documents, other
// sources); a revision a plain scalar would misread is quoted.
func TestEditApplicationManifest(t *testing.T) {
	const src = `# children of the parent
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: other
spec:
  source: {repoURL: registry.example.com/team, chart: shop, targetRevision: 1.0.0}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: shop
  namespace: argocd
spec:
  sources:
  - repoURL: https://git.example.com/values.git   # values
    targetRevision: main
    ref: values
  - repoURL: registry.example.com/team
    chart: shop
    targetRevision: "1.0.0"  # moved by strata
`
	out, old, found, err := editApplicationManifest([]byte(src), "argocd", "shop", "registry.example.com/team/shop", "1.2.0+build.7")
	if err != nil || !found || old != "1.0.0" {
		t.Fatalf("edit = %v, found %v, old %q", err, found, old)
	}
	want := strings.Replace(src, `targetRevision: "1.0.0"  # moved`, `targetRevision: "1.2.0+build.7"  # moved`, 1)
	if string(out) != want {
		t.Errorf("edited:\n%s\nwant:\n%s", out, want)
	}
	// Flow style, plain scalar; a revision that would read as a number is quoted.
	out, old, _, err = editApplicationManifest([]byte(src), "argocd", "other", "registry.example.com/team/shop", "1.10")
	if err != nil || old != "1.0.0" || !strings.Contains(string(out), `chart: shop, targetRevision: "1.10"}`) {
		t.Errorf("flow edit = %v, old %q:\n%s", err, old, out)
	}
	// Same revision: unchanged bytes.
	out, _, _, _ = editApplicationManifest([]byte(src), "argocd", "other", "registry.example.com/team/shop", "1.0.0")
	if string(out) != src {
		t.Error("an edit to the same revision changed the file")
	}
	if _, _, found, _ := editApplicationManifest([]byte(src), "argocd", "nope", "registry.example.com/team/shop", "1"); found {
		t.Error("found an Application that is not there")
	}
	if _, _, found, _ := editApplicationManifest([]byte(src), "other-ns", "shop", "registry.example.com/team/shop", "1"); found {
		t.Error("matched an Application of another namespace")
	}
	if _, _, _, err := editApplicationManifest([]byte(src), "argocd", "shop", "registry.example.com/team/cart", "1"); err == nil || !strings.Contains(err.Error(), "no source of the bundle") {
		t.Errorf("other bundle: %v", err)
	}
}

func TestSetYAMLKey(t *testing.T) {
	const src = "# versions\nshop:\n  version: 1.0.0 # pinned\ncart:\n  version: '2.0.0'\n"
	out, old, err := setYAMLKey([]byte(src), "shop.version", "1.2.0")
	if err != nil || old != "1.0.0" || string(out) != strings.Replace(src, "1.0.0 #", "1.2.0 #", 1) {
		t.Errorf("set = %v, old %q:\n%s", err, old, out)
	}
	out, _, err = setYAMLKey([]byte(src), "cart.version", "it's")
	if err != nil || !strings.Contains(string(out), "version: 'it''s'") {
		t.Errorf("single-quoted = %v:\n%s", err, out)
	}
	out, old, err = setYAMLKey([]byte(src), "web.bundle.version", "3.0.0")
	if err != nil || old != "" || !strings.Contains(string(out), "web:\n  bundle:\n    version: 3.0.0\n") || !strings.Contains(string(out), "# versions") {
		t.Errorf("new key = %v:\n%s", err, out)
	}
	out, _, err = setYAMLKey(nil, "a.b", "1.0")
	if err != nil || string(out) != "a:\n  b: \"1.0\"\n" {
		t.Errorf("new file = %v: %q", err, out)
	}
	if _, _, err := setYAMLKey([]byte(src), "shop.version.x", "1"); err == nil || !strings.Contains(err.Error(), "not a mapping") {
		t.Errorf("scalar as mapping: %v", err)
	}
}

func TestEditKustomization(t *testing.T) {
	const src = "resources:\n- shop.yaml\n"
	out, old, err := editKustomization([]byte(src), "argocd", "shop", "/spec/source/targetRevision", "1.2.0")
	if err != nil || old != "" {
		t.Fatal(err)
	}
	for _, want := range []string{"resources:\n  - shop.yaml", "kind: Application", "name: shop", "path: /spec/source/targetRevision", `value: "1.2.0"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("kustomization lacks %q:\n%s", want, out)
		}
	}
	again, old, err := editKustomization(out, "argocd", "shop", "/spec/source/targetRevision", "1.3.0")
	if err != nil || old != "1.2.0" || strings.Count(string(again), "kind: Application") != 1 || !strings.Contains(string(again), `value: "1.3.0"`) {
		t.Errorf("second edit = %v, old %q:\n%s", err, old, again)
	}
	same, _, _ := editKustomization(again, "argocd", "shop", "/spec/source/targetRevision", "1.3.0")
	if string(same) != string(again) {
		t.Error("an edit to the same revision changed the kustomization")
	}
}

// The repository's content cannot make the updater read or write outside its clone: a target
// that is, or lies under, a symbolic link is refused, and the manifest search skips links.
func TestWriteBackRefusesSymlinks(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	secret := filepath.Join(outside, "secret.yaml")
	if err := os.WriteFile(secret, []byte("k: v\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(secret, filepath.Join(root, "values.yaml")))
	must(os.Symlink(outside, filepath.Join(root, "dir")))
	must(os.MkdirAll(filepath.Join(root, "apps"), 0o755))
	must(os.Symlink(secret, filepath.Join(root, "apps", "shop.yaml")))
	c := &controller{}
	app := &unstructured.Unstructured{}
	app.SetName("shop")
	app.SetNamespace("argocd")
	for _, wb := range []writeBack{
		{git: true, target: targetHelmValues, path: "/values.yaml", key: "k"},
		{git: true, target: targetHelmValues, path: "/dir/secret.yaml", key: "k"},
		{git: true, target: targetKustomization, path: "/dir"},
	} {
		d := decision{target: "1.2.0", writeBack: wb, source: bundleSource{index: -1, repository: "r/shop"}}
		if _, _, _, err := c.editTarget(root, gitLocation{}, app, d); err == nil || !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("%+v: %v, want a refusal naming the symbolic link", wb, err)
		}
	}
	d := decision{target: "1.2.0", writeBack: writeBack{git: true, target: targetApplication}, source: bundleSource{index: -1, repository: "r/shop"}}
	if _, _, _, err := c.editTarget(root, gitLocation{dir: "apps"}, app, d); err == nil || !strings.Contains(err.Error(), "no manifest") {
		t.Errorf("manifest search through a link: %v, want no manifest found", err)
	}
	if b, _ := os.ReadFile(secret); string(b) != "k: v\n" {
		t.Errorf("the file outside the clone changed: %q", b)
	}
}
