package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// ArgoCDModule is the Argo CD Go module whose CRDs the test environment installs.
const ArgoCDModule = "github.com/argoproj/argo-cd/v3"

// ArgoCDModuleDir returns the directory of the Argo CD module in the module cache.
func ArgoCDModuleDir() (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", ArgoCDModule)
	if root := RepoRoot(); root != "" {
		cmd.Dir = root
	}
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locate %s in the module cache (go list -m): %w", ArgoCDModule, err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("%s is not downloaded: run go mod download", ArgoCDModule)
	}
	return dir, nil
}

// EnsureApplicationCRD installs Argo CD's Application CRD (from the Argo CD Go module) on the
// cluster if it is missing, and waits until it is Established. Safe to call concurrently.
func EnsureApplicationCRD(ctx context.Context, cfg *rest.Config) error {
	cs, err := apiextclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	const name = "applications.argoproj.io"
	if _, err := cs.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		dir, err := ArgoCDModuleDir()
		if err != nil {
			return err
		}
		path := filepath.Join(dir, "manifests", "crds", "application-crd.yaml")
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var crd apiextv1.CustomResourceDefinition
		if err := yaml.Unmarshal(b, &crd); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if _, err := cs.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, &crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create CRD %s: %w", name, err)
		}
	} else if err != nil {
		return fmt.Errorf("get CRD %s: %w", name, err)
	}
	return WaitCRDEstablished(ctx, cs, name)
}

// WaitCRDEstablished waits (up to 30 s) until the CRD name is Established.
func WaitCRDEstablished(ctx context.Context, cs apiextclient.Interface, name string) error {
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		crd, err := cs.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextv1.Established && c.Status == apiextv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("CRD %s not Established: %w", name, err)
	}
	return nil
}
