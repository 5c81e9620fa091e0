package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	yamlv2 "go.yaml.in/yaml/v2"
	"sigs.k8s.io/yaml"

	"strata.dev/strata/internal/testing/testenv"
)

// copyDir copies the test chart src into a fresh directory.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func docs(t *testing.T, out []byte) []map[string]any {
	t.Helper()
	var res []map[string]any
	for _, d := range strings.Split(string(out), "---\n") {
		if strings.TrimSpace(d) == "" {
			continue
		}
		var m map[string]any
		if err := yaml.Unmarshal([]byte(d), &m); err != nil {
			t.Fatalf("output document does not parse: %v\n%s", err, d)
		}
		res = append(res, m)
	}
	return res
}

func TestRenderAnnotatesEveryObjectDeterministically(t *testing.T) {
	ctx := context.Background()
	o := RenderOptions{ChartDir: "testdata/app", ReleaseName: "r1", Namespace: "ns1", BundleRef: "127.0.0.1:5000/charts/app@sha256:2222"}
	a, err := Render(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		b, err := Render(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("render %d differs from the first:\n%s\n----\n%s", i, a, b)
		}
	}
	objs := docs(t, a)
	// CRD, hook ConfigMap, Service, 2 Deployments; NOTES.txt and partials are not objects
	if len(objs) != 5 {
		t.Fatalf("got %d objects, want 5:\n%s", len(objs), a)
	}
	want := map[string]string{
		AnnotationCommit:     "0123456789abcdef0123456789abcdef01234567",
		AnnotationGit:        "git@github.com:example/app.git",
		AnnotationBundle:     "127.0.0.1:5000/charts/app@sha256:2222",
		AnnotationCIURL:      "https://ci.example.com/pipelines/7",
		AnnotationLinkCommit: "https://github.com/example/app/commit/0123456789abcdef0123456789abcdef01234567",
		AnnotationLinkCI:     "https://ci.example.com/pipelines/7",
	}
	kinds := []string{}
	for _, m := range objs {
		kinds = append(kinds, m["kind"].(string))
		ann := m["metadata"].(map[string]any)["annotations"].(map[string]any)
		for k, v := range want {
			if ann[k] != v {
				t.Errorf("%s %v: annotation %s = %v, want %s", m["kind"], m["metadata"].(map[string]any)["name"], k, ann[k], v)
			}
		}
		for k, v := range ann {
			if strings.Contains(k, "version") || strings.Contains(k, "time") || strings.Contains(k, "created") {
				t.Errorf("volatile annotation %s=%v", k, v)
			}
		}
	}
	if got := strings.Join(kinds, ","); got != "ConfigMap,CustomResourceDefinition,Service,Deployment,Deployment" {
		t.Errorf("order of kinds = %s", got)
	}
	s := string(a)
	for _, w := range []string{"user/keep: \"yes\"", "name: r1-web", "namespace: ns1", `value: "12345678901234567890"`, "value: '{}'", "# Source: app/templates/web.yaml"} {
		if !strings.Contains(s, w) {
			t.Errorf("output lacks %q:\n%s", w, s)
		}
	}
}

func TestRenderValuesAndCapabilities(t *testing.T) {
	dir := t.TempDir()
	vf := filepath.Join(dir, "v.yaml")
	if err := os.WriteFile(vf, []byte("replicas: 3\nstrata: {image: {worker: from-file}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := Render(context.Background(), RenderOptions{
		ChartDir:    "testdata/app",
		Values:      map[string]any{"replicas": 2, "strata": map[string]any{"image": map[string]any{"web": "from-map", "worker": "from-map"}}},
		ValueFiles:  []string{vf},
		Set:         []string{"strata.image.web=from-set"},
		KubeVersion: "v1.31.4",
		APIVersions: []string{"monitoring.coreos.com/v1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, w := range []string{"replicas: 3", "image: from-set", "image: from-file", "kind: ServiceMonitor", "kube: v1.31.4"} {
		if !strings.Contains(s, w) {
			t.Errorf("output lacks %q:\n%s", w, s)
		}
	}
}

func TestRenderWithoutMetadata(t *testing.T) {
	dir := copyDir(t, "testdata/app")
	os.Remove(filepath.Join(dir, MetadataFile))
	out, err := Render(context.Background(), RenderOptions{ChartDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "strata.dev/") {
		t.Errorf("annotations without metadata:\n%s", out)
	}
	if _, err := ReadMetadata(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadMetadata without file: %v, want ErrNotExist", err)
	}
}

func TestRenderErrors(t *testing.T) {
	ctx := context.Background()
	write := func(dir, name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name  string
		edit  func(dir string)
		wants []string
	}{
		{"template error", func(d string) {
			write(d, "templates/bad.yaml", "a: 1\nb: {{ .Values.nope.deeper }}\n")
		}, []string{"app/templates/bad.yaml:2", "nope"}},
		{"required value", func(d string) {
			write(d, "templates/bad.yaml", "a: {{ required \"value foo.bar is required\" .Values.foo }}\n")
		}, []string{"bad.yaml", "foo.bar is required"}},
		{"no Chart.yaml", func(d string) { os.Remove(filepath.Join(d, "Chart.yaml")) }, []string{"Chart.yaml is missing"}},
		{"invalid Chart.yaml", func(d string) {
			write(d, "Chart.yaml", "apiVersion: v2\nname: app\nversion: [0.1\n")
		}, []string{"Chart.yaml", "line 3"}},
		{"empty output", func(d string) {
			for _, f := range []string{"templates/web.yaml", "templates/worker.yaml", "templates/hook.yaml", "crds/widget.yaml"} {
				os.Remove(filepath.Join(d, f))
			}
		}, []string{"rendered no Kubernetes objects"}},
		{"not an object", func(d string) { write(d, "templates/list.yaml", "- a\n- b\n") }, []string{"templates/list.yaml"}},
		{"bad metadata", func(d string) { write(d, MetadataFile, "{\"commit\": 5}") }, []string{MetadataFile}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDir(t, "testdata/app")
			c.edit(dir)
			out, err := Render(ctx, RenderOptions{ChartDir: dir})
			if err == nil {
				t.Fatalf("no error; output:\n%s", out)
			}
			if out != nil {
				t.Errorf("output alongside error")
			}
			for _, w := range c.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestRenderLimits(t *testing.T) {
	ctx := context.Background()
	dir := copyDir(t, "testdata/app")
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), bytes.Repeat([]byte("x"), 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Render(ctx, RenderOptions{ChartDir: dir, MaxChartBytes: 4000})
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "4000") {
		t.Errorf("chart limit: %v", err)
	}
	_, err = Render(ctx, RenderOptions{ChartDir: "testdata/app", MaxOutputBytes: 100})
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "100 bytes") {
		t.Errorf("output limit: %v", err)
	}
}

// A 100 MB chart is refused by the default limit before anything is read.
func TestRender100MBChartRefused(t *testing.T) {
	dir := copyDir(t, "testdata/app")
	f, err := os.Create(filepath.Join(dir, "huge.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(100 << 20); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	_, err = Render(context.Background(), RenderOptions{ChartDir: dir})
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "huge.bin") || !strings.Contains(err.Error(), "20971520") {
		t.Fatalf("100 MB chart: %v", err)
	}
}

// A symbolic link inside the chart may point within it, never outside (the renderer must not
// leak the files of the machine it runs on).
func TestRenderRefusesSymlinksOutOfTheChart(t *testing.T) {
	dir := copyDir(t, "testdata/app")
	if err := os.Symlink("values.yaml", filepath.Join(dir, "inside.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := Render(context.Background(), RenderOptions{ChartDir: dir}); err != nil {
		t.Fatalf("link inside the chart: %v", err)
	}
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "leak.txt")); err != nil {
		t.Fatal(err)
	}
	_, err := Render(context.Background(), RenderOptions{ChartDir: dir})
	if err == nil || !strings.Contains(err.Error(), "outside the chart") {
		t.Fatalf("link outside the chart: %v", err)
	}
}

// decodeObject gives the values a round trip through JSON gave (sigs.k8s.io/yaml.YAMLToJSON,
// then a JSON decode with UseNumber and int64/uint64/float64 numbers): the encoded output is the
// same byte for byte, so faster rendering never makes an application OutOfSync.
func TestDecodeObjectMatchesJSONRoundTrip(t *testing.T) {
	for i, doc := range splitStream(decodeEdgeCases) {
		if !hasContent(doc) {
			continue
		}
		obj, err := decodeObject("doc", doc)
		if err != nil {
			t.Fatalf("doc %d: %v", i, err)
		}
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.UseNumber()
		var ref any
		if err := dec.Decode(&ref); err != nil {
			t.Fatal(err)
		}
		got, err := yamlv2.Marshal(obj.m)
		if err != nil {
			t.Fatal(err)
		}
		want, err := yamlv2.Marshal(viaNumbers(ref))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("doc %d encodes differently:\n%s\n---- JSON round trip:\n%s", i, got, want)
		}
	}
	for _, bad := range []string{"kind: X\napiVersion: v1\nf: .nan\n", "kind: X\napiVersion: v1\nf: .inf\n"} {
		if _, err := decodeObject("doc", bad); err == nil || !strings.Contains(err.Error(), "rendered YAML is invalid") {
			t.Errorf("%q: err = %v, want the JSON refusal", bad, err)
		}
	}
}

// viaNumbers turns json.Number into int64, else uint64, else float64.
func viaNumbers(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = viaNumbers(e)
		}
	case []any:
		for i, e := range t {
			t[i] = viaNumbers(e)
		}
	case json.Number:
		return numberValue(string(t))
	}
	return v
}

// decodeEdgeCases are YAML values where a JSON round trip changes things: numbers, keys that
// are not strings, bytes that are not UTF-8, timestamps, binary, merge keys, lists.
const decodeEdgeCases = `apiVersion: v1
kind: ConfigMap
metadata:
  name: tricky
  labels: {a: "1", b: 2, c: yes}
data:
  f1: 1.0
  f2: 1.5
  f3: 1e21
  f4: 1e20
  f5: 1e19
  f6: -0.0
  f7: 0.000001
  f8: 0.0000001
  f9: 123456789012345678901234567890
  i1: 9223372036854775807
  i2: 9223372036854775808
  i3: 18446744073709551616
  i4: -9223372036854775808
  i5: 0x1F
  i6: 0o17
  i7: 017
  s1: "\xff\xfeabc"
  s2: 2001-12-14t21:59:43.10-05:00
  s3: 2002-12-14
  s4: !!binary aGVsbG8=
  s5: ~
  s6: "multi
    line"
  s7: |
    block
    text
  s8: 'it''s'
  s9: "tab\there"
  s10: "üñí €"
  b1: true
  b2: off
  n: null
  1: intkey
  2.5: floatkey
  true: boolkey
  list: [1, 2.0, "3", {x: 1}, [a, b], null]
  base: &b {k1: v1, k2: v2}
  merged:
    <<: *b
    k3: v3
  empty: {}
  emptylist: []
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: inlist}
---
# only a comment
---
apiVersion: v1
kind: Secret
metadata: {name: s, annotations: {x: y}}
stringData: {z: "10"}
`

// Templates get no network: lookup finds nothing even with a reachable cluster in KUBECONFIG
// (the test kube-apiserver, whose "default" namespace exists), and getHostByName resolves
// nothing, not even localhost.
func TestRenderTemplatesHaveNoClusterOrNetwork(t *testing.T) {
	t.Setenv("KUBECONFIG", testenv.Kubeconfig(t))
	dir := copyDir(t, "testdata/app")
	writeFile(t, dir, "templates/probe.yaml", `apiVersion: v1
kind: ConfigMap
metadata:
  name: probe
data:
  namespace: {{ lookup "v1" "Namespace" "" "default" | toJson | quote }}
  namespaces: {{ lookup "v1" "Namespace" "" "" | toJson | quote }}
  host: {{ getHostByName "localhost" | quote }}
`)
	out, err := Render(context.Background(), RenderOptions{ChartDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var probe map[string]any
	for _, m := range docs(t, out) {
		if m["metadata"].(map[string]any)["name"] == "probe" {
			probe = m["data"].(map[string]any)
		}
	}
	want := map[string]any{"namespace": "{}", "namespaces": "{}", "host": ""}
	for k, v := range want {
		if probe[k] != v {
			t.Errorf("%s = %#v, want %#v (templates must not reach a cluster or the network)", k, probe[k], v)
		}
	}
}

// A block scalar that ends its document keeps its final line break, as `helm template` prints
// it: ConfigMap and Secret data are exactly what the chart says (issue 17). The same holds for
// hooks and for documents of a multi-document CRD file.
func TestRenderKeepsBlockScalarAtEndOfDocument(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "Chart.yaml", "apiVersion: v2\nname: blocks\nversion: 0.1.0\n")
	writeFile(t, dir, "templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  one: |\n    line\n")
	writeFile(t, dir, "templates/script.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: script\ndata:\n  run.sh: |\n    #!/bin/sh\n    echo hi\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: hosts\nstringData:\n  known_hosts: |\n    github.com ssh-ed25519 AAAA\n")
	writeFile(t, dir, "templates/hook.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hook\n  annotations:\n    helm.sh/hook: pre-install\ndata:\n  h: |\n    hooked\n")
	writeFile(t, dir, "crds/crds.yaml", "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: a.example.com\n  annotations:\n    note: |\n      first\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: b.example.com\n  annotations:\n    note: |\n      last")
	out, err := Render(context.Background(), RenderOptions{ChartDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"cm/one":             "line\n",
		"script/run.sh":      "#!/bin/sh\necho hi\n",
		"hosts/known_hosts":  "github.com ssh-ed25519 AAAA\n",
		"hook/h":             "hooked\n",
		"a.example.com/note": "first\n",
		"b.example.com/note": "last\n",
	}
	got := map[string]string{}
	for _, m := range docs(t, out) {
		md := m["metadata"].(map[string]any)
		name := md["name"].(string)
		for _, field := range []string{"data", "stringData"} {
			if d, ok := m[field].(map[string]any); ok {
				for k, v := range d {
					got[name+"/"+k] = v.(string)
				}
			}
		}
		if a, ok := md["annotations"].(map[string]any); ok && a["note"] != nil {
			got[name+"/note"] = a["note"].(string)
		}
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q, want %q", k, got[k], w)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

// A List's items carry the annotations (Argo CD and kubectl apply the items); the list itself
// gets none.
func TestRenderAnnotatesListItems(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "Chart.yaml", "apiVersion: v2\nname: lists\nversion: 0.1.0\n")
	writeFile(t, dir, "templates/list.yaml", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: b, annotations: {keep: me}}\n")
	out, err := Render(context.Background(), RenderOptions{ChartDir: dir, BundleRef: "r@sha256:1"})
	if err != nil {
		t.Fatal(err)
	}
	l := docs(t, out)[0]
	if _, ok := l["metadata"]; ok {
		t.Errorf("the list got metadata: %v", l["metadata"])
	}
	for _, it := range l["items"].([]any) {
		md := it.(map[string]any)["metadata"].(map[string]any)
		if md["annotations"].(map[string]any)[AnnotationBundle] != "r@sha256:1" {
			t.Errorf("item %v not annotated", md["name"])
		}
	}
}
