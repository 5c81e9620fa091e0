package bundle

import (
	"context"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
)

// piece is one rendered YAML document and the chart file it came from; template tells a
// template's output (which Helm's manifest rules apply to) from a CRD file's.
type piece struct {
	source, content string
	template        bool
}

// renderTemplates renders a chart as `helm template --include-crds` does (Helm's client-only
// dry-run install: same release options, capabilities, schema validation, dependency handling,
// kubeVersion check and hook/manifest sorting), without Helm's action package, which would bring
// the whole Kubernetes client machinery (and its start-up cost) into every strata command. The
// templates see no cluster (lookup returns nothing) and no DNS. The result is the CRDs, the
// manifests in install order and the hooks, one piece per document; it fails when they add up
// to more than l.maxOut bytes, and when the templates run past l's time or memory bound.
func renderTemplates(ctx context.Context, chrt *chart.Chart, vals map[string]any, name, namespace string, caps *chartutil.Capabilities, l renderLimits) ([]piece, error) {
	if err := chartutil.ValidateReleaseName(name); err != nil {
		return nil, fmt.Errorf("release name %q: %w", name, err)
	}
	// helm template's checks before it renders
	if t := chrt.Metadata.Type; t != "" && t != "application" {
		return nil, fmt.Errorf("%s charts are not installable", t)
	}
	if err := checkDependencies(chrt); err != nil {
		return nil, err
	}
	if err := chartutil.ProcessDependenciesWithMerge(chrt, vals); err != nil {
		return nil, err
	}
	opts := chartutil.ReleaseOptions{Name: name, Namespace: namespace, Revision: 1, IsInstall: true}
	values, err := chartutil.ToRenderValuesWithSchemaValidation(chrt, vals, opts, caps, false)
	if err != nil {
		return nil, err
	}
	if kv := chrt.Metadata.KubeVersion; kv != "" && !chartutil.IsCompatibleRange(kv, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", kv, caps.KubeVersion.String())
	}
	files, err := executeTemplates(ctx, chrt, values, l)
	if err != nil {
		return nil, err
	}
	// Helm's manifest sort (releaseutil.SortManifests) parses every document once for its kind
	// and hook annotations, and Render parses it again: the documents are split here as Helm
	// splits them, and Render applies Helm's checks and hook rules to the one parse it makes.
	var names []string
	for f, content := range files {
		if strings.HasSuffix(f, "NOTES.txt") || strings.HasPrefix(path.Base(f), "_") || strings.TrimSpace(content) == "" {
			continue
		}
		names = append(names, f)
	}
	sort.Strings(names)

	// `helm template` prints every document followed by a line break (Helm's split trimmed it
	// off, and with it the last line break of a block scalar that ends the document), and CRD
	// files whole; Argo CD splits that stream at "---" lines. The pieces are what it gets.
	var pieces []piece
	var size int64
	add := func(source, content string, template bool) {
		size += int64(len(content)) + 1
		for _, doc := range splitStream(content + "\n") {
			pieces = append(pieces, piece{source, doc, template})
		}
	}
	for _, crd := range chrt.CRDObjects() {
		add(crd.Filename, string(crd.File.Data), false)
	}
	for _, f := range names {
		for _, doc := range splitManifests(files[f]) {
			add(f, doc, true)
		}
	}
	if size > l.maxOut {
		return nil, fmt.Errorf("output of %d bytes is larger than the limit of %d bytes: %w", size, l.maxOut, ErrLimit)
	}
	return pieces, nil
}

// checkDependencies fails, as helm template does, when a dependency in Chart.yaml is not in
// the chart's charts/ directory.
func checkDependencies(chrt *chart.Chart) error {
	var missing []string
	for _, d := range chrt.Metadata.Dependencies {
		if !slices.ContainsFunc(chrt.Dependencies(), func(c *chart.Chart) bool { return c.Name() == d.Name }) {
			missing = append(missing, d.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("found in Chart.yaml, but missing in charts/ directory: %s (run `helm dependency build`)", strings.Join(missing, ", "))
	}
	return nil
}

// splitManifests splits a rendered template into documents exactly as Helm does
// (releaseutil.SplitManifests: the regular expression `(?:^|\s*\n)---\s*` on the trimmed text,
// each document trimmed, empty ones dropped), without the regular expression, which was a
// quarter of the time of rendering large charts.
func splitManifests(s string) []string {
	s = strings.TrimSpace(s)
	var docs []string
	keep := func(d string) {
		if d != "" {
			docs = append(docs, strings.TrimSpace(d))
		}
	}
	start, pos := 0, 0
	if strings.HasPrefix(s, "---") {
		keep("")
		start, pos = skipSpace(s, 3), skipSpace(s, 3)
	}
	for {
		i := strings.Index(s[pos:], "\n---")
		if i < 0 {
			break
		}
		i += pos
		j := i
		for j > pos && isRegexpSpace(s[j-1]) {
			j--
		}
		keep(s[start:j])
		start = skipSpace(s, i+4)
		pos = start
	}
	keep(s[start:])
	return docs
}

// isRegexpSpace is Go's regexp \s: [\t\n\f\r ].
func isRegexpSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'
}

func skipSpace(s string, i int) int {
	for i < len(s) && isRegexpSpace(s[i]) {
		i++
	}
	return i
}

// splitStream splits a YAML stream into documents as Kubernetes' YAML reader does (which Argo
// CD and kubectl use): a line starting with "---" followed by nothing but blanks or a comment
// separates documents; documents keep their line breaks.
func splitStream(s string) []string {
	var docs []string
	start, i := 0, 0
	for i < len(s) {
		end := strings.IndexByte(s[i:], '\n')
		if end < 0 {
			end = len(s)
		} else {
			end += i + 1
		}
		line := s[i:end]
		if rest, ok := strings.CutPrefix(line, "---"); ok {
			if t := strings.TrimSpace(rest); t == "" || t[0] == '#' {
				if i > start {
					docs = append(docs, s[start:i])
				}
				start = end
			}
		}
		i = end
	}
	if start < len(s) {
		docs = append(docs, s[start:])
	}
	return docs
}
