package cleanup

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"strata.dev/strata/internal/suggest"
)

// Defaults of the policy (see docs/cleanup.md).
const (
	DefaultBranchLast   = 10
	DefaultBranchWithin = 7 * 24 * time.Hour
	DefaultTagLast      = 10
	DefaultRecent       = 2 * time.Hour
)

// Rule keeps the images of some git references' commits.
type Rule struct {
	// Match is an anchored regular expression on the reference's short name (e.g. "main",
	// "v1.2.0"); nil matches every reference.
	Match *regexp.Regexp
	// Last is how many commits are kept: for a branch its last Last commits (newest first, like
	// `git log`), for tags the Last newest tags matching the rule.
	Last int
	// Within limits kept commits to those committed within this long before now; 0 = no limit.
	Within time.Duration
}

func (r Rule) matches(name string) bool { return r.Match == nil || r.Match.MatchString(name) }

func (r Rule) String() string {
	s := fmt.Sprintf("last %d", r.Last)
	if r.Within > 0 {
		s += " within " + formatDuration(r.Within)
	}
	if r.Match != nil {
		s = strings.TrimSuffix(strings.TrimPrefix(r.Match.String(), "^(?:"), ")$") + ": " + s
	}
	return s
}

// Policy says what cleanup keeps besides what bundles and clusters use. The first rule whose
// Match matches a reference applies to it; a reference no rule matches keeps nothing by policy.
type Policy struct {
	Branches []Rule
	Tags     []Rule
	// KeepBuiltWithin always keeps stages built within this long before now.
	KeepBuiltWithin time.Duration
}

// DefaultPolicy is the policy when strata.yaml has no `cleanup:` key: per branch the last 10
// commits within 7 days, the last 10 tags, everything built within 2 hours.
func DefaultPolicy() Policy {
	return Policy{
		Branches:        []Rule{{Last: DefaultBranchLast, Within: DefaultBranchWithin}},
		Tags:            []Rule{{Last: DefaultTagLast}},
		KeepBuiltWithin: DefaultRecent,
	}
}

// Config is what cleanup reads from strata.yaml's first document.
type Config struct {
	Project string
	Policy  Policy
}

// ReadConfig reads the project name and the cleanup policy from the first YAML document of the
// file at path (strata.yaml or werf.yaml). Errors name the file, line and field.
func ReadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	return ParseConfig(path, b)
}

// ParseConfig is ReadConfig on the file's content; file is only used in error messages.
func ParseConfig(file string, data []byte) (Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return Config{}, fmt.Errorf("%s: empty file: want a first document with project:", file)
		}
		return Config{}, fmt.Errorf("%s: %w", file, err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return Config{}, fmt.Errorf("%s:%d: first document: want a mapping with project:", file, root.Line)
	}
	cfg := Config{Policy: DefaultPolicy()}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "project":
			if v.Kind != yaml.ScalarNode || v.Value == "" {
				return Config{}, fmt.Errorf("%s:%d: project: want a non-empty string", file, v.Line)
			}
			cfg.Project = v.Value
		case "cleanup":
			p, err := parsePolicy(file, v)
			if err != nil {
				return Config{}, err
			}
			cfg.Policy = p
		}
		// Other keys belong to the build configuration, which validates them.
	}
	if cfg.Project == "" {
		return Config{}, fmt.Errorf("%s:%d: first document: missing project:", file, root.Line)
	}
	return cfg, nil
}

var policyKeys = []string{"branches", "tags", "keepBuiltWithin"}
var ruleKeys = []string{"match", "last", "within"}

func parsePolicy(file string, n *yaml.Node) (Policy, error) {
	p := DefaultPolicy()
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return p, nil
	}
	if n.Kind != yaml.MappingNode {
		return p, fmt.Errorf("%s:%d: cleanup: want a mapping with %s", file, n.Line, strings.Join(policyKeys, ", "))
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		field := "cleanup." + k.Value
		var err error
		switch k.Value {
		case "branches":
			p.Branches, err = parseRules(file, field, v, Rule{Last: DefaultBranchLast, Within: DefaultBranchWithin})
		case "tags":
			p.Tags, err = parseRules(file, field, v, Rule{Last: DefaultTagLast})
		case "keepBuiltWithin":
			p.KeepBuiltWithin, err = parseDuration(file, field, v, true)
		default:
			err = unknownKey(file, "cleanup", k, policyKeys)
		}
		if err != nil {
			return p, err
		}
	}
	return p, nil
}

// parseRules accepts one rule (a mapping) or a list of rules.
func parseRules(file, field string, n *yaml.Node, def Rule) ([]Rule, error) {
	switch n.Kind {
	case yaml.MappingNode:
		r, err := parseRule(file, field, n, def)
		if err != nil {
			return nil, err
		}
		return []Rule{r}, nil
	case yaml.SequenceNode:
		var rules []Rule
		for i, item := range n.Content {
			f := fmt.Sprintf("%s[%d]", field, i)
			if item.Kind != yaml.MappingNode {
				return nil, fmt.Errorf("%s:%d: %s: want a mapping with %s", file, item.Line, f, strings.Join(ruleKeys, ", "))
			}
			r, err := parseRule(file, f, item, def)
			if err != nil {
				return nil, err
			}
			rules = append(rules, r)
		}
		return rules, nil
	}
	return nil, fmt.Errorf("%s:%d: %s: want a rule {%s} or a list of rules", file, n.Line, field, strings.Join(ruleKeys, ", "))
}

func parseRule(file, field string, n *yaml.Node, def Rule) (Rule, error) {
	r := def
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f := field + "." + k.Value
		switch k.Value {
		case "match":
			if v.Kind != yaml.ScalarNode || v.Value == "" {
				return r, fmt.Errorf("%s:%d: %s: want a regular expression", file, v.Line, f)
			}
			re, err := regexp.Compile("^(?:" + v.Value + ")$")
			if err != nil {
				return r, fmt.Errorf("%s:%d: %s: %w", file, v.Line, f, err)
			}
			r.Match = re
		case "last":
			x, err := strconv.Atoi(v.Value)
			if v.Kind != yaml.ScalarNode || err != nil || x < 0 {
				return r, fmt.Errorf("%s:%d: %s: want a whole number ≥ 0, got %q", file, v.Line, f, v.Value)
			}
			r.Last = x
		case "within":
			d, err := parseDuration(file, f, v, false)
			if err != nil {
				return r, err
			}
			r.Within = d
		default:
			return r, unknownKey(file, field, k, ruleKeys)
		}
	}
	return r, nil
}

// parseDuration reads Go durations ("36h", "90m") plus days and weeks ("7d", "2w"); "unlimited"
// means no limit (0) unless zeroMeansNothing.
func parseDuration(file, field string, n *yaml.Node, zeroMeansNothing bool) (time.Duration, error) {
	bad := func() error {
		hint := `a duration like "2h", "7d" or "unlimited"`
		if zeroMeansNothing {
			hint = `a duration like "2h", "90m" or "0"`
		}
		return fmt.Errorf("%s:%d: %s: want %s, got %q", file, n.Line, field, hint, n.Value)
	}
	if n.Kind != yaml.ScalarNode {
		return 0, bad()
	}
	s := strings.TrimSpace(n.Value)
	if !zeroMeansNothing && s == "unlimited" {
		return 0, nil
	}
	if zeroMeansNothing && s == "0" {
		return 0, nil
	}
	var d time.Duration
	if m := regexp.MustCompile(`^(\d+)([dw])$`).FindStringSubmatch(s); m != nil {
		x, _ := strconv.Atoi(m[1])
		d = time.Duration(x) * 24 * time.Hour
		if m[2] == "w" {
			d *= 7
		}
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, bad()
		}
	}
	if d <= 0 {
		return 0, bad()
	}
	return d, nil
}

func unknownKey(file, field string, k *yaml.Node, known []string) error {
	msg := fmt.Sprintf("%s:%d: %s: unknown key %q", file, k.Line, field, k.Value)
	if near := suggest.Nearest(k.Value, known); near != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", near)
	}
	return fmt.Errorf("%s; known keys: %s", msg, strings.Join(known, ", "))
}

func formatDuration(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}
