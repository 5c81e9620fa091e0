package bundle

import (
	"context"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
)

// The probe that names the running template (see probed) changes nothing the templates print:
// .Capabilities dumped whole or read field by field reads as Helm's; a template's error still names
// its file and line; a subchart's template is named with its chart path.
func TestProbeLeavesOutputAlone(t *testing.T) {
	sub := &chart.Chart{Metadata: &chart.Metadata{APIVersion: "v2", Name: "sub", Version: "0.1.0"},
		Templates: []*chart.File{{Name: "templates/s.yaml", Data: []byte("name: {{ .Release.Name }}\n")}}}
	c := &chart.Chart{Metadata: &chart.Metadata{APIVersion: "v2", Name: "app", Version: "0.1.0"},
		Templates: []*chart.File{
			{Name: "templates/_h.tpl", Data: []byte(`{{ define "x" }}x{{ end }}`)},
			{Name: "templates/a.yaml", Data: []byte("  indented: {{ include \"x\" . }}\n{{ toJson .Capabilities }}\n{{ .Capabilities.KubeVersion.Major }} {{ .Capabilities.APIVersions.Has \"v1\" }} {{ .Capabilities.HelmVersion.Version }}\n")},
		}}
	c.SetDependencies(sub)
	vals, err := chartutil.ToRenderValues(c, map[string]any{}, chartutil.ReleaseOptions{Name: "r", Namespace: "ns", IsInstall: true, Revision: 1}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	l := renderLimits{timeout: time.Minute, maxMemory: 1 << 30, maxOut: 1 << 20}
	got, err := executeTemplates(context.Background(), c, vals, l)
	if err != nil {
		t.Fatal(err)
	}
	var e engine.Engine
	plain, err := e.Render(c, vals)
	if err != nil {
		t.Fatal(err)
	}
	want := plain["app/templates/a.yaml"]
	if got["app/templates/a.yaml"] != want || !strings.Contains(want, `"KubeVersion":{`) || !strings.Contains(want, "\n1 true v") {
		t.Errorf("a.yaml:\n%q\nwant\n%q", got["app/templates/a.yaml"], want)
	}
	if got["app/charts/sub/templates/s.yaml"] != "name: r\n" {
		t.Errorf("s.yaml: %q", got["app/charts/sub/templates/s.yaml"])
	}
	c.Templates[1].Data = []byte("a: 1\nb: {{ .Values.missing.field }}\n")
	if _, err := executeTemplates(context.Background(), c, vals, l); err == nil || !strings.Contains(err.Error(), "app/templates/a.yaml:2:") {
		t.Errorf("template error: %v, want the file and line named", err)
	}
}
