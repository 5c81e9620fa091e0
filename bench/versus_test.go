package bench

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"strata.dev/strata/build"
	"strata.dev/strata/internal/testing/strataproc"
	"strata.dev/strata/stages"
)

// dockerBaseline is the docker side of a benchmark: images built from their contexts and pushed
// once; each round, on a runner without them, `docker pull` + `docker build --cache-from` of
// every image.
type dockerBaseline struct {
	host  string
	dir   string        // where docker runs when no context says otherwise
	refs  []string      // image references in the registry
	ctxs  [][]string    // per image: the directory docker build runs in, then its arguments
	total time.Duration // the timed part of every round
}

// newDockerBaseline builds and pushes every image and removes them from the engine when the
// benchmark ends.
func newDockerBaseline(b *testing.B, host, dir string, refs []string, ctxs [][]string) *dockerBaseline {
	b.Helper()
	d := &dockerBaseline{host: host, dir: dir, refs: refs, ctxs: ctxs}
	for i, ref := range refs {
		docker(b, host, ctxs[i][0], append([]string{"build", "-q", "-t", ref}, ctxs[i][1:]...)...)
		docker(b, host, dir, "push", "-q", ref)
	}
	b.Cleanup(func() {
		for _, r := range refs {
			exec.Command("docker", "-H", host, "rmi", "-f", r).Run()
		}
	})
	return d
}

// round removes the images (untimed), then pulls and rebuilds each with --cache-from (timed, and
// added to d.total).
func (d *dockerBaseline) round(b *testing.B) {
	b.Helper()
	b.StopTimer()
	for _, r := range d.refs {
		docker(b, d.host, d.dir, "rmi", "-f", r)
	}
	b.StartTimer()
	start := time.Now()
	for i, r := range d.refs {
		docker(b, d.host, d.dir, "pull", "-q", r)
		docker(b, d.host, d.ctxs[i][0], append([]string{"build", "-q", "--cache-from", r, "-t", r}, d.ctxs[i][1:]...)...)
	}
	d.total += time.Since(start)
}

// strataCLI returns a function running `strata build --repo repo -q` in dir as a user runs it
// (the binary, process start included) with the engine at dockerHost, and the time it took.
func strataCLI(b *testing.B, dir, repo, dockerHost string) func() time.Duration {
	bin := strataproc.Binary(b)
	home := b.TempDir()
	return func() time.Duration {
		b.Helper()
		c := exec.Command(bin, "build", "--repo", repo, "-q")
		c.Dir = dir
		c.Env = append(os.Environ(), "DOCKER_HOST="+dockerHost, "STRATA_HOME="+home)
		start := time.Now()
		if out, err := c.CombinedOutput(); err != nil {
			b.Fatalf("strata build (engine %s): %v\n%s", dockerHost, err, out)
		}
		return time.Since(start)
	}
}

// inTurns runs first and second, first first on even iterations n and second first on odd
// ones: the one measured right after the docker round meets the registry and the disk still
// busy with its writes (it was always the process, 80-240 ms slower for it).
func inTurns(n int, first, second func()) {
	if n%2 == 0 {
		first()
		second()
	} else {
		second()
		first()
	}
}

// idleRun runs build.Run with o, fails the benchmark unless every stage was reused, and
// returns how long the build took.
func idleRun(b *testing.B, ctx context.Context, o build.Options) time.Duration {
	b.Helper()
	start := time.Now()
	rep, err := build.Run(ctx, o)
	if err != nil {
		b.Fatal(err)
	}
	took := time.Since(start)
	for _, im := range rep.Images {
		for _, s := range im.Stages {
			if s.Status != stages.StatusReused {
				b.Fatalf("idle rebuild built %s/%s", im.Name, s.Name)
			}
		}
	}
	return took
}

// reportVersus reports per-iteration milliseconds of the strata binary (cli), build.Run in
// process and docker, and their ratios (speedup-x: the binary; speedup-in-process-x), with the
// load average of the machine in the log line.
func reportVersus(b *testing.B, what string, cli, inProcess, dockerTime time.Duration) {
	n := float64(b.N)
	c := float64(cli.Microseconds()) / 1000 / n
	s := float64(inProcess.Microseconds()) / 1000 / n
	d := float64(dockerTime.Microseconds()) / 1000 / n
	b.ReportMetric(s, "strata-ms/op")
	b.ReportMetric(c, "strata-cli-ms/op")
	b.ReportMetric(d, "docker-ms/op")
	b.ReportMetric(d/c, "speedup-x")
	b.ReportMetric(d/s, "speedup-in-process-x")
	b.Logf("%s: strata build (process) %.0f ms, build.Run %.1f ms, docker pull + build --cache-from %.0f ms: %.1fx (in process %.1fx); load %s",
		what, c, s, d, d/c, d/s, loadavg())
}

// loadavg is the machine's load average (1, 5, 15 min), to read the numbers with.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
