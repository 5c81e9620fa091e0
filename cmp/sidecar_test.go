package cmp_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/manifests"
)

// Dockerfile.sidecar builds on the local engine from a locally made base (nothing can be pulled):
// user 999, Argo CD's CMP server entrypoint, plugin.yaml where the server reads it, a strata that
// runs as that user.
func TestSidecarImage(t *testing.T) {
	cli := testenv.Docker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	root := testenv.RepoRoot()
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile.sidecar"))
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(strataBin)
	if err != nil {
		t.Fatal(err)
	}
	tag := testenv.BuildImage(ctx, t, "Dockerfile.sidecar", "sidecar-prebuilt", map[string]testenv.ContextFile{
		"Dockerfile.sidecar":           {Data: dockerfile, Mode: 0o644},
		"manifests/argocd/plugin.yaml": {Data: manifests.PluginConfig(), Mode: 0o644},
		"strata":                       {Data: bin, Mode: 0o755},
	})
	inspect, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	if inspect.Config.User != "999:999" {
		t.Errorf("user %q, want 999:999", inspect.Config.User)
	}
	if got := strings.Join(inspect.Config.Entrypoint, " "); got != "/var/run/argocd/argocd-cmp-server" {
		t.Errorf("entrypoint %q", got)
	}

	// Inside: the user, the plugin config where the CMP server reads it, and strata cmp generate
	// rendering a bundle the way the CMP server runs it (cwd = the extracted bundle, Argo CD's env).
	bundleDir := writeBundle(t, map[string]string{"deployment.yaml": deployment})
	out := runIn(ctx, t, tag, bundleDir, "/tmp/app", `id -u
cat /home/argocd/cmp-server/config/plugin.yaml
echo '--- generate'
cd /tmp/app
ARGOCD_APP_NAME=shop ARGOCD_APP_NAMESPACE=prod strata cmp generate`)
	if !strings.HasPrefix(out, "999\n") {
		t.Errorf("runs as %q, want uid 999", strings.SplitN(out, "\n", 2)[0])
	}
	if !strings.Contains(out, string(manifests.PluginConfig())) {
		t.Errorf("plugin.yaml in the image differs from manifests/argocd/plugin.yaml:\n%s", out)
	}
	_, rendered, _ := strings.Cut(out, "--- generate\n")
	var docs []string
	for _, d := range strings.Split("\n"+rendered, "\n---\n") {
		if strings.TrimSpace(d) != "" {
			docs = append(docs, d)
		}
	}
	objs := decode(t, docs)
	if len(objs) != 1 || objs[0].Kind != "Deployment" || objs[0].Metadata.Name != "shop-web" || objs[0].Metadata.Namespace != "prod" {
		t.Fatalf("strata cmp generate inside the sidecar printed:\n%s", rendered)
	}
	if got := objs[0].Metadata.Annotations["strata.dev/commit"]; got != commit {
		t.Errorf("strata.dev/commit = %q, want %s", got, commit)
	}
}

// runIn runs script in a container of img (no network), with the directory src copied to dst
// (owned by the sidecar's user), and returns its stdout.
func runIn(ctx context.Context, t *testing.T, img, src, dst, script string) string {
	t.Helper()
	cli := testenv.Docker(t)
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: img, Entrypoint: []string{"/bin/sh", "-ec", script}},
		&container.HostConfig{NetworkMode: "none"}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
	if err := cli.CopyToContainer(ctx, c.ID, "/", tarDir(t, src, strings.TrimPrefix(dst, "/")), container.CopyToContainerOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	waitC, errC := cli.ContainerWait(ctx, c.ID, container.WaitConditionNotRunning)
	select {
	case <-waitC:
	case err := <-errC:
		t.Fatal(err)
	}
	logs, err := cli.ContainerLogs(ctx, c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, logs); err != nil {
		t.Fatal(err)
	}
	if stderr.Len() > 0 {
		t.Logf("stderr: %s", stderr.String())
	}
	return stdout.String()
}

// tarDir archives the files under dir with names under prefix, owned by uid/gid 999.
func tarDir(t *testing.T, dir, prefix string) io.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		name := filepath.ToSlash(filepath.Join(prefix, rel))
		if d.IsDir() {
			return tw.WriteHeader(&tar.Header{Name: name + "/", Mode: 0o755, Typeflag: tar.TypeDir, Uid: 999, Gid: 999})
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg, Uid: 999, Gid: 999}); err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	return &buf
}
