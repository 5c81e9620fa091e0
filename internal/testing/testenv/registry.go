package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// StartRegistry starts a distribution registry of the test's own (the test environment's
// docker-registry binary) on a free port of 127.0.0.1, with extra YAML appended to its config
// (auth:, notifications:, ...), stops it when the test ends and returns its host:port.
func StartRegistry(t testing.TB, extra string) string {
	t.Helper()
	Registry(t) // the binary comes with the test environment
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		if bin, err = exec.LookPath("registry"); err != nil {
			t.Fatalf("no distribution binary (docker-registry) found: %v", err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	conf := fmt.Sprintf(`version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: %s}
  delete: {enabled: true}
http: {addr: %s, secret: strata-test}
%s`, filepath.Join(dir, "data"), addr, extra)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	logf, _ := os.Create(filepath.Join(dir, "registry.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized, nil
	}); err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
		t.Fatalf("own registry did not start: %s", b)
	}
	return addr
}
