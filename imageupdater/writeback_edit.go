package imageupdater

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// The edits git write-back makes to files in git. A value already there is replaced in place,
// byte for byte (the rest of the file — comments, order, quoting, other documents — stays as it
// was); only a key that does not exist yet makes the file be encoded again.

// yamlDocs parses every document of a YAML stream.
func yamlDocs(src []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, &n)
	}
}

// mapValue returns the value node of key in mapping m (nil if absent or m is no mapping).
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalar(m *yaml.Node, key string) string {
	if v := mapValue(m, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

// plainScalarOK reports whether v written as a plain scalar reads back as the string v (1.10
// would be a float, "true" a bool, "a: b" a map).
func plainScalarOK(v string) bool {
	if v == "" || strings.ContainsAny(v, "\n\t#") || strings.TrimSpace(v) != v {
		return false
	}
	var out map[string]any
	if err := yaml.Unmarshal([]byte("k: "+v), &out); err != nil {
		return false
	}
	s, ok := out["k"].(string)
	return ok && s == v
}

// lineOffsets returns the byte offset at which each line starts (index 0 = line 1).
func lineOffsets(src []byte) []int {
	offs := []int{0}
	for i, b := range src {
		if b == '\n' {
			offs = append(offs, i+1)
		}
	}
	return offs
}

// replaceScalar replaces, in src, the text of the one-line scalar node n by value, keeping its
// quoting style when it has one (and adding double quotes when a plain scalar would not read
// back as the string). ok is false when n cannot be replaced in place (block scalars, aliases,
// multi-line scalars, positions that do not match).
func replaceScalar(src []byte, n *yaml.Node, value string) (out []byte, ok bool) {
	if n.Kind != yaml.ScalarNode || n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 || n.Tag == "!!null" && n.Value == "" {
		return nil, false
	}
	offs := lineOffsets(src)
	if n.Line < 1 || n.Line > len(offs) {
		return nil, false
	}
	lineEnd := len(src)
	if n.Line < len(offs) {
		lineEnd = offs[n.Line] - 1
	}
	line := src[offs[n.Line-1]:lineEnd]
	col := n.Column - 1
	if col < 0 || col >= len(line) {
		return nil, false
	}
	rest := line[col:]
	var end int // length of the token in rest
	var repl string
	switch {
	case n.Style&yaml.DoubleQuotedStyle != 0:
		if rest[0] != '"' {
			return nil, false
		}
		end = -1
		for i := 1; i < len(rest); i++ {
			if rest[i] == '\\' {
				i++
				continue
			}
			if rest[i] == '"' {
				end = i + 1
				break
			}
		}
		repl = strconv.Quote(value)
	case n.Style&yaml.SingleQuotedStyle != 0:
		if rest[0] != '\'' {
			return nil, false
		}
		end = -1
		for i := 1; i < len(rest); i++ {
			if rest[i] == '\'' {
				if i+1 < len(rest) && rest[i+1] == '\'' {
					i++
					continue
				}
				end = i + 1
				break
			}
		}
		repl = "'" + strings.ReplaceAll(value, "'", "''") + "'"
	default:
		end = len(rest)
		if i := bytes.Index(rest, []byte(" #")); i >= 0 {
			end = i
		}
		// In a flow collection the scalar ends at the next , ] or }.
		if i := bytes.IndexAny(rest[:end], ",]}"); i >= 0 {
			end = i
		}
		for end > 0 && (rest[end-1] == ' ' || rest[end-1] == '\t' || rest[end-1] == '\r') {
			end--
		}
		if string(rest[:end]) != n.Value {
			return nil, false
		}
		repl = value
		if !plainScalarOK(value) {
			repl = strconv.Quote(value)
		}
	}
	if end <= 0 {
		return nil, false
	}
	start := offs[n.Line-1] + col
	out = make([]byte, 0, len(src)+len(repl))
	out = append(out, src[:start]...)
	out = append(out, repl...)
	out = append(out, src[start+end:]...)
	return out, true
}

// editApplicationManifest sets the targetRevision of the bundle source of the Application
// ns/name in src (a YAML stream, possibly of several documents: the files an app-of-apps parent
// syncs). The source is the one whose bundle repository (repoURL, plus chart for Helm-OCI) is
// repository — in spec.source or in spec.sources. found is false when src holds no such
// Application.
func editApplicationManifest(src []byte, ns, name, repository, rev string) (out []byte, old string, found bool, err error) {
	docs, err := yamlDocs(src)
	if err != nil {
		return nil, "", false, err
	}
	for _, d := range docs {
		if len(d.Content) == 0 {
			continue
		}
		root := d.Content[0]
		if scalar(root, "kind") != "Application" || !strings.HasPrefix(scalar(root, "apiVersion"), "argoproj.io/") {
			continue
		}
		meta := mapValue(root, "metadata")
		if scalar(meta, "name") != name || (scalar(meta, "namespace") != "" && scalar(meta, "namespace") != ns) {
			continue
		}
		spec := mapValue(root, "spec")
		var cands []*yaml.Node
		if s := mapValue(spec, "source"); s != nil {
			cands = append(cands, s)
		}
		if l := mapValue(spec, "sources"); l != nil && l.Kind == yaml.SequenceNode {
			cands = append(cands, l.Content...)
		}
		for _, s := range cands {
			if r, _ := sourceRepository(appSource{RepoURL: scalar(s, "repoURL"), Chart: scalar(s, "chart")}); r != repository {
				continue
			}
			tr := mapValue(s, "targetRevision")
			if tr == nil {
				return nil, "", true, fmt.Errorf("Application %s: the source of %s has no targetRevision to update (add one)", name, repository)
			}
			if tr.Value == rev {
				return src, rev, true, nil
			}
			out, ok := replaceScalar(src, tr, rev)
			if !ok {
				return nil, "", true, fmt.Errorf("Application %s: targetRevision at line %d is not a one-line scalar", name, tr.Line)
			}
			return out, tr.Value, true, nil
		}
		return nil, "", true, fmt.Errorf("Application %s: no source of the bundle %s", name, repository)
	}
	return nil, "", false, nil
}

// setYAMLKey sets the dotted key (a.b.c) of the YAML document src to value, creating the
// mappings on the way and the document itself when src is empty (a new values file).
func setYAMLKey(src []byte, key, value string) (out []byte, old string, err error) {
	parts := strings.Split(key, ".")
	for _, p := range parts {
		if p == "" {
			return nil, "", fmt.Errorf("key %q: empty element", key)
		}
	}
	docs, err := yamlDocs(src)
	if err != nil {
		return nil, "", err
	}
	if len(docs) > 1 {
		return nil, "", fmt.Errorf("%d YAML documents: a values file has one", len(docs))
	}
	var doc *yaml.Node
	if len(docs) == 0 || len(docs[0].Content) == 0 {
		doc = &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
	} else {
		doc = docs[0]
	}
	m := doc.Content[0]
	for i, p := range parts {
		if m.Kind != yaml.MappingNode {
			return nil, "", fmt.Errorf("key %q: %s is not a mapping (line %d)", key, strings.Join(parts[:i], "."), m.Line)
		}
		v := mapValue(m, p)
		last := i == len(parts)-1
		if v == nil {
			if last {
				v = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value}
				if !plainScalarOK(value) {
					v.Style = yaml.DoubleQuotedStyle
				}
			} else {
				v = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			}
			m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: p}, v)
			if last {
				out, err := encodeYAML(doc)
				return out, "", err
			}
			m = v
			continue
		}
		if last {
			if v.Kind != yaml.ScalarNode {
				return nil, "", fmt.Errorf("key %q is not a scalar (line %d)", key, v.Line)
			}
			if v.Value == value {
				return src, value, nil
			}
			if out, ok := replaceScalar(src, v, value); ok {
				return out, v.Value, nil
			}
			old := v.Value
			v.Value, v.Tag, v.Style = value, "!!str", 0
			if !plainScalarOK(value) {
				v.Style = yaml.DoubleQuotedStyle
			}
			out, err := encodeYAML(doc)
			return out, old, err
		}
		m = v
	}
	return nil, "", fmt.Errorf("key %q: unreachable", key)
}

func encodeYAML(doc *yaml.Node) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// kustomizePatch is the inline JSON 6902 patch git write-back keeps in a kustomization for one
// Application: kustomize applies it to the Application manifest the parent renders.
func kustomizePatch(pointer, rev string) string {
	return "- op: replace\n  path: " + pointer + "\n  value: " + strconv.Quote(rev) + "\n"
}

// editKustomization sets, in the kustomization src, the patches entry that replaces the
// targetRevision at pointer of the Application ns/name (target group argoproj.io, kind
// Application, name), adding the entry when there is none. old is the revision the entry held.
func editKustomization(src []byte, ns, name, pointer, rev string) (out []byte, old string, err error) {
	docs, err := yamlDocs(src)
	if err != nil {
		return nil, "", err
	}
	if len(docs) != 1 || len(docs[0].Content) == 0 || docs[0].Content[0].Kind != yaml.MappingNode {
		return nil, "", fmt.Errorf("not a kustomization (want one YAML mapping)")
	}
	root := docs[0].Content[0]
	patches := mapValue(root, "patches")
	if patches == nil {
		patches = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "patches"}, patches)
	}
	if patches.Kind != yaml.SequenceNode {
		return nil, "", fmt.Errorf("patches (line %d) is not a list", patches.Line)
	}
	want := kustomizePatch(pointer, rev)
	for _, p := range patches.Content {
		t := mapValue(p, "target")
		if scalar(t, "kind") != "Application" || scalar(t, "name") != name || (scalar(t, "namespace") != "" && scalar(t, "namespace") != ns) {
			continue
		}
		body := mapValue(p, "patch")
		if body == nil || body.Kind != yaml.ScalarNode {
			continue
		}
		var ops []map[string]any
		if err := yaml.Unmarshal([]byte(body.Value), &ops); err != nil || len(ops) != 1 || ops[0]["path"] != pointer {
			continue // someone else's patch of this Application
		}
		old, _ = ops[0]["value"].(string)
		if old == rev {
			return src, rev, nil
		}
		body.Value, body.Style = want, yaml.LiteralStyle
		out, err := encodeYAML(docs[0])
		return out, old, err
	}
	entry := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
		{Kind: yaml.ScalarNode, Tag: "!!str", Value: "target"},
		{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
			{Kind: yaml.ScalarNode, Tag: "!!str", Value: "group"}, {Kind: yaml.ScalarNode, Tag: "!!str", Value: "argoproj.io"},
			{Kind: yaml.ScalarNode, Tag: "!!str", Value: "kind"}, {Kind: yaml.ScalarNode, Tag: "!!str", Value: "Application"},
			{Kind: yaml.ScalarNode, Tag: "!!str", Value: "name"}, {Kind: yaml.ScalarNode, Tag: "!!str", Value: name},
		}},
		{Kind: yaml.ScalarNode, Tag: "!!str", Value: "patch"},
		{Kind: yaml.ScalarNode, Tag: "!!str", Value: want, Style: yaml.LiteralStyle},
	}}
	patches.Content = append(patches.Content, entry)
	out, err = encodeYAML(docs[0])
	return out, "", err
}
