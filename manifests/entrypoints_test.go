package manifests_test

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"strata.dev/strata/manifests"
)

// Strata's own images in the rendered kustomizations.
const (
	sidecarImage = "ghcr.io/strata-dev/strata-sidecar"
	updaterImage = "ghcr.io/strata-dev/strata-image-updater"
)

var releaseTag = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`)

// images lists the images of every container and init container rendered in rm.
func images(t *testing.T, rm resmap.ResMap) []string {
	t.Helper()
	var out []string
	for _, r := range rm.Resources() {
		for _, path := range [][]string{
			{"spec", "template", "spec", "containers"},
			{"spec", "template", "spec", "initContainers"},
		} {
			m, err := r.Map()
			if err != nil {
				t.Fatal(err)
			}
			var v any = m
			for _, k := range path {
				mm, _ := v.(map[string]any)
				v = mm[k]
			}
			cs, _ := v.([]any)
			for _, c := range cs {
				if img, _ := c.(map[string]any)["image"].(string); img != "" {
					out = append(out, img)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// kinds lists KIND/NAME of every rendered object, in kustomize's output order.
func kinds(rm resmap.ResMap) []string {
	var out []string
	for _, r := range rm.Resources() {
		out = append(out, r.GetKind()+"/"+r.GetName())
	}
	return out
}

// strataImages returns the images of rm that are Strata's, checking each carries a release tag
// (never :latest, never untagged).
func strataImages(t *testing.T, rm resmap.ResMap) map[string]string {
	t.Helper()
	tags := map[string]string{}
	for _, img := range images(t, rm) {
		if strings.HasSuffix(img, ":latest") {
			t.Errorf("image %s: :latest is not a release", img)
		}
		if !strings.HasPrefix(img, "ghcr.io/strata-dev/") {
			continue
		}
		name, tag, ok := strings.Cut(img, ":")
		if !ok || !releaseTag.MatchString(tag) {
			t.Errorf("image %s has no release tag vX.Y.Z", img)
		}
		tags[name] = tag
	}
	return tags
}

// Each entry point renders what its name says, with Strata's images pinned to one release tag:
// argocd-install is Argo CD (with its namespace) and the sidecar; image-updater the updater and
// nothing of Argo CD; argocd alone is no install and fails naming argocd-repo-server.
func TestEntryPointsRenderWhatTheySay(t *testing.T) {
	dir := shipped(t)
	install := kustomize(t, installWithModuleManifests(t, dir))
	got := kinds(install)
	if len(got) == 0 || got[0] != "Namespace/argocd" {
		t.Errorf("argocd-install does not start with Namespace/argocd: %v", got[:min(3, len(got))])
	}
	for _, want := range []string{"ConfigMap/strata-cmp-plugin", "Deployment/argocd-repo-server", "Deployment/argocd-server", "StatefulSet/argocd-application-controller", "CustomResourceDefinition/applications.argoproj.io"} {
		if !slices.Contains(got, want) {
			t.Errorf("argocd-install renders no %s", want)
		}
	}
	for _, r := range install.Resources() {
		if r.GetKind() != "Namespace" && r.GetKind() != "CustomResourceDefinition" && !strings.HasPrefix(r.GetKind(), "Cluster") && r.GetNamespace() != "argocd" {
			t.Errorf("%s/%s in namespace %q, want argocd", r.GetKind(), r.GetName(), r.GetNamespace())
		}
	}
	installTags := strataImages(t, install)
	if len(installTags) != 1 || installTags[sidecarImage] == "" {
		t.Errorf("argocd-install: Strata images %v, want only %s", installTags, sidecarImage)
	}

	updater := kustomize(t, writeFS(t, "image-updater", manifests.ImageUpdater()))
	wantUpdater := []string{"ServiceAccount/strata-image-updater", "ClusterRole/strata-image-updater", "ClusterRoleBinding/strata-image-updater", "Service/strata-image-updater", "Deployment/strata-image-updater"}
	if got := kinds(updater); !sameSet(got, wantUpdater) {
		t.Errorf("image-updater renders %v, want %v", got, wantUpdater)
	}
	updaterTags := strataImages(t, updater)
	if len(updaterTags) != 1 || updaterTags[updaterImage] == "" {
		t.Errorf("image-updater: Strata images %v, want only %s", updaterTags, updaterImage)
	}
	if installTags[sidecarImage] != updaterTags[updaterImage] {
		t.Errorf("sidecar tag %q and updater tag %q differ: both are the release's", installTags[sidecarImage], updaterTags[updaterImage])
	}

	_, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err == nil || !strings.Contains(err.Error(), "argocd-repo-server") {
		t.Errorf("kustomize of manifests/argocd alone: %v, want an error naming argocd-repo-server (it is a Component, not an install)", err)
	}
}

// make manifests-version VERSION=... (the release step) moves both images to that tag, and refuses
// anything but vX.Y.Z[-pre].
func TestReleaseSetsImageTags(t *testing.T) {
	top := t.TempDir()
	for _, d := range []string{"argocd", "argocd-install", "image-updater"} {
		if err := os.CopyFS(filepath.Join(top, "manifests", d), os.DirFS(d)); err != nil {
			t.Fatal(err)
		}
	}
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(top, "Makefile"), mk, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(version string) error {
		out, err := exec.Command("make", "-s", "-C", top, "manifests-version", "VERSION="+version).CombinedOutput()
		if err != nil {
			t.Logf("make manifests-version VERSION=%s: %s", version, out)
		}
		return err
	}
	if err := run("v9.8.7-rc.1"); err != nil {
		t.Fatal(err)
	}
	updater := strataImages(t, kustomize(t, filepath.Join(top, "manifests", "image-updater")))
	if got := updater[updaterImage]; got != "v9.8.7-rc.1" {
		t.Errorf("updater tag after the release step: %q", got)
	}
	fixture := filepath.Join(top, "fixture")
	if err := os.CopyFS(filepath.Join(fixture, "strata"), os.DirFS(filepath.Join(top, "manifests", "argocd"))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fixture, "argocd.yaml"), []byte(repoServer), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fixture, "kustomization.yaml"), []byte("resources: [argocd.yaml]\ncomponents: [strata]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := strataImages(t, kustomize(t, fixture))[sidecarImage]; got != "v9.8.7-rc.1" {
		t.Errorf("sidecar tag after the release step: %q", got)
	}
	for _, bad := range []string{"latest", "", "1.2.3"} {
		if run(bad) == nil {
			t.Errorf("make manifests-version VERSION=%q succeeded, want a refusal", bad)
		}
	}
}

// writeFS copies fsys into a fresh directory named name and returns its path.
func writeFS(t *testing.T, name string, fsys fs.FS) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.CopyFS(dir, fsys); err != nil {
		t.Fatal(err)
	}
	return dir
}

func sameSet(a, b []string) bool {
	a, b = slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	return slices.Equal(a, b)
}
