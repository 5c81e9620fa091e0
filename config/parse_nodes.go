package config

import (
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"strata.dev/strata/internal/suggest"
)

// Node helpers of the parser: typed scalars, lists and maps, mappings with unknown-key errors.

// checkDuration accepts what docker accepts for HEALTHCHECK durations: 0 or at least 1ms.
func (p parser) checkDuration(v *yaml.Node, field, s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return p.errf(v, field, "bad duration %q (want e.g. 30s, 1m30s, 500ms)", s)
	}
	if d < 0 || (d > 0 && d < time.Millisecond) {
		return p.errf(v, field, "duration %q: want 0 or at least 1ms", s)
	}
	return nil
}

// globList is a list of globs (or one), each checked for syntax with its own line.
func (p parser) globList(v *yaml.Node, field string) ([]string, error) {
	out, err := p.strList(v, field, true)
	if err != nil {
		return nil, err
	}
	for i, gl := range out {
		n, f := v, field
		if v.Kind == yaml.SequenceNode {
			n, f = v.Content[i], fmt.Sprintf("%s[%d]", field, i)
		}
		if strings.TrimSpace(gl) == "" {
			return nil, p.errf(n, f, "empty glob")
		}
		if _, err := path.Match(strings.ReplaceAll(gl, "**", "*"), ""); err != nil {
			return nil, p.errf(n, f, "bad glob %q: %v", gl, err)
		}
	}
	return out, nil
}

// mapping walks a mapping node, calling the handler of each key; unknown keys are errors.
func (p parser) mapping(n *yaml.Node, field string, h map[string]func(*yaml.Node) error) error {
	if n.Kind != yaml.MappingNode {
		return p.errf(n, field, "want a mapping, got %s", kindName(n))
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, ok := h[k.Value]
		if !ok {
			known := make([]string, 0, len(h))
			for x := range h {
				known = append(known, x)
			}
			return p.unknown(k, field, known)
		}
		if seen[k.Value] {
			return p.errf(k, join(field, k.Value), "duplicate key")
		}
		seen[k.Value] = true
		if err := f(v); err != nil {
			return err
		}
	}
	return nil
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

func (p parser) unknown(k *yaml.Node, field string, known []string) error {
	sort.Strings(known)
	msg := "unknown key"
	if near := suggest.Nearest(k.Value, known); near != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", near)
	} else {
		msg += " (known: " + strings.Join(known, ", ") + ")"
	}
	return p.errf(k, join(field, k.Value), "%s", msg)
}

func (p parser) str(v *yaml.Node, field string) (string, error) {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		return "", p.errf(v, field, "want a string, got %s", kindName(v))
	}
	return v.Value, nil
}

func (p parser) strList(v *yaml.Node, field string, scalarOK bool) ([]string, error) {
	if scalarOK && v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
		return []string{v.Value}, nil
	}
	if v.Kind != yaml.SequenceNode {
		return nil, p.errf(v, field, "want a list of strings, got %s", kindName(v))
	}
	out := make([]string, 0, len(v.Content))
	for i, c := range v.Content {
		s, err := p.str(c, fmt.Sprintf("%s[%d]", field, i))
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// cmdList accepts a list (exec form) or a string (shell form, kept as ["/bin/sh", "-c", s]).
func (p parser) cmdList(v *yaml.Node, field string) ([]string, error) {
	if v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
		return []string{"/bin/sh", "-c", v.Value}, nil
	}
	return p.strList(v, field, false)
}

func (p parser) strMap(v *yaml.Node, field string) (map[string]string, error) {
	if v.Kind != yaml.MappingNode {
		return nil, p.errf(v, field, "want a mapping of strings, got %s", kindName(v))
	}
	out := map[string]string{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		s, err := p.str(val, field+"."+k.Value)
		if err != nil {
			return nil, err
		}
		out[k.Value] = s
	}
	return out, nil
}
