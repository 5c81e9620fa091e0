package bundle

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/getter"
	"helm.sh/helm/v3/pkg/release"
	"sigs.k8s.io/yaml"
)

// helmObjects renders dir with Helm's own client-only install (what `helm template
// --include-crds` runs) and returns its objects as canonical JSON, sorted.
func helmObjects(t *testing.T, dir string, o RenderOptions) ([]string, error) {
	t.Helper()
	c, err := loader.Load(dir)
	if err != nil {
		return nil, err
	}
	vals, err := (&values.Options{ValueFiles: o.ValueFiles, Values: o.Set}).MergeValues(getter.Providers{})
	if err != nil {
		return nil, err
	}
	rel, err := helmInstall(c, vals, o)
	if err != nil {
		return nil, err
	}
	all := rel.Manifest
	for _, h := range rel.Hooks {
		all += "\n---\n" + h.Manifest
	}
	return canonical(t, all), nil
}

// helmInstall runs Helm's client-only dry-run install of c, as `helm template --include-crds`
// does, with o's release name, namespace and capabilities.
func helmInstall(c *chart.Chart, vals map[string]any, o RenderOptions) (*release.Release, error) {
	inst := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	inst.DryRun, inst.DryRunOption, inst.ClientOnly, inst.Replace, inst.IncludeCRDs = true, "client", true, true, true
	inst.ReleaseName, inst.Namespace = o.ReleaseName, o.Namespace
	if o.KubeVersion != "" {
		kv, err := chartutil.ParseKubeVersion(o.KubeVersion)
		if err != nil {
			return nil, err
		}
		inst.KubeVersion = kv
	}
	inst.APIVersions = o.APIVersions
	return inst.RunWithContext(context.Background(), c, vals)
}

func canonical(t *testing.T, stream string) []string {
	t.Helper()
	var objs []string
	for _, d := range splitStream(stream) {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(d), &m); err != nil {
			t.Fatalf("document does not parse: %v\n%s", err, d)
		}
		if len(m) == 0 {
			continue
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, string(b))
	}
	sort.Strings(objs)
	return objs
}

// Render must see exactly what Helm's install action renders: same objects, same failures, over
// values files and --set, capabilities, subcharts with conditions, multi-document CRD files,
// NOTES in subcharts, kubeVersion constraints, schemas and release names.
func TestRenderMatchesHelmInstall(t *testing.T) {
	write := func(dir, name, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	subchart := func(d string) {
		write(d, "Chart.yaml", "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n- name: sub\n  version: 0.2.0\n  condition: sub.enabled\n- name: other\n  version: 0.3.0\n  alias: renamed\n")
		write(d, "charts/sub/Chart.yaml", "apiVersion: v2\nname: sub\nversion: 0.2.0\n")
		write(d, "charts/sub/values.yaml", "enabled: false\ncolour: red\n")
		write(d, "charts/sub/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}-sub}\ndata: {colour: {{ .Values.colour }}, global: {{ .Values.global.g | quote }}}\n")
		write(d, "charts/sub/templates/NOTES.txt", "sub notes {{ .Values.colour }}\n")
		write(d, "charts/other/Chart.yaml", "apiVersion: v2\nname: other\nversion: 0.3.0\n")
		write(d, "charts/other/templates/svc.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: {{ .Chart.Name }}-{{ .Release.Namespace }}}\nspec: {ports: [{port: 80}]}\n")
		write(d, "charts/other/crds/more.yaml", "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: gadgets.example.com}\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: gizmos.example.com}\n")
		write(d, "values.yaml", "replicas: 1\nglobal: {g: top}\nstrata: {image: {web: a, worker: b}}\n")
	}
	dir := t.TempDir()
	vf := filepath.Join(dir, "v.yaml")
	write(dir, "v.yaml", "replicas: 4\nsub: {enabled: true}\nstrata: {image: {web: from-file}}\n")
	vf2 := filepath.Join(dir, "v2.yaml")
	write(dir, "v2.yaml", "sub: {colour: blue}\nstrata: {image: {worker: second-file}}\n")

	cases := []struct {
		name    string
		edit    func(dir string)
		opts    RenderOptions
		wantErr bool
		wantIn  []string // in the output besides
	}{
		{name: "test chart"},
		{name: "values and capabilities", opts: RenderOptions{ValueFiles: []string{vf, vf2}, Set: []string{"replicas=7,strata.image.web=from-set", "sub.colour=green"}, KubeVersion: "v1.31.4", APIVersions: []string{"monitoring.coreos.com/v1"}}},
		{name: "subcharts, condition off", edit: subchart},
		{name: "subcharts, condition on", edit: subchart, opts: RenderOptions{ValueFiles: []string{vf, vf2}, ReleaseName: "rel", Namespace: "prod"},
			wantIn: []string{"name: gizmos.example.com", "name: gadgets.example.com", "name: rel-sub", "colour: blue", "global: top", "name: renamed-prod"}},
		{name: "kubeVersion constraint met", edit: func(d string) {
			write(d, "Chart.yaml", "apiVersion: v2\nname: app\nversion: 0.1.0\nkubeVersion: '>=1.20.0-0'\n")
		}},
		{name: "kubeVersion constraint not met", edit: func(d string) {
			write(d, "Chart.yaml", "apiVersion: v2\nname: app\nversion: 0.1.0\nkubeVersion: '>=1.99.0-0'\n")
		}, wantErr: true},
		{name: "schema violated", edit: func(d string) {
			write(d, "values.schema.json", `{"type": "object", "properties": {"replicas": {"type": "string"}}}`)
		}, wantErr: true},
		{name: "schema met", edit: func(d string) {
			write(d, "values.schema.json", `{"type": "object", "properties": {"replicas": {"type": "integer"}}}`)
		}},
		{name: "bad release name", opts: RenderOptions{ReleaseName: "Bad_Name"}, wantErr: true},
		{name: "bad --set", opts: RenderOptions{Set: []string{"a[=1"}}, wantErr: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := copyDir(t, "testdata/app")
			os.Remove(filepath.Join(d, MetadataFile)) // no annotations: the objects are Helm's
			if c.edit != nil {
				c.edit(d)
			}
			o := c.opts
			o.ChartDir = d
			if o.ReleaseName == "" {
				o.ReleaseName = "release"
			}
			if o.Namespace == "" {
				o.Namespace = "default"
			}
			want, helmErr := helmObjects(t, d, o)
			out, err := Render(context.Background(), o)
			if (err != nil) != c.wantErr || (helmErr != nil) != c.wantErr {
				t.Fatalf("strata error %v, helm error %v, want error: %v", err, helmErr, c.wantErr)
			}
			if c.wantErr {
				t.Logf("strata: %v\nhelm:   %v", err, helmErr)
				return
			}
			got := canonical(t, string(out))
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("objects differ\nstrata:\n%s\nhelm:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			for _, w := range c.wantIn {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if len(got) < 3 {
				t.Errorf("only %d objects rendered", len(got))
			}
		})
	}
}
