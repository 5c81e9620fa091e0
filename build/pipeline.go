package build

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"strings"
	"sync"
	"text/template"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/internal/version"
)

// Stage names in pipeline order.
var StageNames = []string{"from", "beforeInstall", "importsBeforeInstall", "dependenciesBeforeInstall", "gitArchive", "install", "importsAfterInstall", "dependenciesAfterInstall",
	"beforeSetup", "importsBeforeSetup", "dependenciesBeforeSetup", "setup", "importsAfterSetup", "dependenciesAfterSetup", "gitLatestPatch", "dockerInstructions", "imageSpec"}

// pipeline returns the non-empty stages of im in pipeline order, one step per stage kind.
// hasFromImage says the image starts from another image's last stage (fromImage).
func (b *builder) pipeline(im *Image, hasFromImage bool) []stageSpec {
	if im.Dockerfile != "" {
		out := []stageSpec{b.dockerfileStage(im)}
		if im.ImageSpec != nil {
			out = append(out, b.imageSpecStage(im, false, true))
		}
		return out
	}
	g := b.gitInputs(im)
	var out []stageSpec
	if !hasFromImage {
		out = append(out, b.fromStage(im))
	} else if im.FromCacheVersion != "" || im.CacheVersion != "" || len(im.Mount) > 0 {
		out = append(out, b.fromImageStage(im))
	}
	shell := func(name string, cmds []string, afterGit bool) {
		if len(cmds) > 0 {
			out = append(out, b.shellStep(im, g, name, cmds, afterGit))
		}
	}
	shell("beforeInstall", im.Shell.BeforeInstall, false)
	out = append(out, b.importSteps(im, "importsBeforeInstall")...)
	out = append(out, b.dependencySteps(im, "dependenciesBeforeInstall")...)
	if g.any() {
		out = append(out, b.gitArchiveStage(g))
	}
	shell("install", im.Shell.Install, true)
	out = append(out, b.importSteps(im, "importsAfterInstall")...)
	out = append(out, b.dependencySteps(im, "dependenciesAfterInstall")...)
	shell("beforeSetup", im.Shell.BeforeSetup, true)
	out = append(out, b.importSteps(im, "importsBeforeSetup")...)
	out = append(out, b.dependencySteps(im, "dependenciesBeforeSetup")...)
	shell("setup", im.Shell.Setup, true)
	out = append(out, b.importSteps(im, "importsAfterSetup")...)
	out = append(out, b.dependencySteps(im, "dependenciesAfterSetup")...)
	if g.any() && !im.DisableGitAfterPatch {
		out = append(out, b.gitLatestPatchStage(g))
	}
	if !im.Docker.Empty() {
		out = append(out, b.dockerInstructionsStage(im, g.any()))
	}
	if im.ImageSpec != nil {
		out = append(out, b.imageSpecStage(im, g.any(), false))
	}
	return out
}

// gitMappings are an image's compiled git mappings. Each mapping's files at HEAD are selected
// once, when a stage first needs them, and shared by the stages of the image.
type gitMappings struct {
	ms    []compiledMapping
	files []func(context.Context) ([]selFile, error) // per mapping
}

// gitInputs compiles the git mappings of im. Mapping paths (add) are paths of the repository
// from its root, whatever directory the config is in, as in werf.
func (b *builder) gitInputs(im *Image) *gitMappings {
	g := &gitMappings{ms: compile(im.Git)}
	for i, m := range g.ms {
		if m.URL != "" {
			rc := b.remotes[remoteRef(m.GitMapping)]
			g.ms[i].remote, g.ms[i].commit = rc.repo, rc.commit
		}
	}
	g.files = make([]func(context.Context) ([]selFile, error), len(g.ms))
	for i, m := range g.ms {
		var once sync.Once
		var files []selFile
		var err error
		g.files[i] = func(ctx context.Context) ([]selFile, error) {
			once.Do(func() {
				var fs []mappingFile
				if fs, err = mappingFiles(ctx, b.git, g.ms[i:i+1], b.head); err != nil {
					return
				}
				files = make([]selFile, len(fs))
				for j, f := range fs {
					rel, _ := relTo(m.Add, f.Path)
					files[j] = selFile{mappingFile: f, rel: rel, segs: strings.Split(rel, "/")}
				}
			})
			return files, err
		}
	}
	return g
}

// any reports whether the image has git mappings.
func (g *gitMappings) any() bool { return len(g.ms) > 0 }

// addDependencies adds to d the files of each mapping matched by its stageDependencies of stage.
func (g *gitMappings) addDependencies(ctx context.Context, d *digester, stage string) error {
	for i, m := range g.ms {
		globs := m.StageDependencies[stage]
		if len(globs) == 0 {
			continue
		}
		files, err := g.files[i](ctx)
		if err != nil {
			return err
		}
		dep := newMatcher(globs)
		d.add("mapping", fmt.Sprint(i))
		for _, f := range files {
			if dep.matchSegs(f.segs) {
				d.add(f.rel, f.Mode, f.Hash)
			}
		}
	}
	return nil
}

// fromStage is the base image im.From, read from its registry. With fromLatest the digest also
// covers the base image's manifest digest, looked up when the digest is formed, and the stage
// is built from exactly that manifest.
func (b *builder) fromStage(im *Image) stageSpec {
	var latest string // the manifest digest fromLatest found
	return stageSpec{name: "from",
		digest: func(ctx context.Context, _ *state) (string, bool, error) {
			d := newDigester("from")
			d.add(im.From, im.FromCacheVersion, b.cfg.CacheVersion)
			if im.FromLatest {
				ref, err := b.o.Registry.ParseReference(im.From)
				if err != nil {
					return "", false, err
				}
				desc, err := remote.Head(ref, b.st.Remote(ctx)...)
				if err != nil {
					return "", false, fmt.Errorf("fromLatest: look up base image %s: %w", im.From, err)
				}
				latest = desc.Digest.String()
				d.add("fromLatest", latest)
			}
			imageFields(d, im)
			return d.sum(), true, nil
		},
		build: func(ctx context.Context, _ *state, _ string) (v1.Image, string, error) {
			ref, err := b.o.Registry.ParseReference(im.From)
			if err != nil {
				return nil, "", err
			}
			if latest != "" {
				if ref, err = b.o.Registry.ParseReference(ref.Context().String() + "@" + latest); err != nil {
					return nil, "", err
				}
			}
			opts := b.st.Remote(ctx)
			if len(im.Platform) == 1 {
				pl, err := v1.ParsePlatform(im.Platform[0])
				if err != nil {
					return nil, "", fmt.Errorf("platform %s: %w", im.Platform[0], err)
				}
				opts = append(opts, remote.WithPlatform(*pl))
			}
			img, err := remote.Image(ref, opts...)
			if err != nil {
				return nil, "", fmt.Errorf("read base image %s: %w", im.From, err)
			}
			if err := basePlatform(img, im); err != nil {
				return nil, "", err
			}
			return img, "", nil
		}}
}

// fromImageStage is the from stage of an image built on another image (fromImage) with a
// cache version: an empty marker stage on top of the other image.
func (b *builder) fromImageStage(im *Image) stageSpec {
	return stageSpec{name: "from",
		digest: func(ctx context.Context, p *state) (string, bool, error) {
			d := newDigester("fromImage")
			d.add(p.digest, im.FromCacheVersion, b.cfg.CacheVersion)
			imageFields(d, im)
			return d.sum(), true, nil
		},
		build: func(ctx context.Context, p *state, _ string) (v1.Image, string, error) {
			img, err := b.parentImage(ctx, p)
			return img, p.commit, err
		}}
}

// shellStep is a user stage (beforeInstall, install, beforeSetup, setup): its commands run in
// a container on the parent stage. Its digest covers the commands, the cache versions and the
// files its stageDependencies select; a stage after gitArchive holds git content.
func (b *builder) shellStep(im *Image, g *gitMappings, name string, cmds []string, afterGit bool) stageSpec {
	return stageSpec{name: name, gitRel: afterGit && g.any(),
		digest: func(ctx context.Context, p *state) (string, bool, error) {
			d := newDigester(name)
			if p != nil {
				d.add(p.digest)
			}
			d.list("commands", cmds)
			d.add(im.Shell.CacheVersion, im.Shell.StageCacheVersion[name], b.cfg.CacheVersion)
			if err := g.addDependencies(ctx, d, name); err != nil {
				return "", false, err
			}
			return d.sum(), true, nil
		},
		build: func(ctx context.Context, p *state, digest string) (v1.Image, string, error) {
			return b.shellStage(ctx, im, g.ms, name, cmds, p, digest)
		}}
}

// gitArchiveStage adds the files of every git mapping at HEAD as one layer, registry-side.
func (b *builder) gitArchiveStage(g *gitMappings) stageSpec {
	return stageSpec{name: "gitArchive", gitRel: true,
		digest: func(ctx context.Context, p *state) (string, bool, error) {
			if err := b.checkAdds(ctx, g.ms); err != nil {
				return "", false, err
			}
			d := newDigester("gitArchive")
			if p != nil {
				d.add(p.digest)
			}
			for _, m := range g.ms {
				gitFields(d, m.GitMapping)
				if m.remote != nil {
					// The commit names the content; the URL and the branch or tag that led
					// to it do not (a mirror or another URL of the same repository gives the
					// same digest).
					d.add("remote", m.commit)
				}
			}
			return d.sum(), true, nil
		},
		build: func(ctx context.Context, p *state, _ string) (v1.Image, string, error) {
			files, err := mappingFiles(ctx, b.git, g.ms, b.head)
			if err != nil {
				return nil, "", err
			}
			img, err := b.appendGitLayer(ctx, p, files, "gitArchive")
			return img, b.head, err
		}}
}

// gitLatestPatchStage adds the mapped files changed between the parent's commit and HEAD as one
// layer, registry-side; it is empty when the parent is at HEAD or nothing mapped changed.
func (b *builder) gitLatestPatchStage(g *gitMappings) stageSpec {
	return stageSpec{name: "gitLatestPatch", gitRel: true,
		digest: func(ctx context.Context, p *state) (string, bool, error) {
			if p == nil || p.commit == "" || p.commit == b.head {
				return "", false, nil
			}
			changes, err := mappingChanges(ctx, b.git, g.ms, p.commit, b.head)
			if err != nil || len(changes) == 0 {
				return "", false, err
			}
			d := newDigester("gitLatestPatch")
			d.add(p.digest)
			for _, c := range changes {
				d.add(c.dest, c.Mode, c.Hash, fmt.Sprint(c.del))
			}
			return d.sum(), true, nil
		},
		build: func(ctx context.Context, p *state, _ string) (v1.Image, string, error) {
			changes, err := mappingChanges(ctx, b.git, g.ms, p.commit, b.head)
			if err != nil {
				return nil, "", err
			}
			img, err := b.appendGitLayer(ctx, p, changes, "gitLatestPatch")
			return img, b.head, err
		}}
}

// dockerInstructionsStage applies the docker: instructions to the parent's image config,
// registry-side (no layer). gitRel: the image has git mappings.
func (b *builder) dockerInstructionsStage(im *Image, gitRel bool) stageSpec {
	return stageSpec{name: "dockerInstructions", gitRel: gitRel,
		digest: func(ctx context.Context, p *state) (string, bool, error) {
			d := newDigester("dockerInstructions")
			d.add(p.digest)
			dockerFields(d, im.Docker)
			return d.sum(), true, nil
		},
		build: func(ctx context.Context, p *state, _ string) (v1.Image, string, error) {
			img, err := b.parentImage(ctx, p)
			if err != nil {
				return nil, "", err
			}
			img, err = applyDocker(img, im.Docker)
			return img, p.commit, err
		}}
}

// appendGitLayer adds the files (with whiteouts for deletions) as one layer on the parent stage,
// registry-side: the parent's layers are neither downloaded nor uploaded again.
func (b *builder) appendGitLayer(ctx context.Context, p *state, files []mappingFile, stage string) (v1.Image, error) {
	parent, err := b.parentImage(ctx, p)
	if err != nil {
		return nil, err
	}
	data, err := gitTar(ctx, b.git, files, true)
	if err != nil {
		return nil, err
	}
	layer, err := layerFromBytes(data)
	if err != nil {
		return nil, err
	}
	return mutate.Append(parent, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: "strata " + stage + " " + b.head, Comment: "strata " + version.String()}})
}

func applyDocker(img v1.Image, d DockerInstructions) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	c := cf.Config.DeepCopy()
	if d.Workdir != "" {
		c.WorkingDir = d.Workdir
	}
	if d.User != "" {
		c.User = d.User
	}
	c.Env = setEnv(c.Env, d.Env)
	if len(d.Label) > 0 && c.Labels == nil {
		c.Labels = map[string]string{}
	}
	for k, v := range d.Label {
		c.Labels[k] = v
	}
	if len(d.Expose) > 0 && c.ExposedPorts == nil {
		c.ExposedPorts = map[string]struct{}{}
	}
	for _, p := range d.Expose {
		c.ExposedPorts[portSpec(p)] = struct{}{}
	}
	if len(d.Volume) > 0 && c.Volumes == nil {
		c.Volumes = map[string]struct{}{}
	}
	for _, v := range d.Volume {
		c.Volumes[path.Clean(v)] = struct{}{}
	}
	if d.Entrypoint != nil {
		c.Entrypoint = d.Entrypoint
		if d.Cmd == nil {
			c.Cmd = nil // as docker does when ENTRYPOINT changes
		}
	}
	if d.Cmd != nil {
		c.Cmd = d.Cmd
	}
	if h := d.Healthcheck; h != nil {
		if c.Healthcheck, err = healthConfig(h, "docker.HEALTHCHECK"); err != nil {
			return nil, err
		}
	}
	return mutate.Config(img, *c)
}

type tagData struct {
	Image, Commit, ShortCommit, Digest, Project, Tag string
}

func expandTag(tmpl string, d tagData) (string, error) {
	t, err := template.New("tag").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", fmt.Errorf("--add-tag %q: %w", tmpl, err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		return "", fmt.Errorf("--add-tag %q: %w", tmpl, err)
	}
	s := buf.String()
	for i, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || (i > 0 && (c == '.' || c == '-'))
		if !ok || len(s) > 128 {
			return "", fmt.Errorf("--add-tag %q gives %q: not a valid tag", tmpl, s)
		}
	}
	if s == "" {
		return "", fmt.Errorf("--add-tag %q gives an empty tag", tmpl)
	}
	return s, nil
}

// portSpec is an exposed port with its protocol (tcp when not given).
func portSpec(p string) string {
	if !strings.Contains(p, "/") {
		return p + "/tcp"
	}
	return p
}

// healthConfig converts a healthcheck; field names it in errors.
func healthConfig(h *Healthcheck, field string) (*v1.HealthConfig, error) {
	hc := &v1.HealthConfig{Test: h.Test, Retries: h.Retries}
	var err error
	if hc.Interval, err = parseDur(h.Interval); err != nil {
		return nil, fmt.Errorf("%s.interval: %w", field, err)
	}
	if hc.Timeout, err = parseDur(h.Timeout); err != nil {
		return nil, fmt.Errorf("%s.timeout: %w", field, err)
	}
	if hc.StartPeriod, err = parseDur(h.StartPeriod); err != nil {
		return nil, fmt.Errorf("%s.startPeriod: %w", field, err)
	}
	return hc, nil
}

func parseDur(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	return time.ParseDuration(s)
}

// selFile is a mapping file with its path relative to the mapping, split in segments.
type selFile struct {
	mappingFile
	rel  string
	segs []string
}
