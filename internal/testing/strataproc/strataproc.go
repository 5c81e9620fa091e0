package strataproc

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"strata.dev/strata/internal/testing/testenv"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary returns the path of cmd/strata, built once per test process as it ships
// (Dockerfile.sidecar, make build): static, no cgo, no symbol table.
func Binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "strata-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "strata")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", binPath, "strata.dev/strata/cmd/strata")
		cmd.Dir = testenv.RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build cmd/strata: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// StartSyncServer runs `bin sync-server` with args on a free port of 127.0.0.1, clients' bearer
// token token (STRATA_TOKEN), until the test ends, and returns its host:port once it listens.
func StartSyncServer(t testing.TB, bin, token string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"sync-server", "--listen", "127.0.0.1:0", "--log-format", "json"}, args...)...)
	cmd.Env = append(os.Environ(), "STRATA_TOKEN="+token)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec struct {
				Address string `json:"address"`
			}
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Address != "" {
				select {
				case found <- rec.Address:
				default:
				}
			}
		}
	}()
	select {
	case a := <-found:
		return a
	case <-time.After(20 * time.Second):
		t.Fatal("strata sync-server did not report its address in 20 s")
	}
	return ""
}

// Project writes a one-image project (from base; shell stages beforeInstall, then install
// sleeping installSeconds) into a fresh git repository and returns its directory. A marker
// unique to each call gives every project its own stage digests: every build of it is cold.
func Project(t testing.TB, project, base string, installSeconds int) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`project: %s
configVersion: 1
---
image: app
from: %s
shell:
  beforeInstall:
  - echo %s > /marker
  install:
  - sleep %d
  - echo installed > /installed
`, project, base, testenv.UniqueName(t, "marker"), installSeconds)
	if err := os.WriteFile(filepath.Join(dir, "strata.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"init", "-q"}, {"add", "strata.yaml"},
		{"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "init"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dir
}
