package build

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
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

	cmd, cli, id := startSlowBuild(t, host, bin, g.dir, repo, project)
	ctx := context.Background()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
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

// A `strata build` killed (SIGKILL) while a shell stage runs leaves its secrets directory
// behind ($TMPDIR/strata-build-*: its deferred removal never runs); the next build of this
// user on this host removes it. Directories of live builders, of other hosts and without an
// owner file are left alone.
func TestKilledBuildSecretsAreRemovedNextTime(t *testing.T) {
	host := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	bin := strataproc.Binary(t)
	repo := testenv.Repo(t, "killedsecrets")
	project := testenv.UniqueName(t, "killedsecrets")
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	t.Setenv("STRATA_TEST_KILLED_SECRET", "s3cr3t")
	g := newGitRepo(t)
	cfg := func(cmd string) string {
		return "project: " + project + "\nconfigVersion: 1\n---\nimage: app\nfrom: " + base +
			"\nsecrets:\n- env: STRATA_TEST_KILLED_SECRET\nshell:\n  install:\n  - " + cmd + "\n"
	}
	g.commit("slow", map[string]string{"strata.yaml": cfg("sleep 60")})

	cmd, _, _ := startSlowBuild(t, host, bin, g.dir, repo, project)
	ctx := context.Background()
	left, _ := filepath.Glob(filepath.Join(tmp, "strata-build-*", "secrets", "*", "STRATA_TEST_KILLED_SECRET"))
	if len(left) != 1 {
		t.Fatalf("secret files of the running build: %v, want one", left)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if _, err := os.Stat(left[0]); err != nil {
		t.Fatalf("the killed build's secret is already gone (%v): the test proves nothing", err)
	}
	killedDir := filepath.Dir(filepath.Dir(filepath.Dir(left[0])))

	// the directories of a live builder, of another host and without an owner file stay
	keep := map[string]string{"live": builderID(), "other-host": "another-host 999999999 1", "no-owner": ""}
	for name, owner := range keep {
		d := filepath.Join(tmp, "strata-build-"+name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if owner != "" {
			if err := os.WriteFile(filepath.Join(d, "builder"), []byte(owner), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}

	g.commit("quick", map[string]string{"strata.yaml": cfg("test -s /run/secrets/STRATA_TEST_KILLED_SECRET")})
	if _, err := Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: registry.Options{}, Locker: fileLocker(t), DockerHost: host}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(killedDir); !os.IsNotExist(err) {
		t.Errorf("the killed build's directory %s is still there after the next build: %v", killedDir, err)
	}
	for name := range keep {
		if _, err := os.Stat(filepath.Join(tmp, "strata-build-"+name)); err != nil {
			t.Errorf("directory strata-build-%s was removed: %v", name, err)
		}
	}
	if rest, _ := filepath.Glob(filepath.Join(tmp, "strata-build-*")); len(rest) != len(keep) {
		t.Errorf("build directories after the next build: %v, want only the %d kept ones", rest, len(keep))
	}
}

// startSlowBuild starts `strata build` of the project in dir (a slow shell stage committed) as
// a process and returns once the stage's container runs: the process, a client of the engine
// and the container's ID. The process is killed, and the project's containers removed, when the
// test ends.
func startSlowBuild(t *testing.T, host, bin, dir, repo, project string) (*exec.Cmd, *client.Client, string) {
	t.Helper()
	cmd := exec.Command(bin, "build", "--dir", dir, "--repo", repo, "--synchronization", ":local", "-q")
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+host, "STRATA_HOME="+t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	cli, err := client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	mine := filters.NewArgs(filters.Arg("label", stages.LabelProject+"="+project))
	t.Cleanup(func() {
		list, _ := cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: mine})
		for _, c := range list {
			cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
		}
	})
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		list, err := cli.ContainerList(context.Background(), container.ListOptions{Filters: mine})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) > 0 {
			return cmd, cli, list[0].ID
		}
	}
	t.Fatal("the build's shell-stage container did not start within a minute")
	return nil, nil, ""
}
