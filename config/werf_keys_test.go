package config

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// werfTable reads the werf-migration table of docs/strata-yaml.md: the key paths named in the
// first column of its rows, and those of the paragraph on Strata's own keys.
func werfTable(t *testing.T) (werf, own map[string]bool) {
	t.Helper()
	b, err := os.ReadFile("../docs/strata-yaml.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "### werf.yaml keys")
	if start < 0 {
		t.Fatal(`docs/strata-yaml.md has no "### werf.yaml keys" section`)
	}
	sec := doc[start+3:]
	if end := strings.Index(sec, "\n##"); end >= 0 {
		sec = sec[:end]
	}
	tick := regexp.MustCompile("`([A-Za-z][A-Za-z0-9]*(?:\\.[A-Za-z][A-Za-z0-9]*)*)`")
	werf, own = map[string]bool{}, map[string]bool{}
	inOwn := false
	for _, line := range strings.Split(sec, "\n") {
		switch {
		case strings.HasPrefix(line, "| `"):
			first := strings.SplitN(line[1:], "|", 2)[0]
			for _, m := range tick.FindAllStringSubmatch(first, -1) {
				werf[m[1]] = true
			}
		case strings.HasPrefix(line, "Strata's own keys"):
			inOwn = true
			fallthrough
		case inOwn && line != "":
			for _, m := range tick.FindAllStringSubmatch(line, -1) {
				own[m[1]] = true
			}
		default:
			inOwn = false
		}
	}
	return werf, own
}

// Every werf.yaml key (testdata/werf-keys.txt, from werf's reference) is in the docs' werf
// table, and the table names no key werf does not have.
func TestWerfKeysDocumented(t *testing.T) {
	documented, _ := werfTable(t)
	b, err := os.ReadFile("testdata/werf-keys.txt")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			keys[l] = true
		}
	}
	if len(keys) < 150 {
		t.Fatalf("%d werf keys in testdata/werf-keys.txt", len(keys))
	}
	for k := range keys {
		if !documented[k] {
			t.Errorf("werf key %s is not in the werf table of docs/strata-yaml.md", k)
		}
	}
	for k := range documented {
		if !keys[k] {
			t.Errorf("docs/strata-yaml.md's werf table names %s, which is not a werf key", k)
		}
	}
}

// keyProbes put an unknown key (%s) in each section the parser reads key by key; the error
// lists the keys it knows there.
var keyProbes = []struct {
	section, doc string
	required     bool // the section is parsed key by key today
}{
	{"", "%s: 1\n---\nimage: a\nfrom: b\n", true},
	{"build", "build:\n  %s: 1\n---\nimage: a\nfrom: b\n", true},
	{"cleanup", "cleanup:\n  %s: 1\n---\nimage: a\nfrom: b\n", true},
	{"cleanup.branches", "cleanup:\n  branches:\n  - %s: 1\n---\nimage: a\nfrom: b\n", true},
	{"cleanup.tags", "cleanup:\n  tags:\n  - %s: 1\n---\nimage: a\nfrom: b\n", true},
	{"cleanup.keepPolicies", "cleanup:\n  keepPolicies:\n  - %s: 1\n---\nimage: a\nfrom: b\n", false},
	{"build.imageSpec", "build:\n  imageSpec:\n    %s: 1\n---\nimage: a\nfrom: b\n", false},
	{"build.imageSpec.config", "build:\n  imageSpec:\n    config:\n      %s: 1\n---\nimage: a\nfrom: b\n", false},
	{"", "---\nimage: a\nfrom: b\n%s: 1\n", true},
	{"git", "---\nimage: a\nfrom: b\ngit:\n- to: /a\n  %s: 1\n", true},
	{"git.stageDependencies", "---\nimage: a\nfrom: b\ngit:\n- to: /a\n  stageDependencies:\n    %s: x\n", true},
	{"git.basicAuth", "---\nimage: a\nfrom: b\ngit:\n- to: /a\n  url: u\n  basicAuth:\n    %s: x\n", true},
	{"git.basicAuth.password", "---\nimage: a\nfrom: b\ngit:\n- to: /a\n  url: u\n  basicAuth:\n    password:\n      %s: x\n", true},
	{"shell", "---\nimage: a\nfrom: b\nshell:\n  %s: x\n", true},
	{"docker", "---\nimage: a\nfrom: b\ndocker:\n  %s: x\n", true},
	{"docker.HEALTHCHECK", "---\nimage: a\nfrom: b\ndocker:\n  HEALTHCHECK:\n    %s: x\n", true},
	{"import", "---\nimage: a\nfrom: b\nimport:\n- image: a\n  add: /x\n  %s: x\n", true},
	{"mount", "---\nimage: a\nfrom: b\nmount:\n- to: /x\n  %s: x\n", true},
	{"dependencies", "---\nimage: a\nfrom: b\ndependencies:\n- image: a\n  %s: x\n", true},
	{"dependencies.imports", "---\nimage: a\nfrom: b\ndependencies:\n- image: a\n  imports:\n  - %s: x\n", true},
	{"secrets", "---\nimage: a\nfrom: b\nsecrets:\n- %s: x\n", false},
	{"imageSpec", "---\nimage: a\nfrom: b\nimageSpec:\n  %s: x\n", false},
	{"imageSpec.config", "---\nimage: a\nfrom: b\nimageSpec:\n  config:\n    %s: x\n", false},
	{"ansible", "---\nimage: a\nfrom: b\nansible:\n  %s: x\n", false},
}

// Every key the parser knows is in the docs' werf table (or among Strata's own keys there):
// a key added to the parser cannot go undocumented.
func TestParserKeysDocumented(t *testing.T) {
	werf, own := werfTable(t)
	const bogus = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
	knownRe := regexp.MustCompile(`unknown key \(known: ([^)]*)\)`)
	seen := 0
	for _, pr := range keyProbes {
		_, err := Parse("werf.yaml", []byte("project: p\nconfigVersion: 1\n"+fmt.Sprintf(pr.doc, bogus)))
		m := []string(nil)
		if err != nil {
			m = knownRe.FindStringSubmatch(err.Error())
		}
		if m == nil {
			if pr.required {
				t.Errorf("section %q: want an unknown-key error listing the known keys, got %v", pr.section, err)
			}
			continue
		}
		for _, k := range strings.Split(m[1], ", ") {
			seen++
			path := k
			if pr.section != "" {
				path = pr.section + "." + k
			}
			if !werf[path] && !own[path] {
				t.Errorf("the parser knows %s, which docs/strata-yaml.md's werf table does not name (a werf key: add a row; Strata's own: the paragraph below the table)", path)
			}
		}
	}
	if seen < 60 {
		t.Errorf("the probes found %d keys", seen)
	}
	// Strata's own keys are not werf's.
	var clash []string
	for k := range own {
		if werf[k] {
			clash = append(clash, k)
		}
	}
	sort.Strings(clash)
	if len(clash) > 0 {
		t.Errorf("keys both werf's and Strata's own in the docs: %v", clash)
	}
}
