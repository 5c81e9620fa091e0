package build

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/client"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/config"
	"strata.dev/strata/internal/git"
	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/version"
	"strata.dev/strata/stages"
)

// Run builds the images of the config and returns the report.
func Run(ctx context.Context, o Options) (*stages.Report, error) {
	o.defaults()
	if err := o.check(); err != nil {
		return nil, err
	}
	// The single tags listing of this build starts first: it runs while git reads HEAD, the
	// config, the work tree and the file listing (it does not need the project name).
	st, err := openStorage(o)
	if err != nil {
		return nil, err
	}
	go st.cached(ctx, "")
	src, err := readSource(ctx, o)
	if err != nil {
		return nil, err
	}
	defer src.repo.Close()
	images, err := buildable(src.cfg, o.Images)
	if err != nil {
		return nil, err
	}
	b := newBuilder(o, src, st)
	defer b.removeSpools()
	if err := b.fetchRemotes(ctx, images); err != nil {
		return nil, err
	}
	cleanup, err := b.prepare(images)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	b.readDockerfiles(ctx, images)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := b.buildAll(ctx, cancel, images); err != nil {
		return nil, err
	}
	return b.report(ctx, images, src.dev)
}

func (o *Options) check() error {
	if o.Repo == "" {
		return errors.New("build: --repo REGISTRY/PROJECT is required")
	}
	if o.Network != "host" && o.Network != "none" {
		return fmt.Errorf("build: network %q: want host or none (the default bridge is never used)", o.Network)
	}
	return nil
}

// source is what a build is made from: the git repository, the commit built (HEAD, or with
// --dev a snapshot of HEAD and the uncommitted changes) and the config read from that commit.
type source struct {
	repo *git.Repo
	head string
	cfg  *Config
	dev  bool // built from a snapshot of uncommitted changes
}

// readSource opens HEAD and reads the config from its git objects, like every other input,
// while the work tree of the project directory is checked: only changes there can change the
// build; they are refused, or built from a snapshot commit with --dev.
func readSource(ctx context.Context, o Options) (src *source, err error) {
	projDir := projectDir(o)
	type statusResult struct {
		lines []string
		err   error
	}
	early := make(chan statusResult, 1)
	go func() {
		lines, err := git.StatusOf(ctx, projDir)
		early <- statusResult{lines, err}
	}()
	repo, head, err := git.OpenHead(ctx, o.Dir)
	if err != nil {
		return nil, err
	}
	// One git process reads the blobs of the build (the config, Dockerfiles, COPY sources),
	// until Run ends; HEAD's file listing and the small files read on every build are kept
	// with the tag cache, so a rebuild of a commit built before starts neither.
	repo.ShareReader()
	if o.CacheDir != "" {
		repo.CacheObjects(filepath.Join(o.CacheDir, "git"))
	}
	defer func() {
		if src == nil {
			repo.Close()
		}
	}()
	// The file listing of HEAD is read while the config is found in it.
	repo.ListFiles(ctx, head)
	load := func(commit string) (*Config, error) {
		return config.Load(ctx, config.Options{Dir: o.Dir, File: o.ConfigFile, Repo: repo, Commit: commit, Env: o.Env})
	}
	cfg, cfgErr := load(head)
	sr := <-early
	status, err := sr.lines, sr.err
	if err != nil {
		return nil, err
	}
	if cfgErr == nil {
		status = withoutContextAdded(cfg, status)
	}
	if len(status) > 0 {
		if !o.Dev {
			return nil, fmt.Errorf("uncommitted changes in %s (commit them, or build with --dev):\n  %s", repo.Dir, strings.Join(status, "\n  "))
		}
		snap, err := repo.Snapshot(ctx, head)
		if err != nil {
			return nil, fmt.Errorf("snapshot uncommitted changes: %w", err)
		}
		o.Log.Warn("--dev: building with uncommitted changes", "changes", len(status), "files", strings.Join(status, "; "), "snapshot", snap)
		head = snap
		cfg, cfgErr = load(head)
	}
	if cfgErr != nil {
		return nil, cfgErr
	}
	return &source{repo: repo, head: head, cfg: cfg, dev: len(status) > 0}, nil
}

// projectDir is the directory of the config on this host.
func projectDir(o Options) string {
	if o.ConfigFile != "" {
		return filepath.Dir(o.ConfigFile)
	}
	return o.Dir
}

// buildable returns the images to build (see selectImages); nothing is built from a config
// using werf keys Strata cannot build yet.
func buildable(cfg *Config, names []string) ([]*Image, error) {
	if len(cfg.Unsupported) > 0 {
		return nil, errors.New(strings.Join(cfg.Unsupported, "; "))
	}
	images, err := selectImages(cfg, names)
	if err != nil {
		return nil, err
	}
	for _, im := range images {
		if len(im.Unsupported) > 0 {
			return nil, fmt.Errorf("image %s: %s", im.Name, strings.Join(im.Unsupported, "; "))
		}
	}
	return images, nil
}

// openStorage opens the stages storage; its locks are named once the project is known.
func openStorage(o Options) (*storage, error) {
	locker := o.Locker
	if locker == nil {
		locker = &lock.File{Log: o.Log}
	}
	store, err := stages.Open(o.Repo, o.Registry)
	if err != nil {
		return nil, err
	}
	st := newStorage(store, "", locker, o.Log)
	st.tagCache = newTagCache(o.CacheDir)
	return st, nil
}

// newBuilder builds src with the storage st, whose locks it names after the project.
func newBuilder(o Options, src *source, st *storage) *builder {
	st.project = src.cfg.Project
	st.git = src.repo
	return &builder{
		o: o, cfg: src.cfg, git: src.repo, head: src.head, cfgDir: src.cfg.Dir, st: st, projectDir: projectDir(o),
		done: map[string]chan struct{}{}, results: map[string]*imageResult{}, superseded: map[string]bool{},
	}
}

// buildAll builds the images concurrently; an image built on another one (fromImage) or
// importing from others starts when those are done. The first error cancels the others (cancel cancels ctx).
func (b *builder) buildAll(ctx context.Context, cancel context.CancelFunc, images []*Image) error {
	for _, im := range images {
		b.done[im.Name] = make(chan struct{})
	}
	slots := make(chan struct{}, b.o.Parallel)
	var wg sync.WaitGroup
	var firstErr error
	var errOnce sync.Once
	for _, im := range images {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(b.done[im.Name])
			if err := b.buildImage(ctx, im, slots); err != nil {
				errOnce.Do(func() { firstErr = fmt.Errorf("image %s: %w", im.Name, err); cancel() })
			}
		}()
	}
	wg.Wait()
	b.bg.Wait()
	if b.docker != nil {
		b.docker.Close()
	}
	if firstErr == nil {
		firstErr = b.bgErr
	}
	return firstErr
}

// after runs fn while the build goes on; buildAll waits for it and fails with its error.
func (b *builder) after(fn func() error) {
	b.bg.Add(1)
	go func() {
		defer b.bg.Done()
		if err := fn(); err != nil {
			b.mu.Lock()
			if b.bgErr == nil {
				b.bgErr = err
			}
			b.mu.Unlock()
		}
	}()
}

// buildImage waits for the image im is built on, then walks its pipeline and records the
// result. The walk over stored stages runs for every image at once; the build slots bound only
// the images that build: an image takes a slot before building its first stage and keeps it
// until it is done.
func (b *builder) buildImage(ctx context.Context, im *Image, slots chan struct{}) error {
	for _, dep := range im.Needs() {
		select {
		case <-b.done[dep]:
		case <-ctx.Done():
			return nil // cancelled by another image's error
		}
	}
	held := false
	slot := func() error {
		if held {
			return nil
		}
		select {
		case slots <- struct{}{}:
			held = true
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer func() {
		if held {
			<-slots
		}
	}()
	res, err := b.imageStored(ctx, im, slot)
	// A stage another builder stored while this one's lease was lost wins (superseded): the
	// image is built again, on that stage.
	var lost *superseded
	for attempt := 0; errors.As(err, &lost) && attempt < 3; attempt++ {
		b.o.Log.Info("another builder stored a stage of this image first: building the image again on it", "image", im.Name, "digest", shortDigest(lost.digest), "tag", lost.stored.Tag)
		b.mu.Lock()
		b.superseded[lost.digest] = true
		b.mu.Unlock()
		res, err = b.imageStored(ctx, im, slot)
	}
	b.mu.Lock()
	b.results[im.Name] = res
	b.mu.Unlock()
	return err
}

// imageStored walks the pipeline of im (image) and waits for the pushes of its stages: the
// image is done when its stages are stored (the images built on it read them).
func (b *builder) imageStored(ctx context.Context, im *Image, slot func() error) (*imageResult, error) {
	res, err := b.image(ctx, im, slot)
	for _, p := range res.pushes {
		if perr := p.result(); perr != nil && err == nil {
			err = perr
		}
	}
	return res, err
}

// report finishes every built image (final reference, final repo, extra tags) into the report.
func (b *builder) report(ctx context.Context, images []*Image, dev bool) (*stages.Report, error) {
	rep := &stages.Report{Project: b.cfg.Project, Repo: b.st.Repo.String(), Commit: b.head, Dev: dev, Config: filepath.Base(b.cfg.File)}
	for _, im := range images {
		r := b.results[im.Name]
		if r == nil || r.final == nil {
			return nil, fmt.Errorf("image %s: not built", im.Name)
		}
		if !im.Final {
			rep.Artifacts = append(rep.Artifacts, b.artifactReport(im, r))
			continue
		}
		ir, err := b.finish(ctx, im, r)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", im.Name, err)
		}
		rep.Images = append(rep.Images, *ir)
	}
	return rep, nil
}

// selectImages returns the wanted images plus the images they need (fromImage, import
// sources), in config order.
func selectImages(cfg *Config, names []string) ([]*Image, error) {
	if len(names) == 0 {
		return cfg.Images, nil
	}
	by := map[string]*Image{}
	for _, im := range cfg.Images {
		by[im.Name] = im
	}
	want := map[string]bool{}
	for _, n := range names {
		im, ok := by[n]
		if !ok {
			return nil, fmt.Errorf("no image %q in %s", n, cfg.File)
		}
		var need func(im *Image)
		need = func(im *Image) {
			if want[im.Name] {
				return
			}
			want[im.Name] = true
			for _, dep := range im.Needs() {
				need(by[dep])
			}
		}
		need(im)
	}
	var out []*Image
	for _, im := range cfg.Images {
		if want[im.Name] {
			out = append(out, im)
		}
	}
	return out, nil
}

type builder struct {
	o      Options
	cfg    *Config
	git    *git.Repo
	head   string
	cfgDir string
	st     *storage
	// remotes are the remote git mappings' repositories and commits (fetchRemotes).
	remotes map[git.RemoteRef]remoteCommit
	// projectDir is the project directory on this host (relative mount fromPath, secret src).
	projectDir string
	dirs       buildDirs

	mu      sync.Mutex
	done    map[string]chan struct{}
	results map[string]*imageResult
	docker  *client.Client
	// spools are temporary files holding layers made registry-side (imports), removed when
	// the build ends.
	spools []string
	// bg are the checks running while the build goes on (after), bgErr the first that failed.
	bg    sync.WaitGroup
	bgErr error
	// superseded are the digests of stages this build pushed and another builder stored first
	// (see superseded): reported as discarded when the image is built again on them.
	superseded map[string]bool
	// blobs are the Dockerfiles and ignore files read before the images' builds, by git blob
	// hash (readDockerfiles); read-only once the builds start.
	blobs map[string][]byte
}

// state is the last stage reached in an image's pipeline.
type state struct {
	digest string
	tag    string
	millis int64
	commit string // commit of the git content in the image ("" before gitArchive)
	img    v1.Image
	// parent is the stage this one is built on (nil for the first stage of the chain): the
	// parent chain restoreParents walks after publishing a stage.
	parent *state
	// push is the push of a stage this build published (nil for a stored one): see stored.
	push *pushed
}

type imageResult struct {
	final  *state
	stages []stages.StageReport
	// pushes are those of the stages the image published (see publish).
	pushes []*pushed
}

func (b *builder) engine() (*client.Client, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.docker != nil {
		return b.docker, nil
	}
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if b.o.DockerHost != "" {
		opts = append(opts, client.WithHost(b.o.DockerHost))
	}
	c, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker engine: %w", err)
	}
	b.docker = c
	b.removeStaleContainers(c)
	return c, nil
}

// stageSpec is one non-empty stage before selection.
type stageSpec struct {
	name   string
	gitRel bool // needs the ancestor check and carries commit labels
	// atHead: a stage with no git content that still records the commit it was built for
	// (a Dockerfile stage, the whole image): cleanup's policies keep what HEAD's build needs
	// by the commit labels. Selection ignores the label (gitRel is false).
	atHead bool
	// digest computes the stage digest from its parent.
	digest func(ctx context.Context, parent *state) (string, bool, error)
	// build makes the stage image from the parent; returns the image and the git commit of
	// its content.
	build func(ctx context.Context, parent *state, digest string) (v1.Image, string, error)
	// labels, when set, are more dev.strata.* labels of the built stage (an import stage
	// names the stages it copied from: cleanup keeps them with it).
	labels func() map[string]string
}

// image walks the pipeline of im; slot is called before any stage is built (it waits for one
// of the --parallel build slots).
func (b *builder) image(ctx context.Context, im *Image, slot func() error) (*imageResult, error) {
	res := &imageResult{}
	var cur *state
	if im.FromImage != "" {
		b.mu.Lock()
		p := b.results[im.FromImage]
		b.mu.Unlock()
		if p == nil || p.final == nil {
			return res, fmt.Errorf("fromImage %s failed", im.FromImage)
		}
		f := *p.final
		f.img = nil
		cur = &f
	}
	if im.Dockerfile != "" && im.Staged {
		return res, b.stagedImage(ctx, im, slot, res)
	}
	cur, err := b.walk(ctx, im, b.pipeline(im, cur != nil), cur, slot, res)
	if err != nil {
		return res, err
	}
	if cur == nil {
		return res, errors.New("no stages")
	}
	res.final = cur
	return res, nil
}

// walk selects or builds the stages specs on cur in order, recording them in res, and returns
// the last stage reached.
func (b *builder) walk(ctx context.Context, im *Image, specs []stageSpec, cur *state, slot func() error, res *imageResult) (*state, error) {
	for _, sp := range specs {
		start := time.Now()
		digest, ok, err := sp.digest(ctx, cur)
		if err != nil {
			return nil, fmt.Errorf("stage %s: digest: %w", sp.name, err)
		}
		if !ok {
			continue // empty stage
		}
		next, status, err := b.stage(ctx, im, sp, cur, digest, slot)
		if err != nil {
			return nil, fmt.Errorf("stage %s: %w", sp.name, err)
		}
		if next.push != nil {
			res.pushes = append(res.pushes, next.push)
		}
		d := time.Since(start)
		res.stages = append(res.stages, stages.StageReport{Name: sp.name, Digest: digest, Tag: next.tag, Status: status, DurationMs: d.Milliseconds()})
		b.o.Log.Info("stage", "image", im.Name, "stage", sp.name, "digest", shortDigest(digest), "status", status, "time", d.Round(time.Millisecond))
		cur = next
	}
	return cur, nil
}

// reusedState is the state of a stage taken from the storage: a git-related stage carries the
// commit it was built at, any other the commit of its parent.
func reusedState(c *stored, digest string, gitRel bool, parentCommit string, parent *state) *state {
	commit := c.Commit
	if !gitRel {
		commit = parentCommit
	}
	return &state{digest: digest, tag: c.Tag, millis: c.Millis, commit: commit, parent: parent}
}

// stage selects a stored stage for digest, or builds and publishes one.
func (b *builder) stage(ctx context.Context, im *Image, sp stageSpec, parent *state, digest string, slot func() error) (*state, string, error) {
	var parentMillis int64
	var parentCommit string
	if parent != nil {
		parentMillis, parentCommit = parent.millis, parent.commit
	}
	times, err := b.st.cached(ctx, digest)
	if err != nil {
		return nil, "", err
	}
	// A stage holds git content when it adds it (gitArchive) or its parent holds some: then
	// only stages whose commit is an ancestor of HEAD are suitable.
	gitRel := parentCommit != "" || sp.name == "gitArchive"
	c, err := b.st.choose(ctx, digest, times, parentMillis, gitRel, b.head)
	if err != nil {
		return nil, "", err
	}
	if c != nil {
		status := stages.StatusReused
		b.mu.Lock()
		if b.superseded[digest] {
			status = stages.StatusDiscarded
		}
		b.mu.Unlock()
		return reusedState(c, digest, gitRel, parentCommit, parent), status, nil
	}
	if err := slot(); err != nil {
		return nil, "", err
	}
	// built runs once the stage is stored (or the build failed).
	built := func() {}
	if b.o.WaitForInFlight {
		// Taken after the build slot: a holder of a #building lock never waits for a slot.
		lease, c, err := b.st.building(ctx, digest, parentMillis, gitRel, b.head)
		if err != nil {
			return nil, "", err
		}
		if c != nil {
			return reusedState(c, digest, gitRel, parentCommit, parent), stages.StatusWaited, nil
		}
		built = func() { b.st.doneBuilding(ctx, digest, lease) }
	}
	img, commit, err := sp.build(ctx, parent, digest)
	if err != nil {
		built()
		return nil, "", err
	}
	labelCommit := commit
	if labelCommit == "" && sp.atHead {
		labelCommit = b.head
	}
	var extra map[string]string
	if sp.labels != nil {
		extra = sp.labels()
	}
	img, err = b.withLabels(img, im, sp.name, digest, parent, labelCommit, len(im.Git), extra)
	if err != nil {
		built()
		return nil, "", err
	}
	var parentPush *pushed
	if parent != nil {
		parentPush = parent.push
	}
	s, discarded, push, err := b.st.publish(ctx, digest, parentMillis, gitRel, b.head, commit, img, parentPush)
	if err != nil {
		built()
		return nil, "", err
	}
	// Once stored: a cleanup may have deleted the parent after this build chose it: put it
	// back (looked at while the build goes on; buildAll waits for it).
	b.after(func() error {
		err := push.result()
		built()
		if err != nil || parentPush.result() != nil {
			return nil // failed: the image's build reports it
		}
		if err := b.restoreParents(ctx, s.Tag, parent); err != nil {
			return fmt.Errorf("image %s: stage %s: %w", im.Name, sp.name, err)
		}
		return nil
	})
	if discarded {
		if !gitRel {
			s.Commit = parentCommit
		}
		return &state{digest: digest, tag: s.Tag, millis: s.Millis, commit: s.Commit, parent: parent}, stages.StatusDiscarded, nil
	}
	return &state{digest: digest, tag: s.Tag, millis: s.Millis, commit: commit, img: img, parent: parent, push: push}, stages.StatusBuilt, nil
}

// stored waits until the stage is in the storage: a stage this build published may still be
// being pushed (publish) while the next stages are built registry-side; the engine reads
// it from the storage.
func (st *state) stored(ctx context.Context) error {
	if err := st.push.wait(ctx); err != nil {
		return fmt.Errorf("stage %s: %w", st.tag, err)
	}
	return nil
}

func (b *builder) withLabels(img v1.Image, im *Image, stage, digest string, parent *state, commit string, mappings int, extra map[string]string) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image config: %w", err)
	}
	c := cf.Config.DeepCopy()
	if c.Labels == nil {
		c.Labels = map[string]string{}
	}
	for k := range c.Labels {
		if strings.HasPrefix(k, stages.LabelPrefix) {
			delete(c.Labels, k)
		}
	}
	c.Labels[stages.LabelProject] = b.cfg.Project
	c.Labels[stages.LabelDigest] = digest
	c.Labels[stages.LabelImage] = im.Name
	c.Labels[stages.LabelStage] = stage
	c.Labels[stages.LabelVersion] = version.String()
	if parent != nil {
		c.Labels[stages.LabelParent] = parent.tag
	}
	if b.head != "" {
		c.Labels[stages.LabelBuiltAt] = b.head
	}
	for k, v := range extra {
		c.Labels[k] = v
	}
	// The digest and the commit labels are also manifest annotations: selection reads them
	// from the manifest alone, without fetching the config blob.
	ann := map[string]string{stages.LabelDigest: digest}
	if commit != "" {
		for i := 0; i < max(mappings, 1); i++ {
			c.Labels[stages.CommitLabel(i)] = commit
			ann[stages.CommitLabel(i)] = commit
		}
	}
	img, err = mutate.Config(img, *c)
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, ann).(v1.Image), nil
}

// parentImage returns the parent stage as a lazy remote image (no layer is downloaded).
func (b *builder) parentImage(ctx context.Context, parent *state) (v1.Image, error) {
	if parent.img != nil {
		return parent.img, nil
	}
	if img, desc, ok := b.st.cachedStage(ctx, parent.tag); ok {
		b.st.keep(parent.tag, desc)
		return img, nil
	}
	desc, err := b.st.read(ctx, parent.tag)
	if err != nil {
		return nil, fmt.Errorf("read parent stage: %w", err)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, fmt.Errorf("read parent stage %s: %w", parent.tag, err)
	}
	// Its config (every build on it reads it) is kept for the next build, as its manifest is.
	cfg, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read parent stage %s: %w", parent.tag, err)
	}
	b.st.tagCache.putBlob(cfg)
	// Its exact manifest, in case a cleanup deletes it before the child is published.
	b.st.keep(parent.tag, desc)
	return img, nil
}

// finish computes the final reference of an image and publishes extra tags / the final repo.
func (b *builder) finish(ctx context.Context, im *Image, r *imageResult) (*stages.ImageReport, error) {
	f := r.final
	ref := b.st.Ref(f.tag)
	var desc *v1.Descriptor
	if f.img != nil {
		d, derr := f.img.Digest()
		if derr != nil {
			return nil, derr
		}
		desc = &v1.Descriptor{Digest: d}
	} else if d, ok := b.st.manifestDigest(f.tag); ok {
		desc = &v1.Descriptor{Digest: d}
	} else if rd, err := b.st.read(ctx, f.tag); err != nil {
		return nil, fmt.Errorf("read final stage %s: %w", ref, err)
	} else {
		// Read whole (not HEAD): kept, the tag cache answers the next build.
		b.st.keep(f.tag, rd)
		desc = &rd.Descriptor
	}
	ir := &stages.ImageReport{Name: im.Name, Repo: b.st.Repo.String(), Tag: f.tag, Ref: ref.String(), ManifestDigest: desc.Digest.String(), StageRef: ref.String(), Stages: r.stages}
	if ir.Stages == nil {
		ir.Stages = []stages.StageReport{}
	}
	target := b.st.Repo
	if b.o.FinalRepo != "" {
		fr, err := b.o.Registry.ParseRepository(b.o.FinalRepo)
		if err != nil {
			return nil, err
		}
		target = fr
		img, err := remote.Image(ref, b.st.Remote(ctx)...)
		if err != nil {
			return nil, fmt.Errorf("read final stage %s: %w", ref, err)
		}
		if err := remote.Write(fr.Tag(f.tag), img, b.st.Remote(ctx)...); err != nil {
			return nil, fmt.Errorf("copy %s to %s: %w", ref, fr, err)
		}
		ir.Repo, ir.Ref = fr.String(), fr.Tag(f.tag).String()
	}
	if len(b.o.AddTags) > 0 {
		desc, err := remote.Get(ref, b.st.Remote(ctx)...)
		if err != nil {
			return nil, fmt.Errorf("read final stage %s: %w", ref, err)
		}
		for _, tmpl := range b.o.AddTags {
			t, err := expandTag(tmpl, tagData{Image: im.Name, Commit: b.head, ShortCommit: b.head[:min(8, len(b.head))], Digest: f.digest, Project: b.cfg.Project, Tag: f.tag})
			if err != nil {
				return nil, err
			}
			if err := remote.Tag(target.Tag(t), desc, b.st.Remote(ctx)...); err != nil {
				return nil, fmt.Errorf("tag %s: %w", target.Tag(t), err)
			}
			ir.ExtraTags = append(ir.ExtraTags, target.Tag(t).String())
		}
		sort.Strings(ir.ExtraTags)
	}
	b.o.Log.Info("image", "image", im.Name, "ref", ir.Ref, "digest", ir.ManifestDigest)
	return ir, nil
}
