package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/build"
	"strata.dev/strata/internal/git"
	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

const stagedImages = 3

// BenchmarkStagedSourceChange measures, in the same run, a one-file source change in a project
// of three staged Dockerfile images of the usual layout (dependencies installed by a RUN making
// a ~1 MB layer, then `COPY . .`): `strata build` with no engine reachable (the RUN stages are
// reused, the late COPY stages of the changed image are rebuilt registry-side) against `docker
// pull` + `docker build --cache-from` of the three images on a runner without them. It reports
// both times and their ratio (speedup-x: the strata binary as a process; speedup-in-process-x:
// build.Run).
func BenchmarkStagedSourceChange(b *testing.B) {
	host := testenv.DockerHost(b)
	base := testenv.BaseImage(b)
	repo := testenv.Repo(b, "bench-staged")
	dir := b.TempDir()
	cfg := "project: benchstaged\nconfigVersion: 1\n"
	refs := make([]string, stagedImages)
	ctxs := make([][]string, stagedImages)
	for i := 0; i < stagedImages; i++ {
		cfg += fmt.Sprintf("---\nimage: svc%[1]d\ndockerfile: Dockerfile\ncontext: svc%[1]d\nstaged: true\n", i)
		write(b, filepath.Join(dir, fmt.Sprintf("svc%d/Dockerfile", i)), fmt.Sprintf(`FROM %s
WORKDIR /app
COPY deps.txt .
RUN dd if=/dev/urandom of=/deps.bin bs=1024 count=1024 2>/dev/null && cat deps.txt > /installed
COPY . .
ENV MODE=prod
CMD ["cat", "/app/main.txt"]
`, base))
		write(b, filepath.Join(dir, fmt.Sprintf("svc%d/.dockerignore", i)), "Dockerfile\n")
		write(b, filepath.Join(dir, fmt.Sprintf("svc%d/deps.txt", i)), fmt.Sprintf("deps %d", i))
		write(b, filepath.Join(dir, fmt.Sprintf("svc%d/main.txt", i)), fmt.Sprintf("main %d", i))
		for j := 0; j < 20; j++ {
			write(b, filepath.Join(dir, fmt.Sprintf("svc%d/src/f%d.txt", i, j)), strings.Repeat(fmt.Sprintf("line %d %d\n", i, j), 50))
		}
		refs[i] = fmt.Sprintf("%s-docker-%d:latest", repo, i)
		ctxs[i] = []string{filepath.Join(dir, fmt.Sprintf("svc%d", i)), "."}
	}
	write(b, filepath.Join(dir, "strata.yaml"), cfg)
	gitRun(b, dir, "init", "-q")
	gitRun(b, dir, "add", "-A")
	gitRun(b, dir, "commit", "-q", "-m", "bench")
	change := 0
	commit := func() {
		change++
		write(b, filepath.Join(dir, "svc0/main.txt"), fmt.Sprintf("main %d", change))
		gitRun(b, dir, "commit", "-q", "-am", fmt.Sprint("change ", change))
	}

	ctx := context.Background()
	o := build.Options{Dir: dir, Repo: repo, Locker: &lock.File{Dir: b.TempDir()}, DockerHost: host}
	first, err := build.Run(ctx, o)
	if err != nil {
		b.Fatal(err)
	}
	runTags := map[string]string{}
	for _, im := range first.Images {
		for _, s := range im.Stages {
			if strings.HasSuffix(s.Name, " RUN") {
				runTags[im.Name] = s.Tag
			}
		}
	}
	if len(runTags) != stagedImages {
		b.Fatalf("RUN stages %v", runTags)
	}
	dockerSide := newDockerBaseline(b, host, dir, refs, ctxs)
	o.DockerHost = noEngine
	cli := strataCLI(b, dir, repo, noEngine)
	// check: the RUN stages were never rebuilt, and the last build stored everything.
	check := func() {
		rep, err := build.Run(ctx, o)
		if err != nil {
			b.Fatal(err)
		}
		for _, im := range rep.Images {
			for _, s := range im.Stages {
				if s.Status != stages.StatusReused {
					b.Fatalf("after the build, %s/%s is %s", im.Name, s.Name, s.Status)
				}
				if strings.HasSuffix(s.Name, " RUN") && s.Tag != runTags[im.Name] {
					b.Fatalf("RUN stage of %s rebuilt: %s, first %s", im.Name, s.Tag, runTags[im.Name])
				}
			}
		}
	}
	commit()
	cli()

	var strataTime, cliTime time.Duration
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
		if _, err := build.Run(ctx, o); err != nil {
			b.Fatal(err)
		}
		strataTime += time.Since(start)
		b.StopTimer()
		check()
		b.StartTimer()
	}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		inTurns(n, process, inProcess)
		dockerSide.round(b)
	}
	b.StopTimer()
	reportVersus(b, fmt.Sprintf("one-file source change in a project of %d staged Dockerfile images (no engine for strata)", stagedImages), cliTime, strataTime, dockerSide.total)
}

// idleFloor is what an idle rebuild cannot avoid, measured in this process: open HEAD, list
// the files of its tree (git objects) and list the tags of the stages storage once.
func idleFloor(b *testing.B, dir, repo string) time.Duration {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	r, head, err := git.OpenHead(ctx, dir)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := r.Files(ctx, head); err != nil {
		b.Fatal(err)
	}
	ref, err := name.NewRepository(repo)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := remote.List(ref); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkIdleTwoImages measures, in the same run, an idle `strata build` of a two-image
// project — one stapel image, one staged Dockerfile image — against `docker pull` + `docker
// build --cache-from` of both on a runner without them (target >= 20x), and the floor: a
// process that only reads git (HEAD, its file list) and lists the tags once (floor-ms/op).
func BenchmarkIdleTwoImages(b *testing.B) {
	host := testenv.DockerHost(b)
	base := testenv.BaseImage(b)
	repo := testenv.Repo(b, "bench-idle2")
	dir := b.TempDir()
	write(b, filepath.Join(dir, "strata.yaml"), fmt.Sprintf(`project: benchidle2
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
dockerfile: Dockerfile
context: web
staged: true
`, base))
	write(b, filepath.Join(dir, "api/main.txt"), "main")
	write(b, filepath.Join(dir, "api/deps.txt"), "deps")
	write(b, filepath.Join(dir, "api/Dockerfile"), fmt.Sprintf("FROM %s\nCOPY deps.txt /app/deps.txt\nRUN cat /app/deps.txt > /installed\nCOPY . /app/\nWORKDIR /app\nCMD [\"cat\", \"/app/main.txt\"]\n", base))
	write(b, filepath.Join(dir, "web/Dockerfile"), fmt.Sprintf("FROM %s\nWORKDIR /web\nCOPY deps.txt .\nRUN cat deps.txt > /installed\nCOPY . .\nCMD [\"cat\", \"/web/index.html\"]\n", base))
	write(b, filepath.Join(dir, "web/deps.txt"), "web deps")
	write(b, filepath.Join(dir, "web/index.html"), "<p>web</p>")
	gitRun(b, dir, "init", "-q")
	gitRun(b, dir, "add", "-A")
	gitRun(b, dir, "commit", "-q", "-m", "bench")

	ctx := context.Background()
	o := build.Options{Dir: dir, Repo: repo, Locker: &lock.File{Dir: b.TempDir()}, DockerHost: host}
	if _, err := build.Run(ctx, o); err != nil {
		b.Fatal(err)
	}
	dockerSide := newDockerBaseline(b, host, dir, []string{repo + "-docker-api:latest", repo + "-docker-web:latest"},
		[][]string{{filepath.Join(dir, "api"), "."}, {filepath.Join(dir, "web"), "."}})
	o.DockerHost = noEngine
	cli := strataCLI(b, dir, repo, noEngine)
	cli()

	var strataTime, cliTime, floorTime time.Duration
	b.ResetTimer()
	inProcess := func() { strataTime += idleRun(b, ctx, o) }
	for n := 0; n < b.N; n++ {
		inTurns(n, func() { cliTime += cli() }, inProcess)
		floorTime += idleFloor(b, dir, repo)
		dockerSide.round(b)
	}
	b.StopTimer()
	f := float64(floorTime.Microseconds()) / 1000 / float64(b.N)
	b.ReportMetric(f, "floor-ms/op")
	reportVersus(b, fmt.Sprintf("idle rebuild of a stapel + staged Dockerfile project (floor: git HEAD + file list + one tags listing, in process, %.1f ms)", f), cliTime, strataTime, dockerSide.total)
}
