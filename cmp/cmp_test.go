package cmp_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"strata.dev/strata/bundle"
	"strata.dev/strata/internal/testing/cmpserver"
	"strata.dev/strata/manifests"
)

// The plugin's commands run as a real `strata` binary, found on PATH by Argo CD's CMP server.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		os.Exit(m.Run()) // a fuzz run (scripts/fuzz.sh): its targets call the package, not the binary
	}
	bin, err := os.MkdirTemp("", "strata-cmp-bin-")
	if err != nil {
		panic(err)
	}
	// Static, so the same binary also goes into the sidecar image test.
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "strata"), "../cmd/strata")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build strata:", err)
		os.Exit(1)
	}
	os.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	strataBin = filepath.Join(bin, "strata")
	code := m.Run()
	os.RemoveAll(bin)
	os.Exit(code)
}

// strataBin is the static strata binary TestMain built.
var strataBin string

const commit = "0123456789abcdef0123456789abcdef01234567"

// writeBundle makes a bundle directory as Argo CD extracts it: a chart plus strata-bundle.json.
func writeBundle(t testing.TB, templates map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"Chart.yaml":  "apiVersion: v2\nname: shop\nversion: 1.2.0\n",
		"values.yaml": "replicas: 1\nstrata:\n  image:\n    web: reg.example/shop:abc-1@sha256:" + strings.Repeat("a", 64) + "\n",
	}
	for name, body := range templates {
		files[filepath.Join("templates", name)] = body
	}
	meta := bundle.Metadata{
		SchemaVersion: bundle.MetadataSchemaVersion,
		Project:       "shop", Chart: "shop", Version: "1.2.0",
		Bundle: "reg.example/bundles/shop:1.2.0",
		Commit: bundle.Commit{Hash: commit, Date: "2026-11-20T10:00:00Z"},
		Branch: "main", GitURL: "https://git.example.com/acme/shop.git",
		CI: bundle.CI{PipelineURL: "https://ci.example.com/acme/shop/pipelines/7"},
		Images: map[string]bundle.Image{"web": {
			Repo: "reg.example/shop", Tag: "abc-1", Digest: "sha256:" + strings.Repeat("a", 64),
			Ref: "reg.example/shop:abc-1@sha256:" + strings.Repeat("a", 64),
		}},
		Created: time.Date(2026, 11, 20, 10, 1, 0, 0, time.UTC),
	}
	b, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	files[bundle.MetadataFile] = string(b)
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
  namespace: {{ .Release.Namespace }}
spec:
  replicas: {{ .Values.replicas }}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: {{ .Values.strata.image.web }}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ .Release.Name }}-web
spec: {endpoints: [{port: http}], selector: {matchLabels: {app: web}}}
{{- end }}
`

func startServer(t *testing.T) *cmpserver.Server {
	t.Helper()
	srv, err := cmpserver.Start(manifests.PluginConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

func appEnv(params string) []string {
	env := []string{
		"ARGOCD_APP_NAME=shop-prod",
		"ARGOCD_APP_NAMESPACE=prod",
		"ARGOCD_APP_PROJECT_NAME=default",
		"ARGOCD_APP_REVISION=1.2.0",
		"ARGOCD_APP_SOURCE_REPO_URL=reg.example/bundles",
		"ARGOCD_APP_SOURCE_TARGET_REVISION=1.2.0",
		"KUBE_VERSION=1.31.0",
		"KUBE_API_VERSIONS=v1,apps/v1,monitoring.coreos.com/v1",
	}
	if params != "" {
		env = append(env, "ARGOCD_APP_PARAMETERS="+params)
	}
	return env
}

type object struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		Replicas int `json:"replicas"`
	} `json:"spec"`
}

func decode(t *testing.T, manifests []string) []object {
	t.Helper()
	var out []object
	for _, m := range manifests {
		var o object
		if err := yaml.Unmarshal([]byte(m), &o); err != nil {
			t.Fatalf("manifest %q: %v", m, err)
		}
		out = append(out, o)
	}
	return out
}

func TestGenerateThroughArgoCDServer(t *testing.T) {
	srv := startServer(t)
	dir := writeBundle(t, map[string]string{"web.yaml": deployment})
	ctx := context.Background()
	params := `[{"name":"set","map":{"replicas":"3"}},{"name":"release-name","string":"shop"}]`

	first, err := srv.Generate(ctx, "", dir, appEnv(params))
	if err != nil {
		t.Fatal(err)
	}
	objs := decode(t, first)
	if len(objs) != 2 {
		t.Fatalf("%d objects, want Deployment + ServiceMonitor (KUBE_API_VERSIONS): %v", len(objs), first)
	}
	want := map[string]string{
		"strata.dev/commit":              commit,
		"strata.dev/git":                 "https://git.example.com/acme/shop.git",
		"strata.dev/ci-url":              "https://ci.example.com/acme/shop/pipelines/7",
		"link.argocd.argoproj.io/commit": "https://git.example.com/acme/shop/commit/" + commit,
		"link.argocd.argoproj.io/ci":     "https://ci.example.com/acme/shop/pipelines/7",
	}
	for _, o := range objs {
		for k, v := range want {
			if o.Metadata.Annotations[k] != v {
				t.Errorf("%s %s: annotation %s = %q, want %q", o.Kind, o.Metadata.Name, k, o.Metadata.Annotations[k], v)
			}
		}
		if !strings.HasPrefix(o.Metadata.Annotations["strata.dev/bundle"], "reg.example/bundles/shop") {
			t.Errorf("strata.dev/bundle = %q", o.Metadata.Annotations["strata.dev/bundle"])
		}
		for k := range o.Metadata.Annotations {
			if strings.Contains(k, "version") || strings.Contains(k, "time") {
				t.Errorf("volatile annotation %s", k)
			}
		}
		if o.Metadata.Name != "shop-web" {
			t.Errorf("name %q: release-name parameter not applied", o.Metadata.Name)
		}
	}
	if objs[0].Kind == "Deployment" && (objs[0].Spec.Replicas != 3 || objs[0].Metadata.Namespace != "prod") {
		t.Errorf("deployment replicas %d namespace %q, want 3 and prod", objs[0].Spec.Replicas, objs[0].Metadata.Namespace)
	}

	second, err := srv.Generate(ctx, "", dir, appEnv(params))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(first, "\n---\n") != strings.Join(second, "\n---\n") {
		t.Fatal("two renders of the same bundle and parameters differ")
	}
}

func TestGenerateOCISourceRecordsDigest(t *testing.T) {
	srv := startServer(t)
	dir := writeBundle(t, map[string]string{"web.yaml": deployment})
	digest := "sha256:" + strings.Repeat("b", 64)
	env := append(appEnv(""), "ARGOCD_APP_REVISION="+digest, "ARGOCD_APP_SOURCE_REPO_URL=oci://reg.example/bundles/shop")
	out, err := srv.Generate(context.Background(), "", dir, env)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range decode(t, out) {
		if got := o.Metadata.Annotations["strata.dev/bundle"]; got != "reg.example/bundles/shop@"+digest {
			t.Errorf("strata.dev/bundle = %q", got)
		}
	}
}

func TestGenerateFailuresNameTheCulpritAndPrintNothing(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	broken := writeBundle(t, map[string]string{"web.yaml": deployment, "broken.yaml": "kind: ConfigMap\nmetadata:\n  name: {{ .Values.missing.key }}\n"})
	out, err := srv.Generate(ctx, "", broken, appEnv(""))
	if err == nil || !strings.Contains(err.Error(), "broken.yaml") {
		t.Fatalf("err = %v, want one naming templates/broken.yaml", err)
	}
	if len(out) != 0 {
		t.Fatalf("got manifests with an error: %v", out)
	}

	empty := writeBundle(t, map[string]string{"nothing.yaml": "{{- if false }}x: y{{ end }}\n"})
	if _, err := srv.Generate(ctx, "", empty, appEnv("")); err == nil || !strings.Contains(err.Error(), "rendered no") {
		t.Fatalf("empty render: err = %v, want a refusal", err)
	}

	good := writeBundle(t, map[string]string{"web.yaml": deployment})
	if _, err := srv.Generate(ctx, "", good, appEnv(`[{"name":"values","string":"replicas: [unclosed"}]`)); err == nil || !strings.Contains(err.Error(), `parameter "values"`) {
		t.Fatalf("bad values parameter: err = %v", err)
	}
	if _, err := srv.Generate(ctx, "", good, appEnv(`[{"name":"valuez","string":"a: b"}]`)); err == nil || !strings.Contains(err.Error(), `unknown parameter "valuez"`) {
		t.Fatalf("unknown parameter: err = %v", err)
	}
}

func TestDiscoverMatchesOnlyBundles(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	ok, err := srv.Match(ctx, writeBundle(t, map[string]string{"web.yaml": deployment}), appEnv(""))
	if err != nil || !ok {
		t.Fatalf("bundle: match = %v, %v", ok, err)
	}
	plain := t.TempDir()
	os.WriteFile(filepath.Join(plain, "Chart.yaml"), []byte("apiVersion: v2\nname: plain\nversion: 0.1.0\n"), 0o644)
	if ok, err := srv.Match(ctx, plain, appEnv("")); err != nil || ok {
		t.Fatalf("plain chart: match = %v, %v", ok, err)
	}
	corrupt := writeBundle(t, nil)
	os.WriteFile(filepath.Join(corrupt, bundle.MetadataFile), []byte("{not json"), 0o644)
	if ok, _ := srv.Match(ctx, corrupt, appEnv("")); ok {
		t.Fatal("corrupt metadata matched")
	}
}

func TestParametersAnnounceImages(t *testing.T) {
	srv := startServer(t)
	ann, err := srv.Parameters(context.Background(), writeBundle(t, map[string]string{"web.yaml": deployment}), appEnv(""))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]int{}
	for i, a := range ann {
		byName[a.Name] = i
	}
	for _, n := range []string{"images", "commit", "values", "set", "release-name"} {
		if _, ok := byName[n]; !ok {
			t.Errorf("parameter %q not announced (got %v)", n, ann)
		}
	}
	if i, ok := byName["images"]; ok && ann[i].Map["web"] != "reg.example/shop:abc-1@sha256:"+strings.Repeat("a", 64) {
		t.Errorf("images = %v", ann[i].Map)
	}
	if i, ok := byName["set"]; ok && ann[i].CollectionType != "map" {
		t.Errorf("set collectionType = %q", ann[i].CollectionType)
	}
}
