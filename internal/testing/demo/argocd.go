package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/cli"
	helmregistry "helm.sh/helm/v3/pkg/registry"
	"sigs.k8s.io/yaml"

	"strata.dev/strata/internal/testing/cmpserver"
	"strata.dev/strata/manifests"
)

// renderThroughArgoCD does what argocd-repo-server does for a Helm-OCI source with the strata
// plugin: pull and extract the chart with Helm, stream the directory to the plugin's CMP server
// (Argo CD's own server code, configured by the plugin.yaml Strata ships) and collect the
// manifests. It returns the annotations every object carries and the number of objects.
func (r *runner) renderThroughArgoCD(ctx context.Context, app *v1alpha1.Application) (map[string]string, int, error) {
	src := app.Spec.Source
	ref := strings.TrimPrefix(src.RepoURL, "oci://") + "/" + src.Chart + ":" + src.TargetRevision
	chartDir, err := r.helmPull(ref)
	if err != nil {
		return nil, 0, err
	}
	// The environment argocd-repo-server gives a plugin for a Helm-OCI source: the revision is
	// the chart version.
	manifests, err := r.generate(ctx, chartDir, []string{
		"ARGOCD_APP_NAME=" + app.Name,
		"ARGOCD_APP_NAMESPACE=" + app.Spec.Destination.Namespace,
		"ARGOCD_APP_PROJECT_NAME=" + app.Spec.Project,
		"ARGOCD_APP_REVISION=" + src.TargetRevision,
		"ARGOCD_APP_REVISION_SHORT=" + src.TargetRevision,
		"ARGOCD_APP_SOURCE_REPO_URL=" + src.RepoURL,
		"ARGOCD_APP_SOURCE_PATH=" + src.Path,
		"ARGOCD_APP_SOURCE_TARGET_REVISION=" + src.TargetRevision,
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

// helmPull pulls REPO:VERSION with Helm's SDK into a fresh directory and returns the chart dir.
func (r *runner) helmPull(ref string) (string, error) {
	dest, err := os.MkdirTemp(r.o.WorkDir, "chart-")
	if err != nil {
		return "", err
	}
	rc, err := helmregistry.NewClient(helmregistry.ClientOptPlainHTTP(), helmregistry.ClientOptWriter(io.Discard))
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
