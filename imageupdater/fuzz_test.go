package imageupdater

import (
	"context"
	"strings"
	"testing"
	"time"
)

// FuzzAnnotations: no annotation set makes the policy parser panic; every error names an
// annotation; a policy that parses filters 200 tags quickly (the size limits bound matching).
func FuzzAnnotations(f *testing.F) {
	for _, seed := range [][4]string{
		{"yourtool=yourorg/yourimage", "latest", `regexp:^v1.0.0-[0-9a-zA-Z]+$`, ""},
		{"fooalias=foo/bar, baralias=bar/foo", "semver", "any", "latest, dev"},
		{"nginx:~1.26", "Name", "", "*"},
		{"app=reg.local:5000/team/app:>=1.0 <2", "digest", `regexp:(a|b|c){1000}`, "[a"},
		{"a=x, a=y", "newest-build", "regexp:(", "0.*"},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	tags := make([]string, 200)
	for i := range tags {
		tags[i] = strings.Repeat("v1.2.3-rc.", 1+i%12)
	}
	f.Fuzz(func(t *testing.T, list, strategy, allow, ignore string) {
		ann := map[string]string{
			AnnotationImageList: list, AnnotationChartVersion: "1.x",
			upstreamPrefix + "app.update-strategy": strategy, AnnotationAllowTags: allow, upstreamPrefix + "app.ignore-tags": ignore,
		}
		var spec *imageSpec
		specs, err := parseImageList(list)
		if err != nil {
			if !strings.Contains(err.Error(), AnnotationImageList) {
				t.Errorf("image-list error without the annotation: %v", err)
			}
		} else if len(specs) > 0 {
			spec = &specs[0]
		}
		p, err := parsePolicy(ann, spec)
		if err != nil {
			if !strings.Contains(err.Error(), "annotation "+upstreamPrefix) {
				t.Errorf("error without the annotation: %v", err)
			}
			return
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

// FuzzWebhook: no body makes the webhook parser panic.
func FuzzWebhook(f *testing.F) {
	f.Add([]byte(`{"events":[{"action":"push","target":{"repository":"team/app","tag":"1.0.0"},"request":{"host":"reg.local:5000"}}]}`))
	f.Add([]byte(`{"repository":"oci://reg.local:5000/team/app","tag":"1.2.0"}`))
	f.Add([]byte(`{"events":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := parseWebhook(body)
		if err == nil {
			for _, e := range events {
				_ = repositoryMatches("reg.local:5000/team/app", e.repository)
			}
		}
	})
}
