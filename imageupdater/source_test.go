package imageupdater

import (
	"strings"
	"testing"

	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// unstructuredApp is app as the dynamic client reads it: Argo CD's own type, through its JSON.
func unstructuredApp(t *testing.T, app *v1alpha1.Application) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(app)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}

func TestFindBundleSource(t *testing.T) {
	app := unstructuredApp(t, &v1alpha1.Application{Spec: v1alpha1.ApplicationSpec{Sources: v1alpha1.ApplicationSources{
		{RepoURL: "https://git.example.com/values.git", Ref: "values"},
		{RepoURL: "https://charts.example.com", Chart: "plain-helm", TargetRevision: "1.0.0"},
		{RepoURL: "reg.example.com/team", Chart: "web", TargetRevision: "1.0.0", Name: "frontend"}, // Helm-OCI: no scheme
		{RepoURL: "oci://reg.example.com/team/worker", TargetRevision: "2.0.0"},
	}}})
	if _, err := findBundleSource(app, ""); err == nil || !strings.Contains(err.Error(), AnnotationBundleSource) {
		t.Errorf("two bundle sources without selector: %v", err)
	}
	for sel, want := range map[string]bundleSource{
		"frontend":                          {index: 2, repository: "reg.example.com/team/web", current: "1.0.0"},
		"web":                               {index: 2, repository: "reg.example.com/team/web", current: "1.0.0"},
		"oci://reg.example.com/team/worker": {index: 3, repository: "reg.example.com/team/worker", oci: true, current: "2.0.0"},
		"reg.example.com/team/worker":       {index: 3, repository: "reg.example.com/team/worker", oci: true, current: "2.0.0"},
	} {
		got, err := findBundleSource(app, sel)
		if err != nil || got != want {
			t.Errorf("selector %q: %+v, %v; want %+v", sel, got, err, want)
		}
	}
	if _, err := findBundleSource(app, "plain-helm"); err == nil {
		t.Error("an https:// Helm repository was taken for a bundle")
	}
	single := unstructuredApp(t, &v1alpha1.Application{Spec: v1alpha1.ApplicationSpec{Source: &v1alpha1.ApplicationSource{RepoURL: "reg.example.com/team", Chart: "web", TargetRevision: "1.0.0+b.1"}}})
	got, err := findBundleSource(single, "")
	if err != nil || got.index != -1 || got.jsonPath() != "/spec/source/targetRevision" || got.currentTag() != "1.0.0_b.1" || got.revisionFor("1.1.0_b.2") != "1.1.0+b.2" {
		t.Errorf("single Helm-OCI source: %+v %v", got, err)
	}
	if p := (bundleSource{index: 3, oci: true}); p.jsonPath() != "/spec/sources/3/targetRevision" || p.revisionFor("1.1.0_b.2") != "1.1.0_b.2" {
		t.Errorf("oci source path/revision: %s %s", p.jsonPath(), p.revisionFor("1.1.0_b.2"))
	}
}

// Argo CD uses spec.sources only without spec.sourceHydrator (ApplicationSpec.HasMultipleSources);
// the updater reads spec.source or spec.sources exactly when Argo CD does.
func TestFindBundleSourceLikeArgoCD(t *testing.T) {
	typed := &v1alpha1.Application{Spec: v1alpha1.ApplicationSpec{
		Source:         &v1alpha1.ApplicationSource{RepoURL: "oci://reg.example.com/team/one", TargetRevision: "1.0.0"},
		Sources:        v1alpha1.ApplicationSources{{RepoURL: "oci://reg.example.com/team/two", TargetRevision: "2.0.0"}},
		SourceHydrator: &v1alpha1.SourceHydrator{DrySource: v1alpha1.DrySource{RepoURL: "https://git.example.com/x.git"}},
	}}
	for _, hydrator := range []bool{true, false} {
		if !hydrator {
			typed.Spec.SourceHydrator = nil
		}
		got, err := findBundleSource(unstructuredApp(t, typed), "")
		if err != nil {
			t.Fatal(err)
		}
		want := *typed.Spec.Source
		if typed.Spec.HasMultipleSources() {
			want = typed.Spec.Sources[0]
		}
		if got.current != want.TargetRevision || got.index >= 0 != typed.Spec.HasMultipleSources() {
			t.Errorf("sourceHydrator=%v: picked %+v, Argo CD uses %+v (multiple sources: %v)", hydrator, got, want, typed.Spec.HasMultipleSources())
		}
	}
	bad := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": "broken", "namespace": "apps"},
		"spec":     map[string]any{"source": map[string]any{"repoURL": "oci://reg.example.com/x", "targetRevision": int64(3)}},
	}}
	if _, err := findBundleSource(bad, ""); err == nil || !strings.Contains(err.Error(), "apps/broken") || !strings.Contains(err.Error(), "spec.source: targetRevision") {
		t.Errorf("non-string targetRevision: %v, want an error naming apps/broken and spec.source: targetRevision", err)
	}
}
