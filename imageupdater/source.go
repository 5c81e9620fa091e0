package imageupdater

import (
	"fmt"
	"strings"

	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
)

// bundleSource is the source of an Application that points at a bundle.
type bundleSource struct {
	index      int    // -1: spec.source; else index in spec.sources
	repository string // REGISTRY/PATH/NAME, no scheme
	oci        bool   // oci:// source (targetRevision is a tag or digest); false: Helm-OCI chart source
	current    string // targetRevision as written
}

// jsonPath is the JSON pointer of the source's targetRevision.
func (b bundleSource) jsonPath() string {
	if b.index < 0 {
		return "/spec/source/targetRevision"
	}
	return fmt.Sprintf("/spec/sources/%d/targetRevision", b.index)
}

// currentTag is the OCI tag the source points at now ('+' written as '_'); "" for a digest.
func (b bundleSource) currentTag() string {
	if strings.HasPrefix(b.current, "sha256:") {
		return ""
	}
	return strings.ReplaceAll(b.current, "+", "_")
}

// revisionFor is what targetRevision must say for tag: Helm sources name a chart version ('+'),
// oci:// sources name the tag itself.
func (b bundleSource) revisionFor(tag string) string {
	if b.oci {
		return tag
	}
	return strings.ReplaceAll(tag, "_", "+")
}

// sourceRepository returns the bundle repository of src, or "" when src is not a bundle source.
func sourceRepository(src v1alpha1.ApplicationSource) (repo string, oci bool) {
	url := strings.TrimSuffix(strings.TrimSpace(src.RepoURL), "/")
	if url == "" {
		return "", false
	}
	if src.Chart != "" {
		// Helm-OCI: Argo CD writes the registry with or without oci://. Plain https:// Helm
		// repositories are not bundles.
		if strings.Contains(url, "://") && !strings.HasPrefix(url, "oci://") {
			return "", false
		}
		return strings.TrimPrefix(url, "oci://") + "/" + src.Chart, false
	}
	if strings.HasPrefix(url, "oci://") {
		return strings.TrimPrefix(url, "oci://"), true
	}
	return "", false
}

// findBundleSource picks the bundle source of app. With several bundle sources, selector
// (annotation strata.dev/bundle-source) must name one by source name, chart or repository.
func findBundleSource(app *v1alpha1.Application, selector string) (bundleSource, error) {
	var srcs []v1alpha1.ApplicationSource
	multi := app.Spec.HasMultipleSources()
	if multi {
		srcs = app.Spec.Sources
	} else if app.Spec.Source != nil {
		srcs = []v1alpha1.ApplicationSource{*app.Spec.Source}
	}
	var found []bundleSource
	for i, s := range srcs {
		repo, oci := sourceRepository(s)
		if repo == "" {
			continue
		}
		if selector != "" && !sourceMatches(s, repo, selector) {
			continue
		}
		idx := -1
		if multi {
			idx = i
		}
		found = append(found, bundleSource{index: idx, repository: repo, oci: oci, current: s.TargetRevision})
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) == 0 && selector != "":
		return bundleSource{}, fmt.Errorf("annotation %s: no Helm-OCI or oci:// source matches %q", AnnotationBundleSource, selector)
	case len(found) == 0:
		return bundleSource{}, fmt.Errorf("no Helm-OCI (repoURL + chart) or oci:// source")
	default:
		return bundleSource{}, fmt.Errorf("%d bundle sources: name one with annotation %s (source name, chart or repository)", len(found), AnnotationBundleSource)
	}
}

func sourceMatches(s v1alpha1.ApplicationSource, repo, selector string) bool {
	sel := strings.TrimSuffix(strings.TrimPrefix(selector, "oci://"), "/")
	return (s.Name != "" && s.Name == selector) || (s.Chart != "" && s.Chart == selector) || repo == sel
}
