package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseCleanupDefaults(t *testing.T) {
	cfg, err := Parse("strata.yaml", []byte("project: demo\nconfigVersion: 1\n---\nimage: app\nfrom: busybox\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Project != "demo" {
		t.Errorf("project %q", cfg.Project)
	}
	p := cfg.Cleanup
	if len(p.Branches) != 1 || p.Branches[0].Last != 10 || p.Branches[0].Within != 7*24*time.Hour || p.Branches[0].Match != nil {
		t.Errorf("branches %+v", p.Branches)
	}
	if len(p.Tags) != 1 || p.Tags[0].Last != 10 || p.Tags[0].Within != 0 {
		t.Errorf("tags %+v", p.Tags)
	}
	if p.KeepBuiltWithin != 2*time.Hour {
		t.Errorf("keepBuiltWithin %v", p.KeepBuiltWithin)
	}
}

func TestParseCleanupPolicy(t *testing.T) {
	src := `project: demo
configVersion: 1
cleanup:
  keepBuiltWithin: 90m
  branches:
    - match: main|release/.*
      last: 30
      within: 2w
    - last: 5
  tags:
    last: 3
    within: 30d
`
	cfg, err := Parse("strata.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Cleanup
	if p.KeepBuiltWithin != 90*time.Minute {
		t.Errorf("keepBuiltWithin %v", p.KeepBuiltWithin)
	}
	if len(p.Branches) != 2 {
		t.Fatalf("branches %+v", p.Branches)
	}
	b0, b1 := p.Branches[0], p.Branches[1]
	if !b0.Matches("main") || !b0.Matches("release/1.2") || b0.Matches("mainline") || b0.Last != 30 || b0.Within != 14*24*time.Hour {
		t.Errorf("branches[0] %v", b0)
	}
	if !b1.Matches("anything") || b1.Last != 5 || b1.Within != 7*24*time.Hour {
		t.Errorf("branches[1] %v (defaults must fill what a rule omits)", b1)
	}
	if len(p.Tags) != 1 || p.Tags[0].Last != 3 || p.Tags[0].Within != 30*24*time.Hour {
		t.Errorf("tags %+v", p.Tags)
	}
	cfg, err = Parse("strata.yaml", []byte("project: demo\nconfigVersion: 1\ncleanup:\n  branches: {within: unlimited}\n  keepBuiltWithin: 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cleanup.Branches[0].Within != 0 || cfg.Cleanup.KeepBuiltWithin != 0 {
		t.Errorf("unlimited/0: %+v", cfg.Cleanup)
	}
}

func TestParseCleanupErrors(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"project: demo\nconfigVersion: 1\ncleanup:\n  branch:\n    last: 3\n", `strata.yaml:4: cleanup.branch: unknown key (did you mean "branches"?)`},
		{"project: demo\nconfigVersion: 1\ncleanup:\n  branches:\n    last: many\n", `strata.yaml:5: cleanup.branches.last: want a whole number ≥ 0, got str "many"`},
		{"project: demo\nconfigVersion: 1\ncleanup:\n  tags:\n    - within: 3 days\n", `strata.yaml:5: cleanup.tags[0].within: want a duration`},
		{"project: demo\nconfigVersion: 1\ncleanup:\n  tags:\n    - match: '(['\n", `strata.yaml:5: cleanup.tags[0].match: error parsing regexp`},
		{"project: demo\nconfigVersion: 1\ncleanup:\n  tags:\n    - lats: 3\n", `strata.yaml:5: cleanup.tags[0].lats: unknown key (did you mean "last"?)`},
		{"project: demo\nconfigVersion: 1\ncleanup: [1]\n", `strata.yaml:3: cleanup: want a mapping, got a list`},
		{"project: demo\nconfigVersion: 1\ncleanup:\n  keepBuiltWithin: -2h\n", `strata.yaml:4: cleanup.keepBuiltWithin: want a duration`},
		{"configVersion: 1\n", `strata.yaml:1: project: missing`},
		{"", `strata.yaml:1: empty config`},
		{"project: demo\nconfigVersion: 1\ncleanup:\n  keepPolicies: []\n  tags: {last: 2}\n  tags: {last: 3}\n", `strata.yaml:6: cleanup.tags: duplicate key`},
		{"project: [\n", `strata.yaml: yaml:`},
	} {
		_, err := Parse("strata.yaml", []byte(c.src))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", c.src, err, c.want)
		}
	}
}
