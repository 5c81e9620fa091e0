package imageupdater

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	argoclient "github.com/argoproj/argo-cd/v3/pkg/client/clientset/versioned"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	corev1 "k8s.io/api/core/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"oras.land/oras-go/v2/content"
	"sigs.k8s.io/yaml"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
)

const argoCRD = "/root/go/pkg/mod/github.com/argoproj/argo-cd/v3@v3.3.10/manifests/crds/application-crd.yaml"

// crdPath finds Argo CD's Application CRD in the module cache.
func crdPath(t testing.TB) string {
	t.Helper()
	gomod := os.Getenv("GOMODCACHE")
	if gomod == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gomod = path.Join(home, "go", "pkg", "mod")
		}
	}
	p := path.Join(gomod, "github.com/argoproj/argo-cd/v3@v3.3.10/manifests/crds/application-crd.yaml")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return argoCRD
}

// kubeEnv is a test namespace with the Application CRD installed.
type kubeEnv struct {
	cfg  *rest.Config
	kube kubernetes.Interface
	argo argoclient.Interface
	ns   string
}

func newKubeEnv(t testing.TB) *kubeEnv {
	t.Helper()
	cfg := testenv.KubeConfig(t)
	ensureCRD(t, cfg)
	kube := testenv.Kube(t)
	fast := rest.CopyConfig(cfg)
	fast.QPS, fast.Burst = 200, 400 // the benchmark creates 1,000 Applications
	argo, err := argoclient.NewForConfig(fast)
	if err != nil {
		t.Fatal(err)
	}
	ns := testenv.UniqueName(t, "iu")
	if _, err := kube.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = kube.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	return &kubeEnv{cfg: cfg, kube: kube, argo: argo, ns: ns}
}

// ensureCRD creates Argo CD's Application CRD if missing (other tests may race) and waits until
// it is Established.
func ensureCRD(t testing.TB, cfg *rest.Config) {
	t.Helper()
	b, err := os.ReadFile(crdPath(t))
	if err != nil {
		t.Fatalf("read Application CRD: %v", err)
	}
	var crd apiextv1.CustomResourceDefinition
	if err := yaml.Unmarshal(b, &crd); err != nil {
		t.Fatalf("decode Application CRD: %v", err)
	}
	cs, err := apiextclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := cs.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, &crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create Application CRD: %v", err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := cs.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range got.Status.Conditions {
			if c.Type == apiextv1.Established && c.Status == apiextv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("Application CRD not established: %v", err)
	}
}

// app creates an Application in the test namespace.
func (k *kubeEnv) app(t testing.TB, name string, ann map[string]string, sources ...v1alpha1.ApplicationSource) *v1alpha1.Application {
	t.Helper()
	a := &v1alpha1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: k.ns, Annotations: ann},
		Spec: v1alpha1.ApplicationSpec{
			Destination: v1alpha1.ApplicationDestination{Server: "https://kubernetes.default.svc", Namespace: "demo"},
			Project:     "default",
		},
	}
	if len(sources) == 1 {
		a.Spec.Source = &sources[0]
	} else {
		a.Spec.Sources = sources
	}
	got, err := k.argo.ArgoprojV1alpha1().Applications(k.ns).Create(context.Background(), a, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create Application %s: %v", name, err)
	}
	return got
}

func (k *kubeEnv) getApp(t testing.TB, name string) *v1alpha1.Application {
	t.Helper()
	a, err := k.argo.ArgoprojV1alpha1().Applications(k.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get Application %s: %v", name, err)
	}
	return a
}

func revision(a *v1alpha1.Application, i int) string {
	if i < 0 {
		return a.Spec.Source.TargetRevision
	}
	return a.Spec.Sources[i].TargetRevision
}

// events returns the Events recorded on Application name.
func (k *kubeEnv) events(t testing.TB, name string) []corev1.Event {
	t.Helper()
	l, err := k.kube.CoreV1().Events(k.ns).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		t.Fatalf("list events: %v", err)
	}
	return l.Items
}

func helmSource(repo, version string) v1alpha1.ApplicationSource {
	i := strings.LastIndex(repo, "/")
	return v1alpha1.ApplicationSource{RepoURL: repo[:i], Chart: repo[i+1:], TargetRevision: version}
}

func ociSource(repo, rev string) v1alpha1.ApplicationSource {
	return v1alpha1.ApplicationSource{RepoURL: "oci://" + repo, TargetRevision: rev, Path: "."}
}

// pushBundle pushes a minimal Helm chart as a bundle: chart name = last path element of repo,
// tag = version with '+' as '_', manifest annotation org.opencontainers.image.created.
func pushBundle(t testing.TB, repo, version string, created time.Time) string {
	t.Helper()
	return pushBundleTag(t, repo, version, strings.ReplaceAll(version, "+", "_"), created)
}

func pushBundleTag(t testing.TB, repo, version, tag string, created time.Time) string {
	t.Helper()
	ctx := context.Background()
	chart := path.Base(repo)
	chartYAML := fmt.Sprintf("apiVersion: v2\nname: %s\nversion: %s\n", chart, version)
	var tgz bytes.Buffer
	gz := gzip.NewWriter(&tgz)
	tw := tar.NewWriter(gz)
	_ = tw.WriteHeader(&tar.Header{Name: chart + "/Chart.yaml", Mode: 0o644, Size: int64(len(chartYAML)), ModTime: created})
	_, _ = tw.Write([]byte(chartYAML))
	_ = tw.Close()
	_ = gz.Close()
	cfg, _ := json.Marshal(map[string]string{"apiVersion": "v2", "name": chart, "version": version})

	r, err := registry.Options{}.Repository(repo)
	if err != nil {
		t.Fatal(err)
	}
	push := func(mt string, b []byte) ocispec.Descriptor {
		d := content.NewDescriptorFromBytes(mt, b)
		if err := r.Push(ctx, d, bytes.NewReader(b)); err != nil && !strings.Contains(err.Error(), "exists") {
			t.Fatalf("push %s: %v", mt, err)
		}
		return d
	}
	cd := push("application/vnd.cncf.helm.config.v1+json", cfg)
	ld := push("application/vnd.cncf.helm.chart.content.v1.tar+gzip", tgz.Bytes())
	man, _ := json.Marshal(ocispec.Manifest{
		Versioned: specsVersioned(), MediaType: ocispec.MediaTypeImageManifest, Config: cd, Layers: []ocispec.Descriptor{ld},
		Annotations: map[string]string{ocispec.AnnotationCreated: created.UTC().Format(time.RFC3339), ocispec.AnnotationVersion: version},
	})
	md := content.NewDescriptorFromBytes(ocispec.MediaTypeImageManifest, man)
	if err := r.PushReference(ctx, md, bytes.NewReader(man), tag); err != nil {
		t.Fatalf("push manifest %s:%s: %v", repo, tag, err)
	}
	return md.Digest.String()
}

// countingTransport counts registry requests by method and path.
type countingTransport struct {
	base http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
	at   map[string][]time.Time
}

func newCountingTransport() *countingTransport {
	return &countingTransport{base: http.DefaultTransport, n: map[string]int{}, at: map[string][]time.Time{}}
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n[r.Method+" "+r.URL.Path]++
	c.at[r.Method+" "+r.URL.Path] = append(c.at[r.Method+" "+r.URL.Path], time.Now())
	c.mu.Unlock()
	return c.base.RoundTrip(r)
}

// listingTimes are the times of the tags/list requests for repo.
func (c *countingTransport) listingTimes(repo string) []time.Time {
	_, p, _ := strings.Cut(repo, "/")
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.at["GET /v2/"+p+"/tags/list"])
}

// listings is the number of tags/list requests for repo (REGISTRY/PATH).
func (c *countingTransport) listings(repo string) int {
	_, p, _ := strings.Cut(repo, "/")
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n["GET /v2/"+p+"/tags/list"]
}

func (c *countingTransport) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.n {
		n += v
	}
	return n
}

// logBuffer collects logs for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startController builds a controller for the env's namespace and syncs its informers.
func (k *kubeEnv) startController(t testing.TB, mod func(*Options)) (*controller, *countingTransport, *logBuffer) {
	t.Helper()
	ct := newCountingTransport()
	logs := &logBuffer{}
	opts := Options{
		RestConfig: k.cfg,
		Namespaces: []string{k.ns},
		Interval:   time.Hour,
		Registry:   registry.Options{Transport: ct},
		Logger:     slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&opts)
	}
	c, err := newController(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); c.stop() })
	if err := c.start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("controller log:\n%s", logs.String())
		}
	})
	return c, ct, logs
}

// waitCached waits until the controller's cache has Application name at resourceVersion rv or later.
func waitCached(t testing.TB, c *controller, ns, name, rv string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		a, ok := c.get(ns + "/" + name)
		return ok && a.GetResourceVersion() >= rv && len(a.GetResourceVersion()) >= len(rv), nil
	})
	if err != nil {
		t.Fatalf("Application %s/%s@%s never reached the informer cache", ns, name, rv)
	}
}

func specsVersioned() specs.Versioned { return specs.Versioned{SchemaVersion: 2} }
