package argocdtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	argoclient "github.com/argoproj/argo-cd/v3/pkg/client/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"strata.dev/strata/internal/testing/testenv"
)

// ErrMissing wraps what Start needs but the environment lacks (binaries, servers): tests skip
// on it, or fail under CI=true.
var ErrMissing = errors.New("not available")

// Options configure Start.
type Options struct {
	// Dir holds the processes' state and logs (a fresh temporary directory if empty).
	Dir string
	// Log receives progress (nil: discarded).
	Log *slog.Logger
	// Strata is a strata binary to run as the plugin; empty: one is built from this tree.
	Strata string
	// ApplicationSet also starts argocd-applicationset-controller (ApplicationSets in
	// Namespace; generators that read git ask the repo-server).
	ApplicationSet bool
}

// ArgoCD is a running Argo CD.
type ArgoCD struct {
	// Namespace is the control-plane namespace (Applications, AppProject default, settings,
	// repository Secrets); AppNamespace is one more namespace Applications may live in
	// (Applications in any namespace; the default AppProject allows it as a source namespace).
	Namespace    string
	AppNamespace string
	// Dir holds the state and logs (Dir/log/<component>.log); Stop removes it unless KeepDir.
	Dir     string
	KeepDir bool

	Kube kubernetes.Interface
	Argo argoclient.Interface

	procs []*exec.Cmd
	names []string
}

// Start builds strata from this tree (unless Options.Strata names one), creates the control-plane namespace with Argo CD's
// settings, and starts redis, argocd-cmp-server, argocd-repo-server and
// argocd-application-controller (and argocd-applicationset-controller with
// Options.ApplicationSet). Call Stop when done.
func Start(ctx context.Context, o Options) (a *ArgoCD, err error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	env := testenv.Load()
	for what, path := range map[string]string{
		"STRATA_TEST_ARGOCD (the argocd binary)": env.ArgoCD,
		"STRATA_TEST_HELM (the helm CLI)":        env.Helm,
		"STRATA_TEST_REDIS (redis-server)":       env.Redis,
		"KUBECONFIG":                             env.Kubeconfig,
	} {
		if path == "" {
			return nil, fmt.Errorf("%s is not set: %w", what, ErrMissing)
		}
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("%s: %w (%w)", what, err, ErrMissing)
		}
	}
	root := testenv.RepoRoot()
	if root == "" {
		return nil, fmt.Errorf("the strata module is not above the working directory")
	}
	dir := o.Dir
	if dir == "" {
		// Unix socket paths must stay short (< 108 bytes): no t.TempDir() here.
		if dir, err = os.MkdirTemp("", "argocd-"); err != nil {
			return nil, err
		}
	}
	a = &ArgoCD{Dir: dir}
	defer func() {
		if err != nil {
			a.Stop()
			a = nil
		}
	}()
	for _, d := range []string{"bin", "log", "plugin", "sock", "cmp-work", "tls", "ssh", "gpg", "gnupg", "home"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return a, err
		}
	}

	// The plugin's side: strata and its plugin.yaml, as in the sidecar image.
	start := time.Now()
	if o.Strata != "" {
		bin, err := filepath.Abs(o.Strata)
		if err != nil {
			return a, err
		}
		if err := os.Symlink(bin, filepath.Join(dir, "bin", "strata")); err != nil {
			return a, err
		}
	} else {
		build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, "bin", "strata"), "./cmd/strata")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			return a, fmt.Errorf("go build ./cmd/strata: %w\n%s", err, out)
		}
		log.Info("built strata", "took", time.Since(start).Round(time.Millisecond))
	}
	pluginYAML, err := os.ReadFile(filepath.Join(root, "manifests", "argocd", "plugin.yaml"))
	if err != nil {
		return a, err
	}
	if err := os.WriteFile(filepath.Join(dir, "plugin", "plugin.yaml"), pluginYAML, 0o644); err != nil {
		return a, err
	}
	if err := os.Symlink(env.Helm, filepath.Join(dir, "bin", "helm")); err != nil {
		return a, err
	}
	// The repo-server hands git its credentials through GIT_ASKPASS=argocd (the same multi-call
	// binary, as argocd-git-ask-pass): it must be on PATH under that name.
	if err := os.Symlink(env.ArgoCD, filepath.Join(dir, "bin", "argocd")); err != nil {
		return a, err
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", env.Kubeconfig)
	if err != nil {
		return a, fmt.Errorf("kubeconfig %s: %w (%w)", env.Kubeconfig, err, ErrMissing)
	}
	// The API server's warnings (e.g. "unrecognized format" for Argo CD's CRDs) go to the log,
	// not through klog to stderr, where they would land in the demo's output.
	cfg.WarningHandler = slogWarnings{log}
	if a.Kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return a, err
	}
	if a.Argo, err = argoclient.NewForConfig(cfg); err != nil {
		return a, err
	}
	if _, err := a.Kube.Discovery().ServerVersion(); err != nil {
		return a, fmt.Errorf("the kube-apiserver at %s: %w (%w)", cfg.Host, err, ErrMissing)
	}
	suffix := randomSuffix()
	a.Namespace, a.AppNamespace = "argocd-"+suffix, "argocd-apps-"+suffix
	if err := a.setUp(ctx, cfg); err != nil {
		return a, err
	}

	redisPort, repoPort, repoMetrics, ctrlMetrics := freePort(), freePort(), freePort(), freePort()
	path := filepath.Join(dir, "bin") + string(os.PathListSeparator) + os.Getenv("PATH")
	common := []string{
		"PATH=" + path,
		"HOME=" + filepath.Join(dir, "home"),
		"ARGOCD_FAKE_IN_CLUSTER=true",
		"KUBECONFIG=" + env.Kubeconfig,
		"ARGOCD_PLUGINSOCKFILEPATH=" + filepath.Join(dir, "sock"),
		"ARGOCD_TLS_DATA_PATH=" + filepath.Join(dir, "tls"),
		"ARGOCD_SSH_DATA_PATH=" + filepath.Join(dir, "ssh"),
		"ARGOCD_GPG_DATA_PATH=" + filepath.Join(dir, "gpg"),
		"ARGOCD_GNUPGHOME=" + filepath.Join(dir, "gnupg"),
		"ARGOCD_GPG_ENABLED=false",
		// The repo-server's git credentials socket (git's askpass asks it); its default,
		// /tmp/reposerver-ask-pass.sock, would be shared by every Argo CD on the machine.
		"ARGOCD_ASK_PASS_SOCK=" + filepath.Join(dir, "sock", "askpass.sock"),
		"ARGOCD_LOG_FORMAT_ENABLE_FULL_TIMESTAMP=true",
	}
	redis := fmt.Sprintf("127.0.0.1:%d", redisPort)
	if err := a.run(ctx, "redis", nil, env.Redis, "--port", fmt.Sprint(redisPort), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir); err != nil {
		return a, err
	}
	if err := a.waitFor(ctx, "redis", func() bool { return dial(redis) }); err != nil {
		return a, err
	}
	if err := a.run(ctx, "argocd-cmp-server", append(common, "ARGOCD_BINARY_NAME=argocd-cmp-server",
		"ARGOCD_CMP_WORKDIR="+filepath.Join(dir, "cmp-work")),
		env.ArgoCD, "--config-dir-path", filepath.Join(dir, "plugin"), "--loglevel", "info"); err != nil {
		return a, err
	}
	sock := filepath.Join(dir, "sock", "strata.sock")
	if err := a.waitFor(ctx, "argocd-cmp-server", func() bool { return dialUnix(sock) }); err != nil {
		return a, err
	}
	if err := a.run(ctx, "argocd-repo-server", append(common, "ARGOCD_BINARY_NAME=argocd-repo-server"),
		env.ArgoCD, "--address", "127.0.0.1", "--port", fmt.Sprint(repoPort),
		"--metrics-address", "127.0.0.1", "--metrics-port", fmt.Sprint(repoMetrics),
		"--redis", redis, "--loglevel", "info"); err != nil {
		return a, err
	}
	repo := fmt.Sprintf("127.0.0.1:%d", repoPort)
	if err := a.waitFor(ctx, "argocd-repo-server", func() bool { return dial(repo) }); err != nil {
		return a, err
	}
	// The controller's metrics server listens on all interfaces (Argo CD hard-codes 0.0.0.0);
	// its port is a free one picked here.
	if err := a.run(ctx, "argocd-application-controller", append(common, "ARGOCD_BINARY_NAME=argocd-application-controller"),
		env.ArgoCD, "--namespace", a.Namespace, "--kubeconfig", env.Kubeconfig,
		"--redis", redis, "--repo-server", repo, "--metrics-port", fmt.Sprint(ctrlMetrics),
		"--application-namespaces", a.AppNamespace, "--app-resync", "60",
		"--status-processors", "4", "--operation-processors", "4", "--loglevel", "info"); err != nil {
		return a, err
	}
	healthz := fmt.Sprintf("http://127.0.0.1:%d/healthz", ctrlMetrics)
	if err := a.waitFor(ctx, "argocd-application-controller", func() bool {
		resp, err := http.Get(healthz)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}); err != nil {
		return a, err
	}
	if o.ApplicationSet {
		// Every listener on 127.0.0.1 (its defaults are :7000, :8080 and :8081 on all interfaces).
		probe := freePort()
		if err := a.run(ctx, "argocd-applicationset-controller", append(common, "ARGOCD_BINARY_NAME=argocd-applicationset-controller"),
			env.ArgoCD, "--namespace", a.Namespace, "--kubeconfig", env.Kubeconfig, "--argocd-repo-server", repo,
			"--metrics-addr", fmt.Sprintf("127.0.0.1:%d", freePort()), "--probe-addr", fmt.Sprintf("127.0.0.1:%d", probe),
			"--webhook-addr", fmt.Sprintf("127.0.0.1:%d", freePort()), "--enable-leader-election=false",
			"--logformat", "text", "--loglevel", "info"); err != nil {
			return a, err
		}
		// Ready when its workers run (its probe endpoints register no checks).
		if err := a.waitFor(ctx, "argocd-applicationset-controller", func() bool {
			b, _ := os.ReadFile(filepath.Join(a.Dir, "log", "argocd-applicationset-controller.log"))
			return strings.Contains(string(b), "Starting workers")
		}); err != nil {
			return a, err
		}
	}
	log.Info("Argo CD up", "namespace", a.Namespace, "took", time.Since(start).Round(time.Millisecond))
	return a, nil
}

// setUp installs Argo CD's CRDs (if missing) and, in the fresh namespaces, what Argo CD reads
// at start: argocd-cm, argocd-rbac-cm, argocd-cmd-params-cm, argocd-secret and the AppProject
// default (any repository and destination, AppNamespace as a source namespace).
func (a *ArgoCD) setUp(ctx context.Context, cfg *rest.Config) error {
	mod, err := testenv.ArgoCDModuleDir()
	if err != nil {
		return fmt.Errorf("%w (%w)", err, ErrMissing)
	}
	ext, err := apiextclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	for _, f := range []string{"application-crd.yaml", "appproject-crd.yaml", "applicationset-crd.yaml"} {
		b, err := os.ReadFile(filepath.Join(mod, "manifests", "crds", f))
		if err != nil {
			return err
		}
		var crd apiextv1.CustomResourceDefinition
		if err := yaml.Unmarshal(b, &crd); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, &crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create CRD %s: %w", crd.Name, err)
		}
		if err := testenv.WaitCRDEstablished(ctx, ext, crd.Name); err != nil {
			return err
		}
	}
	for _, ns := range []string{a.Namespace, a.AppNamespace} {
		if _, err := a.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create namespace %s: %w", ns, err)
		}
	}
	part := map[string]string{"app.kubernetes.io/part-of": "argocd"}
	data := map[string]map[string]string{
		// Every Start is its own installation on the shared cluster: objects another run synced
		// (same Application name, other namespace) carry another installation ID and are not
		// this controller's to prune.
		"argocd-cm": {"installationID": a.Namespace, "application.resourceTrackingMethod": "annotation"},
	}
	for _, name := range []string{"argocd-cm", "argocd-rbac-cm", "argocd-cmd-params-cm"} {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: a.Namespace, Labels: part}, Data: data[name]}
		if _, err := a.Kube.CoreV1().ConfigMaps(a.Namespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create ConfigMap %s: %w", name, err)
		}
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "argocd-secret", Namespace: a.Namespace, Labels: part},
		StringData: map[string]string{"server.secretkey": randomSuffix() + randomSuffix()},
	}
	if _, err := a.Kube.CoreV1().Secrets(a.Namespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create Secret argocd-secret: %w", err)
	}
	proj := &v1alpha1.AppProject{
		ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: a.Namespace},
		Spec: v1alpha1.AppProjectSpec{
			SourceRepos:              []string{"*"},
			Destinations:             []v1alpha1.ApplicationDestination{{Server: "*", Namespace: "*"}},
			ClusterResourceWhitelist: []v1alpha1.ClusterResourceRestrictionItem{{Group: "*", Kind: "*"}},
			SourceNamespaces:         []string{a.AppNamespace},
		},
	}
	if _, err := a.Argo.ArgoprojV1alpha1().AppProjects(a.Namespace).Create(ctx, proj, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create AppProject default: %w", err)
	}
	return nil
}

// AddRepository creates a repository Secret (label argocd.argoproj.io/secret-type: repository)
// in the control-plane namespace with the given fields (url, type, enableOCI, username, ...).
func (a *ArgoCD) AddRepository(ctx context.Context, name string, fields map[string]string) error {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: a.Namespace,
			Labels: map[string]string{"argocd.argoproj.io/secret-type": "repository"},
		},
		StringData: fields,
	}
	if _, err := a.Kube.CoreV1().Secrets(a.Namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create repository Secret %s: %w", name, err)
	}
	return nil
}

// run starts one component, its output in Dir/log/NAME.log.
func (a *ArgoCD) run(ctx context.Context, name string, env []string, bin string, args ...string) error {
	logf, err := os.Create(filepath.Join(a.Dir, "log", name+".log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	if env != nil {
		cmd.Env = env
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	a.procs = append(a.procs, cmd)
	a.names = append(a.names, name)
	go func() { _ = cmd.Wait() }()
	return nil
}

// waitFor polls ready (up to 60 s), failing early if the component's process exited.
func (a *ArgoCD) waitFor(ctx context.Context, name string, ready func() bool) error {
	deadline := time.Now().Add(60 * time.Second)
	cmd := a.procs[len(a.procs)-1]
	for time.Now().Before(deadline) {
		if ready() {
			return nil
		}
		if cmd.ProcessState != nil || syscall.Kill(cmd.Process.Pid, 0) != nil {
			return fmt.Errorf("%s exited: %s", name, a.LogTail(name, 20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready in 60 s: %s", name, a.LogTail(name, 20))
}

// LogTail returns the last n lines of a component's log.
func (a *ArgoCD) LogTail(name string, n int) string {
	b, _ := os.ReadFile(filepath.Join(a.Dir, "log", name+".log"))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\n" + strings.Join(lines, "\n")
}

// Stop stops the processes (controller first) and removes Dir unless KeepDir. The namespaces stay: without a
// kube-controller-manager nothing would finish deleting them.
func (a *ArgoCD) Stop() {
	for i := len(a.procs) - 1; i >= 0; i-- {
		p := a.procs[i].Process
		_ = syscall.Kill(-p.Pid, syscall.SIGTERM)
		for j := 0; j < 50 && syscall.Kill(p.Pid, 0) == nil; j++ {
			time.Sleep(100 * time.Millisecond)
		}
		_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	}
	a.procs, a.names = nil, nil
	if a.Dir != "" && !a.KeepDir {
		_ = os.RemoveAll(a.Dir)
	}
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func dial(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

func dialUnix(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// slogWarnings hands the API server's warning headers to a logger at debug level.
type slogWarnings struct{ log *slog.Logger }

func (w slogWarnings) HandleWarningHeader(code int, agent, text string) {
	if code == 299 && text != "" {
		w.log.Debug("kube-apiserver warning", "warning", text)
	}
}
