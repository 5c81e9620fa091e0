package procstat

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Stat is what the launcher measured of one run.
type Stat struct {
	Wall, CPU time.Duration
	RSSKiB    int64
}

// Run runs c (a command through the launcher: Launcher(tb), then the program and its
// arguments) and returns its stdout and what the launcher measured of the program, also when
// the program fails (then with an error holding its stderr).
func Run(c *exec.Cmd) ([]byte, Stat, error) {
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	runErr := c.Run()
	var s Stat
	last := stderr.String()[strings.LastIndex(strings.TrimSuffix(stderr.String(), "\n"), "\n")+1:]
	if _, err := fmt.Sscanf(last, "launch: %d ns %d cpu-ns %d KiB", &s.Wall, &s.CPU, &s.RSSKiB); err != nil {
		return nil, Stat{}, fmt.Errorf("%s: launcher output %q: %w (%v)\n%s", strings.Join(c.Args[1:], " "), last, err, runErr, stderr.String())
	}
	if runErr != nil {
		return stdout.Bytes(), s, fmt.Errorf("%s: %w\n%s", strings.Join(c.Args[1:], " "), runErr, stderr.String())
	}
	return stdout.Bytes(), s, nil
}

// launcherSource runs a program and reports its wall time, CPU time and peak RSS on stderr.
// Benchmarks measure through it because Go starts children with vfork: a child's maxrss would
// include the RSS of the large benchmark process it was started from, not only its own.
const launcherSource = `package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

func main() {
	c := exec.Command(os.Args[1], os.Args[2:]...)
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	start := time.Now()
	err := c.Run()
	d := time.Since(start)
	if c.ProcessState == nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	cpu := c.ProcessState.UserTime() + c.ProcessState.SystemTime()
	fmt.Fprintf(os.Stderr, "launch: %d ns %d cpu-ns %d KiB\n", d.Nanoseconds(), cpu.Nanoseconds(), c.ProcessState.SysUsage().(*syscall.Rusage).Maxrss)
	os.Exit(c.ProcessState.ExitCode())
}
`

// Launcher builds the launcher and returns its path.
func Launcher(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	for name, body := range map[string]string{"go.mod": "module launch\n\ngo 1.21\n", "main.go": launcherSource} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	c := exec.Command("go", "build", "-o", "launch", ".")
	c.Dir, c.Env = dir, append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=")
	if out, err := c.CombinedOutput(); err != nil {
		tb.Fatalf("build launcher: %v\n%s", err, out)
	}
	return filepath.Join(dir, "launch")
}
