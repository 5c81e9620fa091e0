package imageupdater

import (
	"strings"
	"testing"

	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
)

func TestFindBundleSource(t *testing.T) {
	app := &v1alpha1.Application{Spec: v1alpha1.ApplicationSpec{Sources: v1alpha1.ApplicationSources{
		{RepoURL: "https://git.example.com/values.git", Ref: "values"},
		{RepoURL: "https://charts.example.com", Chart: "plain-helm", TargetRevision: "1.0.0"},
		{RepoURL: "oci://reg.example.com/team", Chart: "web", TargetRevision: "1.0.0", Name: "frontend"},
		{RepoURL: "oci://reg.example.com/team/worker", TargetRevision: "2.0.0"},
	}}}
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
	single := &v1alpha1.Application{Spec: v1alpha1.ApplicationSpec{Source: &v1alpha1.ApplicationSource{RepoURL: "reg.example.com/team", Chart: "web", TargetRevision: "1.0.0+b.1"}}}
	got, err := findBundleSource(single, "")
	if err != nil || got.index != -1 || got.jsonPath() != "/spec/source/targetRevision" || got.currentTag() != "1.0.0_b.1" || got.revisionFor("1.1.0_b.2") != "1.1.0+b.2" {
		t.Errorf("single Helm-OCI source: %+v %v", got, err)
	}
	if p := (bundleSource{index: 3, oci: true}); p.jsonPath() != "/spec/sources/3/targetRevision" || p.revisionFor("1.1.0_b.2") != "1.1.0_b.2" {
		t.Errorf("oci source path/revision: %s %s", p.jsonPath(), p.revisionFor("1.1.0_b.2"))
	}
}
