package manifests_test

import (
	"bytes"
	"context"
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

	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/manifests"
)

// Dockerfile.image-updater builds on the local engine from a locally made base (nothing can be
// pulled): user 999 (the Deployment's runAsUser), and the Deployment's command and args run the
// updater in it.
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
	tag := testenv.BuildImage(ctx, t, "Dockerfile.image-updater", "image-updater-prebuilt", map[string]testenv.ContextFile{
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
	out, code := run(ctx, t, tag, []string{"/bin/sh", "-c", `id -u; exec "$@"`, "sh"}, cmd)
	if code != 0 || !strings.HasPrefix(out, "999\n") || !strings.Contains(out, "--listen") {
		t.Errorf("%v in the image: exit %d, output:\n%s", cmd, code, out)
	}
}

// run runs entrypoint with args in a container of img without network and returns its output
// and exit code.
func run(ctx context.Context, t *testing.T, img string, entrypoint, args []string) (string, int64) {
	t.Helper()
	cli := testenv.Docker(t)
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: img, Entrypoint: entrypoint, Cmd: args},
		&container.HostConfig{NetworkMode: "none"}, nil, nil, "")
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
