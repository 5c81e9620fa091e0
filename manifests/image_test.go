package manifests_test

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"strata.dev/strata/internal/testing/gitserver"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/manifests"
)

// Dockerfile.image-updater builds on the local engine from a locally made base (nothing can be
// pulled; gitBaseImage: busybox plus the host's git, standing in for debian:12-slim plus apt's git):
// user 999 (the Deployment's runAsUser), the Deployment's command and args run the updater in it,
// and git write-back's CLI works there as 999: ls-remote, clone and push to a git server on
// 127.0.0.1, with an HTTPS remote helper and no prompts.
func TestImageUpdaterImage(t *testing.T) {
	cli := testenv.Docker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	bin := filepath.Join(t.TempDir(), "strata")
	gobuild := exec.Command("go", "build", "-trimpath", "-o", bin, "../cmd/strata")
	gobuild.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := gobuild.CombinedOutput(); err != nil {
		t.Fatalf("build strata: %v\n%s", err, out)
	}
	dockerfile, err := os.ReadFile("../Dockerfile.image-updater")
	if err != nil {
		t.Fatal(err)
	}
	strata, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	tag := testenv.BuildImageFrom(ctx, t, gitBaseImage(ctx, t), "Dockerfile.image-updater", "image-updater-prebuilt", map[string]testenv.ContextFile{
		"Dockerfile.image-updater": {Data: dockerfile, Mode: 0o644},
		"strata":                   {Data: strata, Mode: 0o755},
	})
	inspect, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	if inspect.Config.User != "999:999" {
		t.Errorf("user %q, want 999:999", inspect.Config.User)
	}
	if got := strings.Join(append(inspect.Config.Entrypoint, inspect.Config.Cmd...), " "); got != "/usr/local/bin/strata image-updater run --listen=:8080" {
		t.Errorf("entrypoint + cmd %q", got)
	}

	// The Deployment's container, as shipped.
	b, err := os.ReadFile(filepath.Join(writeFS(t, "image-updater", manifests.ImageUpdater()), "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var dep appsv1.Deployment
	if err := yaml.UnmarshalStrict(b, &dep); err != nil {
		t.Fatal(err)
	}
	pod := dep.Spec.Template.Spec
	if u := pod.SecurityContext.RunAsUser; u == nil || *u != 999 {
		t.Errorf("Deployment runAsUser %v, want the image's 999", u)
	}
	c := pod.Containers[0]
	cmd := slices.Concat(c.Command, c.Args[:2], []string{"--help"})
	out, code := run(ctx, t, tag, "none", []string{"/bin/sh", "-c", `id -u; exec "$@"`, "sh"}, cmd)
	if code != 0 || !strings.HasPrefix(out, "999\n") || !strings.Contains(out, "--listen") {
		t.Errorf("%v in the image: exit %d, output:\n%s", cmd, code, out)
	}

	// git as the updater runs it: user 999, HOME=/tmp, against a server on 127.0.0.1 (host network).
	srv, err := gitserver.Start(gitserver.Options{})
	if err != nil {
		testenv.Missing(t, "git server", err)
	}
	defer srv.Close()
	repoURL, err := srv.CreateRepo(ctx, "deploy", "main", map[string]string{"values.yaml": "tag: v1\n"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(repoURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(srv.Username, srv.Password)
	const script = `set -e
id -u
echo "HOME=$HOME PROMPT=$GIT_TERMINAL_PROMPT"
git --version
echo "safe=$(git config --system --get safe.directory)"
git ls-remote "$1" refs/heads/main
git clone -q "$1" /tmp/work
cd /tmp/work
echo 'tag: v2' > values.yaml
git -c user.name=updater -c user.email=updater@localhost commit -q -am 'pushed from the image'
git push -q origin HEAD:main
if git ls-remote https://127.0.0.1:9/none.git 2>/tmp/err; then echo "https ls-remote succeeded"; exit 1; fi
echo "https ls-remote:"; cat /tmp/err
`
	out, code = run(ctx, t, tag, "host", []string{"/bin/sh", "-c", script, "sh"}, []string{u.String()})
	if code != 0 {
		t.Fatalf("git in the image: exit %d, output:\n%s", code, out)
	}
	for _, want := range []string{"999\n", "HOME=/tmp PROMPT=0\n", "git version ", "safe=*\n", "\trefs/heads/main\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("git in the image: output lacks %q:\n%s", want, out)
		}
	}
	// https reached the (closed) port: the HTTPS helper exists and ran.
	if _, https, _ := strings.Cut(out, "https ls-remote:"); strings.Contains(https, "remote helper") || !strings.Contains(https, "127.0.0.1") {
		t.Errorf("git ls-remote https in the image did not run the HTTPS helper:\n%s", out)
	}
	t.Logf("git in the image:\n%s", out)
	if got, err := srv.File(ctx, "deploy", "main", "values.yaml"); err != nil || got != "tag: v2\n" {
		t.Errorf("after the push from the image values.yaml = %q, %v; want tag: v2", got, err)
	}
	if log, err := srv.Log(ctx, "deploy", "main"); err != nil || len(log) != 2 || !strings.HasSuffix(log[0], "updater: pushed from the image") {
		t.Errorf("log after the push from the image: %q, %v", log, err)
	}
}

// gitBaseImage builds, once per test, the local stand-in for the updater's production base
// (debian:12-slim with apt's git): the busybox base plus the host's git, its exec-path copy, the
// HTTP(S) remote helper and the shared libraries both load (their ldd closure). The Dockerfile's
// runtime stage sees git and installs nothing.
func gitBaseImage(ctx context.Context, t *testing.T) string {
	t.Helper()
	gitBin, err := exec.LookPath("git")
	if err != nil {
		testenv.Missing(t, "git CLI", err)
	}
	if gitBin, err = filepath.EvalSymlinks(gitBin); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(gitBin, "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v", err)
	}
	execPath := strings.TrimSpace(string(out))
	helper := filepath.Join(execPath, "git-remote-http")
	// path in the image → file on the host
	files := map[string]string{
		"/usr/bin/git":                 gitBin,
		execPath + "/git":              gitBin,
		helper:                         helper,
		execPath + "/git-remote-https": helper,
	}
	for _, bin := range []string{gitBin, helper} {
		out, err := exec.Command("ldd", bin).Output()
		if err != nil {
			t.Fatalf("ldd %s: %v", bin, err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			switch {
			case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
				files[f[2]] = f[2]
			case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
				files[f[0]] = f[0]
			}
		}
	}
	ctxFiles := map[string]testenv.ContextFile{
		"Dockerfile": {Data: []byte("ARG BASE_IMAGE\nFROM ${BASE_IMAGE} AS gitbase\nCOPY rootfs/ /\n"), Mode: 0o644},
	}
	for dst, src := range files {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		ctxFiles["rootfs"+dst] = testenv.ContextFile{Data: data, Mode: 0o755}
	}
	return testenv.BuildImage(ctx, t, "Dockerfile", "gitbase", ctxFiles)
}

// run runs entrypoint with args in a container of img with network ("none", or "host" to reach
// servers on 127.0.0.1; never Docker's bridge) and returns its output and exit code.
func run(ctx context.Context, t *testing.T, img string, network container.NetworkMode, entrypoint, args []string) (string, int64) {
	t.Helper()
	cli := testenv.Docker(t)
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: img, Entrypoint: entrypoint, Cmd: args},
		&container.HostConfig{NetworkMode: network}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	var code int64
	waitC, errC := cli.ContainerWait(ctx, c.ID, container.WaitConditionNotRunning)
	select {
	case r := <-waitC:
		code = r.StatusCode
	case err := <-errC:
		t.Fatal(err)
	}
	logs, err := cli.ContainerLogs(ctx, c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, logs); err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}
