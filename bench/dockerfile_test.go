package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"strata.dev/strata/build"
	"strata.dev/strata/internal/lock"
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
	dockerSide := newDockerBaseline(b, host, dir, []string{repo + "-docker-api:latest", repo + "-docker-web:latest"},
		[][]string{{filepath.Join(dir, "api"), "."}, {dir, "-f", "web/Dockerfile", "."}})
	cli := strataCLI(b, dir, repo, noEngine)
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

	var strataTime, cliTime time.Duration
	b.ResetTimer()
	process := func() {
		b.StopTimer()
		commit()
		b.StartTimer()
		cliTime += cli()
		b.StopTimer()
		check()
		b.StartTimer()
	}
	inProcess := func() {
		b.StopTimer()
		commit()
		b.StartTimer()
		start := time.Now()
		if _, err := build.Run(ctx, build.Options{Dir: dir, Repo: repo, Locker: locker, DockerHost: noEngine}); err != nil {
			b.Fatal(err)
		}
		strataTime += time.Since(start)
		b.StopTimer()
		check()
		b.StartTimer()
	}
	for n := 0; n < b.N; n++ {
		inTurns(n, process, inProcess)
		dockerSide.round(b)
	}
	b.StopTimer()
	reportVersus(b, "one-file change in the stapel image of a stapel + Dockerfile project (the Dockerfile image stays "+webTag+")", cliTime, strataTime, dockerSide.total)
}
