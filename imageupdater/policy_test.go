package imageupdater

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"strata.dev/strata/internal/registry"
)

func TestParsePolicyErrorsNameTheAnnotation(t *testing.T) {
	for _, tc := range []struct {
		ann  map[string]string
		want string
	}{
		{map[string]string{AnnotationChartVersion: ">= nope"}, AnnotationChartVersion},
		{map[string]string{AnnotationBundleConstraint: "1.x", AnnotationUpdateStrategy: "best"}, `unknown strategy "best"`},
		{map[string]string{AnnotationChartVersion: "1.x", AnnotationAllowTags: "glob:*"}, AnnotationAllowTags},
		{map[string]string{AnnotationChartVersion: "1.x", AnnotationAllowTags: "regexp:("}, AnnotationAllowTags},
		{map[string]string{AnnotationChartVersion: "1.x", AnnotationIgnoreTags: "[a"}, AnnotationIgnoreTags},
		{map[string]string{AnnotationChartVersion: "1.x", AnnotationForceUpdate: "yes"}, AnnotationForceUpdate},
		{map[string]string{AnnotationChartVersion: "1.x", AnnotationPullSecret: "vault:x"}, AnnotationPullSecret},
		{map[string]string{AnnotationChartVersion: "1.x", AnnotationPullSecret: "secret:ns/name"}, "#FIELD"},
		{map[string]string{AnnotationChartVersion: "1.x", AnnotationWriteBackMethod: "svn"}, AnnotationWriteBackMethod},
		{map[string]string{AnnotationChartVersion: "1.x", AnnotationWriteBackMethod: "git:secret:a/b/c"}, "git:secret:NAMESPACE/NAME"},
		{map[string]string{AnnotationChartVersion: "1.x", AnnotationWriteBackMethod: "git", AnnotationWriteBackTarget: "argocd-source"}, AnnotationWriteBackTarget},
		{map[string]string{AnnotationChartVersion: "1.x", AnnotationWriteBackMethod: "git", AnnotationWriteBackTarget: "helmvalues"}, "helmvalues:<path>"},
		{map[string]string{AnnotationChartVersion: "1.x", AnnotationWriteBackMethod: "git", AnnotationWriteBackTarget: "helmvalues:values.yaml"}, AnnotationWriteBackKey},
		{map[string]string{AnnotationChartVersion: "1.x", AnnotationWriteBackMethod: "git", AnnotationGitRepository: "git@github.com:a/b.git"}, "SSH is not"},
		{map[string]string{AnnotationChartVersion: "1.x", AnnotationWriteBackMethod: "git", AnnotationGitBranch: "a:b:c"}, "BASE:TARGET"},
		{map[string]string{AnnotationChartVersion: ">=1", AnnotationUpdateStrategy: "digest"}, "tracks one tag"},
		{map[string]string{AnnotationChartVersion: "", AnnotationUpdateStrategy: "digest"}, "needs the tag"},
	} {
		_, err := parsePolicy(tc.ann, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parsePolicy(%v) = %v, want an error containing %q", tc.ann, err, tc.want)
		}
	}
	// strata.dev/bundle-constraint wins over the upstream annotation.
	p, err := parsePolicy(map[string]string{AnnotationChartVersion: "junk!!", AnnotationBundleConstraint: "~1.2", AnnotationUpdateStrategy: "latest"}, nil)
	if err != nil || p.constraint != "~1.2" || p.strategy != StrategyNewestBuild {
		t.Errorf("parsePolicy = %+v, %v", p, err)
	}
}

func TestPickSemver(t *testing.T) {
	tags := []string{"1.0.0", "1.1.0", "2.0.0-rc.1", "1.2.0", "1.2.1_build.5", "latest", "sha256-abc.sig", "v1.3.0-alpha"}
	for _, tc := range []struct{ ann, want string }{
		{">=1.0 <2", "1.2.1_build.5"},
		{"~1.1", "1.1.0"},
		{"^2.0.0-0", "2.0.0-rc.1"},
		{"<1", ""},
		{"", "1.2.1_build.5"},
		{">=1.3.0-0 <1.4", "v1.3.0-alpha"},
	} {
		p, err := parsePolicy(map[string]string{AnnotationChartVersion: tc.ann}, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := p.pickSemver(tags)
		if got.tag != tc.want || ok != (tc.want != "") {
			t.Errorf("%q: picked %q (%v), want %q", tc.ann, got.tag, ok, tc.want)
		}
	}
	p, _ := parsePolicy(map[string]string{AnnotationChartVersion: "1.x", AnnotationIgnoreTags: "*build*", AnnotationAllowTags: `regexp:^1\.[02]\.`}, nil)
	allowed, err := p.allowedTags(context.Background(), tags)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := p.pickSemver(allowed); got.tag != "1.2.0" {
		t.Errorf("allow/ignore: picked %q, want 1.2.0", got.tag)
	}
}

func TestWebhookParsingAndMatching(t *testing.T) {
	env := `{"events":[
	 {"action":"pull","target":{"repository":"a/b","tag":"1"},"request":{"host":"reg:5000"}},
	 {"action":"push","target":{"repository":"team/app","tag":"1.2.0"},"request":{"host":"localhost:5000"}},
	 {"action":"push","target":{"repository":"team/app","digest":"sha256:x"},"request":{"host":"localhost:5000"}}]}`
	evs, err := parseWebhook([]byte(env))
	if err != nil || len(evs) != 2 || evs[0].repository != "localhost:5000/team/app" || evs[0].tag != "1.2.0" {
		t.Fatalf("envelope: %+v, %v", evs, err)
	}
	evs, err = parseWebhook([]byte(`{"repository":"oci://r.example.com/x/y","tag":"2"}`))
	if err != nil || len(evs) != 1 || evs[0].repository != "r.example.com/x/y" {
		t.Fatalf("simple: %+v, %v", evs, err)
	}
	if _, err := parseWebhook([]byte(`[]`)); err == nil {
		t.Error("a JSON list was accepted")
	}
	for _, tc := range []struct {
		bundle, pushed string
		want           bool
	}{
		{"127.0.0.1:5000/team/app", "localhost:5000/team/app", true},
		{"127.0.0.1:5000/team/app", "team/app", true},
		{"127.0.0.1:5000/team/app", "127.0.0.1:5001/team/app", false},
		{"r.example.com/team/app", "s.example.com/team/app", false},
		{"r.example.com/team/app", "r.example.com/team/app2", false},
	} {
		if got := repositoryMatches(tc.bundle, tc.pushed); got != tc.want {
			t.Errorf("repositoryMatches(%q, %q) = %v", tc.bundle, tc.pushed, got)
		}
	}
}

func TestRegistriesConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("defaultLimit: 5\nregistries:\n- name: reg.local:5000\n  insecure: true\n  limit: 50\n  credentials: env:REG_CREDS\n"), 0o644)
	c, err := LoadRegistriesConfig(good)
	if err != nil {
		t.Fatal(err)
	}
	if c.limit("reg.local:5000") != 50 || c.limit("other") != 5 || (RegistriesConfig{}).limit("x") != DefaultRateLimit {
		t.Errorf("limits: %+v", c)
	}
	ra := newRegistryAccess(registryOptions(), c, nil, newMetrics())
	if !ra.opts.IsInsecure("reg.local:5000") || ra.credentialKey("", "reg.local:5000") != "env:REG_CREDS" || ra.credentialKey("env:X", "reg.local:5000") != "env:X" {
		t.Errorf("registry access: insecure/credentials not applied")
	}
	if l := ra.limiter("reg.local:5000"); l.Limit() != 50 || l.Burst() != 50 || ra.limiter("other:1").Limit() != 5 || ra.limiter("reg.local:5000") != l {
		t.Errorf("rate limiters: %v/%d, other %v", l.Limit(), l.Burst(), ra.limiter("other:1").Limit())
	}
	for body, want := range map[string]string{
		"registries:\n- name: a/b\n":                    "registries[0].name",
		"registries:\n- name: a\n  limit: -1\n":         "registries[0].limit",
		"registries:\n- name: a\n  credentials: nope\n": "registries[0].credentials",
		"registries:\n- name: a\n  unknown: 1\n":        "unknown",
		"registries:\n- name: a\n- name: a\n":           "twice",
	} {
		p := filepath.Join(dir, "bad.yaml")
		os.WriteFile(p, []byte(body), 0o644)
		if _, err := LoadRegistriesConfig(p); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%q: %v, want an error naming the file and %q", body, err, want)
		}
	}
}

func TestCredentialSources(t *testing.T) {
	t.Setenv("IU_TEST_CREDS", "bob:s3cret")
	c, err := resolveCredential(t.Context(), nil, "env:IU_TEST_CREDS", "r")
	if err != nil || c.Username != "bob" || c.Password != "s3cret" {
		t.Errorf("env: %+v %v", c, err)
	}
	if _, err := resolveCredential(t.Context(), nil, "env:IU_TEST_UNSET_VAR", "r"); err == nil || !strings.Contains(err.Error(), "IU_TEST_UNSET_VAR") {
		t.Errorf("unset env: %v", err)
	}
	if registryKey("https://index.docker.io/v1/") != "index.docker.io" || registryKey("reg:5000") != "reg:5000" {
		t.Errorf("registryKey: %q", registryKey("https://index.docker.io/v1/"))
	}
}

func registryOptions() registry.Options { return registry.Options{} }
