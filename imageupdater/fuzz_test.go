package imageupdater

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"strata.dev/strata/internal/testing/fuzztest"
)

// FuzzAnnotations: no annotation set makes the policy parser panic or hang (issue 19 item 1: a
// 20,000-alternative allow-tags stalled the updater); every error names an annotation; parsing
// is deterministic; an unknown option, and an alias-scoped option for an alias image-list does
// not define, are reported by name; a policy that parses filters 200 tags quickly (the size limits bound matching).
func FuzzAnnotations(f *testing.F) {
	for _, seed := range [][6]string{
		{"yourtool=yourorg/yourimage", "latest", `regexp:^v1.0.0-[0-9a-zA-Z]+$`, "", "yourtool.force-update", "true"},
		{"fooalias=foo/bar, baralias=bar/foo", "semver", "any", "latest, dev", "typo.allow-tags", "any"},
		{"nginx:~1.26", "Name", "", "*", "write-back-method", "git"},
		{"app=x", "semver", "", "", "update-stratgy", "digest"},
		{"app=reg.local:5000/team/app:>=1.0 <2", "digest", `regexp:(a|b|c){1000}`, "[a", "app.helm.image-name", "x"},
		{"a=x, a=y", "newest-build", "regexp:(", "0.*", "a.pull-secret", "secret:ns/name#key"},
		{"app=x", "semver", "regexp:" + strings.Repeat("a|", 2000) + "b", "", "app.update-strategy", "digest"},
		{"team/app=x", "semver", "", "", "team_app.ignore-tags", "*-rc*"},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3], seed[4], seed[5])
	}
	tags := make([]string, 200)
	for i := range tags {
		tags[i] = strings.Repeat("v1.2.3-rc.", 1+i%12)
	}
	bounds := fuzztest.Bounds{Time: 20 * time.Second, Heap: 256 << 20}
	f.Fuzz(func(t *testing.T, list, strategy, allow, ignore, extraKey, extraValue string) {
		ann := map[string]string{
			AnnotationImageList: list, AnnotationChartVersion: "1.x",
			upstreamPrefix + "app.update-strategy": strategy, AnnotationAllowTags: allow, upstreamPrefix + "app.ignore-tags": ignore,
		}
		extraKey = upstreamPrefix + extraKey
		if _, taken := ann[extraKey]; !taken {
			ann[extraKey] = extraValue
		}
		var (
			specs  []imageSpec
			p, p2  *policy
			err    error
			err2   error
			listOK error
		)
		fuzztest.Bounded(t, bounds, "parse annotations", func() {
			specs, listOK = parseImageList(list)
			var spec *imageSpec
			if listOK == nil && len(specs) > 0 {
				spec = &specs[0]
			}
			p, err = parsePolicy(ann, spec)
			p2, err2 = parsePolicy(ann, spec)
		})
		if listOK != nil && !strings.Contains(listOK.Error(), AnnotationImageList) {
			t.Errorf("image-list error without the annotation: %v", listOK)
		}
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("two parses differ: %v / %v", err, err2)
		}
		if err != nil {
			if !strings.Contains(err.Error(), "annotation ") || !strings.Contains(err.Error(), "argoproj.io/") && !strings.Contains(err.Error(), "strata.dev/") {
				t.Errorf("error without the annotation: %v", err)
			}
			return
		}
		if !reflect.DeepEqual(p.warnings, p2.warnings) {
			t.Fatalf("two parses warn differently: %q / %q", p.warnings, p2.warnings)
		}
		// An option the updater does not know is reported.
		if rest := strings.TrimPrefix(extraKey, upstreamPrefix); !strings.Contains(rest, ".") && !slices.Contains(topLevelOptions, rest) &&
			!slices.ContainsFunc(p.warnings, func(w string) bool { return strings.Contains(w, extraKey) }) {
			t.Errorf("unknown annotation %s is not reported: %q", extraKey, p.warnings)
		}
		// An alias-scoped option of an alias image-list does not define is reported.
		if alias, opt, ok := strings.Cut(strings.TrimPrefix(extraKey, upstreamPrefix), "."); ok && slices.Contains(aliasOptions, opt) {
			defined := false
			for _, s := range specs {
				defined = defined || strings.ReplaceAll(s.alias, "/", "_") == alias
			}
			reported := slices.ContainsFunc(p.warnings, func(w string) bool { return strings.Contains(w, extraKey) })
			if listOK == nil && !defined && !reported {
				t.Errorf("%s: alias %q is not in image-list %q, and no warning says so: %q", extraKey, alias, list, p.warnings)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		start := time.Now()
		if _, err := p.allowedTags(ctx, tags); err != nil {
			t.Errorf("allowedTags: %v", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("matching 200 tags took %v", d)
		}
	})
}

// With several annotations over the size limit the error names the same one every time (found
// by FuzzAnnotations: map order picked one at random, so the Application's error, and the
// Event the controller emits when it changes, flapped between cycles).
func TestPolicySizeErrorDeterministic(t *testing.T) {
	big := strings.Repeat("x", MaxAnnotationBytes+1)
	ann := map[string]string{AnnotationAllowTags: "regexp:" + big, upstreamPrefix + "app.allow-tags": big, AnnotationIgnoreTags: big, AnnotationAllowDowngrade: big}
	_, first := parsePolicy(ann, &imageSpec{alias: "app"})
	if first == nil || !strings.Contains(first.Error(), AnnotationAllowTags+":") {
		t.Fatalf("error %v, want the first key in order, %s", first, AnnotationAllowTags)
	}
	for range 50 {
		if _, err := parsePolicy(ann, &imageSpec{alias: "app"}); err == nil || err.Error() != first.Error() {
			t.Fatalf("error %v, then %v", first, err)
		}
	}
}

// An argocd-image-updater.argoproj.io/ key the updater does not know (a typo) is reported as
// ignored, by name; the known ones are not.
func TestUnknownAnnotationReported(t *testing.T) {
	ann := map[string]string{AnnotationImageList: "app=x", upstreamPrefix + "update-stratgy": "digest", AnnotationUpdateStrategy: "semver", AnnotationWriteBackMethod: "argocd"}
	p, err := parsePolicy(ann, &imageSpec{alias: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.warnings) != 1 || !strings.Contains(p.warnings[0], upstreamPrefix+"update-stratgy: not an option") {
		t.Errorf("warnings %q, want one naming update-stratgy", p.warnings)
	}
}
