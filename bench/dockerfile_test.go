package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"strata.dev/strata/build"
	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/testing/strataproc"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// noEngine is a Docker host nobody listens on: a build that needs the engine fails.
const noEngine = "unix:///nonexistent/strata-bench-no-engine.sock"

// BenchmarkDockerfileReuse measures, in the same run, a one-file change in the sources of the
// stapel image of a two-image project (one stapel image, one Dockerfile image whose context is
// the whole repository): `strata build` with no engine reachable (the Dockerfile image must be
// reused, the stapel image gets its change registry-side) against `docker pull` + `docker
// build --cache-from` of both images on a runner without them. It reports both times and
// their ratio (speedup-x: the strata binary as a process; speedup-in-process-x: build.Run).
func BenchmarkDockerfileReuse(b *testing.B) {
	host := testenv.DockerHost(b)
	base := testenv.BaseImage(b)
	repo := testenv.Repo(b, "bench-dockerfile")
	dir := b.TempDir()
	write(b, filepath.Join(dir, "strata.yaml"), fmt.Sprintf(`project: benchdf
configVersion: 1
---
image: api
from: %s
git:
- add: /api
  to: /app
  stageDependencies:
    install: [deps.txt]
shell:
  install:
  - cat /app/deps.txt > /installed
docker:
  WORKDIR: /app
  CMD: [cat, /app/main.txt]
---
image: web
dockerfile: web/Dockerfile
context: .
`, base))
	write(b, filepath.Join(dir, "api/main.txt"), "main 0")
	write(b, filepath.Join(dir, "api/deps.txt"), "deps")
	// The stapel image as a Dockerfile, for the docker baseline.
	write(b, filepath.Join(dir, "api/Dockerfile"), fmt.Sprintf("FROM %s\nCOPY deps.txt /app/deps.txt\nRUN cat /app/deps.txt > /installed\nCOPY . /app/\nWORKDIR /app\nCMD [\"cat\", \"/app/main.txt\"]\n", base))
	write(b, filepath.Join(dir, "web/Dockerfile"), fmt.Sprintf("FROM %s\nCOPY web/deps.txt /web/deps.txt\nRUN cat /web/deps.txt > /installed\nCOPY web/ /web/\nWORKDIR /web\nCMD [\"cat\", \"/web/index.html\"]\n", base))
	write(b, filepath.Join(dir, "web/deps.txt"), "web deps")
	write(b, filepath.Join(dir, "web/index.html"), "<p>web</p>")
	gitRun(b, dir, "init", "-q")
	gitRun(b, dir, "add", "-A")
	gitRun(b, dir, "commit", "-q", "-m", "bench")
	change := 0
	commit := func() {
		change++
		write(b, filepath.Join(dir, "api/main.txt"), fmt.Sprintf("main %d", change))
		gitRun(b, dir, "commit", "-q", "-am", fmt.Sprint("change ", change))
	}

	ctx := context.Background()
	locker := &lock.File{Dir: b.TempDir()}
	first, err := build.Run(ctx, build.Options{Dir: dir, Repo: repo, Locker: locker, DockerHost: host})
	if err != nil {
		b.Fatal(err)
	}
	webTag := first.Image("web").Stages[0].Tag
	dockerRefs := map[string]string{"api": repo + "-docker-api:latest", "web": repo + "-docker-web:latest"}
	contexts := map[string][]string{"api": {filepath.Join(dir, "api"), "."}, "web": {dir, "-f", "web/Dockerfile", "."}}
	for name, ref := range dockerRefs {
		docker(b, host, contexts[name][0], append([]string{"build", "-q", "-t", ref}, contexts[name][1:]...)...)
		docker(b, host, dir, "push", "-q", ref)
	}
	b.Cleanup(func() {
		for _, r := range dockerRefs {
			exec.Command("docker", "-H", host, "rmi", "-f", r).Run()
		}
	})

	bin := strataproc.Binary(b)
	home := b.TempDir()
	cli := func() {
		c := exec.Command(bin, "build", "--repo", repo, "-q")
		c.Dir = dir
		c.Env = append(os.Environ(), "DOCKER_HOST="+noEngine, "STRATA_HOME="+home)
		if out, err := c.CombinedOutput(); err != nil {
			b.Fatalf("strata build without an engine after a stapel source change: %v\n%s", err, out)
		}
	}
	// check: the last build stored everything, and the Dockerfile image is the first one.
	check := func() {
		rep, err := build.Run(ctx, build.Options{Dir: dir, Repo: repo, Locker: locker, DockerHost: noEngine})
		if err != nil {
			b.Fatal(err)
		}
		for _, im := range rep.Images {
			for _, s := range im.Stages {
				if s.Status != stages.StatusReused {
					b.Fatalf("after the build, %s/%s is %s", im.Name, s.Name, s.Status)
				}
			}
		}
		if tag := rep.Image("web").Stages[0].Tag; tag != webTag {
			b.Fatalf("Dockerfile image rebuilt: %s, first %s", tag, webTag)
		}
	}
	commit()
	cli() // the binary's first run may warm caches of its own (lock dir)

	var strataTime, cliTime, dockerTime time.Duration
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		commit()
		b.StartTimer()
		start := time.Now()
		cli()
		cliTime += time.Since(start)
		b.StopTimer()
		check()
		commit()
		b.StartTimer()

		start = time.Now()
		if _, err := build.Run(ctx, build.Options{Dir: dir, Repo: repo, Locker: locker, DockerHost: noEngine}); err != nil {
			b.Fatal(err)
		}
		strataTime += time.Since(start)

		b.StopTimer()
		check()
		for _, r := range dockerRefs {
			docker(b, host, dir, "rmi", "-f", r)
		}
		b.StartTimer()
		start = time.Now()
		for name, ref := range dockerRefs {
			docker(b, host, dir, "pull", "-q", ref)
			docker(b, host, contexts[name][0], append([]string{"build", "-q", "--cache-from", ref, "-t", ref}, contexts[name][1:]...)...)
		}
		dockerTime += time.Since(start)
	}
	b.StopTimer()
	s := float64(strataTime.Milliseconds()) / float64(b.N)
	c := float64(cliTime.Milliseconds()) / float64(b.N)
	d := float64(dockerTime.Milliseconds()) / float64(b.N)
	b.ReportMetric(s, "strata-ms/op")
	b.ReportMetric(c, "strata-cli-ms/op")
	b.ReportMetric(d, "docker-ms/op")
	b.ReportMetric(d/c, "speedup-x")
	b.ReportMetric(d/s, "speedup-in-process-x")
	b.Logf("one-file change in the stapel image of a stapel + Dockerfile project: strata build (process, no engine) %.0f ms, build.Run %.0f ms, docker pull + build --cache-from of both %.0f ms: %.1fx (in process %.1fx); the Dockerfile image stayed %s",
		c, s, d, d/c, d/s, webTag)
}
