package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// APIServer is a private kube-apiserver process started by a test from the binary cached by
// scripts/testenv.sh, on its own port and its own etcd prefix in the shared etcd. Tests that must
// kill or restart an apiserver use one of these, never the shared one.
type APIServer struct {
	t      testing.TB
	bin    string
	pki    string
	etcd   string
	prefix string
	port   int
	dir    string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// StartAPIServer starts a private kube-apiserver and stops it when the test ends.
func StartAPIServer(t testing.TB) *APIServer {
	t.Helper()
	e := Load()
	if e.Dir == "" {
		missing(t, "the kube-apiserver binary", fmt.Errorf("STRATA_TESTENV_DIR is not set"))
	}
	bins, _ := filepath.Glob(filepath.Join(e.Dir, "bin", "*", "kube-apiserver"))
	if len(bins) == 0 {
		missing(t, "the kube-apiserver binary", fmt.Errorf("none under %s/bin", e.Dir))
	}
	etcdPort := os.Getenv("STRATA_TESTENV_ETCD_PORT")
	if etcdPort == "" {
		etcdPort = "23790"
	}
	etcd := "http://127.0.0.1:" + etcdPort
	hc := &http.Client{Timeout: 3 * time.Second}
	resp, err := hc.Get(etcd + "/health")
	if err != nil {
		missing(t, "etcd at "+etcd, err)
	}
	resp.Body.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pick a port for kube-apiserver: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &APIServer{
		t: t, bin: bins[0], pki: filepath.Join(e.Dir, "pki"), etcd: etcd,
		prefix: "/strata-test/" + UniqueName(t, "apiserver"), port: port, dir: t.TempDir(),
	}
	t.Cleanup(s.Stop)
	s.Start()
	return s
}

// Start starts the process (again) and waits until /readyz answers; it fails the test after 90 s.
func (s *APIServer) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	logf, err := os.OpenFile(filepath.Join(s.dir, "kube-apiserver.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		s.t.Fatalf("kube-apiserver log: %v", err)
	}
	p := func(f string) string { return filepath.Join(s.pki, f) }
	cmd := exec.Command(s.bin,
		"--etcd-servers", s.etcd, "--etcd-prefix", s.prefix,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+strconv.Itoa(s.port),
		"--tls-cert-file="+p("apiserver.crt"), "--tls-private-key-file="+p("apiserver.key"),
		"--client-ca-file="+p("ca.crt"), "--token-auth-file="+p("tokens.csv"),
		"--authorization-mode=RBAC", "--service-cluster-ip-range=10.0.0.0/24",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+p("sa.pub"), "--service-account-signing-key-file="+p("sa.key"),
		"--enable-priority-and-fairness=false", "--endpoint-reconciler-type=none",
		"--disable-admission-plugins=ServiceAccount", "--cert-dir="+filepath.Join(s.dir, "certs"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.t.Fatalf("start kube-apiserver: %v", err)
	}
	logf.Close()
	s.cmd = cmd
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	hc := s.httpClient()
	deadline := time.Now().Add(90 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, s.URL()+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+s.token())
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			s.cmd = nil
			s.t.Fatalf("kube-apiserver exited during start-up; log: %s", s.tail())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("kube-apiserver not ready in 90 s; log: %s", s.tail())
		}
	}
}

// Stop kills the process (SIGKILL) and waits for it to exit. Stopping a stopped server is a no-op.
func (s *APIServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	// Wait runs in Start's goroutine; wait for the port to close instead.
	for i := 0; i < 100; i++ {
		c, err := net.DialTimeout("tcp", s.Addr(), 100*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(50 * time.Millisecond)
	}
	s.cmd = nil
}

// Addr is host:port of the server.
func (s *APIServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// URL is https://host:port.
func (s *APIServer) URL() string { return "https://" + s.Addr() }

// Config returns a client config for the server (valid across restarts).
func (s *APIServer) Config() *rest.Config {
	return &rest.Config{
		Host:            s.URL(),
		BearerToken:     s.token(),
		TLSClientConfig: rest.TLSClientConfig{CAFile: filepath.Join(s.pki, "ca.crt")},
	}
}

// Kubeconfig writes a kubeconfig for the server into the test's temp dir and returns its path.
func (s *APIServer) Kubeconfig() string {
	path := filepath.Join(s.dir, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: private
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: private
  context: {cluster: private, user: admin}
current-context: private
`, s.URL(), filepath.Join(s.pki, "ca.crt"), s.token())
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		s.t.Fatalf("write kubeconfig: %v", err)
	}
	return path
}

func (s *APIServer) token() string {
	b, err := os.ReadFile(filepath.Join(s.pki, "token"))
	if err != nil {
		s.t.Fatalf("read apiserver token: %v", err)
	}
	return strings.TrimSpace(string(b))
}

func (s *APIServer) httpClient() *http.Client {
	pool := x509.NewCertPool()
	if b, err := os.ReadFile(filepath.Join(s.pki, "ca.crt")); err == nil {
		pool.AppendCertsFromPEM(b)
	}
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func (s *APIServer) tail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "kube-apiserver.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
