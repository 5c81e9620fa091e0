package testenv

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// UpCommand is what a developer runs to start the environment.
const UpCommand = "scripts/testenv.sh up"

// Env is the set of addresses of a running test environment.
type Env struct {
	DockerHost string // unix:///.../docker.sock
	Kubeconfig string // path to a kubeconfig with an admin token
	Registry   string // host:port of a plain-HTTP registry
	BaseImage  string // a busybox image stored in Registry and present in the engine
	Dir        string // state directory of scripts/testenv.sh

	// Real Argo CD (internal/testing/argocdtest): the multi-call argocd binary, the helm CLI
	// (v3.19.5, what argocd-repo-server runs for Helm-OCI sources) and redis-server.
	ArgoCD string
	Helm   string
	Redis  string
}

// Load reads the environment variables, falling back to the env file of scripts/testenv.sh.
func Load() Env {
	vals := map[string]string{}
	if f := envFile(); f != "" {
		if fh, err := os.Open(f); err == nil {
			sc := bufio.NewScanner(fh)
			for sc.Scan() {
				line := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export ")
				if k, v, ok := strings.Cut(line, "="); ok {
					vals[k] = strings.Trim(v, `"'`)
				}
			}
			fh.Close()
		}
	}
	get := func(k string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return vals[k]
	}
	return Env{
		DockerHost: get("DOCKER_HOST"),
		Kubeconfig: get("KUBECONFIG"),
		Registry:   get("STRATA_TEST_REGISTRY"),
		BaseImage:  get("STRATA_TEST_BASE_IMAGE"),
		Dir:        get("STRATA_TESTENV_DIR"),
		ArgoCD:     get("STRATA_TEST_ARGOCD"),
		Helm:       get("STRATA_TEST_HELM"),
		Redis:      get("STRATA_TEST_REDIS"),
	}
}

func envFile() string {
	if d := os.Getenv("STRATA_TESTENV_DIR"); d != "" {
		return filepath.Join(d, "env")
	}
	if root := RepoRoot(); root != "" {
		return filepath.Join(root, ".testenv", "env")
	}
	return ""
}

// RepoRoot returns the root of the strata module (the directory holding its go.mod), or "".
func RepoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(b), "module strata.dev/strata\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Missing skips the test because what is not available, or fails it under CI=true; the message
// says how to start the environment.
func Missing(t testing.TB, what string, err error) {
	t.Helper()
	missing(t, what, err)
}

// missing skips the test, or fails it under CI=true.
func missing(t testing.TB, what string, err error) {
	t.Helper()
	msg := fmt.Sprintf("%s is not available (%v); start the test environment with: %s", what, err, UpCommand)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Docker returns a client for the test engine, with API version negotiation on.
func Docker(t testing.TB) *client.Client {
	t.Helper()
	e := Load()
	if e.DockerHost == "" {
		missing(t, "the Docker engine", fmt.Errorf("DOCKER_HOST is not set"))
	}
	c, err := client.NewClientWithOpts(client.WithHost(e.DockerHost), client.WithAPIVersionNegotiation())
	if err != nil {
		missing(t, "the Docker engine", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx); err != nil {
		c.Close()
		missing(t, "the Docker engine at "+e.DockerHost, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// DockerHost returns the engine address after checking it answers.
func DockerHost(t testing.TB) string {
	t.Helper()
	Docker(t)
	return Load().DockerHost
}

// Registry returns host:port of the test registry after checking it answers.
func Registry(t testing.TB) string {
	t.Helper()
	e := Load()
	if e.Registry == "" {
		missing(t, "the registry", fmt.Errorf("STRATA_TEST_REGISTRY is not set"))
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + e.Registry + "/v2/")
	if err != nil {
		missing(t, "the registry at "+e.Registry, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		missing(t, "the registry at "+e.Registry, fmt.Errorf("GET /v2/: %s", resp.Status))
	}
	return e.Registry
}

// BaseImage returns the busybox base image reference (stored in the registry and the engine).
func BaseImage(t testing.TB) string {
	t.Helper()
	Registry(t)
	e := Load()
	if e.BaseImage == "" {
		missing(t, "the base image", fmt.Errorf("STRATA_TEST_BASE_IMAGE is not set"))
	}
	return e.BaseImage
}

// Repo returns a fresh repository path in the test registry, unique to this test run:
// REGISTRY/strata-test/<test-name>-<random>.
func Repo(t testing.TB, name string) string {
	t.Helper()
	reg := Registry(t)
	return reg + "/strata-test/" + UniqueName(t, name)
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9]+`)

// UniqueName returns a lower-case DNS-safe name made from the test and name plus a random suffix.
func UniqueName(t testing.TB, name string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	base := strings.Trim(unsafeChars.ReplaceAllString(strings.ToLower(t.Name()+"-"+name), "-"), "-")
	if len(base) > 40 {
		base = strings.Trim(base[len(base)-40:], "-")
	}
	return base + "-" + hex.EncodeToString(b)
}

// KubeConfig returns a client config for the test kube-apiserver after checking /readyz.
func KubeConfig(t testing.TB) *rest.Config {
	t.Helper()
	e := Load()
	if e.Kubeconfig == "" {
		missing(t, "the kube-apiserver", fmt.Errorf("KUBECONFIG is not set"))
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", e.Kubeconfig)
	if err != nil {
		missing(t, "the kube-apiserver", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		missing(t, "the kube-apiserver", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		missing(t, "the kube-apiserver at "+cfg.Host, err)
	}
	return cfg
}

// Kube returns a clientset for the test kube-apiserver.
func Kube(t testing.TB) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(KubeConfig(t))
	if err != nil {
		t.Fatalf("kubernetes client: %v", err)
	}
	return cs
}

// Kubeconfig returns the path of the test kubeconfig after checking the apiserver answers.
func Kubeconfig(t testing.TB) string {
	t.Helper()
	KubeConfig(t)
	return Load().Kubeconfig
}
