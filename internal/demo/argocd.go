package demo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/cli"
	helmregistry "helm.sh/helm/v3/pkg/registry"
	"sigs.k8s.io/yaml"

	"strata.dev/strata/internal/cmpserver"
	"strata.dev/strata/manifests"
)

// renderThroughArgoCD does what argocd-repo-server does for a Helm-OCI source with the strata
// plugin: pull and extract the chart with Helm, stream the directory to the plugin's CMP server
// (Argo CD's own server code, configured by the plugin.yaml Strata ships) and collect the
// manifests. It returns the annotations every object carries and the number of objects.
func (r *runner) renderThroughArgoCD(ctx context.Context, st *Step, app, ns string) (map[string]string, int, error) {
	chartDir, err := r.helmPull(st.Bundle)
	if err != nil {
		return nil, 0, err
	}
	manifests, err := r.generate(ctx, chartDir, []string{
		"ARGOCD_APP_NAME=" + app,
		"ARGOCD_APP_NAMESPACE=quickstart",
		"ARGOCD_APP_PROJECT_NAME=default",
		"ARGOCD_APP_REVISION=" + version(st.Bundle),
		"ARGOCD_APP_REVISION_SHORT=" + version(st.Bundle),
		"ARGOCD_APP_SOURCE_REPO_URL=" + repoOf(st.Bundle),
		"ARGOCD_APP_SOURCE_PATH=",
		"ARGOCD_APP_SOURCE_TARGET_REVISION=" + version(st.Bundle),
		"KUBE_VERSION=1.37.1",
		"KUBE_API_VERSIONS=v1,apps/v1,batch/v1",
	})
	if err != nil {
		return nil, 0, err
	}
	if len(manifests) == 0 {
		return nil, 0, fmt.Errorf("demo: the plugin returned no objects")
	}
	var common map[string]string
	for i, m := range manifests {
		var obj struct {
			Metadata struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(m), &obj); err != nil {
			return nil, 0, fmt.Errorf("demo: object %d from the plugin: %w", i, err)
		}
		if common == nil {
			common = map[string]string{}
			for k, v := range obj.Metadata.Annotations {
				common[k] = v
			}
			continue
		}
		for k, v := range common {
			if obj.Metadata.Annotations[k] != v {
				delete(common, k)
			}
		}
	}
	return common, len(manifests), nil
}

func version(ref string) string { return ref[strings.LastIndex(ref, ":")+1:] }
func repoOf(ref string) string {
	repo := ref[:strings.LastIndex(ref, ":")]
	return repo[:strings.LastIndex(repo, "/")]
}

// helmPull pulls REPO:VERSION with Helm's SDK into a fresh directory and returns the chart dir.
func (r *runner) helmPull(ref string) (string, error) {
	dest, err := os.MkdirTemp(r.o.WorkDir, "chart-")
	if err != nil {
		return "", err
	}
	rc, err := helmregistry.NewClient(helmregistry.ClientOptPlainHTTP(), helmregistry.ClientOptWriter(os.Stderr))
	if err != nil {
		return "", err
	}
	cfg := &action.Configuration{RegistryClient: rc}
	pull := action.NewPullWithOpts(action.WithConfig(cfg))
	pull.Settings = cli.New()
	pull.Untar = true
	pull.UntarDir = dest
	pull.DestDir = dest
	pull.Version = version(ref)
	chartRef := "oci://" + ref[:strings.LastIndex(ref, ":")]
	if _, err := pull.Run(chartRef); err != nil {
		return "", fmt.Errorf("demo: helm pull %s --version %s: %w", chartRef, pull.Version, err)
	}
	return filepath.Join(dest, "quickstart"), nil
}

// generate runs Argo CD's CMP server in-process with the plugin.yaml Strata ships and asks it to
// generate manifests for dir, streamed the way argocd-repo-server streams it.
func (r *runner) generate(ctx context.Context, dir string, env []string) ([]string, error) {
	// The plugin's commands run with the process environment: put the demo's strata first.
	restore := setenv(map[string]string{"PATH": filepath.Dir(r.bin) + string(os.PathListSeparator) + os.Getenv("PATH")})
	defer restore()
	srv, err := cmpserver.Start(manifests.PluginConfig())
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	defer srv.Close()
	out, err := srv.Generate(ctx, "", dir, env)
	if err != nil {
		return nil, fmt.Errorf("demo: plugin generate: %w", err)
	}
	return out, nil
}

func setenv(vars map[string]string) (restore func()) {
	old := map[string]*string{}
	for k, v := range vars {
		if prev, ok := os.LookupEnv(k); ok {
			old[k] = &prev
		} else {
			old[k] = nil
		}
		os.Setenv(k, v)
	}
	return func() {
		for k, v := range old {
			if v == nil {
				os.Unsetenv(k)
			} else {
				os.Setenv(k, *v)
			}
		}
	}
}
