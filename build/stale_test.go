package build

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/strataproc"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// A `strata build` killed (SIGKILL) while a shell stage runs leaves its container behind (its
// deferred removal never runs); the next build on this host that uses the engine removes it.
// Containers of live builders are left alone.
func TestKilledBuildContainerIsRemovedNextTime(t *testing.T) {
	host := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	bin := strataproc.Binary(t)
	repo := testenv.Repo(t, "killed")
	project := testenv.UniqueName(t, "killed")
	g := newGitRepo(t)
	cfg := func(cmd string) string {
		return "project: " + project + "\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\nshell:\n  install:\n  - " + cmd + "\n"
	}
	g.commit("slow", map[string]string{"strata.yaml": cfg("sleep 60")})

	cmd := exec.Command(bin, "build", "--dir", g.dir, "--repo", repo, "--synchronization", ":local", "-q")
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+host, "STRATA_HOME="+t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	cli, err := client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mine := filters.NewArgs(filters.Arg("label", stages.LabelProject+"="+project))
	var id string
	for deadline := time.Now().Add(time.Minute); id == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: mine})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) > 0 && list[0].State == "running" {
			id = list[0].ID
		}
	}
	if id == "" {
		t.Fatal("the build's shell-stage container did not start within a minute")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	t.Cleanup(func() { cli.ContainerRemove(context.Background(), id, container.RemoveOptions{Force: true}) })
	ci, err := cli.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatalf("the killed build's container is already gone (%v): the test proves nothing", err)
	}
	if !builderGone(ci.Config.Labels[labelBuilder]) {
		t.Fatalf("the killed build's container is labelled %q: not taken for one whose builder is gone", ci.Config.Labels[labelBuilder])
	}

	g.commit("quick", map[string]string{"strata.yaml": cfg("true")})
	if _, err := Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: registry.Options{}, Locker: fileLocker(t), DockerHost: host}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ContainerInspect(ctx, id); !client.IsErrNotFound(err) {
		t.Errorf("the killed build's container %s is still there after the next build: %v", id[:12], err)
	}

	// the labels of live builders and of other hosts are never taken for stale ones
	hostname, _ := os.Hostname()
	for id, gone := range map[string]bool{
		builderID():                              false,
		"another-host 999999999 1":               false,
		hostname + " 999999999 1":                true,
		hostname + " 1 " + processStart(1) + "0": true, // PID 1 started at another time: reused
		hostname + " " + "junk":                  false,
	} {
		if got := builderGone(id); got != gone {
			t.Errorf("builderGone(%q) = %v, want %v", id, got, gone)
		}
	}
}
