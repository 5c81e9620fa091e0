package bundle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	yamlv2 "go.yaml.in/yaml/v2"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/strvals"
	"sigs.k8s.io/yaml"
)

// Annotations Render puts on every object.
const (
	AnnotationCommit     = "strata.dev/commit"
	AnnotationGit        = "strata.dev/git"
	AnnotationBundle     = "strata.dev/bundle"
	AnnotationCIURL      = "strata.dev/ci-url"
	AnnotationLinkCommit = "link.argocd.argoproj.io/commit"
	AnnotationLinkCI     = "link.argocd.argoproj.io/ci"
)

// RenderOptions configure Render.
type RenderOptions struct {
	// ChartDir is the chart directory (a pulled bundle); required.
	ChartDir string
	// ReleaseName and Namespace are .Release.Name and .Release.Namespace (defaults "release"
	// and "default").
	ReleaseName string
	Namespace   string
	// Values are merged over the chart's values.yaml; ValueFiles over those, in order; Set
	// (helm --set syntax, KEY=VALUE[,KEY=VALUE]) over everything.
	Values     map[string]any
	ValueFiles []string
	Set        []string
	// KubeVersion (e.g. "1.31.0" or "v1.31") and APIVersions (e.g. "monitoring.coreos.com/v1")
	// are the .Capabilities the chart sees; empty means Helm's defaults.
	KubeVersion string
	APIVersions []string
	// BundleRef is where the bundle came from, REPO@sha256:... or REPO:TAG@sha256:...; it is
	// written to the strata.dev/bundle annotation. Empty: the bundle location recorded in the
	// metadata, if any.
	BundleRef string
	// Metadata overrides the chart's MetadataFile; nil reads it from ChartDir (a chart without
	// one renders without the commit annotations).
	Metadata *Metadata
	// MaxChartBytes and MaxOutputBytes limit the chart's total size and the rendered output
	// (0: DefaultMaxChartBytes, DefaultMaxOutputBytes).
	MaxChartBytes  int64
	MaxOutputBytes int64
	// Timeout bounds the time the chart's templates may run, MaxRenderMemory the memory they may
	// take (0: DefaultRenderTimeout, DefaultMaxRenderMemory); past either, Render fails with
	// ErrRenderBound. Helm's engine cannot be stopped: its goroutine is left behind, and the
	// process should exit soon after such an error (strata's commands do).
	Timeout         time.Duration
	MaxRenderMemory int64
}

// Render renders a chart with the Helm engine, without any cluster access (Helm's lookup returns
// nothing), and returns a YAML stream of every object, hooks and CRDs included, in a
// deterministic order (Helm's install order by kind, then namespace, name and source template),
// each annotated with the bundle's commit, git, bundle and CI references. The output depends only
// on the chart and the options: no time, no tool version. Rendering nothing is an error.
func Render(ctx context.Context, o RenderOptions) ([]byte, error) {
	if o.ChartDir == "" {
		return nil, errors.New("render: no chart directory given")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	files, err := readChartDir(o.ChartDir, o.MaxChartBytes)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	return renderFiles(ctx, o, files)
}

// renderFiles renders the chart made of files as Render does; o.ChartDir names it in errors.
func renderFiles(ctx context.Context, o RenderOptions, files []*loader.BufferedFile) ([]byte, error) {
	maxOut := o.MaxOutputBytes
	if maxOut <= 0 {
		maxOut = DefaultMaxOutputBytes
	}
	chrt, err := loadChart(o.ChartDir, files)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	meta := o.Metadata
	if meta == nil {
		for _, f := range files {
			if f.Name == MetadataFile {
				if meta, err = ParseMetadata(f.Data); err != nil {
					return nil, fmt.Errorf("render: %s/%s: %w", o.ChartDir, MetadataFile, err)
				}
			}
		}
	}

	vals, err := mergeValues(o)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}

	name, ns := o.ReleaseName, o.Namespace
	if name == "" {
		name = "release"
	}
	if ns == "" {
		ns = "default"
	}
	caps := chartutil.DefaultCapabilities.Copy()
	if o.KubeVersion != "" {
		kv, err := chartutil.ParseKubeVersion(o.KubeVersion)
		if err != nil {
			return nil, fmt.Errorf("render: --kube-version %q: %w", o.KubeVersion, err)
		}
		caps.KubeVersion = *kv
	}
	// Copy shares Helm's default list: clipped, the append never writes into it (renders may run
	// concurrently in one process).
	caps.APIVersions = append(slices.Clip(caps.APIVersions), o.APIVersions...)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	limits := renderLimits{timeout: o.Timeout, maxMemory: o.MaxRenderMemory, maxOut: maxOut}
	if limits.timeout <= 0 {
		limits.timeout = DefaultRenderTimeout
	}
	if limits.maxMemory <= 0 {
		limits.maxMemory = DefaultMaxRenderMemory
	}
	pieces, err := renderTemplates(ctx, chrt, vals, name, ns, caps, limits)
	if err != nil {
		return nil, fmt.Errorf("render chart %s: %w", o.ChartDir, err)
	}

	// Decoding and encoding the objects is most of Render's own work: it runs on every CPU, and
	// the results are put together in order, so the output is the same as one at a time.
	ann := annotations(meta, o.BundleRef)
	decoded := make([]*object, len(pieces))
	err = parallel(len(pieces), func(i int) error {
		p := pieces[i]
		if !hasContent(p.content) {
			return nil
		}
		obj, err := decodeObject(p.source, p.content)
		if err != nil {
			return fmt.Errorf("render chart %s: %w", o.ChartDir, err)
		}
		if obj.m == nil {
			return nil // a null document, which Argo CD skips too
		}
		if p.template {
			keep, hook, err := helmManifestRules(p.source, obj.m)
			if err != nil {
				return fmt.Errorf("render chart %s: %w", o.ChartDir, err)
			}
			if !keep {
				return nil
			}
			if hook {
				obj.seq = len(pieces) // after the other objects when all else is equal, as Helm lists hooks
			}
		}
		obj.seq += i
		annotate(obj.m, ann)
		decoded[i] = &obj
		return nil
	})
	if err != nil {
		return nil, err
	}
	pieces = nil // the rendered text (it holds Helm's output) is no longer needed
	var objs []object
	for _, obj := range decoded {
		if obj != nil {
			objs = append(objs, *obj)
		}
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("render chart %s: the chart rendered no Kubernetes objects (release %q, namespace %q)", o.ChartDir, name, ns)
	}
	sort.SliceStable(objs, func(i, j int) bool { return objs[i].less(objs[j]) })

	encoded := make([][]byte, len(objs))
	err = parallel(len(objs), func(i int) error {
		y, err := yamlv2.Marshal(objs[i].m)
		if err != nil {
			return fmt.Errorf("render chart %s: %s: %w", o.ChartDir, objs[i].source, err)
		}
		encoded[i] = y
		objs[i].m = nil // the encoding is all that is left to keep
		return nil
	})
	if err != nil {
		return nil, err
	}
	// One allocation of the output's size: no copies of a growing buffer.
	const header = "---\n# Source: \n"
	size := 0
	for i, obj := range objs {
		size += len(header) + len(obj.source) + len(encoded[i])
	}
	if int64(size) > maxOut {
		return nil, fmt.Errorf("render chart %s: output is larger than the limit of %d bytes: %w", o.ChartDir, maxOut, ErrLimit)
	}
	out := make([]byte, 0, size)
	for i, obj := range objs {
		out = append(out, "---\n# Source: "...)
		out = append(out, obj.source...)
		out = append(out, '\n')
		out = append(out, encoded[i]...)
		encoded[i] = nil
	}
	return out, nil
}

// parallel calls f(0) ... f(n-1) on up to GOMAXPROCS goroutines and returns the error of the
// lowest i that failed, as a loop stopping at the first error would.
func parallel(n int, f func(i int) error) error {
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := min(runtime.GOMAXPROCS(0), n); w > 0; w-- {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				errs[i] = f(i)
			}
		}()
	}
	wg.Wait()
	return firstError(errs)
}

func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// mergeValues: Values, then ValueFiles, then Set (later wins).
func mergeValues(o RenderOptions) (map[string]any, error) {
	base := map[string]any{}
	if o.Values != nil {
		// deep copy through JSON so that Helm's coalescing never mutates the caller's map
		b, err := json.Marshal(o.Values)
		if err != nil {
			return nil, fmt.Errorf("values: %w", err)
		}
		if err := json.Unmarshal(b, &base); err != nil {
			return nil, fmt.Errorf("values: %w", err)
		}
	}
	if len(o.ValueFiles) == 0 && len(o.Set) == 0 {
		return base, nil
	}
	extra := map[string]any{}
	for _, path := range o.ValueFiles {
		var data []byte
		var err error
		if strings.TrimSpace(path) == "-" {
			data, err = io.ReadAll(os.Stdin)
		} else {
			data, err = os.ReadFile(path)
		}
		if err != nil {
			return nil, fmt.Errorf("values: %w", err)
		}
		file := map[string]any{}
		if err := yaml.Unmarshal(data, &file); err != nil {
			return nil, fmt.Errorf("values: failed to parse %s: %w", path, err)
		}
		extra = mergeMaps(extra, file)
	}
	for _, set := range o.Set {
		if err := strvals.ParseInto(set, extra); err != nil {
			return nil, fmt.Errorf("values: failed parsing --set data: %w", err)
		}
	}
	return chartutil.MergeTables(extra, base), nil
}

// mergeMaps merges b over a as helm's -f does: maps are merged key by key, anything else in b
// replaces what a has.
func mergeMaps(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if bm, ok := v.(map[string]any); ok {
			if am, ok := out[k].(map[string]any); ok {
				out[k] = mergeMaps(am, bm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// hasContent tells whether a document has a line that is neither blank nor a comment.
func hasContent(s string) bool {
	for s != "" {
		var l string
		l, s, _ = strings.Cut(s, "\n")
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			return true
		}
	}
	return false
}

type object struct {
	m         map[string]any
	source    string
	order     int
	kind      string
	namespace string
	name      string
	seq       int
}

var kindOrder = func() map[string]int {
	m := map[string]int{}
	for i, k := range releaseutil.InstallOrder {
		m[k] = i
	}
	return m
}()

func (a object) less(b object) bool {
	if a.order != b.order {
		return a.order < b.order
	}
	if a.kind != b.kind {
		return a.kind < b.kind
	}
	if a.namespace != b.namespace {
		return a.namespace < b.namespace
	}
	if a.name != b.name {
		return a.name < b.name
	}
	if a.source != b.source {
		return a.source < b.source
	}
	return a.seq < b.seq
}

// decodeObject decodes one rendered document; a null document gives an object without a map.
func decodeObject(source, content string) (object, error) {
	// The same values sigs.k8s.io/yaml.YAMLToJSON and a JSON decode with UseNumber (then
	// yamlValue) would give, without the JSON round trip.
	var raw any
	if err := yamlv2.Unmarshal([]byte(content), &raw); err != nil {
		return object{}, fmt.Errorf("%s: rendered YAML is invalid: %w", source, err)
	}
	if raw == nil {
		return object{}, nil
	}
	v, err := jsonValue(raw)
	if err != nil {
		return object{}, fmt.Errorf("%s: rendered YAML is invalid: %w", source, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return object{}, fmt.Errorf("%s: rendered document is not a Kubernetes object (a YAML mapping)", source)
	}
	kind, _ := m["kind"].(string)
	if kind == "" {
		return object{}, fmt.Errorf("%s: rendered object has no kind", source)
	}
	if av, _ := m["apiVersion"].(string); av == "" {
		return object{}, fmt.Errorf("%s: rendered %s has no apiVersion", source, kind)
	}
	o := object{m: m, source: source, kind: kind, order: len(kindOrder)}
	if i, ok := kindOrder[kind]; ok {
		o.order = i
	}
	if md, ok := m["metadata"].(map[string]any); ok {
		o.name, _ = md["name"].(string)
		if o.name == "" {
			o.name, _ = md["generateName"].(string)
		}
		o.namespace, _ = md["namespace"].(string)
	}
	return o, nil
}

// jsonValue turns a value decoded by go.yaml.in/yaml/v2 into what a trip through JSON gives
// (sigs.k8s.io/yaml.YAMLToJSON, then a JSON decode with UseNumber) ready for YAML encoding: map
// keys become strings as YAMLToJSON writes them, strings are coerced to valid UTF-8 as
// encoding/json does, and numbers become an integer (int64, else uint64) or a float64 the way
// their JSON text parses.
func jsonValue(v any) (any, error) {
	switch t := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			ks, err := jsonKey(k, e)
			if err != nil {
				return nil, err
			}
			if m[jsonString(ks)], err = jsonValue(e); err != nil {
				return nil, err
			}
		}
		return m, nil
	case []any:
		a := make([]any, len(t))
		for i, e := range t {
			var err error
			if a[i], err = jsonValue(e); err != nil {
				return nil, err
			}
		}
		return a, nil
	case string:
		return jsonString(t), nil
	case int:
		return int64(t), nil
	case uint64:
		if t <= math.MaxInt64 {
			return int64(t), nil
		}
		return t, nil
	case float64:
		b, err := json.Marshal(t) // refuses NaN and infinities, as YAMLToJSON does
		if err != nil {
			return nil, err
		}
		return numberValue(string(b)), nil
	}
	return v, nil
}

// jsonKey is a YAML map key as sigs.k8s.io/yaml.YAMLToJSON writes it.
func jsonKey(k, v any) (string, error) {
	switch t := k.(type) {
	case string:
		return t, nil
	case int:
		return strconv.Itoa(t), nil
	case int64:
		return strconv.FormatInt(t, 10), nil
	case float64:
		s := strconv.FormatFloat(t, 'g', -1, 32)
		switch s {
		case "+Inf":
			s = ".inf"
		case "-Inf":
			s = "-.inf"
		case "NaN":
			s = ".nan"
		}
		return s, nil
	case bool:
		return strconv.FormatBool(t), nil
	}
	return "", fmt.Errorf("unsupported map key of type: %s, key: %+#v, value: %+#v", reflect.TypeOf(k), k, v)
}

// jsonString coerces s to valid UTF-8 the way encoding/json does: each invalid byte becomes
// U+FFFD.
func jsonString(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// numberValue is a JSON number as an int64, else a uint64, else a float64.
func numberValue(n string) any {
	if i, err := strconv.ParseInt(n, 10, 64); err == nil {
		return i
	}
	if u, err := strconv.ParseUint(n, 10, 64); err == nil {
		return u
	}
	if f, err := strconv.ParseFloat(n, 64); err == nil {
		return f
	}
	return n
}

// helmHookEvents are the hook names Helm knows (release.HookEvent, and Helm 2's test-success).
var helmHookEvents = map[string]bool{"test-success": true}

func init() {
	for _, e := range []release.HookEvent{release.HookPreInstall, release.HookPostInstall, release.HookPreDelete,
		release.HookPostDelete, release.HookPreUpgrade, release.HookPostUpgrade, release.HookPreRollback,
		release.HookPostRollback, release.HookTest} {
		helmHookEvents[e.String()] = true
	}
}

// helmManifestRules applies to a template's object what Helm's manifest sort does: it refuses
// a metadata or annotations that is not a mapping and a name or annotation that is a mapping or
// a list (Helm reads them into strings, which takes any scalar), tells hooks (helm.sh/hook) and
// drops hooks of an unknown name, as helm template does.
func helmManifestRules(source string, m map[string]any) (keep, hook bool, err error) {
	md, ok := m["metadata"].(map[string]any)
	if !ok {
		if m["metadata"] != nil {
			return false, false, fmt.Errorf("YAML parse error on %s: metadata is not a mapping", source)
		}
		return true, false, nil
	}
	if !scalar(md["name"]) {
		return false, false, fmt.Errorf("YAML parse error on %s: metadata.name is not a string", source)
	}
	as, ok := md["annotations"].(map[string]any)
	if !ok {
		if md["annotations"] != nil {
			return false, false, fmt.Errorf("YAML parse error on %s: metadata.annotations is not a mapping", source)
		}
		return true, false, nil
	}
	for k, v := range as {
		if !scalar(v) {
			return false, false, fmt.Errorf("YAML parse error on %s: annotation %s is not a string", source, k)
		}
	}
	v, ok := as[release.HookAnnotation]
	if !ok {
		return true, false, nil
	}
	types, _ := v.(string)
	for _, t := range strings.Split(types, ",") {
		if !helmHookEvents[strings.ToLower(strings.TrimSpace(t))] {
			return false, false, nil // Helm skips a hook it does not know
		}
	}
	return true, true, nil
}

// scalar tells whether v (decoded) reads into a Go string through sigs.k8s.io/yaml: anything
// but a mapping or a list.
func scalar(v any) bool {
	switch v.(type) {
	case map[string]any, []any:
		return false
	}
	return true
}

func annotations(meta *Metadata, bundleRef string) map[string]string {
	a := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			a[k] = v
		}
	}
	if meta != nil {
		set(AnnotationCommit, meta.Commit.Hash)
		set(AnnotationGit, CleanGitURL(meta.GitURL))
		set(AnnotationCIURL, meta.CIURL())
		set(AnnotationLinkCommit, meta.CommitURL())
		set(AnnotationLinkCI, meta.CIURL())
		set(AnnotationBundle, meta.Bundle)
	}
	set(AnnotationBundle, bundleRef)
	return a
}

func annotate(m map[string]any, ann map[string]string) {
	if len(ann) == 0 {
		return
	}
	if kind, _ := m["kind"].(string); strings.HasSuffix(kind, "List") {
		// Argo CD and kubectl apply a list's items, not the list: the items carry the
		// annotations.
		if items, ok := m["items"].([]any); ok {
			for _, it := range items {
				if im, ok := it.(map[string]any); ok {
					annotate(im, ann)
				}
			}
			return
		}
	}
	md, ok := m["metadata"].(map[string]any)
	if !ok {
		md = map[string]any{}
		m["metadata"] = md
	}
	as, ok := md["annotations"].(map[string]any)
	if !ok {
		as = map[string]any{}
		md["annotations"] = as
	}
	for k, v := range ann {
		as[k] = v
	}
}
