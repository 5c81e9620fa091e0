package bundle

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// injectedValues returns the strata.* values of a bundle: image refs, tags and digests by image
// name, the stages repository and the commit.
func injectedValues(m *Metadata) map[string]any {
	image, tag, digest := map[string]any{}, map[string]any{}, map[string]any{}
	for n, im := range m.Images {
		image[n] = im.Ref
		tag[n] = im.Tag
		digest[n] = im.Digest
	}
	return map[string]any{
		"image":  image,
		"tag":    tag,
		"digest": digest,
		"repo":   m.Repo,
		"commit": map[string]any{"hash": m.Commit.Hash, "date": m.Commit.Date},
	}
}

// werfValues returns werf's service values of a bundle (werf's chart_extender service values):
// werf.image.<name> (the full REPO:TAG@DIGEST), werf.tag.<name>, werf.repo, werf.name,
// werf.commit.hash, werf.commit.date.human/.unix and werf.env, all mirrored under global.werf,
// and global.env.
func werfValues(m *Metadata) map[string]any {
	image, tag := map[string]any{}, map[string]any{}
	for n, im := range m.Images {
		image[n] = im.Ref
		tag[n] = im.Tag
	}
	// werf passes unix as an integer; through values.yaml Helm would read it as a float64 and
	// print 1.7953416e+09, so it is the decimal string, which prints and converts the same.
	date := map[string]any{"human": "", "unix": "0"}
	if t, err := time.Parse(time.RFC3339, m.Commit.Date); err == nil {
		date = map[string]any{"human": t.String(), "unix": strconv.FormatInt(t.Unix(), 10)}
	}
	werf := map[string]any{
		"name":   m.Project,
		"repo":   m.Repo,
		"image":  image,
		"tag":    tag,
		"commit": map[string]any{"hash": m.Commit.Hash, "date": date},
		"env":    m.Werf.Env,
	}
	return map[string]any{
		"werf":   werf,
		"global": map[string]any{"werf": werf, "env": m.Werf.Env},
	}
}

// injectValues writes the strata.* values of m into the values.yaml document src (which may be
// empty), under strata and global.strata, keeping everything else, comments included. Images
// the chart already names under strata.image that the bundle does not have are an error.
func injectValues(src []byte, m *Metadata) ([]byte, error) {
	var doc yaml.Node
	if len(bytes.TrimSpace(src)) > 0 {
		if err := yaml.Unmarshal(src, &doc); err != nil {
			return nil, fmt.Errorf("values.yaml: %w", err)
		}
	}
	if doc.Kind == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, fmt.Errorf("values.yaml: not a single YAML document")
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		*root = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("values.yaml:%d: the top level is not a mapping", root.Line)
	}
	// images the chart expects but the build does not have
	if img := lookupPath(root, "strata", "image"); img != nil && img.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(img.Content); i += 2 {
			n := img.Content[i].Value
			if _, ok := m.Images[n]; !ok {
				return nil, fmt.Errorf("values.yaml:%d: strata.image.%s is not an image of this build (images: %s)", img.Content[i].Line, n, strings.Join(m.ImageNames(), ", "))
			}
		}
	}
	vals := injectedValues(m)
	for _, prefix := range [][]string{{"strata"}, {"global", "strata"}} {
		for _, k := range sortedKeys(vals) {
			if err := setPath(root, append(append([]string{}, prefix...), k), vals[k]); err != nil {
				return nil, fmt.Errorf("values.yaml: %w", err)
			}
		}
	}
	if m.Werf != nil {
		wv := werfValues(m)
		for _, k := range sortedKeys(wv) {
			if err := setPath(root, []string{k}, wv[k]); err != nil {
				return nil, fmt.Errorf("values.yaml: %w", err)
			}
		}
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("values.yaml: %w", err)
	}
	enc.Close()
	return out.Bytes(), nil
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func lookupPath(n *yaml.Node, path ...string) *yaml.Node {
	for _, p := range path {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == p {
				next = n.Content[i+1]
			}
		}
		n = next
	}
	return n
}

// setPath sets path to v (a string or a map of them, merged key by key) in mapping n.
func setPath(n *yaml.Node, path []string, v any) error {
	for i, p := range path {
		var child *yaml.Node
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == p {
				child = n.Content[j+1]
			}
		}
		last := i == len(path)-1
		if child == nil {
			child = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: p}, child)
		}
		if last {
			switch vv := v.(type) {
			case map[string]any:
				if child.Kind != yaml.MappingNode {
					*child = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
				}
				for _, k := range sortedKeys(vv) {
					if err := setPath(child, []string{k}, vv[k]); err != nil {
						return err
					}
				}
			case string:
				*child = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: vv, Style: yaml.DoubleQuotedStyle}
			default:
				return fmt.Errorf("%s: unsupported value %T", strings.Join(path, "."), v)
			}
			return nil
		}
		if child.Kind != yaml.MappingNode {
			*child = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		}
		n = child
	}
	return nil
}

// setChartField sets a top-level string field of Chart.yaml, keeping the rest of the file.
func setChartFields(src []byte, fields map[string]string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("Chart.yaml: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("Chart.yaml: not a YAML mapping")
	}
	for _, k := range sortedKeys(toAny(fields)) {
		if err := setPath(doc.Content[0], []string{k}, fields[k]); err != nil {
			return nil, fmt.Errorf("Chart.yaml: %w", err)
		}
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("Chart.yaml: %w", err)
	}
	enc.Close()
	return out.Bytes(), nil
}

func toAny(m map[string]string) map[string]any {
	r := make(map[string]any, len(m))
	for k, v := range m {
		r[k] = v
	}
	return r
}
