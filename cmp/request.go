package cmp

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Parameter names of the plugin (manifests/argocd/plugin.yaml, static parameters).
const (
	ParamValues      = "values"       // a YAML document merged over the bundle's values
	ParamSet         = "set"          // a map KEY -> VALUE, like helm --set KEY=VALUE
	ParamReleaseName = "release-name" // overrides the release name (default: the app name)
)

// Request is what Argo CD asks of the plugin, read from the environment it runs the plugin with.
type Request struct {
	AppName        string
	AppNamespace   string // the destination namespace
	Revision       string // chart version (Helm-OCI source) or sha256:... (oci:// source)
	RepoURL        string
	TargetRevision string
	KubeVersion    string
	APIVersions    []string

	ReleaseName string
	Values      map[string]any
	Set         []string // KEY=VALUE, sorted by key
}

// ParseEnviron reads a Request from KEY=VALUE pairs as Argo CD passes them. Parameters come from
// ARGOCD_APP_PARAMETERS (JSON, which Argo CD always sets; set as a map or an array of KEY=VALUE),
// else PARAM_* (PARAM_VALUES, PARAM_RELEASE_NAME, PARAM_SET_<KEY> with the key lower-cased);
// ARGOCD_ENV_VALUES, ARGOCD_ENV_SET (comma separated KEY=VALUE) and ARGOCD_ENV_RELEASE_NAME
// (plugin env entries) apply where no parameter is given.
func ParseEnviron(environ []string) (*Request, error) {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	r := &Request{
		AppName:        env["ARGOCD_APP_NAME"],
		AppNamespace:   env["ARGOCD_APP_NAMESPACE"],
		Revision:       env["ARGOCD_APP_REVISION"],
		RepoURL:        env["ARGOCD_APP_SOURCE_REPO_URL"],
		TargetRevision: env["ARGOCD_APP_SOURCE_TARGET_REVISION"],
		KubeVersion:    env["KUBE_VERSION"],
	}
	for _, v := range strings.Split(env["KUBE_API_VERSIONS"], ",") {
		if v = strings.TrimSpace(v); v != "" {
			r.APIVersions = append(r.APIVersions, v)
		}
	}

	valuesYAML, set, release, err := parameters(env)
	if err != nil {
		return nil, err
	}
	if valuesYAML == "" {
		valuesYAML = env["ARGOCD_ENV_VALUES"]
	}
	if set == nil && env["ARGOCD_ENV_SET"] != "" {
		set = map[string]string{}
		for _, kv := range strings.Split(env["ARGOCD_ENV_SET"], ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || strings.TrimSpace(k) == "" {
				return nil, fmt.Errorf("plugin env SET: %q is not KEY=VALUE", kv)
			}
			set[strings.TrimSpace(k)] = v
		}
	}
	if release == "" {
		release = env["ARGOCD_ENV_RELEASE_NAME"]
	}
	if valuesYAML != "" {
		if err := yaml.Unmarshal([]byte(valuesYAML), &r.Values); err != nil {
			return nil, fmt.Errorf("parameter %q: not a YAML map: %w", ParamValues, err)
		}
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		r.Set = append(r.Set, k+"="+set[k])
	}
	r.ReleaseName = release
	if r.ReleaseName == "" {
		r.ReleaseName = releaseNameOf(r.AppName)
	}
	return r, nil
}

// parameters reads the plugin parameters from ARGOCD_APP_PARAMETERS, else from PARAM_*.
func parameters(env map[string]string) (values string, set map[string]string, release string, err error) {
	if raw := env["ARGOCD_APP_PARAMETERS"]; raw != "" {
		var params []appParameter
		if err := json.Unmarshal([]byte(raw), &params); err != nil {
			return "", nil, "", fmt.Errorf("ARGOCD_APP_PARAMETERS: %w", err)
		}
		for _, p := range params {
			switch p.Name {
			case ParamValues, ParamReleaseName:
				if p.String == nil || p.HasMap || p.HasArray {
					return "", nil, "", fmt.Errorf("ARGOCD_APP_PARAMETERS: parameter %q must be a string", p.Name)
				}
				if p.Name == ParamValues {
					values = *p.String
				} else {
					release = *p.String
				}
			case ParamSet:
				switch {
				case p.HasMap && !p.HasArray && p.String == nil:
					set = map[string]string{}
					for k, v := range p.Map {
						set[k] = escapeCommas(v)
					}
				case p.HasArray && !p.HasMap && p.String == nil:
					// the array form: KEY=VALUE items, like helm --set
					set = map[string]string{}
					for i, kv := range p.Array {
						k, v, ok := strings.Cut(kv, "=")
						if !ok || strings.TrimSpace(k) == "" {
							return "", nil, "", fmt.Errorf("ARGOCD_APP_PARAMETERS: parameter %q item %d: %q is not KEY=VALUE", p.Name, i, kv)
						}
						set[strings.TrimSpace(k)] = v
					}
				default:
					return "", nil, "", fmt.Errorf("ARGOCD_APP_PARAMETERS: parameter %q must be a map (KEY: VALUE) or an array of KEY=VALUE", p.Name)
				}
			case "images", "commit":
				// Read-only information announced by `strata cmp parameters`: never an input.
			default:
				return "", nil, "", fmt.Errorf("ARGOCD_APP_PARAMETERS: unknown parameter %q (want %s, %s or %s)", p.Name, ParamValues, ParamSet, ParamReleaseName)
			}
		}
		return values, set, release, nil
	}
	values = env["PARAM_VALUES"]
	release = env["PARAM_RELEASE_NAME"]
	for k, v := range env {
		if key, ok := strings.CutPrefix(k, "PARAM_SET_"); ok {
			if set == nil {
				set = map[string]string{}
			}
			// PARAM_* names are upper-cased by Argo CD: the original key is only in the JSON form.
			set[strings.ToLower(key)] = v
		}
	}
	return values, set, release, nil
}

// escapeCommas escapes the commas of a map-form set value that are not escaped yet, so that
// Helm's --set parser keeps "a,b" one value, as Argo CD does with a Helm source's parameters; a
// value in braces is a Helm list ({a,b}) and is left alone, as Argo CD leaves it.
func escapeCommas(v string) string {
	if strings.HasPrefix(v, "{") && strings.HasSuffix(v, "}") {
		return v
	}
	var b strings.Builder
	prev := rune(0)
	for _, r := range v {
		if r == ',' && prev != '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
		prev = r
	}
	return b.String()
}
