package cmp_test

import (
	"context"
	"strings"
	"testing"

	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	k8sversion "k8s.io/apimachinery/pkg/util/version"
	"sigs.k8s.io/yaml"
)

// argoEnv builds the plugin's environment the way argocd-repo-server does
// (reposerver/repository: newEnv, getPluginEnvs, getPluginParamEnvs), with Argo CD's own types:
// the Application's build environment, KUBE_VERSION / KUBE_API_VERSIONS, the plugin's env
// entries as ARGOCD_ENV_* (after Envsubst) and the parameters (ApplicationSourcePluginParameters
// Environ: ARGOCD_APP_PARAMETERS plus PARAM_*).
func argoEnv(t *testing.T, kubeVersion string, plugin *v1alpha1.ApplicationSourcePlugin) []string {
	t.Helper()
	build := v1alpha1.Env{
		{Name: "ARGOCD_APP_NAME", Value: "shop-prod"},
		{Name: "ARGOCD_APP_NAMESPACE", Value: "prod"},
		{Name: "ARGOCD_APP_PROJECT_NAME", Value: "default"},
		{Name: "ARGOCD_APP_REVISION", Value: "1.2.0"},
		{Name: "ARGOCD_APP_REVISION_SHORT", Value: "1.2.0"},
		{Name: "ARGOCD_APP_REVISION_SHORT_8", Value: "1.2.0"},
		{Name: "ARGOCD_APP_SOURCE_REPO_URL", Value: "reg.example/bundles"},
		{Name: "ARGOCD_APP_SOURCE_PATH", Value: ""},
		{Name: "ARGOCD_APP_SOURCE_TARGET_REVISION", Value: "1.2.0"},
	}
	kv, err := k8sversion.ParseGeneric(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	env := append(build.Environ(), "KUBE_VERSION="+kv.String(), "KUBE_API_VERSIONS=v1,apps/v1")
	parsed := v1alpha1.Env{}
	for _, kv := range env {
		e, err := v1alpha1.NewEnvEntry(kv)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, e)
	}
	for _, e := range plugin.Env {
		env = append(env, "ARGOCD_ENV_"+e.Name+"="+parsed.Envsubst(e.Value))
	}
	params, err := plugin.Parameters.Environ()
	if err != nil {
		t.Fatal(err)
	}
	return append(env, params...)
}

func str(s string) *string { return &s }

// probe shows what reached the chart: values, release, namespace and capabilities.
const probe = `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-probe
  namespace: {{ .Release.Namespace }}
data:
  replicas: {{ .Values.replicas | quote }}
  tier: {{ .Values.tier | default "none" | quote }}
  kube: {{ .Capabilities.KubeVersion.Version | quote }}
  {{- if semverCompare ">=1.30-0" .Capabilities.KubeVersion.Version }}
  gate: new-api
  {{- else }}
  gate: old-api
  {{- end }}
`

// probeData renders the probe bundle through Argo CD's CMP server and returns the probe's name
// and data.
func probeData(t *testing.T, env []string) (string, map[string]string) {
	t.Helper()
	srv := startServer(t)
	out, err := srv.Generate(context.Background(), "", writeBundle(t, map[string]string{"probe.yaml": probe}), env)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 {
		t.Fatalf("%d manifests, want the probe: %v", len(out), out)
	}
	var cm struct {
		Metadata struct{ Name, Namespace string }
		Data     map[string]string
	}
	if err := yaml.Unmarshal([]byte(out[0]), &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Metadata.Namespace != "prod" {
		t.Errorf("namespace %q, want ARGOCD_APP_NAMESPACE prod", cm.Metadata.Namespace)
	}
	return cm.Metadata.Name, cm.Data
}

func checkProbe(t *testing.T, name string, data map[string]string, wantName string, want map[string]string) {
	t.Helper()
	if name != wantName {
		t.Errorf("name %q, want %q", name, wantName)
	}
	for k, v := range want {
		if data[k] != v {
			t.Errorf("%s = %q, want %q (all: %v)", k, data[k], v, data)
		}
	}
}

// The values parameter (a YAML string) is merged over values.yaml, set wins over it, and
// KUBE_VERSION is the chart's .Capabilities.KubeVersion.
func TestGenerateValuesParameterAndKubeVersion(t *testing.T) {
	name, data := probeData(t, argoEnv(t, "v1.29.3", &v1alpha1.ApplicationSourcePlugin{
		Name: "strata",
		Parameters: v1alpha1.ApplicationSourcePluginParameters{
			{Name: "values", String_: str("replicas: 5\ntier: gold\n")},
			{Name: "set", OptionalMap: &v1alpha1.OptionalMap{Map: map[string]string{"tier": "platinum"}}},
		},
	}))
	checkProbe(t, name, data, "shop-prod-probe", map[string]string{"replicas": "5", "tier": "platinum", "kube": "v1.29.3", "gate": "old-api"})

	_, data = probeData(t, argoEnv(t, "1.31.2", &v1alpha1.ApplicationSourcePlugin{Name: "strata"}))
	checkProbe(t, "", data, "", map[string]string{"replicas": "1", "tier": "none", "kube": "v1.31.2", "gate": "new-api"})
}

// set in its array form: KEY=VALUE items, like helm --set.
func TestGenerateSetArrayParameter(t *testing.T) {
	_, data := probeData(t, argoEnv(t, "1.31.0", &v1alpha1.ApplicationSourcePlugin{
		Name: "strata",
		Parameters: v1alpha1.ApplicationSourcePluginParameters{
			{Name: "set", OptionalArray: &v1alpha1.OptionalArray{Array: []string{"replicas=6", "tier=silver"}}},
			{Name: "release-name", String_: str("shop")},
		},
	}))
	checkProbe(t, "", data, "", map[string]string{"replicas": "6", "tier": "silver"})

	srv := startServer(t)
	dir := writeBundle(t, map[string]string{"probe.yaml": probe})
	for _, p := range []v1alpha1.ApplicationSourcePluginParameter{
		{Name: "set", OptionalArray: &v1alpha1.OptionalArray{Array: []string{"replicas"}}},
		{Name: "values", OptionalMap: &v1alpha1.OptionalMap{Map: map[string]string{"replicas": "2"}}},
	} {
		env := argoEnv(t, "1.31.0", &v1alpha1.ApplicationSourcePlugin{Name: "strata", Parameters: v1alpha1.ApplicationSourcePluginParameters{p}})
		out, err := srv.Generate(context.Background(), "", dir, env)
		if err == nil || !strings.Contains(err.Error(), `parameter "`+p.Name+`"`) || len(out) != 0 {
			t.Errorf("parameter %s in a wrong form: err = %v, %d manifests; want an error naming it", p.Name, err, len(out))
		}
	}
}

// The plugin's env entries (spec.source.plugin.env) reach the render as ARGOCD_ENV_*, after
// Argo CD's Envsubst of the build environment.
func TestGeneratePluginEnvEntries(t *testing.T) {
	name, data := probeData(t, argoEnv(t, "1.31.0", &v1alpha1.ApplicationSourcePlugin{
		Name: "strata",
		Env: v1alpha1.Env{
			{Name: "VALUES", Value: "replicas: 4\n"},
			{Name: "SET", Value: "tier=bronze"},
			{Name: "RELEASE_NAME", Value: "${ARGOCD_APP_NAME}-blue"},
		},
	}))
	checkProbe(t, name, data, "shop-prod-blue-probe", map[string]string{"replicas": "4", "tier": "bronze"})

	// A parameter wins over the env entry of the same meaning.
	name, data = probeData(t, argoEnv(t, "1.31.0", &v1alpha1.ApplicationSourcePlugin{
		Name:       "strata",
		Env:        v1alpha1.Env{{Name: "VALUES", Value: "replicas: 4\n"}, {Name: "RELEASE_NAME", Value: "from-env"}},
		Parameters: v1alpha1.ApplicationSourcePluginParameters{{Name: "values", String_: str("replicas: 8\n")}},
	}))
	checkProbe(t, name, data, "from-env-probe", map[string]string{"replicas": "8"})
}

// Without ARGOCD_APP_PARAMETERS (older or hand-made callers), the PARAM_* variables are read.
func TestGeneratePARAMVariables(t *testing.T) {
	env := argoEnv(t, "1.31.0", &v1alpha1.ApplicationSourcePlugin{
		Name: "strata",
		Parameters: v1alpha1.ApplicationSourcePluginParameters{
			{Name: "values", String_: str("replicas: 3\n")},
			{Name: "set", OptionalMap: &v1alpha1.OptionalMap{Map: map[string]string{"tier": "iron"}}},
			{Name: "release-name", String_: str("legacy")},
		},
	})
	var params, without []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "ARGOCD_APP_PARAMETERS=") {
			continue
		}
		if strings.HasPrefix(kv, "PARAM_") {
			params = append(params, kv)
		}
		without = append(without, kv)
	}
	// What Argo CD's Environ writes for them.
	want := []string{"PARAM_VALUES=replicas: 3\n", "PARAM_SET_TIER=iron", "PARAM_RELEASE_NAME=legacy"}
	if strings.Join(params, "|") != strings.Join(want, "|") {
		t.Fatalf("PARAM_* = %q, want %q", params, want)
	}
	name, data := probeData(t, without)
	checkProbe(t, name, data, "legacy-probe", map[string]string{"replicas": "3", "tier": "iron"})
}
