package bundle

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestInjectValues(t *testing.T) {
	m := &Metadata{
		Repo:   "reg/stages",
		Commit: Commit{Hash: "abc", Date: "2026-01-01T00:00:00Z"},
		Images: map[string]Image{"web": {Repo: "reg/stages", Tag: "t1", Ref: "reg/stages:t1@sha256:1", Digest: "sha256:1"}},
	}
	src := "# top comment\nreplicas: 2 # inline\nstrata:\n  image:\n    web: placeholder\n  extra: keep\nglobal:\n  other: 1\n"
	out, err := injectValues([]byte(src), m)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, w := range []string{"# top comment", "# inline", "extra: keep", "other: 1"} {
		if !strings.Contains(s, w) {
			t.Errorf("lost %q:\n%s", w, s)
		}
	}
	var v map[string]any
	if err := yaml.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	for _, root := range []map[string]any{v["strata"].(map[string]any), v["global"].(map[string]any)["strata"].(map[string]any)} {
		if root["image"].(map[string]any)["web"] != "reg/stages:t1@sha256:1" || root["tag"].(map[string]any)["web"] != "t1" ||
			root["digest"].(map[string]any)["web"] != "sha256:1" || root["repo"] != "reg/stages" ||
			root["commit"].(map[string]any)["hash"] != "abc" || root["commit"].(map[string]any)["date"] != "2026-01-01T00:00:00Z" {
			t.Errorf("injected values wrong:\n%s", s)
		}
	}
	// no values.yaml at all, and one that is only a comment
	for _, src := range []string{"", "# nothing\n"} {
		out, err := injectValues([]byte(src), m)
		if err != nil || !strings.Contains(string(out), "web: \"reg/stages:t1@sha256:1\"") {
			t.Errorf("values %q: %v\n%s", src, err, out)
		}
	}
	if _, err := injectValues([]byte("- a\n"), m); err == nil {
		t.Error("a list as values.yaml was accepted")
	}
}
