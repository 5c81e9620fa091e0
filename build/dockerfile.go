package build

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/pkg/jsonmessage"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/dfgitutil"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"strata.dev/strata/internal/git"
	"strata.dev/strata/stages"
)

// dockerfileReads is what a Dockerfile build can read besides the Dockerfile itself, across the
// target stage and the stages it depends on (FROM <stage>, COPY --from, RUN --mount from=).
type dockerfileReads struct {
	whole    bool     // the whole context: a source Strata cannot narrow (COPY ., unknown variables, ONBUILD)
	sources  []string // context paths and wildcards of COPY, ADD and RUN bind mounts, from the context root
	external []string // ADD URLs and images (FROM, COPY --from, RUN --mount from=): not content-addressed
}

// readsOf parses the Dockerfile with BuildKit's parser and returns what building target (the
// last stage if empty) with args can read. Variables in sources are expanded as BuildKit does
// (build args, ARG defaults, ENV of the stage); a source using a variable Strata cannot know
// (an ENV of a base image, a platform arg) reads the whole context.
func readsOf(dockerfile []byte, target string, args map[string]string) (*dockerfileReads, error) {
	res, err := parser.Parse(bytes.NewReader(dockerfile))
	if err != nil {
		return nil, err
	}
	stageList, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, err
	}
	if len(stageList) == 0 {
		return nil, fmt.Errorf("no FROM instruction")
	}
	lex := shell.NewLex(res.EscapeToken)
	meta := dfEnv{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			meta.declare(lex, kv, args, nil)
		}
	}
	byName := map[string]int{}
	for i, s := range stageList {
		if s.Name != "" {
			byName[strings.ToLower(s.Name)] = i
		}
	}
	t := len(stageList) - 1
	if target != "" {
		i, ok := byName[strings.ToLower(target)]
		if !ok {
			return nil, fmt.Errorf("target stage %q is not in the Dockerfile", target)
		}
		t = i
	}
	r := &dockerfileReads{}
	if syntax, _, _, ok := parser.DetectSyntax(dockerfile); ok && !officialFrontend(syntax) {
		// Another frontend may read the context its own way.
		r.whole = true
		r.external = append(r.external, "syntax "+syntax)
	}
	seen := map[int]bool{}
	var firstErr error
	var visit func(i int)
	// stageOrImage follows a stage reference (name, or index for --from) or records an image.
	stageOrImage := func(kind, ref string, env dfEnv, index bool) {
		name, ok := env.expand(lex, ref)
		if !ok {
			r.whole = true // an unknown stage reference may be any stage
			r.external = append(r.external, kind+" "+ref)
			return
		}
		if j, ok := byName[strings.ToLower(name)]; ok {
			visit(j)
			return
		}
		if n, err := strconv.Atoi(name); err == nil && index && n >= 0 && n < len(stageList) {
			visit(n)
			return
		}
		r.external = append(r.external, kind+" "+name)
	}
	addSource := func(src string, env dfEnv) {
		v, ok := env.expand(lex, src)
		if !ok {
			r.whole = true
			return
		}
		p := strings.Trim(path.Clean("/"+v), "/")
		if p == "" {
			r.whole = true
			return
		}
		r.sources = append(r.sources, p)
	}
	visit = func(i int) {
		if seen[i] {
			return
		}
		seen[i] = true
		s := stageList[i]
		env := dfEnv{}
		if base, ok := meta.expand(lex, s.BaseName); ok {
			if j, ok := byName[strings.ToLower(base)]; ok && j < i {
				visit(j)
			} else {
				r.external = append(r.external, "FROM "+base)
			}
		} else {
			r.whole = true
			r.external = append(r.external, "FROM "+s.BaseName)
		}
		for _, c := range s.Commands {
			switch c := c.(type) {
			case *instructions.ArgCommand:
				for _, kv := range c.Args {
					env.declare(lex, kv, args, meta)
				}
			case *instructions.EnvCommand:
				for _, kv := range c.Env {
					if v, ok := env.expand(lex, kv.Value); ok {
						env[kv.Key] = &v
					} else {
						env[kv.Key] = nil
					}
				}
			case *instructions.CopyCommand:
				if c.From != "" {
					stageOrImage("COPY --from", c.From, env, true)
					continue
				}
				for _, src := range c.SourcePaths {
					addSource(src, env)
				}
			case *instructions.AddCommand:
				for _, src := range c.SourcePaths {
					if isRemoteSource(src) {
						v, _ := env.expand(lex, src)
						r.external = append(r.external, "ADD "+v+" "+c.Checksum)
						continue
					}
					addSource(src, env)
				}
			case *instructions.RunCommand:
				unknown := false
				if err := c.Expand(func(w string) (string, error) {
					v, ok := env.expand(lex, w)
					if !ok {
						unknown = true
						return w, nil
					}
					return v, nil
				}); err != nil && firstErr == nil {
					firstErr = parser.WithLocation(err, c.Location())
				}
				mounts := instructions.GetMounts(c)
				if unknown && len(mounts) > 0 {
					r.whole = true
				}
				for _, m := range mounts {
					switch {
					case m.From != "":
						stageOrImage("RUN --mount from", m.From, env, true)
					case m.Type == instructions.MountTypeBind:
						src := m.Source
						if src == "" {
							src = "."
						}
						addSource(src, env)
					}
				}
			case *instructions.OnbuildCommand:
				r.whole = true // triggers of a stage used as a base run in the stages built on it
			}
		}
	}
	if visit(t); firstErr != nil {
		return nil, firstErr
	}
	sort.Strings(r.sources)
	r.sources = slices.Compact(r.sources)
	sort.Strings(r.external)
	r.external = slices.Compact(r.external)
	return r, nil
}

// officialFrontend reports whether a # syntax= directive names Docker's Dockerfile frontend,
// whose reads the parser here follows.
func officialFrontend(ref string) bool {
	for _, p := range []string{"docker/dockerfile:", "docker.io/docker/dockerfile:", "docker/dockerfile-upstream:", "docker.io/docker/dockerfile-upstream:"} {
		if strings.HasPrefix(ref, p) {
			return true
		}
	}
	return ref == "docker/dockerfile" || ref == "docker.io/docker/dockerfile"
}

// isRemoteSource reports whether an ADD source is a URL or a git repository (as BuildKit reads it).
func isRemoteSource(src string) bool {
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		return true
	}
	ref, isGit, _ := dfgitutil.ParseGitRef(src)
	return ref != nil && isGit
}

// dfEnv is the variables of a Dockerfile scope; nil marks a variable whose value Strata cannot
// know (it comes from a base image or is an ARG without value).
type dfEnv map[string]*string

func (e dfEnv) Get(k string) (string, bool) {
	if v := e[k]; v != nil {
		return *v, true
	}
	return "", false
}

func (e dfEnv) Keys() []string {
	keys := make([]string, 0, len(e))
	for k, v := range e {
		if v != nil {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// expand expands the variables of word; ok is false when one of them has no known value.
func (e dfEnv) expand(lex *shell.Lex, word string) (string, bool) {
	if !strings.ContainsAny(word, "$") {
		return word, true
	}
	res, err := lex.ProcessWordWithMatches(word, e)
	if err != nil || len(res.Unmatched) > 0 {
		return "", false
	}
	return res.Result, true
}

// declare declares ARG kv: a build arg wins, then its default, then the outer (global) value.
func (e dfEnv) declare(lex *shell.Lex, kv instructions.KeyValuePairOptional, args map[string]string, outer dfEnv) {
	if v, ok := args[kv.Key]; ok {
		e[kv.Key] = &v
		return
	}
	if kv.Value != nil {
		if v, ok := e.expand(lex, *kv.Value); ok {
			e[kv.Key] = &v
		} else {
			e[kv.Key] = nil
		}
		return
	}
	e[kv.Key] = outer[kv.Key]
}

// dockerfileInputs are the git inputs of a Dockerfile image.
type dockerfileInputs struct {
	contextDir string // repository path of the context ("" = root)
	dockerfile []byte
	dfPath     string // repository path of the Dockerfile
	dfRel      string // Dockerfile path inside the build context tar
	reads      *dockerfileReads
	files      []mappingFile // the context files the build can read, after .dockerignore
	sent       []mappingFile // the context sent to the engine: all files after .dockerignore
	added      []addedFile   // contextAddFiles from the working tree, over the committed files
}

// dockerfileInputs reads the Dockerfile and selects the context files its reachable stages can
// read, from the git objects of HEAD.
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
	in.dfPath = path.Join(b.cfgDir, im.Context, im.Dockerfile)
	if rel, ok := relTo(b.cfgDir, in.dfPath); !ok || rel == ".." || strings.HasPrefix(rel, "../") || strings.HasPrefix(in.dfPath, "../") {
		return nil, fmt.Errorf("dockerfile %s: %s is outside the project directory", im.Dockerfile, in.dfPath)
	}
	df, ok, err := b.readBlob(ctx, files, in.dfPath)
	if err != nil {
		return nil, err
	}
	if !ok {
		if in.contextDir != "" && !hasDir(files, in.contextDir) {
			return nil, fmt.Errorf("context %s: no directory %s in commit %s", im.Context, in.contextDir, shortDigest(b.head))
		}
		return nil, fmt.Errorf("dockerfile %s: %s is not in commit %s (dockerfile is relative to context %q)", im.Dockerfile, in.dfPath, shortDigest(b.head), im.Context)
	}
	in.dockerfile = df
	if in.reads, err = readsOf(df, im.Target, im.Args); err != nil {
		return nil, fmt.Errorf("dockerfile %s: %w", in.dfPath, err)
	}
	ign, err := b.dockerignore(ctx, files, in.contextDir, in.dfPath)
	if err != nil {
		return nil, err
	}
	if in.files, in.sent, err = contextReads(files, in.contextDir, ign, in.reads); err != nil {
		return nil, err
	}
	if len(im.ContextAddFiles) > 0 {
		if in.added, err = contextAddFiles(filepath.Join(b.projectDir, filepath.FromSlash(im.Context)), im.ContextAddFiles); err != nil {
			return nil, fmt.Errorf("image %s: %w", im.Name, err)
		}
	}
	if rel, ok := relTo(in.contextDir, in.dfPath); ok {
		in.dfRel = rel
	} else {
		in.dfRel = ".strata.Dockerfile"
	}
	return in, nil
}

// dockerignore reads the ignore file BuildKit uses: <Dockerfile>.dockerignore next to the
// Dockerfile, else .dockerignore at the context root; nil when there is none.
func (b *builder) dockerignore(ctx context.Context, files []git.File, contextDir, dfPath string) (*patternmatcher.PatternMatcher, error) {
	for _, p := range []string{dfPath + ".dockerignore", path.Join(contextDir, ".dockerignore")} {
		data, ok, err := b.readBlob(ctx, files, p)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		patterns, err := ignorefile.ReadAll(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		pm, err := patternmatcher.New(patterns)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		return pm, nil
	}
	return nil, nil
}

// contextReads returns the files of the context (minus ignored ones and submodules) that the
// reads can see, and all of them. A symbolic link on the way to a source may point anywhere in
// the context: the whole context is read then.
func contextReads(files []git.File, contextDir string, ign *patternmatcher.PatternMatcher, reads *dockerfileReads) (read, all []mappingFile, err error) {
	var ctxFiles []mappingFile
	var rels [][]string
	for _, f := range files {
		if f.Mode == "160000" {
			continue
		}
		rel, ok := relTo(contextDir, f.Path)
		if !ok {
			continue
		}
		if ign != nil {
			ignored, err := ign.MatchesOrParentMatches(rel)
			if err != nil {
				return nil, nil, fmt.Errorf(".dockerignore: %w", err)
			}
			if ignored {
				continue
			}
		}
		ctxFiles = append(ctxFiles, mappingFile{File: f, dest: "/" + rel})
		rels = append(rels, strings.Split(rel, "/"))
	}
	if reads.whole {
		return ctxFiles, ctxFiles, nil
	}
	m := newMatcher(reads.sources)
	var out []mappingFile
	for i, f := range ctxFiles {
		if m.matchSegs(rels[i]) {
			out = append(out, f)
		} else if f.Mode == "120000" && m.leadsTo(rels[i]) {
			return ctxFiles, ctxFiles, nil
		}
	}
	return out, ctxFiles, nil
}

// leadsTo reports whether some glob of m goes below directory p (p is a proper prefix of it).
func (m matcher) leadsTo(p []string) bool {
	for _, g := range m {
		if globBelow(g, p) {
			return true
		}
	}
	return false
}

func globBelow(g, p []string) bool {
	for i, seg := range p {
		if i >= len(g) {
			return false
		}
		if g[i] == "**" {
			return true
		}
		if ok, _ := path.Match(g[i], seg); !ok && g[i] != seg {
			return false
		}
	}
	return len(g) > len(p)
}

// readDockerfiles reads the Dockerfiles of images and the ignore files next to them that HEAD
// has, with one git process for them all, before the images' builds read them (readBlob).
// Best effort: what it could not read is read then.
func (b *builder) readDockerfiles(ctx context.Context, images []*Image) {
	want := map[string]bool{}
	for _, im := range images {
		if im.Dockerfile == "" {
			continue
		}
		dfPath := path.Join(b.cfgDir, im.Context, im.Dockerfile)
		want[dfPath], want[dfPath+".dockerignore"], want[path.Join(b.cfgDir, im.Context, ".dockerignore")] = true, true, true
	}
	if len(want) == 0 {
		return
	}
	files, err := b.git.Files(ctx, b.head)
	if err != nil {
		return
	}
	var hashes []string
	for _, f := range files {
		if want[f.Path] {
			hashes = append(hashes, f.Hash)
		}
	}
	read := map[string][]byte{}
	if b.git.CachedBlobs(ctx, hashes, func(h string, d []byte) error { read[h] = d; return nil }) == nil {
		b.blobs = read
	}
}

func (b *builder) readBlob(ctx context.Context, files []git.File, p string) ([]byte, bool, error) {
	for _, f := range files {
		if f.Path == p {
			if d, ok := b.blobs[f.Hash]; ok {
				return d, true, nil
			}
			var out []byte
			err := b.git.CachedBlobs(ctx, []string{f.Hash}, func(_ string, d []byte) error { out = d; return nil })
			return out, true, err
		}
	}
	return nil, false, nil
}

// dockerfileStage builds a Dockerfile image as one stage through the engine. Its digest covers
// the Dockerfile, its path in the context, the args, the target, the external sources and the
// context files the target's stages can read. The engine gets the whole context (after
// .dockerignore): its legacy builder also runs the stages before the target that the target
// does not use, whose results do not reach the image.
func (b *builder) dockerfileStage(im *Image) stageSpec {
	var inputs *dockerfileInputs
	return stageSpec{name: "dockerfile", atHead: true,
		digest: func(ctx context.Context, _ *state) (string, bool, error) {
			// Dependencies are build args: their values (the dependency's final stage
			// reference) join the args in the digest.
			withDeps, err := b.withDependencyArgs(ctx, im)
			if err != nil {
				return "", false, err
			}
			im = withDeps
			in, err := b.dockerfileInputs(ctx, im)
			if err != nil {
				return "", false, err
			}
			inputs = in
			return dockerfileDigest(b.cfg.CacheVersion, im, in), true, nil
		},
		build: func(ctx context.Context, _ *state, digest string) (v1.Image, string, error) {
			img, err := b.dockerBuild(ctx, im, inputs, digest)
			return img, "", err
		}}
}

func dockerfileDigest(cacheVersion string, im *Image, in *dockerfileInputs) string {
	d := newDigester("dockerfile-v2")
	d.add(cacheVersion, string(in.dockerfile), in.dfRel, im.Target)
	d.dict("args", im.Args)
	d.list("external", in.reads.external)
	if im.CacheVersion != "" {
		d.add("cacheVersion", im.CacheVersion)
	}
	if len(im.Platform) > 0 {
		d.list("platform", im.Platform)
	}
	d.add("context", fmt.Sprint(len(in.files)))
	for _, f := range in.files {
		d.add(f.dest, f.Mode, f.Hash)
	}
	// contextAddFiles are inputs whether or not the build reads them (werf's semantics: they
	// are part of the context); absent from the digest of images without them.
	if len(in.added) > 0 {
		d.add("contextAddFiles", fmt.Sprint(len(in.added)))
		for _, f := range in.added {
			d.add("/"+f.rel, f.mode, f.sum)
		}
	}
	return d.sum()
}

// dockerBuild sends the Dockerfile and the context to the engine, builds the target and reads
// the result back.
func (b *builder) dockerBuild(ctx context.Context, im *Image, in *dockerfileInputs, digest string) (v1.Image, error) {
	cli, err := b.readyEngine(ctx, "Dockerfile image "+im.Name)
	if err != nil {
		return nil, err
	}
	if err := b.checkPlatform(ctx, cli, im); err != nil {
		return nil, err
	}
	network := b.o.Network
	if im.Network != "" {
		network = im.Network
	}
	files := withAdded(append([]mappingFile(nil), in.sent...), in.added)
	if !slices.ContainsFunc(files, func(f mappingFile) bool { return f.dest == "/"+in.dfRel }) {
		h, err := b.blobHash(ctx, in.dfPath)
		if err != nil {
			return nil, err
		}
		files = append(files, mappingFile{File: git.File{Path: in.dfPath, Mode: "100644", Hash: h}, dest: "/" + in.dfRel})
	}
	tarData, err := gitTar(ctx, b.git, files, false)
	if err != nil {
		return nil, err
	}
	args := map[string]*string{}
	for k, v := range im.Args {
		args[k] = &v
	}
	resp, err := cli.ImageBuild(ctx, bytes.NewReader(tarData), build.ImageBuildOptions{
		Dockerfile: in.dfRel, BuildArgs: args, Target: im.Target, NetworkMode: network, ExtraHosts: im.AddHost,
		Remove: true, ForceRemove: true, Labels: map[string]string{stages.LabelProject: b.cfg.Project, stages.LabelDigest: digest},
	})
	if err != nil {
		return nil, fmt.Errorf("docker build: %w", err)
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
		return nil, fmt.Errorf("docker build: %w", err)
	}
	if id == "" {
		return nil, fmt.Errorf("docker build: no image id in the response")
	}
	defer cli.ImageRemove(context.WithoutCancel(ctx), id, image.RemoveOptions{PruneChildren: true})
	saved, cleanup, err := b.saveImage(ctx, cli, id)
	if err != nil {
		return nil, err
	}
	// Load fully before the saved file goes away.
	defer cleanup()
	return materialize(saved)
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
