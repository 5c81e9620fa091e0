package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	dockerregistry "github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/api/types/strslice"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"strata.dev/strata/internal/version"
	"strata.dev/strata/stages"
)

// readyEngine returns the engine client after checking it answers.
func (b *builder) readyEngine(ctx context.Context, why string) (*client.Client, error) {
	cli, err := b.engine()
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx); err != nil {
		return nil, fmt.Errorf("%s needs a Docker engine, none reachable at %s (set DOCKER_HOST): %w", why, cli.DaemonHost(), err)
	}
	return cli, nil
}

func (b *builder) registryAuth(ref string) string {
	r, err := b.o.Registry.ParseReference(ref)
	if err != nil {
		return ""
	}
	kc := b.o.Registry.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	a, err := kc.Resolve(r.Context())
	if err != nil {
		return ""
	}
	cfg, err := a.Authorization()
	if err != nil || cfg == nil || (cfg.Username == "" && cfg.IdentityToken == "" && cfg.RegistryToken == "") {
		return ""
	}
	s, _ := dockerregistry.EncodeAuthConfig(dockerregistry.AuthConfig{Username: cfg.Username, Password: cfg.Password,
		IdentityToken: cfg.IdentityToken, RegistryToken: cfg.RegistryToken, ServerAddress: r.Context().RegistryStr()})
	return s
}

// ensureImage makes ref present in the engine, pulling it only if missing.
func (b *builder) ensureImage(ctx context.Context, cli *client.Client, ref string) error {
	if _, err := cli.ImageInspect(ctx, ref); err == nil {
		return nil
	} else if !client.IsErrNotFound(err) {
		return fmt.Errorf("inspect %s in the engine: %w", ref, err)
	}
	rc, err := cli.ImagePull(ctx, ref, image.PullOptions{RegistryAuth: b.registryAuth(ref)})
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	defer rc.Close()
	if err := jsonmessage.DisplayJSONMessagesStream(rc, io.Discard, 0, false, nil); err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	return nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// shellStage runs the stage's commands in a container on the parent stage, commits it and
// appends only the new layer to the parent stage registry-side.
func (b *builder) shellStage(ctx context.Context, im *Image, ms []compiledMapping, name string, cmds []string, p *state, digest string) (v1.Image, string, error) {
	cli, err := b.readyEngine(ctx, fmt.Sprintf("shell stage %s of image %s", name, im.Name))
	if err != nil {
		return nil, "", err
	}
	if err := b.checkPlatform(ctx, cli, im); err != nil {
		return nil, "", err
	}
	run, err := b.runOptions(im)
	if err != nil {
		return nil, "", err
	}
	if err := p.stored(ctx); err != nil {
		return nil, "", err
	}
	parentRef := b.st.Ref(p.tag).String()
	if err := b.ensureImage(ctx, cli, parentRef); err != nil {
		return nil, "", err
	}
	script, sync, commit, err := b.shellScript(ctx, ms, p, cmds)
	if err != nil {
		return nil, "", err
	}
	layer, err := b.runShell(ctx, cli, parentRef, script, sync, digest, run)
	if err != nil {
		return nil, "", err
	}
	parent, err := b.parentImage(ctx, p)
	if err != nil {
		return nil, "", err
	}
	img, err := mutate.Append(parent, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: "strata " + name + ": " + strings.Join(cmds, "; "), Comment: "strata " + version.String()}})
	return img, commit, err
}

// shellScript returns the script of a shell stage on p: when p's git content is older than
// HEAD, it first brings the mapped files up to HEAD (deletions in the script, the other changes
// in sync, a tar to copy into the container), so commands see current content; commit is then
// HEAD, else p's commit.
func (b *builder) shellScript(ctx context.Context, ms []compiledMapping, p *state, cmds []string) (script string, sync []byte, commit string, err error) {
	commit = p.commit
	var sb strings.Builder
	if len(ms) > 0 && p.commit != "" && p.commit != b.head {
		changes, err := mappingChanges(ctx, b.git, ms, p.commit, b.head)
		if err != nil {
			return "", nil, "", err
		}
		var keep []mappingFile
		for _, c := range changes {
			if c.del {
				sb.WriteString("rm -rf -- " + shellQuote(c.dest) + "\n")
			} else {
				keep = append(keep, c)
			}
		}
		if len(keep) > 0 {
			if sync, err = gitTar(ctx, b.git, keep, false); err != nil {
				return "", nil, "", err
			}
		}
		commit = b.head
	}
	for _, c := range cmds {
		sb.WriteString(c + "\n")
	}
	return sb.String(), sync, commit, nil
}

// runShell runs script in a container of parentRef (sync, when set, copied into it first) with
// the network and mounts of run, and returns the layer the commands added, without the mount
// points; the container and its committed image are removed.
func (b *builder) runShell(ctx context.Context, cli *client.Client, parentRef, script string, sync []byte, digest string, run runOpts) (v1.Layer, error) {
	return b.runContainerWith(ctx, cli, &container.Config{Image: parentRef, User: "0:0", Entrypoint: strslice.StrSlice{"/bin/sh", "-ec", script}}, sync, digest, run)
}

// runContainer runs a container of cfg (sync, when set, copied into it first) on the build's
// network and returns the layer its command added; the container, its volumes and its committed
// image are removed.
func (b *builder) runContainer(ctx context.Context, cli *client.Client, cfg *container.Config, sync []byte, digest string) (v1.Layer, error) {
	return b.runContainerWith(ctx, cli, cfg, sync, digest, runOpts{network: b.o.Network})
}

// runContainerWith is runContainer with the network and mounts of run; the layer leaves out the
// mount points.
func (b *builder) runContainerWith(ctx context.Context, cli *client.Client, cfg *container.Config, sync []byte, digest string, run runOpts) (v1.Layer, error) {
	cfg.Labels = map[string]string{stages.LabelProject: b.cfg.Project, stages.LabelDigest: digest, labelBuilder: builderID()}
	cr, err := cli.ContainerCreate(ctx, cfg, &container.HostConfig{NetworkMode: container.NetworkMode(run.network), Mounts: run.mounts}, nil, nil, "")
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	defer cli.ContainerRemove(context.WithoutCancel(ctx), cr.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if sync != nil {
		if err := cli.CopyToContainer(ctx, cr.ID, "/", bytes.NewReader(sync), container.CopyToContainerOptions{}); err != nil {
			return nil, fmt.Errorf("copy git changes into the container: %w", err)
		}
	}
	waitC, errC := cli.ContainerWait(ctx, cr.ID, container.WaitConditionNextExit)
	if err := cli.ContainerStart(ctx, cr.ID, container.StartOptions{}); err != nil {
		return nil, fmt.Errorf("start container: %w", err)
	}
	var tail tailBuffer
	if logs, err := cli.ContainerLogs(ctx, cr.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: true}); err == nil {
		w := io.MultiWriter(b.o.Output, &tail)
		stdcopy.StdCopy(w, w, logs)
		logs.Close()
	}
	select {
	case res := <-waitC:
		if res.StatusCode != 0 {
			return nil, fmt.Errorf("commands exited with status %d; last output:\n%s", res.StatusCode, tail.String())
		}
	case err := <-errC:
		return nil, fmt.Errorf("wait for container: %w", err)
	}
	cm, err := cli.ContainerCommit(ctx, cr.ID, container.CommitOptions{})
	if err != nil {
		return nil, fmt.Errorf("commit container: %w", err)
	}
	defer cli.ImageRemove(context.WithoutCancel(ctx), cm.ID, image.RemoveOptions{PruneChildren: true})
	return b.topLayer(ctx, cli, cm.ID, run.hide)
}

// topLayer reads the top layer of an engine image (the one a container commit added) into
// memory, without the entries of the mount points hide: the saved image file goes away when
// it returns.
func (b *builder) topLayer(ctx context.Context, cli *client.Client, id string, hide []string) (v1.Layer, error) {
	saved, cleanup, err := b.saveImage(ctx, cli, id)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	layers, err := saved.Layers()
	if err != nil || len(layers) == 0 {
		return nil, fmt.Errorf("read committed layers: %v", err)
	}
	rc, err := layers[len(layers)-1].Uncompressed()
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("read committed layer: %w", err)
	}
	if data, err = hideMounts(data, hide); err != nil {
		return nil, err
	}
	return layerFromBytes(data)
}

// saveImage exports an engine image (docker save) to a temporary file and opens it.
func (b *builder) saveImage(ctx context.Context, cli *client.Client, id string) (v1.Image, func(), error) {
	rc, err := cli.ImageSave(ctx, []string{id})
	if err != nil {
		return nil, nil, fmt.Errorf("save image %s: %w", id, err)
	}
	defer rc.Close()
	f, err := os.CreateTemp("", "strata-save-*.tar")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.Remove(f.Name()) }
	_, err = io.Copy(f, rc)
	f.Close()
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("save image %s: %w", id, err)
	}
	img, err := tarball.ImageFromPath(f.Name(), nil)
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("read saved image %s: %w", id, err)
	}
	return img, cleanup, nil
}

type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}
func (t *tailBuffer) String() string { return string(t.b) }

// materialize copies an image's layers into memory so it outlives its source file.
func materialize(img v1.Image) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	var adds []mutate.Addendum
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		nl, err := layerFromBytes(data)
		if err != nil {
			return nil, err
		}
		adds = append(adds, mutate.Addendum{Layer: nl, History: v1.History{Created: cf.Created, CreatedBy: "docker build"}})
	}
	base, err := mutate.ConfigFile(emptyImage(), &v1.ConfigFile{Architecture: cf.Architecture, OS: cf.OS, Variant: cf.Variant, Config: cf.Config, Created: cf.Created})
	if err != nil {
		return nil, err
	}
	return mutate.Append(base, adds...)
}

// labelBuilder marks a shell-stage container with the strata process that runs it, "HOST PID
// START" (START: the process's start time, so that a reused PID is told apart). The process
// removes its container when the stage ends; a process killed meanwhile cannot, and the next
// build on the same host that uses the engine removes the containers whose process is gone
// (an exited container would also keep its parent image from host cleanup).
const labelBuilder = "dev.strata.builder"

// builderID is this process's labelBuilder value.
func builderID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s %d %s", host, os.Getpid(), processStart(os.Getpid()))
}

// processStart is the start time of process pid (field 22 of /proc/PID/stat, in clock ticks
// since boot), "" where /proc is not readable.
func processStart(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// the command (field 2) is in parentheses and may hold spaces: count after the last ')'
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 20 {
		return ""
	}
	return fields[19]
}

// builderGone reports whether the process a labelBuilder value names ran on this host and is
// gone.
func builderGone(id string) bool {
	f := strings.Fields(id)
	host, _ := os.Hostname()
	if len(f) < 2 || f[0] != host {
		return false
	}
	pid, err := strconv.Atoi(f[1])
	if err != nil || pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	return len(f) == 3 && processStart(pid) != "" && processStart(pid) != f[2]
}

// removeStaleContainers removes the shell-stage containers left by strata processes of this
// host that are gone (killed before their cleanup ran). Failures are logged: they never fail
// the build.
func (b *builder) removeStaleContainers(cli *client.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", labelBuilder))})
	if err != nil {
		b.o.Log.Debug("list containers of earlier builds", "error", err)
		return
	}
	for _, c := range list {
		if !builderGone(c.Labels[labelBuilder]) {
			continue
		}
		if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil {
			b.o.Log.Warn("remove the container of a build that was killed", "container", c.ID[:12], "error", err)
			continue
		}
		b.o.Log.Info("removed the container of a build that was killed", "container", c.ID[:12], "project", c.Labels[stages.LabelProject], "builder", c.Labels[labelBuilder])
	}
}
