package imageupdater

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"strata.dev/strata/internal/testing/testenv"
)

// image-list items as upstream documents them (docs/configuration/images.md).
func TestParseImageListUpstreamExamples(t *testing.T) {
	for v, want := range map[string][]imageSpec{
		"nginx":                                  {{image: "nginx"}},
		"nginx:~1.26":                            {{image: "nginx", constraint: "~1.26"}},
		"myalias=some/image":                     {{alias: "myalias", image: "some/image"}},
		"yourtool=yourorg/yourimage":             {{alias: "yourtool", image: "yourorg/yourimage"}},
		"fooalias=foo/bar, baralias=bar/foo":     {{alias: "fooalias", image: "foo/bar"}, {alias: "baralias", image: "bar/foo"}},
		"dex=quay.io/dexidp/dex":                 {{alias: "dex", image: "quay.io/dexidp/dex"}},
		"app=registry.local:5000/team/app:>=1.0": {{alias: "app", image: "registry.local:5000/team/app", constraint: ">=1.0"}},
		"registry.local:5000/team/app":           {{image: "registry.local:5000/team/app"}},
	} {
		got, err := parseImageList(v)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseImageList(%q) = %+v, %v; want %+v", v, got, err, want)
		}
	}
	for v, want := range map[string]string{
		"=some/image":                            "empty alias",
		"a=x/y, a=x/z":                           `alias "a" used twice`,
		"a=":                                     "names no image",
		strings.Repeat("x", MaxImageListBytes+1): "at most",
	} {
		if _, err := parseImageList(v); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), AnnotationImageList) {
			t.Errorf("parseImageList(%.30q) = %v, want an error naming %s and saying %q", v, err, AnnotationImageList, want)
		}
	}
}

// Alias-scoped options win over app-wide ones, which are the fallback; strategy names are
// case-insensitive with upstream's aliases. The annotation sets are upstream's documented
// examples, with the image being a bundle.
func TestAliasScopedOptions(t *testing.T) {
	const p = upstreamPrefix
	for _, tc := range []struct {
		name      string
		ann       map[string]string
		strategy  Strategy
		allow     string // a tag the policy must allow
		deny      string // a tag it must refuse
		secret    string
		downgrade bool
	}{
		{name: "upstream 'latest build' example",
			ann: map[string]string{p + "image-list": "yourtool=yourorg/yourimage", p + "yourtool.update-strategy": "latest",
				p + "yourtool.allow-tags": "regexp:^v1.0.0-[0-9a-zA-Z]+$"},
			strategy: StrategyNewestBuild, allow: "v1.0.0-abc123", deny: "v1.1.0-abc123"},
		{name: "alias wins over app-wide",
			ann: map[string]string{p + "image-list": "app=some/image", p + "app.update-strategy": "digest", p + "update-strategy": "semver",
				p + "app.ignore-tags": "*-dev", p + "ignore-tags": "*", p + "app.pull-secret": "env:APP_CREDS", p + "pull-secret": "env:OTHER",
				AnnotationChartVersion: "latest"},
			strategy: StrategyDigest, allow: "1.0.0", deny: "1.0.0-dev", secret: "env:APP_CREDS"},
		{name: "app-wide fallback",
			ann: map[string]string{p + "image-list": "app=some/image", p + "update-strategy": "name", p + "allow-tags": "regexp:^1\\.",
				p + "pull-secret": "pullsecret:argocd/regcred"},
			strategy: StrategyAlphabetical, allow: "1.9", deny: "2.0", secret: "pullsecret:argocd/regcred"},
		{name: "alias with a slash is written with '_'",
			ann:      map[string]string{p + "image-list": "argoproj/argocd=quay.io/argoproj/argocd", p + "argoproj_argocd.update-strategy": "Newest-Build"},
			strategy: StrategyNewestBuild, allow: "anything"},
		{name: "no image-list: app-wide only", ann: map[string]string{p + "update-strategy": "SemVer"}, strategy: StrategySemver, allow: "1.0.0"},
		{name: "strategy names are case-insensitive", ann: map[string]string{p + "update-strategy": "NAME"}, strategy: StrategyAlphabetical, allow: "x"},
		{name: "allow-downgrade", ann: map[string]string{AnnotationAllowDowngrade: "True"}, strategy: StrategySemver, downgrade: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var spec *imageSpec
			if v, ok := tc.ann[AnnotationImageList]; ok {
				specs, err := parseImageList(v)
				if err != nil {
					t.Fatal(err)
				}
				spec = &specs[0]
			}
			pol, err := parsePolicy(tc.ann, spec)
			if err != nil {
				t.Fatalf("parsePolicy: %v", err)
			}
			if pol.strategy != tc.strategy || pol.pullSecret != tc.secret || pol.downgrade != tc.downgrade {
				t.Errorf("strategy %s, pull secret %q, downgrade %v; want %s, %q, %v", pol.strategy, pol.pullSecret, pol.downgrade, tc.strategy, tc.secret, tc.downgrade)
			}
			if tc.allow != "" && !pol.tagAllowed(tc.allow) {
				t.Errorf("tag %q refused", tc.allow)
			}
			if tc.deny != "" && pol.tagAllowed(tc.deny) {
				t.Errorf("tag %q allowed", tc.deny)
			}
			if len(pol.warnings) != 0 {
				t.Errorf("warnings: %q", pol.warnings)
			}
		})
	}
	// Errors name the alias-scoped key they come from.
	_, err := parsePolicy(map[string]string{p + "app.update-strategy": "fastest"}, &imageSpec{alias: "app", image: "x/y"})
	if err == nil || !strings.Contains(err.Error(), p+"app.update-strategy") {
		t.Errorf("bad alias strategy: %v", err)
	}
}

// Annotations that change nothing are named in warnings: an option for an alias image-list does
// not define, upstream's Helm/Kustomize options on the bundle's alias, force-update (its
// upstream meaning always holds for a bundle source).
func TestIgnoredAnnotationsAreNamed(t *testing.T) {
	const p = upstreamPrefix
	ann := map[string]string{
		p + "image-list": "app=some/image, web=nginx", p + "other.update-strategy": "digest",
		p + "app.helm.image-tag": "image.tag", p + "web.helm.image-tag": "web.tag", p + "force-update": "true",
		p + "write-back-target": "kustomization", p + "git-branch": "main",
	}
	pol, err := parsePolicy(ann, &imageSpec{alias: "app", image: "some/image"})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(pol.warnings, "\n")
	for _, want := range []string{p + `other.update-strategy: alias "other" is not defined`, p + "app.helm.image-tag: helm.image-tag has no meaning", p + "force-update: upstream's force-update", AnnotationAllowDowngrade,
		p + "write-back-target: only used with " + AnnotationWriteBackMethod + ": git", p + "git-branch: only used with " + AnnotationWriteBackMethod + ": git"} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "web.helm") {
		t.Errorf("warned about another image's option:\n%s", got)
	}
}

// image-list selects the bundle source; an Application whose image-list names container images
// only (upstream's updater) is left alone; oci:// with chart is an OCI source, as in Argo CD.
func TestSelectTarget(t *testing.T) {
	app := func(ann map[string]string, srcs ...v1alpha1.ApplicationSource) *unstructured.Unstructured {
		a := &v1alpha1.Application{}
		a.Name, a.Namespace, a.Annotations = "a", "ns", ann
		if len(srcs) == 1 {
			a.Spec.Source = &srcs[0]
		} else {
			a.Spec.Sources = srcs
		}
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(a)
		if err != nil {
			t.Fatal(err)
		}
		return &unstructured.Unstructured{Object: m}
	}
	helm := v1alpha1.ApplicationSource{RepoURL: "reg.local:5000/team", Chart: "shop", TargetRevision: "1.0.0"}
	other := v1alpha1.ApplicationSource{RepoURL: "reg.local:5000/team", Chart: "db", TargetRevision: "2.0.0"}
	ociChart := v1alpha1.ApplicationSource{RepoURL: "oci://reg.local:5000/team/shop", Chart: "shop", TargetRevision: "1.0.0"}

	tg, ok, err := selectTarget(app(map[string]string{AnnotationImageList: "web=nginx, s=reg.local:5000/team/shop:~1.2"}, helm, other))
	if err != nil || !ok || tg.source.repository != "reg.local:5000/team/shop" || tg.spec.alias != "s" || tg.spec.constraint != "~1.2" || tg.source.index != 0 {
		t.Errorf("image-list picks shop: %+v %v %v", tg, ok, err)
	}
	if _, ok, err := selectTarget(app(map[string]string{AnnotationImageList: "web=nginx"}, helm)); ok || err != nil {
		t.Errorf("containers only: ok=%v err=%v, want not Strata's", ok, err)
	}
	if tg, ok, err := selectTarget(app(map[string]string{AnnotationImageList: "web=nginx", AnnotationChartVersion: "1.x"}, helm)); !ok || err != nil || tg.spec != nil || tg.source.repository != "reg.local:5000/team/shop" {
		t.Errorf("containers + chart-version: %+v %v %v, want the bundle source without alias", tg, ok, err)
	}
	if _, _, err := selectTarget(app(map[string]string{AnnotationImageList: "a=reg.local:5000/team/shop, b=reg.local:5000/team/db"}, helm, other)); err == nil || !strings.Contains(err.Error(), AnnotationBundleSource) {
		t.Errorf("two bundles: %v, want an error pointing at %s", err, AnnotationBundleSource)
	}
	tg, ok, err = selectTarget(app(map[string]string{AnnotationChartVersion: "1.x"}, ociChart))
	if err != nil || !ok || !tg.source.oci || tg.source.repository != "reg.local:5000/team/shop" {
		t.Errorf("oci:// + chart: %+v %v, want an OCI source on reg.local:5000/team/shop", tg.source, err)
	}
}

// On the real apiserver and registry: alias-scoped options win, image-list alone opts in with its
// constraint, an image-list of container images only is left alone, oci:// + chart moves as an
// OCI source (a tag), and an option for an undefined alias is reported, not silently dropped.
func TestImageListAndAliasesOnTheCluster(t *testing.T) {
	k := newKubeEnv(t)
	repo := testenv.Repo(t, "shop")
	publishSeries(t, repo)
	const p = upstreamPrefix
	k.app(t, "aliased", map[string]string{p + "image-list": "shop=" + repo, p + "shop.update-strategy": "Name", p + "update-strategy": "semver",
		p + "shop.allow-tags": `regexp:^1\.1`}, helmSource(repo, "1.0.0"))
	k.app(t, "listed", map[string]string{p + "image-list": repo + ":~1.1"}, helmSource(repo, "1.0.0"))
	k.app(t, "containers", map[string]string{p + "image-list": "web=nginx"}, helmSource(repo, "1.0.0"))
	k.app(t, "ocichart", map[string]string{AnnotationChartVersion: "^1"}, v1alpha1.ApplicationSource{RepoURL: "oci://" + repo, Chart: "unused", TargetRevision: "1.0.0"})
	k.app(t, "unknown-alias", map[string]string{AnnotationChartVersion: "1.x", p + "other.update-strategy": "digest"}, helmSource(repo, "1.0.0"))

	c, _, _ := k.startController(t, nil)
	if res := c.runCycle(context.Background()); res.failed != 0 || res.updated != 4 {
		t.Fatalf("cycle = %+v, want 4 updated, none failed", res)
	}
	for name, want := range map[string]string{"aliased": "1.1.0", "listed": "1.1.0", "containers": "1.0.0", "ocichart": "1.2.0", "unknown-alias": "1.2.0"} {
		if got := revision(k.getApp(t, name), -1); got != want {
			t.Errorf("%s: targetRevision = %q, want %q", name, got, want)
		}
	}
	if evs := k.events(t, "containers"); len(evs) != 0 {
		t.Errorf("containers: events %+v, want none", evs)
	}
	var warned bool
	for _, ev := range k.events(t, "unknown-alias") {
		warned = warned || ev.Reason == reasonIgnored && strings.Contains(ev.Message, p+"other.update-strategy")
	}
	if !warned {
		t.Errorf("unknown-alias: no %s Event naming %s", reasonIgnored, p+"other.update-strategy")
	}
}
