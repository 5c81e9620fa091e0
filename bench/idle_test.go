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
	"strata.dev/strata/internal/testing/testenv"
)

const images = 5

func gitRun(b *testing.B, dir string, args ...string) {
	b.Helper()
	c := exec.Command("git", append([]string{"-c", "user.name=b", "-c", "user.email=b@b"}, args...)...)
	c.Dir = dir
	if out, err := c.CombinedOutput(); err != nil {
		b.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func docker(b *testing.B, host, dir string, args ...string) {
	b.Helper()
	c := exec.Command("docker", args...)
	c.Dir = dir
	c.Env = append(os.Environ(), "DOCKER_HOST="+host, "DOCKER_BUILDKIT=0")
	if out, err := c.CombinedOutput(); err != nil {
		b.Fatalf("docker %v: %v\n%s", args, err, out)
	}
}

func write(b *testing.B, p, s string) {
	b.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkIdleRebuild measures, in the same run, an idle `strata build` of five images (every
// stage stored) and the equivalent docker workflow on a runner without the images: `docker
// pull` + `docker build --cache-from` of each image. It reports both times and their ratio
// (speedup-x: the strata binary as a process, start-up included, like the docker CLI runs;
// speedup-in-process-x: build.Run called in this process).
func BenchmarkIdleRebuild(b *testing.B) {
	host := testenv.DockerHost(b)
	base := testenv.BaseImage(b)
	repo := testenv.Repo(b, "bench")
	dir := b.TempDir()
	cfg := "project: bench\nconfigVersion: 1\n"
	for i := 0; i < images; i++ {
		write(b, filepath.Join(dir, fmt.Sprintf("img%d/main.txt", i)), fmt.Sprintf("main %d", i))
		write(b, filepath.Join(dir, fmt.Sprintf("img%d/deps.txt", i)), fmt.Sprintf("deps %d", i))
		cfg += fmt.Sprintf(`---
image: img%[1]d
from: %[2]s
git:
- add: /img%[1]d
  to: /app
  stageDependencies:
    install: [deps.txt]
shell:
  install:
  - cat /app/deps.txt > /installed
docker:
  WORKDIR: /app
  ENV: {MODE: prod}
  CMD: [cat, /app/main.txt]
`, i, base)
		write(b, filepath.Join(dir, fmt.Sprintf("img%d/Dockerfile", i)), fmt.Sprintf(`FROM %s
COPY . /app/
RUN cat /app/deps.txt > /installed
WORKDIR /app
ENV MODE=prod
CMD ["cat", "/app/main.txt"]
`, base))
	}
	write(b, filepath.Join(dir, "strata.yaml"), cfg)
	gitRun(b, dir, "init", "-q")
	gitRun(b, dir, "add", "-A")
	gitRun(b, dir, "commit", "-q", "-m", "bench")

	ctx := context.Background()
	o := build.Options{Dir: dir, Repo: repo, Locker: &lock.File{Dir: b.TempDir()}, DockerHost: host}
	if _, err := build.Run(ctx, o); err != nil {
		b.Fatal(err)
	}
	refs := make([]string, images)
	ctxs := make([][]string, images)
	for i := range refs {
		refs[i] = fmt.Sprintf("%s-docker-%d:latest", repo, i)
		ctxs[i] = []string{filepath.Join(dir, fmt.Sprintf("img%d", i)), "."}
	}
	dockerSide := newDockerBaseline(b, host, dir, refs, ctxs)
	// The same idle rebuild as a user runs it: the strata binary, process start-up included.
	cli := strataCLI(b, dir, repo, host)
	cli() // the binary's first run may warm caches of its own (lock dir)

	var strataTime, cliTime time.Duration
	b.ResetTimer()
	inProcess := func() { strataTime += idleRun(b, ctx, o) }
	for n := 0; n < b.N; n++ {
		inTurns(n, func() { cliTime += cli() }, inProcess)
		dockerSide.round(b)
	}
	b.StopTimer()
	reportVersus(b, fmt.Sprintf("idle rebuild of %d images", images), cliTime, strataTime, dockerSide.total)
}
