package build

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/strslice"
	"github.com/docker/go-connections/nat"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"

	"strata.dev/strata/internal/version"
)

// stagedVersion is the kind of every staged Dockerfile stage digest.
const stagedVersion = "dockerfile-staged-v1"

// defaultPath is the PATH the Docker builder gives a stage whose base image sets none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// stagedPlan is a Dockerfile parsed for a staged build (staged: true): every instruction of the
// target stage and of the stages it needs becomes a stage of its own.
type stagedPlan struct {
	file   string // repository path of the Dockerfile, for messages
	escape rune
	lex    *shell.Lex
	stages []instructions.Stage
	byName map[string]int
	meta   dfEnv
	args   map[string]string // build args
	target int
}

// planStaged parses a Dockerfile for a staged build. why is set, naming the file and line,
// when it uses a construct the staged build does not do (the image is then built as one stage
// through the engine); err is a Dockerfile the parser refuses.
func planStaged(df []byte, file, target string, args map[string]string) (p *stagedPlan, why string, err error) {
	res, err := parser.Parse(bytes.NewReader(df))
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", file, err)
	}
	stageList, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", file, err)
	}
	if len(stageList) == 0 {
		return nil, "", fmt.Errorf("%s: no FROM instruction", file)
	}
	p = &stagedPlan{file: file, escape: res.EscapeToken, lex: shell.NewLex(res.EscapeToken), stages: stageList,
		byName: map[string]int{}, meta: dfEnv{}, args: args, target: len(stageList) - 1}
	if syntax, _, _, ok := parser.DetectSyntax(df); ok && !officialFrontend(syntax) {
		return nil, fmt.Sprintf("%s:1: # syntax=%s is another frontend", file, syntax), nil
	}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			p.meta.declare(p.lex, kv, args, nil)
		}
	}
	for i, s := range stageList {
		if s.Name != "" {
			p.byName[strings.ToLower(s.Name)] = i
		}
	}
	if target != "" {
		i, ok := p.byName[strings.ToLower(target)]
		if !ok {
			return nil, "", fmt.Errorf("%s: target stage %q is not in the Dockerfile", file, target)
		}
		p.target = i
	}
	seen := map[int]bool{}
	var check func(i int) string
	check = func(i int) string {
		if seen[i] {
			return ""
		}
		seen[i] = true
		s := stageList[i]
		at := func(c instructions.Command) string { return fmt.Sprintf("%s:%d: ", file, line(c)) }
		if s.Platform != "" {
			return fmt.Sprintf("%s:%d: FROM --platform", file, s.Location[0].Start.Line)
		}
		base, ok := p.meta.expand(p.lex, s.BaseName)
		if !ok {
			return fmt.Sprintf("%s:%d: FROM %s uses a variable without a value", file, s.Location[0].Start.Line, s.BaseName)
		}
		if j, ok := p.byName[strings.ToLower(base)]; ok && j < i {
			if w := check(j); w != "" {
				return w
			}
			for _, c := range stageList[j].Commands {
				if _, ok := c.(*instructions.OnbuildCommand); ok {
					return fmt.Sprintf("%s:%d: FROM %s, a stage with ONBUILD triggers", file, s.Location[0].Start.Line, base)
				}
			}
		}
		env := dfEnv{}
		for _, c := range s.Commands {
			switch c := c.(type) {
			case *instructions.ArgCommand:
				for _, kv := range c.Args {
					env.declare(p.lex, kv, args, p.meta)
					if kv.Value != nil && env[kv.Key] == nil {
						return at(c) + "ARG " + kv.Key + " has a default with a variable of the base image"
					}
				}
			case *instructions.EnvCommand:
				for _, kv := range c.Env {
					v, ok := env.expand(p.lex, kv.Value)
					if ok {
						env[kv.Key] = &v
					} else {
						env[kv.Key] = nil
					}
				}
			case *instructions.RunCommand:
				if len(c.FlagsUsed) > 0 {
					return at(c) + "RUN --" + strings.Join(c.FlagsUsed, ", --")
				}
				if len(c.Files) > 0 {
					return at(c) + "RUN with a here-document"
				}
			case *instructions.CopyCommand:
				switch {
				case c.Chmod != "":
					return at(c) + "COPY --chmod (the Docker builder refuses it without BuildKit)"
				case c.Link || c.Parents || len(c.ExcludePatterns) > 0:
					return at(c) + "COPY --link, --parents or --exclude"
				case len(c.SourceContents) > 0:
					return at(c) + "COPY of a here-document"
				case strings.Contains(c.From, "$"):
					return at(c) + "COPY --from with a variable"
				}
				if j, ok := p.fromStage(c.From, i); ok {
					if w := check(j); w != "" {
						return w
					}
				}
				if w := p.checkSources(c.SourcePaths, env); w != "" {
					return at(c) + w
				}
			case *instructions.AddCommand:
				switch {
				case c.Chmod != "" || c.Checksum != "" || c.KeepGitDir != nil || c.Unpack != nil || c.Link || len(c.ExcludePatterns) > 0:
					return at(c) + "ADD with --chmod, --checksum, --keep-git-dir, --unpack, --link or --exclude"
				case len(c.SourceContents) > 0:
					return at(c) + "ADD of a here-document"
				}
				for _, src := range c.SourcePaths {
					if isRemoteSource(src) {
						return at(c) + "ADD of a URL or git repository"
					}
					if isArchiveName(src) {
						return at(c) + "ADD of a local archive (the Docker builder extracts it)"
					}
				}
				if w := p.checkSources(c.SourcePaths, env); w != "" {
					return at(c) + w
				}
			case *instructions.HealthCheckCommand:
				if c.Health != nil && c.Health.StartInterval != 0 {
					return at(c) + "HEALTHCHECK --start-interval"
				}
			}
		}
		return ""
	}
	if w := check(p.target); w != "" {
		return nil, w, nil
	}
	return p, "", nil
}

// fromStage returns the stage a COPY --from of stage i names (by name or index), if any.
func (p *stagedPlan) fromStage(from string, i int) (int, bool) {
	if from == "" {
		return 0, false
	}
	if j, ok := p.byName[strings.ToLower(from)]; ok && j < i {
		return j, true
	}
	if n, err := strconv.Atoi(from); err == nil && n >= 0 && n < i {
		return n, true
	}
	return 0, false
}

func (p *stagedPlan) checkSources(srcs []string, env dfEnv) string {
	for _, s := range srcs {
		if _, ok := env.expand(p.lex, s); !ok {
			return "source " + s + " uses a variable of the base image"
		}
	}
	return ""
}

// isArchiveName reports whether an ADD source is named like an archive the Docker builder would
// extract.
func isArchiveName(src string) bool {
	for _, ext := range []string{".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz", ".tar.zst", ".tzst", ".gz", ".bz2", ".xz", ".zst"} {
		if strings.HasSuffix(strings.ToLower(src), ext) {
			return true
		}
	}
	return strings.ContainsAny(src, "*?[")
}

func line(c instructions.Command) int {
	if l := c.Location(); len(l) > 0 {
		return l[0].Start.Line
	}
	return 0
}

// stagedBuild walks the stages of a staged Dockerfile image.
type stagedBuild struct {
	b    *builder
	im   *Image
	plan *stagedPlan
	in   *dockerfileInputs
	slot func() error
	res  *imageResult
	done map[int]*state // the last stage of each Dockerfile stage built
	envs map[int]dfEnv  // the ENV values a Dockerfile stage's instructions set (FROM <stage> inherits them)
	ctx  *srcTree
	// layers are the file lists of the layers read for COPY and WORKDIR, by digest.
	layers map[v1.Hash]*layerFiles
}

// stagedImage builds a Dockerfile image instruction by instruction (staged: true). A
// Dockerfile using a construct the staged build does not do is built as one stage, with a log
// line saying why.
func (b *builder) stagedImage(ctx context.Context, im *Image, slot func() error, res *imageResult) error {
	// Dependencies are build args, as for a Dockerfile built as one stage: an ARG the
	// Dockerfile declares takes the dependency's value, and the stages using it their digests.
	im, err := b.withDependencyArgs(ctx, im)
	if err != nil {
		return err
	}
	in, err := b.dockerfileInputs(ctx, im)
	if err != nil {
		return fmt.Errorf("stage dockerfile: digest: %w", err)
	}
	plan, why, err := planStaged(in.dockerfile, in.dfPath, im.Target, im.Args)
	if err != nil {
		return err
	}
	if why != "" {
		b.o.Log.Warn("staged: building the Dockerfile as one stage", "image", im.Name, "unsupported", why)
		cur, err := b.walk(ctx, im, []stageSpec{b.dockerfileStage(im)}, nil, slot, res)
		res.final = cur
		return err
	}
	s := &stagedBuild{b: b, im: im, plan: plan, in: in, slot: slot, res: res, done: map[int]*state{}, envs: map[int]dfEnv{},
		ctx: newContextTree(in.sent), layers: map[v1.Hash]*layerFiles{}}
	final, err := s.stage(ctx, plan.target)
	res.final = final
	return err
}

// stage walks Dockerfile stage i (after the stages it needs) and returns its last stage.
func (s *stagedBuild) stage(ctx context.Context, i int) (*state, error) {
	if st, ok := s.done[i]; ok {
		return st, nil
	}
	p := s.plan
	ds := p.stages[i]
	base, _ := p.meta.expand(p.lex, ds.BaseName)
	var cur *state
	var specs []stageSpec
	env := dfEnv{}
	if j, ok := p.byName[strings.ToLower(base)]; ok && j < i {
		st, err := s.stage(ctx, j)
		if err != nil {
			return nil, err
		}
		f := *st
		f.img = st.img
		cur = &f
		for k, v := range s.envs[j] {
			env[k] = v
		}
	} else {
		specs = append(specs, s.fromSpec(base, ds))
	}
	args := map[string]string{}
	cmdSet := false
	for _, c := range ds.Commands {
		switch c := c.(type) {
		case *instructions.ArgCommand:
			// ARG changes nothing in the image: it is no stage, its values are inputs of the
			// instructions after it.
			for _, kv := range c.Args {
				env.declare(p.lex, kv, p.args, p.meta)
				if v := env[kv.Key]; v != nil {
					args[kv.Key] = *v
				} else {
					delete(args, kv.Key)
				}
			}
			continue
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				if v, ok := env.expand(p.lex, kv.Value); ok {
					env[kv.Key] = &v
				} else {
					env[kv.Key] = nil
				}
			}
		case *instructions.CopyCommand:
			if j, ok := p.fromStage(c.From, i); ok {
				if _, err := s.stage(ctx, j); err != nil {
					return nil, err
				}
			}
		}
		specs = append(specs, s.instruction(c, maps(args), env.clone(), cmdSet, i))
		if c, ok := c.(*instructions.CmdCommand); ok && len(c.CmdLine) > 0 {
			cmdSet = true
		}
	}
	s.envs[i] = env
	st, err := s.b.walk(ctx, s.im, specs, cur, s.slot, s.res)
	if err != nil {
		return nil, err
	}
	s.done[i] = st
	return st, nil
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (e dfEnv) clone() dfEnv {
	out := make(dfEnv, len(e))
	for k, v := range e {
		out[k] = v
	}
	return out
}

// fromSpec is the FROM stage of a Dockerfile stage on an image: the image as the Docker
// builder starts from it (a default PATH when it sets none).
func (s *stagedBuild) fromSpec(base string, ds instructions.Stage) stageSpec {
	b := s.b
	return stageSpec{name: fmt.Sprintf("%s:%d FROM", path.Base(s.plan.file), ds.Location[0].Start.Line), atHead: true,
		digest: func(ctx context.Context, _ *state) (string, bool, error) {
			d := newDigester(stagedVersion)
			d.add("FROM", base, b.cfg.CacheVersion)
			if s.im.CacheVersion != "" {
				// Every stage of the image descends from a FROM stage.
				d.add("cacheVersion", s.im.CacheVersion)
			}
			return d.sum(), true, nil
		},
		build: func(ctx context.Context, _ *state, _ string) (v1.Image, string, error) {
			var img v1.Image = empty.Image
			if base != "scratch" {
				ref, err := b.o.Registry.ParseReference(base)
				if err != nil {
					return nil, "", err
				}
				if img, err = remote.Image(ref, b.st.Remote(ctx)...); err != nil {
					return nil, "", fmt.Errorf("read base image %s: %w", base, err)
				}
			}
			cf, err := img.ConfigFile()
			if err != nil {
				return nil, "", err
			}
			c := cf.Config.DeepCopy()
			if len(c.OnBuild) > 0 {
				return nil, "", fmt.Errorf("base image %s has ONBUILD triggers, which a staged build does not run (set staged: false)", base)
			}
			if !slices.ContainsFunc(c.Env, func(e string) bool { return strings.HasPrefix(e, "PATH=") }) {
				c.Env = append(c.Env, "PATH="+defaultPath)
			}
			if base == "scratch" {
				img, err = mutate.ConfigFile(img, &v1.ConfigFile{OS: "linux", Architecture: "amd64", Config: *c, RootFS: v1.RootFS{Type: "layers"}})
				return img, "", err
			}
			img, err = mutate.Config(img, *c)
			return img, "", err
		}}
}

// instruction is the stage of one instruction of Dockerfile stage i; args are the ARG values in
// scope, env what the Dockerfile set (for the sources of COPY), cmdSet whether a CMD came
// before it in the stage (an ENTRYPOINT then keeps it).
func (s *stagedBuild) instruction(c instructions.Command, args map[string]string, env dfEnv, cmdSet bool, i int) stageSpec {
	b := s.b
	name := fmt.Sprintf("%s:%d %s", path.Base(s.plan.file), line(c), strings.ToUpper(c.Name()))
	var copies *copyInputs
	return stageSpec{name: name, atHead: true,
		digest: func(ctx context.Context, p *state) (string, bool, error) {
			d := newDigester(stagedVersion)
			d.add(p.digest, b.cfg.CacheVersion, string(s.plan.escape), fmt.Sprint(c))
			d.dict("args", args)
			switch c := c.(type) {
			case *instructions.EntrypointCommand:
				d.add("cmdSet", fmt.Sprint(cmdSet))
			case *instructions.CopyCommand:
				ci, err := s.copyInputs(ctx, c.From, c.SourcePaths, env, i)
				if err != nil {
					return "", false, fmt.Errorf("%s: %w", name, err)
				}
				copies = ci
				ci.addTo(d)
			case *instructions.AddCommand:
				ci, err := s.copyInputs(ctx, "", c.SourcePaths, env, i)
				if err != nil {
					return "", false, fmt.Errorf("%s: %w", name, err)
				}
				copies = ci
				ci.addTo(d)
			}
			return d.sum(), true, nil
		},
		build: func(ctx context.Context, p *state, digest string) (v1.Image, string, error) {
			parent, err := b.parentImage(ctx, p)
			if err != nil {
				return nil, "", err
			}
			cf, err := parent.ConfigFile()
			if err != nil {
				return nil, "", err
			}
			// Words are expanded with the image's ENV and the ARGs ENV does not override.
			expEnv := envOf(cf.Config.Env, args)
			if x, ok := c.(instructions.SupportsSingleWordExpansion); ok {
				if err := x.Expand(func(w string) (string, error) {
					v, _, err := s.plan.lex.ProcessWord(w, expEnv)
					return v, err
				}); err != nil {
					return nil, "", fmt.Errorf("%s: %w", name, err)
				}
			}
			var img v1.Image
			switch c := c.(type) {
			case *instructions.RunCommand:
				img, err = s.run(ctx, c, p, parent, cf, expEnv, digest)
			case *instructions.CopyCommand:
				img, err = s.copy(ctx, parent, cf, copies, c.DestPath, c.Chown, name)
			case *instructions.AddCommand:
				img, err = s.copy(ctx, parent, cf, copies, c.DestPath, c.Chown, name)
			case *instructions.WorkdirCommand:
				img, err = s.workdir(ctx, parent, cf, c.Path, name)
			default:
				img, err = s.configure(parent, cf, c, cmdSet, expEnv)
			}
			if err != nil {
				return nil, "", fmt.Errorf("%s: %w", name, err)
			}
			return img, "", nil
		}}
}

// configure applies an instruction that only changes the image config, as the Docker builder does.
func (s *stagedBuild) configure(parent v1.Image, cf *v1.ConfigFile, c instructions.Command, cmdSet bool, env envGetter) (v1.Image, error) {
	cfg := cf.Config.DeepCopy()
	shellOf := func(l instructions.ShellDependantCmdLine) []string {
		if len(l.CmdLine) == 0 {
			return []string{}
		}
		if !l.PrependShell {
			return l.CmdLine
		}
		sh := cfg.Shell
		if len(sh) == 0 {
			sh = []string{"/bin/sh", "-c"}
		}
		return append(append([]string(nil), sh...), l.CmdLine...)
	}
	switch c := c.(type) {
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			nv := kv.Key + "=" + kv.Value
			i := slices.IndexFunc(cfg.Env, func(e string) bool { k, _, _ := strings.Cut(e, "="); return k == kv.Key })
			if i >= 0 {
				cfg.Env[i] = nv
			} else {
				cfg.Env = append(cfg.Env, nv)
			}
		}
	case *instructions.LabelCommand:
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range c.Labels {
			cfg.Labels[kv.Key] = kv.Value
		}
	case *instructions.MaintainerCommand:
		ncf := cf.DeepCopy()
		ncf.Author = c.Maintainer
		return mutate.ConfigFile(parent, ncf)
	case *instructions.UserCommand:
		cfg.User = c.User
	case *instructions.ExposeCommand:
		var ports []string
		for _, p := range c.Ports {
			ps, err := s.plan.lex.ProcessWords(p, env)
			if err != nil {
				return nil, err
			}
			ports = append(ports, ps...)
		}
		set, _, err := nat.ParsePortSpecs(ports)
		if err != nil {
			return nil, err
		}
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for p := range set {
			cfg.ExposedPorts[string(p)] = struct{}{}
		}
	case *instructions.VolumeCommand:
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if v == "" {
				return nil, fmt.Errorf("VOLUME specified can not be an empty string")
			}
			cfg.Volumes[v] = struct{}{}
		}
	case *instructions.StopSignalCommand:
		cfg.StopSignal = c.Signal
	case *instructions.CmdCommand:
		cfg.Cmd = shellOf(c.ShellDependantCmdLine)
	case *instructions.EntrypointCommand:
		cfg.Entrypoint = shellOf(c.ShellDependantCmdLine)
		if !cmdSet {
			cfg.Cmd = nil
		}
	case *instructions.ShellCommand:
		cfg.Shell = c.Shell
	case *instructions.OnbuildCommand:
		cfg.OnBuild = append(cfg.OnBuild, c.Expression)
	case *instructions.HealthCheckCommand:
		h := c.Health
		cfg.Healthcheck = &v1.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
	default:
		return nil, fmt.Errorf("instruction %s is not supported by a staged build", c.Name())
	}
	return mutate.Config(parent, *cfg)
}

// run runs a RUN instruction in the engine on the parent stage, as the Docker builder does: the
// image's user, working directory and ENV, plus the ARGs in scope, and the shell of SHELL.
func (s *stagedBuild) run(ctx context.Context, c *instructions.RunCommand, p *state, parent v1.Image, cf *v1.ConfigFile, env envGetter, digest string) (v1.Image, error) {
	b := s.b
	cli, err := b.readyEngine(ctx, "RUN of staged Dockerfile image "+s.im.Name)
	if err != nil {
		return nil, err
	}
	if err := p.stored(ctx); err != nil {
		return nil, err
	}
	parentRef := b.st.Ref(p.tag).String()
	if err := b.ensureImage(ctx, cli, parentRef); err != nil {
		return nil, err
	}
	cmd := c.CmdLine
	if c.PrependShell {
		sh := cf.Config.Shell
		if len(sh) == 0 {
			sh = []string{"/bin/sh", "-c"}
		}
		cmd = append(append([]string(nil), sh...), c.CmdLine...)
	}
	runEnv := append([]string(nil), cf.Config.Env...)
	for _, k := range env.argKeys() {
		v, _ := env.Get(k)
		runEnv = append(runEnv, k+"="+v)
	}
	layer, err := b.runContainer(ctx, cli, &container.Config{Image: parentRef, User: cf.Config.User, WorkingDir: cf.Config.WorkingDir,
		Env: runEnv, Entrypoint: strslice.StrSlice(cmd)}, nil, digest)
	if err != nil {
		return nil, err
	}
	return mutate.Append(parent, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: "RUN " + strings.Join(c.CmdLine, " "), Comment: "strata " + version.String()}})
}

// envGetter is the environment words are expanded with: the image's ENV, then the ARGs in
// scope that ENV does not set.
type envGetter struct {
	env  map[string]string
	keys []string
	args []string // ARG names not set by ENV, sorted
}

func envOf(env []string, args map[string]string) envGetter {
	g := envGetter{env: map[string]string{}}
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		if _, ok := g.env[k]; !ok {
			g.keys = append(g.keys, k)
		}
		g.env[k] = v
	}
	for k, v := range args {
		if _, ok := g.env[k]; !ok {
			g.env[k] = v
			g.keys = append(g.keys, k)
			g.args = append(g.args, k)
		}
	}
	slices.Sort(g.args)
	return g
}

func (g envGetter) Get(k string) (string, bool) { v, ok := g.env[k]; return v, ok }
func (g envGetter) Keys() []string              { return g.keys }
func (g envGetter) argKeys() []string           { return g.args }
