package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// script runs scripts/testenv.sh with its state in dir and extra environment.
func script(t *testing.T, dir string, env []string, args ...string) (stderr string, code int) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "root (scripts/testenv.sh runs as root)", errors.New("not root"))
	}
	cmd := exec.Command(filepath.Join(RepoRoot(), "scripts", "testenv.sh"), args...)
	cmd.Env = append(os.Environ(), append([]string{"STRATA_TESTENV_DIR=" + dir}, env...)...)
	var e strings.Builder
	cmd.Stderr = &e
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return e.String(), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return e.String(), 0
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("testenv.sh %v did not finish; stderr:\n%s", args, e.String())
	}
	return "", -1
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// A port held by another process stops `up` before it starts anything, naming port and holder.
func TestScriptRefusesBusyPort(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().(*net.TCPAddr).Port
	stderr, code := script(t, dir, []string{
		fmt.Sprintf("STRATA_TESTENV_REGISTRY_PORT=%d", busy),
		fmt.Sprintf("STRATA_TESTENV_ETCD_PORT=%d", freePort(t)),
		fmt.Sprintf("STRATA_TESTENV_APISERVER_PORT=%d", freePort(t)),
	}, "up")
	if code == 0 {
		t.Fatalf("up succeeded with port %d busy:\n%s", busy, stderr)
	}
	if want := fmt.Sprintf("port 127.0.0.1:%d (for registry) is already in use", busy); !strings.Contains(stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr)
	}
	// Nothing was started: no PID file names a live process.
	pids, _ := filepath.Glob(filepath.Join(dir, "run", "*.pid"))
	for _, p := range pids {
		b, _ := os.ReadFile(p)
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err == nil && syscall.Kill(pid, 0) == nil {
			t.Errorf("%s names live process %d after a failed up", p, pid)
		}
	}
}

// `down` stops only processes started from its own state directory: a PID file naming some
// other process leaves that process alone. `env` on a stopped environment says how to start it.
func TestScriptDownLeavesForeignProcesses(t *testing.T) {
	dir := t.TempDir()
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Process.Kill(); _ = other.Wait() }()
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"dockerd", "registry", "etcd", "kube-apiserver"} {
		if err := os.WriteFile(filepath.Join(dir, "run", name+".pid"), []byte(fmt.Sprint(other.Process.Pid)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if stderr, code := script(t, dir, nil, "down"); code != 0 {
		t.Fatalf("down: exit %d\n%s", code, stderr)
	}
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("down killed a process it did not start: %v", err)
	}
	stderr, code := script(t, dir, nil, "env")
	if code == 0 || !strings.Contains(stderr, "scripts/testenv.sh up") {
		t.Errorf("env on a stopped environment: exit %d, stderr %q", code, stderr)
	}
}

// Under CI=true a missing server fails the test; elsewhere it skips with the command to run.
func TestMissingFailsUnderCIAndSkipsElsewhere(t *testing.T) {
	if os.Getenv("STRATA_TESTENV_MISSING_HELPER") == "1" {
		missing(t, "the imaginary server", errors.New("connection refused"))
		return
	}
	for ci, want := range map[string]string{"true": "--- FAIL: TestMissingFailsUnderCIAndSkipsElsewhere", "": "--- SKIP: TestMissingFailsUnderCIAndSkipsElsewhere"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMissingFailsUnderCIAndSkipsElsewhere$", "-test.v")
		cmd.Env = append(os.Environ(), "STRATA_TESTENV_MISSING_HELPER=1", "CI="+ci)
		out, err := cmd.CombinedOutput()
		if !strings.Contains(string(out), want) || !strings.Contains(string(out), UpCommand) {
			t.Errorf("CI=%q: want %q and the command to run (err %v):\n%s", ci, want, err, out)
		}
		if (ci == "true") == (err == nil) {
			t.Errorf("CI=%q: exit error %v", ci, err)
		}
	}
}

// `down` leaves nothing mounted under its state directory: dockerd's bind mount of its network
// namespace (docker-exec/netns/default) outlives dockerd, and with it `rm -rf` of the tree fails
// with "Device or resource busy". The mount is made here the way dockerd makes it.
func TestScriptDownLeavesNothingMounted(t *testing.T) {
	dir := t.TempDir()
	netns := filepath.Join(dir, "docker-exec", "netns", "default")
	if err := os.MkdirAll(filepath.Dir(netns), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(netns, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		missing(t, "root (bind mounts)", errors.New("not root"))
	}
	if err := syscall.Mount("/proc/self/ns/net", netns, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind-mounting a network namespace like dockerd: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(netns, syscall.MNT_DETACH) })
	if got := mountsUnder(t, dir); len(got) != 1 {
		t.Fatalf("mounts under %s before down: %v, want the netns bind mount", dir, got)
	}
	if stderr, code := script(t, dir, nil, "down"); code != 0 {
		t.Fatalf("down: exit %d\n%s", code, stderr)
	}
	if got := mountsUnder(t, dir); len(got) != 0 {
		t.Errorf("still mounted after down: %v", got)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Errorf("removing the state dir after down: %v", err)
	}
}

// mountsUnder lists the mount points at or below dir (from /proc/self/mountinfo).
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var under []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == real || strings.HasPrefix(f[4], real+"/")) {
			under = append(under, f[4])
		}
	}
	return under
}
