package cmp_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"strata.dev/strata/bundle"
	"strata.dev/strata/cmp"
	"strata.dev/strata/internal/testing/fuzztest"
)

// FuzzGenerate: `strata cmp generate` on a bundle with any template, values.yaml,
// strata-bundle.json (empty: a valid one) and ARGOCD_APP_PARAMETERS, as Argo CD runs it (the request's deadline is
// 5 s here). Nothing panics or runs past the deadline; on an error nothing is written and the
// error names the command; what renders is the same twice, every object carrying the
// bundle's commit; no file next to the bundle is read into the output or an error, and nothing
// is written anywhere.
func FuzzGenerate(f *testing.F) {
	for _, s := range []struct{ tmpl, values, meta, params string }{
		{deployment, "replicas: 1\nstrata:\n  image:\n    web: reg.example/shop:abc-1\n", "", `[{"name":"values","string":"replicas: 3\n"},{"name":"set","array":["replicas=4"]}]`},
		{"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}}\ndata: {v: {{ .Values.v | quote }}}\n", "v: 1\n", "", `[{"name":"release-name","string":"green"},{"name":"set","map":{"v":"x,y"}}]`},
		{"{{ .Files.Get \"../secret.txt\" }}", "", `{"schemaVersion":1,"commit":{"hash":"../../x"},"images":{"web":{"ref":"x"}}}`, ``},
		{"---\n---\n", "", `{"schemaVersion":99}`, `[{"name":"values","string":"[1, 2]"}]`},
		{"apiVersion: v1\nkind: List\nitems: []\n", "a: &a [*a, *a, *a]\n", `{`, `[{"name":"nope"}]`},
		{"kind: Secret\napiVersion: v1\nmetadata:\n  name: s\n  annotations: {strata.dev/commit: forged}\n", "", "", ""},
	} {
		f.Add([]byte(s.tmpl), []byte(s.values), []byte(s.meta), s.params)
	}
	bounds := fuzztest.Bounds{Time: 30 * time.Second, Heap: 512 << 20}
	f.Fuzz(func(t *testing.T, tmpl, values, meta []byte, params string) {
		dir := writeBundle(t, map[string]string{"t.yaml": string(tmpl)})
		if err := os.WriteFile(filepath.Join(dir, "values.yaml"), values, 0o644); err != nil {
			t.Fatal(err)
		}
		if len(meta) > 0 {
			if err := os.WriteFile(filepath.Join(dir, bundle.MetadataFile), meta, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		outside := filepath.Dir(dir)
		if err := os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("HOST-SECRET-5c2e"), 0o644); err != nil {
			t.Fatal(err)
		}
		before := fuzztest.Snapshot(t, outside)
		defer before.Same(t, outside)

		generate := func() ([]byte, error) {
			t.Helper()
			var out bytes.Buffer
			var err error
			fuzztest.Bounded(t, bounds, "generate", func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				err = cmp.Generate(ctx, cmp.Options{Dir: dir, Environ: appEnv(params)}, &out)
			})
			if bytes.Contains(out.Bytes(), []byte("HOST-SECRET")) || (err != nil && strings.Contains(err.Error(), "HOST-SECRET")) {
				t.Fatalf("a file outside the bundle was read: %v\n%s", err, out.Bytes())
			}
			if err != nil && out.Len() > 0 {
				t.Fatalf("generate failed (%v) but wrote %d bytes", err, out.Len())
			}
			if err != nil && !strings.HasPrefix(err.Error(), "generate") {
				t.Errorf("error does not name the command: %v", err)
			}
			return out.Bytes(), err
		}
		out, err := generate()
		if err != nil {
			return
		}
		if len(bytes.TrimSpace(out)) == 0 {
			t.Fatal("generate succeeded with no output")
		}
		again, err := generate()
		if err != nil && strings.Contains(err.Error(), "deadline") {
			return // close to the deadline: the second run may cross it
		}
		if err != nil || !bytes.Equal(out, again) {
			t.Fatalf("a second generate differs (err %v):\n%s\n---- vs ----\n%s", err, out, again)
		}
		m, err := bundle.ReadMetadata(dir)
		if err != nil {
			t.Fatalf("generate succeeded on a bundle whose metadata does not read: %v", err)
		}
		for _, doc := range strings.Split(string(out), "\n---\n") {
			var obj struct {
				Metadata struct {
					Annotations map[string]string `json:"annotations"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal([]byte(strings.TrimPrefix(doc, "---\n")), &obj); err != nil {
				t.Fatalf("generated document does not parse: %v\n%s", err, doc)
			}
			if got := obj.Metadata.Annotations[bundle.AnnotationCommit]; m.Commit.Hash != "" && got != m.Commit.Hash {
				t.Errorf("object annotated with commit %q, bundle's is %q:\n%s", got, m.Commit.Hash, doc)
			}
		}
	})
}

// A map-form set value keeps its commas (found by FuzzGenerate: {"v":"x,y"} failed with Helm's
// `key "y" has no value`), as Argo CD keeps them in a Helm source's parameters; the array form
// stays Helm's --set syntax, and a {a,b} value stays a Helm list.
func TestGenerateSetMapValueKeepsCommas(t *testing.T) {
	dir := writeBundle(t, map[string]string{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  v: {{ .Values.v | quote }}\n  w: {{ .Values.w | toJson | quote }}\n  a: {{ .Values.a | quote }}\n"})
	var out bytes.Buffer
	params := `[{"name":"set","map":{"v":"x,y","w":"{a,b}"}}]`
	if err := cmp.Generate(context.Background(), cmp.Options{Dir: dir, Environ: appEnv(params)}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`v: x,y`, `w: '["a","b"]'`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	params = `[{"name":"set","array":["a=1,v=2"]}]`
	if err := cmp.Generate(context.Background(), cmp.Options{Dir: dir, Environ: appEnv(params)}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `v: "2"`) || !strings.Contains(out.String(), `a: "1"`) {
		t.Errorf("array form is not Helm's --set syntax:\n%s", out.String())
	}
}
