package build

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
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

	"strata.dev/strata/internal/git"
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
	parentRef := b.st.Ref(p.tag).String()
	if err := b.ensureImage(ctx, cli, parentRef); err != nil {
		return nil, "", err
	}
	script, sync, commit, err := b.shellScript(ctx, ms, p, cmds)
	if err != nil {
		return nil, "", err
	}
	layer, err := b.runShell(ctx, cli, parentRef, script, sync, digest)
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

// runShell runs script in a container of parentRef (sync, when set, copied into it first) and
// returns the layer the commands added; the container and its committed image are removed.
func (b *builder) runShell(ctx context.Context, cli *client.Client, parentRef, script string, sync []byte, digest string) (v1.Layer, error) {
	cr, err := cli.ContainerCreate(ctx, &container.Config{
		Image: parentRef, User: "0:0", Entrypoint: strslice.StrSlice{"/bin/sh", "-ec", script},
		Labels: map[string]string{stages.LabelProject: b.cfg.Project, stages.LabelDigest: digest},
	}, &container.HostConfig{NetworkMode: container.NetworkMode(b.o.Network)}, nil, nil, "")
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	defer cli.ContainerRemove(context.WithoutCancel(ctx), cr.ID, container.RemoveOptions{Force: true})
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
	return b.topLayer(ctx, cli, cm.ID)
}

// topLayer reads the top layer of an engine image (the one a container commit added) into
// memory: the saved image file goes away when it returns.
func (b *builder) topLayer(ctx context.Context, cli *client.Client, id string) (v1.Layer, error) {
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

// dockerfileInputs are the git inputs of a Dockerfile image.
type dockerfileInputs struct {
	contextDir string // repository path of the context ("" = root)
	dockerfile []byte
	dfRel      string // Dockerfile path inside the build context tar
	ignore     []byte
	files      []mappingFile
}

func (b *builder) readBlob(ctx context.Context, files []git.File, p string) ([]byte, bool, error) {
	for _, f := range files {
		if f.Path == p {
			var out []byte
			err := b.git.Blobs(ctx, []string{f.Hash}, func(_ string, d []byte) error { out = d; return nil })
			return out, true, err
		}
	}
	return nil, false, nil
}

func (b *builder) dockerfileInputs(ctx context.Context, im *Image) (*dockerfileInputs, error) {
	files, err := b.git.Files(ctx, b.head)
	if err != nil {
		return nil, err
	}
	// context is relative to the project directory (the config's); dockerfile is relative to
	// context, as in werf, Docker, Compose and Bake.
	in := &dockerfileInputs{}
	if c := path.Join(b.cfgDir, im.Context); c != "." {
		in.contextDir = c
	}
	dfPath := path.Join(b.cfgDir, im.Context, im.Dockerfile)
	if rel, ok := relTo(b.cfgDir, dfPath); !ok || rel == ".." || strings.HasPrefix(rel, "../") || strings.HasPrefix(dfPath, "../") {
		return nil, fmt.Errorf("dockerfile %s: %s is outside the project directory", im.Dockerfile, dfPath)
	}
	df, ok, err := b.readBlob(ctx, files, dfPath)
	if err != nil {
		return nil, err
	}
	if !ok {
		if in.contextDir != "" && !hasDir(files, in.contextDir) {
			return nil, fmt.Errorf("context %s: no directory %s in commit %s", im.Context, in.contextDir, shortDigest(b.head))
		}
		return nil, fmt.Errorf("dockerfile %s: %s is not in commit %s (dockerfile is relative to context %q)", im.Dockerfile, dfPath, shortDigest(b.head), im.Context)
	}
	in.dockerfile = df
	ignPath := path.Join(in.contextDir, ".dockerignore")
	if in.ignore, _, err = b.readBlob(ctx, files, ignPath); err != nil {
		return nil, err
	}
	ign := parseDockerignore(string(in.ignore))
	for _, f := range files {
		if f.Mode == "160000" {
			continue
		}
		rel, ok := relTo(in.contextDir, f.Path)
		if !ok || ign.ignored(rel) {
			continue
		}
		in.files = append(in.files, mappingFile{File: f, dest: "/" + rel})
	}
	if rel, ok := relTo(in.contextDir, dfPath); ok {
		in.dfRel = rel
	} else {
		in.dfRel = ".strata.Dockerfile"
	}
	return in, nil
}

func (b *builder) dockerfileStage(im *Image) stageSpec {
	var inputs *dockerfileInputs
	return stageSpec{name: "dockerfile",
		digest: func(ctx context.Context, _ *state) (string, bool, error) {
			in, err := b.dockerfileInputs(ctx, im)
			if err != nil {
				return "", false, err
			}
			inputs = in
			d := newDigester("dockerfile")
			d.add(b.cfg.CacheVersion, string(in.dockerfile), im.Target, string(in.ignore), in.dfRel)
			d.dict("args", im.Args)
			for _, f := range in.files {
				d.add(f.dest, f.Mode, f.Hash)
			}
			return d.sum(), true, nil
		},
		build: func(ctx context.Context, _ *state, digest string) (v1.Image, string, error) {
			cli, err := b.readyEngine(ctx, "Dockerfile image "+im.Name)
			if err != nil {
				return nil, "", err
			}
			files := inputs.files
			if inputs.dfRel == ".strata.Dockerfile" {
				files = append(append([]mappingFile(nil), files...), mappingFile{File: git.File{Path: path.Join(b.cfgDir, im.Context, im.Dockerfile), Mode: "100644"}, dest: "/.strata.Dockerfile"})
				for i, f := range files {
					if f.dest == "/.strata.Dockerfile" {
						h, err := b.blobHash(ctx, path.Join(b.cfgDir, im.Context, im.Dockerfile))
						if err != nil {
							return nil, "", err
						}
						files[i].Hash = h
					}
				}
			}
			tarData, err := gitTar(ctx, b.git, files, false)
			if err != nil {
				return nil, "", err
			}
			args := map[string]*string{}
			for k, v := range im.Args {
				args[k] = &v
			}
			resp, err := cli.ImageBuild(ctx, bytes.NewReader(tarData), build.ImageBuildOptions{
				Dockerfile: inputs.dfRel, BuildArgs: args, Target: im.Target, NetworkMode: b.o.Network,
				Remove: true, ForceRemove: true, Labels: map[string]string{stages.LabelProject: b.cfg.Project, stages.LabelDigest: digest},
			})
			if err != nil {
				return nil, "", fmt.Errorf("docker build: %w", err)
			}
			defer resp.Body.Close()
			var id string
			err = jsonmessage.DisplayJSONMessagesStream(resp.Body, b.o.Output, 0, false, func(m jsonmessage.JSONMessage) {
				var aux struct{ ID string }
				if m.Aux != nil && json.Unmarshal(*m.Aux, &aux) == nil && aux.ID != "" {
					id = aux.ID
				}
			})
			if err != nil {
				return nil, "", fmt.Errorf("docker build: %w", err)
			}
			if id == "" {
				return nil, "", fmt.Errorf("docker build: no image id in the response")
			}
			defer cli.ImageRemove(context.WithoutCancel(ctx), id, image.RemoveOptions{PruneChildren: true})
			saved, cleanup, err := b.saveImage(ctx, cli, id)
			if err != nil {
				return nil, "", err
			}
			// Load fully before the saved file goes away.
			defer cleanup()
			img, err := materialize(saved)
			return img, "", err
		}}
}

// hasDir reports whether some file of the listing is under repository directory dir.
func hasDir(files []git.File, dir string) bool {
	for _, f := range files {
		if strings.HasPrefix(f.Path, dir+"/") {
			return true
		}
	}
	return false
}

func (b *builder) blobHash(ctx context.Context, p string) (string, error) {
	files, err := b.git.Files(ctx, b.head)
	if err != nil {
		return "", err
	}
	for _, f := range files {
		if f.Path == p {
			return f.Hash, nil
		}
	}
	return "", fmt.Errorf("%s: not in commit %s", p, shortDigest(b.head))
}

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
