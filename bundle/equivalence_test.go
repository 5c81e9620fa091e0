package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	kyaml "k8s.io/apimachinery/pkg/util/yaml"

	"strata.dev/strata/internal/testing/helmcli"
)

// helmTemplate runs `helm template` as Argo CD's repo-server does for a Helm source.
func helmTemplate(t testing.TB, helm string, o RenderOptions) ([]byte, error) {
	t.Helper()
	args := []string{"template", ".", "--name-template", o.ReleaseName, "--namespace", o.Namespace, "--include-crds"}
	if o.KubeVersion != "" {
		args = append(args, "--kube-version", o.KubeVersion)
	}
	for _, a := range o.APIVersions {
		args = append(args, "--api-versions", a)
	}
	for _, f := range o.ValueFiles {
		args = append(args, "--values", f)
	}
	for _, s := range o.Set {
		args = append(args, "--set", s)
	}
	cmd := exec.Command(helm, args...)
	cmd.Dir = o.ChartDir
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, stderr.String())
	}
	return out, nil
}

// argoObject is one object of a manifest stream as Argo CD reads it, as canonical JSON, and
// its identity.
type argoObject struct{ id, json string }

// argoObjects reads a stream as Argo CD reads the output of helm template or of a plugin
// (Kubernetes' YAML-or-JSON decoder, null documents skipped), removes Strata's own annotations
// (and an annotations map left empty by that, or empty or null to begin with) and returns the
// objects sorted by identity.
func argoObjects(t testing.TB, stream []byte) []argoObject {
	t.Helper()
	d := kyaml.NewYAMLOrJSONDecoder(bytes.NewReader(stream), 4096)
	var objs []argoObject
	for {
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("stream does not decode as Argo CD decodes it: %v", err)
		}
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		jd := json.NewDecoder(bytes.NewReader(raw))
		jd.UseNumber()
		var m map[string]any
		if err := jd.Decode(&m); err != nil {
			t.Fatalf("document is not an object: %v\n%s", err, raw)
		}
		stripStrata(m)
		argoNumbers(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		md, _ := m["metadata"].(map[string]any)
		id := fmt.Sprintf("%v/%v %v/%v", m["apiVersion"], m["kind"], md["namespace"], md["name"])
		objs = append(objs, argoObject{id, string(b)})
	}
	sort.SliceStable(objs, func(i, j int) bool {
		if objs[i].id != objs[j].id {
			return objs[i].id < objs[j].id
		}
		return objs[i].json < objs[j].json
	})
	return objs
}

// argoNumbers turns numbers into what Argo CD's unstructured objects hold: an int64 when the
// number is one, else a float64 (so -0.0 and 0 are the same number there, as are
// 12345678901234567890 and 1.2345678901234567e19).
func argoNumbers(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = argoNumbers(e)
		}
	case []any:
		for i, e := range t {
			t[i] = argoNumbers(e)
		}
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	}
	return v
}

func stripStrata(m map[string]any) {
	if md, ok := m["metadata"].(map[string]any); ok {
		if a, ok := md["annotations"].(map[string]any); ok || md["annotations"] == nil {
			for _, k := range []string{AnnotationCommit, AnnotationGit, AnnotationBundle, AnnotationCIURL, AnnotationLinkCommit, AnnotationLinkCI} {
				delete(a, k)
			}
			if len(a) == 0 {
				delete(md, "annotations")
			}
		}
	}
	if items, ok := m["items"].([]any); ok {
		for _, it := range items {
			if im, ok := it.(map[string]any); ok {
				stripStrata(im)
			}
		}
	}
}

// equivalenceCase is one chart of the corpus rendered one way.
type equivalenceCase struct {
	chart string // under testdata/charts
	opts  RenderOptions
	// wantErr: helm template and Render must both fail.
	wantErr bool
	// minObjects the chart must render (guards against a corpus that silently renders little).
	minObjects int
}

var equivalenceCorpus = []equivalenceCase{
	{chart: "scalars", minObjects: 8},
	{chart: "documents", minObjects: 5},
	{chart: "numbers", minObjects: 2},
	{chart: "crlf", minObjects: 2},
	{chart: "hooks", minObjects: 6},
	{chart: "crds", minObjects: 5},
	{chart: "umbrella", minObjects: 5},
	{chart: "umbrella", opts: RenderOptions{Set: []string{"tags.extras=true", "cache.enabled=false"}}, minObjects: 5},
	{chart: "functions", minObjects: 5},
	{chart: "functions", opts: RenderOptions{KubeVersion: "v1.29.3", APIVersions: []string{"monitoring.coreos.com/v1", "policy/v1/PodDisruptionBudget"}}, minObjects: 6},
	{chart: "schema", minObjects: 1},
	{chart: "schema", opts: RenderOptions{Set: []string{"replicas=many"}}, wantErr: true},
	{chart: "library", wantErr: true},
	{chart: "missingdep", wantErr: true},
	{chart: "badannotation", wantErr: true},
	{chart: "platform", minObjects: 50},
	{chart: "monitoring", opts: RenderOptions{APIVersions: []string{"monitoring.coreos.com/v1"}}, minObjects: 50},
	{chart: "forge", minObjects: 50},
}

// Render gives what `helm template` (the CLI Argo CD runs) gives, object by object and byte
// for byte in every value, once Strata's own annotations are removed, over a corpus of charts
// that does what real charts do (see testdata/charts/README.md).
func TestRenderEquivalentToHelmTemplate(t *testing.T) {
	helm := helmcli.Path(t)
	meta, err := ReadMetadata("testdata/app")
	if err != nil {
		t.Fatal(err)
	}
	var charts, objects int
	for _, c := range equivalenceCorpus {
		name := c.chart
		if len(c.opts.Set)+len(c.opts.APIVersions) > 0 || c.opts.KubeVersion != "" {
			name += fmt.Sprintf(" %v%v%s", c.opts.Set, c.opts.APIVersions, c.opts.KubeVersion)
		}
		t.Run(name, func(t *testing.T) {
			o := c.opts
			o.ChartDir = filepath.Join("testdata/charts", c.chart)
			o.ReleaseName, o.Namespace, o.Metadata = "shop", "team-a", meta
			o.BundleRef = "127.0.0.1:5000/charts/" + c.chart + "@sha256:" + strings.Repeat("ab", 32)
			want, helmErr := helmTemplate(t, helm, o)
			got, err := Render(context.Background(), o)
			if c.wantErr {
				if err == nil || helmErr == nil {
					t.Fatalf("want both to fail: strata %v, helm %v", err, helmErr)
				}
				t.Logf("strata: %v\nhelm:   %v", err, helmErr)
				return
			}
			if err != nil || helmErr != nil {
				t.Fatalf("strata: %v\nhelm: %v", err, helmErr)
			}
			if !strings.Contains(string(got), AnnotationCommit) {
				t.Errorf("Strata's annotations missing")
			}
			g, w := argoObjects(t, got), argoObjects(t, want)
			compareObjects(t, g, w)
			if len(w) < c.minObjects {
				t.Errorf("helm rendered %d objects, the corpus wants at least %d", len(w), c.minObjects)
			}
			charts++
			objects += len(w)
		})
	}
	t.Logf("%d renders compared, %d objects", charts, objects)
}

func compareObjects(t *testing.T, got, want []argoObject) {
	t.Helper()
	i, j := 0, 0
	for i < len(got) || j < len(want) {
		switch {
		case j == len(want) || i < len(got) && got[i].id < want[j].id:
			t.Errorf("only Strata renders %s:\n%s", got[i].id, got[i].json)
			i++
		case i == len(got) || got[i].id > want[j].id:
			t.Errorf("only helm renders %s:\n%s", want[j].id, want[j].json)
			j++
		default:
			if got[i].json != want[j].json {
				t.Errorf("%s differs\nstrata: %s\nhelm:   %s", got[i].id, got[i].json, want[j].json)
			}
			i++
			j++
		}
	}
}
