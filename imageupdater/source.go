package imageupdater

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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

// appSource holds the fields of an Argo CD ApplicationSource (spec.source or an item of
// spec.sources) the updater reads. Applications are handled as unstructured objects: nothing but
// the one targetRevision is ever written, so fields Strata does not know survive.
type appSource struct {
	RepoURL, Chart, TargetRevision, Path, Name string
}

// applicationSources reads (never changes) the sources of app the way Argo CD does
// (ApplicationSpec.HasMultipleSources): spec.sources when it is not empty and spec.sourceHydrator
// is unset (multi), else spec.source (none if unset).
func applicationSources(app *unstructured.Unstructured) (srcs []appSource, multi bool, err error) {
	where := "Application " + app.GetNamespace() + "/" + app.GetName()
	hydrator, _, err := unstructured.NestedFieldNoCopy(app.Object, "spec", "sourceHydrator")
	if err != nil {
		return nil, false, fmt.Errorf("%s: spec.sourceHydrator: %w", where, err)
	}
	rawList, _, err := unstructured.NestedFieldNoCopy(app.Object, "spec", "sources")
	if err != nil {
		return nil, false, fmt.Errorf("%s: spec.sources: %w", where, err)
	}
	list, ok := rawList.([]any)
	if rawList != nil && !ok {
		return nil, false, fmt.Errorf("%s: spec.sources is %T, not a list", where, rawList)
	}
	if hydrator == nil && len(list) > 0 {
		for i, item := range list {
			m, ok := item.(map[string]any)
			if !ok {
				return nil, false, fmt.Errorf("%s: spec.sources[%d] is %T, not an object", where, i, item)
			}
			s, err := readSource(m)
			if err != nil {
				return nil, false, fmt.Errorf("%s: spec.sources[%d]: %w", where, i, err)
			}
			srcs = append(srcs, s)
		}
		return srcs, true, nil
	}
	raw, _, err := unstructured.NestedFieldNoCopy(app.Object, "spec", "source")
	if err != nil {
		return nil, false, fmt.Errorf("%s: spec.source: %w", where, err)
	}
	if raw == nil {
		return nil, false, nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, false, fmt.Errorf("%s: spec.source is %T, not an object", where, raw)
	}
	s, err := readSource(m)
	if err != nil {
		return nil, false, fmt.Errorf("%s: spec.source: %w", where, err)
	}
	return []appSource{s}, false, nil
}

func readSource(m map[string]any) (appSource, error) {
	var s appSource
	for _, f := range []struct {
		key string
		dst *string
	}{{"repoURL", &s.RepoURL}, {"chart", &s.Chart}, {"targetRevision", &s.TargetRevision}, {"path", &s.Path}, {"name", &s.Name}} {
		v, _, err := unstructured.NestedString(m, f.key)
		if err != nil {
			return appSource{}, fmt.Errorf("%s: %w", f.key, err)
		}
		*f.dst = v
	}
	return s, nil
}

// sourceRepository returns the bundle repository of src, or "" when src is not a bundle source.
// As in Argo CD (ApplicationSource.IsOCI before IsHelm), an oci:// repoURL is an OCI source
// whether or not it names a chart: the repository is the URL itself and targetRevision a tag or
// digest. A chart with a scheme-less repoURL is a Helm-OCI source.
func sourceRepository(src appSource) (repo string, oci bool) {
	url := strings.TrimSuffix(strings.TrimSpace(src.RepoURL), "/")
	if url == "" {
		return "", false
	}
	if strings.HasPrefix(url, "oci://") {
		return strings.TrimPrefix(url, "oci://"), true
	}
	if src.Chart != "" && !strings.Contains(url, "://") {
		// Plain https:// Helm repositories are not bundles.
		return url + "/" + src.Chart, false
	}
	return "", false
}

// bundleTarget is what an Application asks Strata to move: one bundle source and, when an
// image-list entry names it, that entry (its alias scopes the options).
type bundleTarget struct {
	source bundleSource
	spec   *imageSpec
}

// selectTarget picks the bundle source of app. With image-list, the one entry whose image is a
// bundle source of app names it; entries naming other images (containers, for upstream's
// updater) are left alone, and an Application whose entries name no bundle source and which has
// no chart-version or bundle-constraint annotation is not Strata's (ok false). Otherwise the
// one bundle source is used, or the one strata.dev/bundle-source names.
func selectTarget(app *unstructured.Unstructured) (t bundleTarget, ok bool, err error) {
	ann := app.GetAnnotations()
	selector := strings.TrimSpace(ann[AnnotationBundleSource])
	list, hasList := ann[AnnotationImageList]
	_, hasConstraint := ann[AnnotationChartVersion]
	if _, ok := ann[AnnotationBundleConstraint]; ok {
		hasConstraint = true
	}
	if hasList {
		specs, err := parseImageList(list)
		if err != nil {
			return t, true, err
		}
		srcs, err := bundleSources(app, selector)
		if err != nil {
			return t, true, err
		}
		var found []bundleTarget
		for i := range specs {
			for _, src := range srcs {
				if repositoryMatches(src.repository, specs[i].image) {
					found = append(found, bundleTarget{source: src, spec: &specs[i]})
				}
			}
		}
		switch {
		case len(found) == 1:
			return found[0], true, nil
		case len(found) > 1:
			return t, true, fmt.Errorf("annotation %s: %d entries name bundle sources; Strata moves one bundle per Application: name its source with %s", AnnotationImageList, len(found), AnnotationBundleSource)
		case !hasConstraint:
			return t, false, nil
		}
	}
	src, err := findBundleSource(app, selector)
	return bundleTarget{source: src}, true, err
}

// bundleSources lists the bundle sources of app (those selector names, if set).
func bundleSources(app *unstructured.Unstructured, selector string) ([]bundleSource, error) {
	srcs, multi, err := applicationSources(app)
	if err != nil {
		return nil, err
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
	return found, nil
}

// findBundleSource picks the bundle source of app. With several bundle sources, selector
// (annotation strata.dev/bundle-source) must name one by source name, chart or repository.
func findBundleSource(app *unstructured.Unstructured, selector string) (bundleSource, error) {
	found, err := bundleSources(app, selector)
	if err != nil {
		return bundleSource{}, err
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

func sourceMatches(s appSource, repo, selector string) bool {
	sel := strings.TrimSuffix(strings.TrimPrefix(selector, "oci://"), "/")
	return (s.Name != "" && s.Name == selector) || (s.Chart != "" && s.Chart == selector) || repo == sel
}
