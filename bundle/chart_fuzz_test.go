package bundle

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart/loader"
	"sigs.k8s.io/yaml"

	"strata.dev/strata/internal/testing/fuzztest"
)

// hostSecret is in a file next to the fuzzed chart: no chart may bring it into an error or
// the output (a symbolic link or .Files path out of the chart).
const hostSecret = "HOST-SECRET-8d1f"

// FuzzChartLoad: any Chart.yaml, values.yaml, template, helper and symbolic link target, through
// what `bundle publish` does with a chart (read the directory, load, inject the values and
// metadata, pack, render check) within the render bounds (2 s, 64 MiB). Nothing panics or runs
// past the bounds; an error names the chart; no file next to the chart is read (a link out of
// it is refused) or written; a rendered chart renders the same twice, within the output bound,
// every object carrying the commit annotation. (Templates that run past the bounds are
// TestRenderBoundsHostileTemplates' cases, not seeds: Helm's engine cannot be stopped, and each
// such input would leave a goroutine spinning in the fuzz worker.)
func FuzzChartLoad(f *testing.F) {
	helpers := `{{- define "app.name" -}}{{ .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end }}`
	deploy := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ include \"app.name\" . }}\n  labels: {{ toYaml .Values.labels | nindent 4 }}\nspec:\n  replicas: {{ .Values.replicas }}\n  template:\n    spec:\n      containers:\n      - name: web\n        image: {{ .Values.strata.image.web }}\n"
	for _, s := range []struct{ chart, values, tmpl, link string }{
		{"apiVersion: v2\nname: shop\nversion: 0.1.0\n", "replicas: 2\nlabels: {team: a}\n", deploy, "values.yaml"},
		{"apiVersion: v2\nname: shop\nversion: 0.1.0\ndependencies:\n- name: db\n  version: 1.x\n  repository: oci://reg/db\n", "", deploy, "../secret.txt"},
		{"apiVersion: v1\nname: shop\nversion: 1\n", "a: &a [*a, *a]\n", "{{ .Files.Get \"../secret.txt\" }}{{ .Files.Get \"link\" }}", "/etc/hostname"},
		{"apiVersion: v2\nname: \"\"\nversion: x\n", "replicas: [\n", "kind: ConfigMap\napiVersion: v1\nmetadata: {name: c}\ndata: {a: {{ .Values.a | quote }}}\n", "templates"},
		{"apiVersion: v2\nname: hook\nversion: 0.1.0\n", "", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: t\n  annotations: {helm.sh/hook: test, helm.sh/resource-policy: keep}\n---\n# empty\n---\nnull\n", "Chart.yaml"},
		{"apiVersion: v2\nname: l\nversion: 0.1.0\n", "", "{{ lookup \"v1\" \"Secret\" \"kube-system\" \"x\" | toYaml }}\n{{ fail \"boom\" }}", ""},
	} {
		f.Add([]byte(s.chart), []byte(s.values), []byte(s.tmpl), []byte(helpers), s.link)
	}
	meta := &Metadata{SchemaVersion: MetadataSchemaVersion, Project: "shop", Chart: "shop", Version: "1.0.0",
		Commit: Commit{Hash: "0123456789abcdef0123456789abcdef01234567"}, GitURL: "https://git.example.com/a/shop.git",
		Images: map[string]Image{"web": {Repo: "reg.example/shop", Tag: "t-1", Digest: "sha256:" + strings.Repeat("a", 64), Ref: "reg.example/shop:t-1@sha256:" + strings.Repeat("a", 64)}}}
	bounds := fuzztest.Bounds{Time: 30 * time.Second, Heap: 512 << 20}
	f.Fuzz(func(t *testing.T, chartYAML, values, tmpl, helpers []byte, link string) {
		root := t.TempDir()
		dir := filepath.Join(root, "chart")
		write := func(name string, data []byte) {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("Chart.yaml", chartYAML)
		write("values.yaml", values)
		write("templates/t.yaml", tmpl)
		write("templates/_helpers.tpl", helpers)
		if err := os.WriteFile(filepath.Join(root, "secret.txt"), []byte(hostSecret), 0o644); err != nil {
			t.Fatal(err)
		}
		if link != "" {
			_ = os.Symlink(link, filepath.Join(dir, "link"))
		}
		before := fuzztest.Snapshot(t, root)
		defer before.Same(t, root)
		noSecret := func(what string, b []byte, err error) {
			t.Helper()
			if bytes.Contains(b, []byte(hostSecret)) || (err != nil && strings.Contains(err.Error(), hostSecret)) {
				t.Fatalf("%s shows a file from outside the chart: %v %q", what, err, b)
			}
		}

		var (
			files []*loader.BufferedFile
			art   *artifact
			out   []byte
			err   error
			step  string
		)
		ctx := context.Background()
		o := RenderOptions{ChartDir: dir, MaxOutputBytes: 1 << 20, Timeout: 2 * time.Second, MaxRenderMemory: 64 << 20}
		fuzztest.Bounded(t, bounds, "publish's chart handling", func() {
			step = "read"
			files, err = readChartDir(dir, 1<<20)
			if err == nil {
				step = "load"
				_, err = loadChart(dir, files)
			}
			if err == nil {
				step = "pack"
				art, err = buildArtifact("shop", "1.0.0", files, meta, 1<<20)
			}
			if err == nil {
				step = "render"
				out, err = renderFiles(ctx, o, art.files)
			}
		})
		noSecret("publish", out, err)
		if err != nil {
			// Publish adds the chart directory to a packing error; the other steps name it.
			if msg := err.Error(); step != "pack" && !strings.Contains(msg, dir) {
				t.Errorf("%s error does not name the chart %s: %v", step, dir, err)
			}
			return
		}
		for _, f := range art.files {
			noSecret(f.Name, f.Data, nil)
		}
		if int64(len(out)) > o.MaxOutputBytes {
			t.Errorf("rendered %d bytes, over the %d bound", len(out), o.MaxOutputBytes)
		}
		var again []byte
		fuzztest.Bounded(t, bounds, "second render", func() { again, err = renderFiles(ctx, o, art.files) })
		if errors.Is(err, ErrRenderBound) {
			return // close to a bound: the second run may cross it
		}
		if err != nil || !bytes.Equal(out, again) {
			t.Fatalf("a second render differs (err %v):\n%s\n---- vs ----\n%s", err, out, again)
		}
		for _, doc := range strings.Split(string(out), "\n---\n") {
			var obj struct {
				Metadata struct {
					Annotations map[string]string `json:"annotations"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal([]byte(strings.TrimPrefix(doc, "---\n")), &obj); err != nil {
				t.Fatalf("rendered document does not parse: %v\n%s", err, doc)
			}
			if obj.Metadata.Annotations[AnnotationCommit] != meta.Commit.Hash {
				t.Errorf("rendered object without the commit annotation:\n%s", doc)
			}
		}
	})
}
