package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// werfCleanupKeys are werf's cleanup keys without an exact Strata equivalent: accepted (a
// werf.yaml must still build) and listed in Policy.Werf, which `strata cleanup` refuses.
// keepImagesBuiltWithinLastNHours and disableBuiltWithinLastNHoursPolicy are translated.
var werfCleanupKeys = []string{"keepPolicies", "disableKubernetesBasedPolicy", "disableGitHistoryBasedPolicy", "disable"}

func (p parser) policy(n *yaml.Node) (pol Policy, err error) {
	pol = DefaultPolicy()
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return pol, nil
	}
	h := map[string]func(*yaml.Node) error{
		"branches": func(v *yaml.Node) (err error) {
			pol.Branches, err = p.rules("cleanup.branches", v, Rule{Last: DefaultBranchLast, Within: DefaultBranchWithin})
			return
		},
		"tags": func(v *yaml.Node) (err error) {
			pol.Tags, err = p.rules("cleanup.tags", v, Rule{Last: DefaultTagLast})
			return
		},
		"keepBuiltWithin": func(v *yaml.Node) (err error) {
			pol.KeepBuiltWithin, err = p.duration("cleanup.keepBuiltWithin", v, true)
			return
		},
	}
	// werf: keep images built within the last N hours (default 2), unless the policy is disabled.
	var werfHours *int
	werfDisabled := false
	h["keepImagesBuiltWithinLastNHours"] = func(v *yaml.Node) error {
		x, err := strconv.Atoi(v.Value)
		if v.Kind != yaml.ScalarNode || err != nil || x < 0 {
			return p.errf(v, "cleanup.keepImagesBuiltWithinLastNHours", "want a whole number of hours ≥ 0, got %s", kindName(v))
		}
		werfHours = &x
		return nil
	}
	h["disableBuiltWithinLastNHoursPolicy"] = func(v *yaml.Node) error {
		if v.Kind != yaml.ScalarNode || v.Decode(&werfDisabled) != nil {
			return p.errf(v, "cleanup.disableBuiltWithinLastNHoursPolicy", "want true or false, got %s", kindName(v))
		}
		return nil
	}
	defer func() {
		if werfHours != nil {
			pol.KeepBuiltWithin = time.Duration(*werfHours) * time.Hour
		}
		if werfDisabled {
			pol.KeepBuiltWithin = 0
		}
	}()
	for _, k := range werfCleanupKeys {
		k := k
		h[k] = func(v *yaml.Node) error {
			pol.Werf = append(pol.Werf, fmt.Sprintf("%s:%d: cleanup.%s", p.file, v.Line, k))
			return nil
		}
	}
	err = p.mapping(n, "cleanup", h)
	if err == nil && werfHours != nil && hasKey(n, "keepBuiltWithin") {
		err = p.errf(n, "cleanup", "keepBuiltWithin and werf's keepImagesBuiltWithinLastNHours say the same thing: keep one")
	}
	return pol, err
}

var ruleKeys = []string{"match", "last", "within"}

// rules accepts one rule (a mapping) or a list of rules.
func (p parser) rules(field string, n *yaml.Node, def Rule) ([]Rule, error) {
	switch n.Kind {
	case yaml.MappingNode:
		r, err := p.rule(field, n, def)
		if err != nil {
			return nil, err
		}
		return []Rule{r}, nil
	case yaml.SequenceNode:
		var rules []Rule
		for i, item := range n.Content {
			r, err := p.rule(fmt.Sprintf("%s[%d]", field, i), item, def)
			if err != nil {
				return nil, err
			}
			rules = append(rules, r)
		}
		return rules, nil
	}
	return nil, p.errf(n, field, "want a rule {%s} or a list of rules, got %s", strings.Join(ruleKeys, ", "), kindName(n))
}

func (p parser) rule(field string, n *yaml.Node, def Rule) (Rule, error) {
	r := def
	err := p.mapping(n, field, map[string]func(*yaml.Node) error{
		"match": func(v *yaml.Node) error {
			s, err := p.str(v, field+".match")
			if err != nil || s == "" {
				return p.errf(v, field+".match", "want a regular expression, got %s", kindName(v))
			}
			re, err := regexp.Compile("^(?:" + s + ")$")
			if err != nil {
				return p.errf(v, field+".match", "%v", err)
			}
			r.Match = re
			return nil
		},
		"last": func(v *yaml.Node) error {
			x, err := strconv.Atoi(v.Value)
			if v.Kind != yaml.ScalarNode || err != nil || x < 0 {
				return p.errf(v, field+".last", "want a whole number ≥ 0, got %s", kindName(v))
			}
			r.Last = x
			return nil
		},
		"within": func(v *yaml.Node) (err error) { r.Within, err = p.duration(field+".within", v, false); return },
	})
	return r, err
}

// duration reads Go durations ("36h", "90m") plus days and weeks ("7d", "2w"); "unlimited"
// means no limit (0) unless zeroMeansNothing, where "0" means nothing is kept by age.
func (p parser) duration(field string, n *yaml.Node, zeroMeansNothing bool) (time.Duration, error) {
	bad := func() error {
		hint := `a duration like "2h", "7d" or "unlimited"`
		if zeroMeansNothing {
			hint = `a duration like "2h", "90m" or "0"`
		}
		return p.errf(n, field, "want %s, got %s", hint, kindName(n))
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
	if num, unit, ok := cutUnit(s); ok {
		d = time.Duration(num) * 24 * time.Hour
		if unit == 'w' {
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

// cutUnit splits "7d" / "2w" into 7, 'd'.
func cutUnit(s string) (int, byte, bool) {
	if len(s) < 2 || (s[len(s)-1] != 'd' && s[len(s)-1] != 'w') {
		return 0, 0, false
	}
	x, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || x < 0 || strings.ContainsAny(s[:len(s)-1], "+-") {
		return 0, 0, false
	}
	return x, s[len(s)-1], true
}

// FormatDuration prints a policy duration the way it is written: 7d, 2h, 90m.
func FormatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// String describes the rule: "main|release/.*: last 30 within 14d".
func (r Rule) String() string {
	s := fmt.Sprintf("last %d", r.Last)
	if r.Within > 0 {
		s += " within " + FormatDuration(r.Within)
	}
	if r.Match != nil {
		s = strings.TrimSuffix(strings.TrimPrefix(r.Match.String(), "^(?:"), ")$") + ": " + s
	}
	return s
}
