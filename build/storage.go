package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"strata.dev/strata/internal/git"
	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/stages"
)

// storage is the stages storage with one cached tags listing per build.
type storage struct {
	*stages.Storage
	project string
	locker  lock.Locker
	git     *git.Repo
	log     *slog.Logger

	mu      sync.Mutex
	tags    map[string][]int64 // digest -> creation millis of stored stages
	listed  bool
	labels  map[string]map[string]string // tag -> labels
	digests map[string]v1.Hash           // tag -> manifest digest, when read
	// manifests are the stages' manifests this build read or published, by tag, with their
	// exact bytes and media type: enough to put one back if cleanup deletes it (restoreParents).
	manifests map[string]*remote.Descriptor
	// present are blobs the repository holds: those of the manifests this build read or
	// published. A push does not ask the registry about them again.
	present map[v1.Hash]bool
	// uploads are the blob uploads of this build, made or in flight, by digest (uploading).
	uploads map[v1.Hash]*pushed
	// tagCache keeps the manifests of stored stages across builds, by tag: tags are never
	// overwritten, so a tag of the listing reads the same manifest forever ("" = off).
	tagCache *tagCache
	// rt is the authenticated transport of the requests to the repository, made once (under
	// rtMu), or rtErr why it could not be made (see repoRemote).
	rtMu  sync.Mutex
	rt    http.RoundTripper
	rtErr error
}

// newStorage returns the build's view of the stages storage store; its git repository (for the
// ancestor checks) is set once HEAD is read, before any stage is chosen.
func newStorage(store *stages.Storage, project string, locker lock.Locker, log *slog.Logger) *storage {
	return &storage{Storage: store, project: project, locker: locker, log: log}
}

// stored is one stage in the storage.
type stored struct {
	Tag    string
	Millis int64
	Commit string // commit of its git mappings ("" for stages without git content)
}

// list reads the stage tags of the storage, grouped by digest (bypassing the cache); a
// repository that does not exist has none.
func (s *storage) list(ctx context.Context) (map[string][]int64, error) {
	tags, err := remote.List(s.Repo, s.repoRemote(ctx)...)
	if err != nil && !registry.IsNotFound(err) {
		return nil, fmt.Errorf("list tags of %s: %w", s.Repo, err)
	}
	return stages.ByDigest(tags), nil
}

// read reads the manifest of a stored stage: its exact bytes, media type and digest.
func (s *storage) read(ctx context.Context, tag string) (*remote.Descriptor, error) {
	desc, err := remote.Get(s.Ref(tag), s.repoRemote(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("read stage %s: %w", s.Ref(tag), err)
	}
	return desc, nil
}

// cached returns the creation times stored for digest from the build's single listing.
func (s *storage) cached(ctx context.Context, digest string) ([]int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.listed {
		t, err := s.list(ctx)
		if err != nil {
			return nil, err
		}
		s.tags, s.listed = t, true
	}
	return append([]int64(nil), s.tags[digest]...), nil
}

func (s *storage) add(digest string, ms int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tags[digest] = append(s.tags[digest], ms)
	sort.Slice(s.tags[digest], func(i, j int) bool { return s.tags[digest][i] < s.tags[digest][j] })
}

// manifestDigest returns the manifest digest of a stored stage if this build already read it.
func (s *storage) manifestDigest(tag string) (v1.Hash, bool) {
	s.mu.Lock()
	d, ok := s.digests[tag]
	s.mu.Unlock()
	if ok {
		return d, true
	}
	if desc, ok := s.tagCache.get(s.Repo.String(), tag); ok {
		s.keep(tag, desc)
		return desc.Digest, true
	}
	return v1.Hash{}, false
}

// stageLabels returns the strata labels of a stored stage (cached). Stages carry their digest
// and commits as manifest annotations too, so one manifest request is enough; the config blob is
// read only for stages stored without them (annotations inherited from a parent stage name
// another digest and are ignored).
func (s *storage) stageLabels(ctx context.Context, tag string) (map[string]string, error) {
	s.mu.Lock()
	if l, ok := s.labels[tag]; ok {
		s.mu.Unlock()
		return l, nil
	}
	s.mu.Unlock()
	var labels map[string]string
	fromAnnotations := func(desc *remote.Descriptor) {
		if m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest)); err == nil {
			if t, ok := stages.ParseTag(tag); ok && m.Annotations[stages.LabelDigest] == t.Digest {
				labels = m.Annotations
			}
		}
	}
	desc, cached := s.tagCache.get(s.Repo.String(), tag)
	if cached {
		fromAnnotations(desc)
	}
	if labels == nil {
		var err error
		if desc, err = s.read(ctx, tag); err != nil {
			return nil, err
		}
		fromAnnotations(desc)
	}
	if labels == nil {
		var err error
		if labels, err = s.Labels(tag, desc); err != nil {
			return nil, err
		}
	}
	s.keep(tag, desc)
	s.mu.Lock()
	if s.labels == nil {
		s.labels = map[string]map[string]string{}
	}
	s.labels[tag] = labels
	s.mu.Unlock()
	return labels, nil
}

// keep records the manifest of a stored stage as this build read or published it, and the
// blobs it names as present in the repository.
func (s *storage) keep(tag string, desc *remote.Descriptor) {
	m, _ := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	s.mu.Lock()
	if s.manifests == nil {
		s.manifests = map[string]*remote.Descriptor{}
		s.digests = map[string]v1.Hash{}
		s.present = map[v1.Hash]bool{}
	}
	_, known := s.manifests[tag]
	s.manifests[tag] = &remote.Descriptor{Descriptor: desc.Descriptor, Manifest: desc.Manifest}
	s.digests[tag] = desc.Digest
	if m != nil {
		s.present[m.Config.Digest] = true
		for _, l := range m.Layers {
			s.present[l.Digest] = true
		}
	}
	s.mu.Unlock()
	if !known {
		s.tagCache.put(s.Repo.String(), tag, desc)
	}
}

// kept returns the manifest of a stage that this build read or published.
func (s *storage) kept(tag string) (*remote.Descriptor, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.manifests[tag]
	return d, ok
}

// published returns what remote.Put wrote for img: its manifest bytes, media type and digest.
func published(img v1.Image) (*remote.Descriptor, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	h, err := img.Digest()
	if err != nil {
		return nil, err
	}
	return &remote.Descriptor{Descriptor: v1.Descriptor{MediaType: mt, Digest: h, Size: int64(len(raw))}, Manifest: raw}, nil
}

// choose picks the oldest suitable stage among creation times: not created before the parent,
// and for git stages with a commit label that is an ancestor of head.
func (s *storage) choose(ctx context.Context, digest string, times []int64, parentMillis int64, gitStage bool, head string) (*stored, error) {
	for _, ms := range times {
		if ms < parentMillis {
			continue
		}
		c := &stored{Tag: stages.Tag{Digest: digest, Millis: ms}.String(), Millis: ms}
		if gitStage {
			l, err := s.stageLabels(ctx, c.Tag)
			if err != nil {
				if registry.IsNotFound(err) {
					continue // deleted meanwhile
				}
				return nil, err
			}
			c.Commit = l[stages.CommitLabel(0)]
			if c.Commit == "" {
				continue
			}
			ok, err := s.git.IsAncestor(ctx, c.Commit, head)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
		}
		return c, nil
	}
	return nil, nil
}

// publish stores a built stage under the lock of its digest, unless a suitable stage appeared
// meanwhile (then that one is returned with discarded = true). Under the lock it re-lists the
// storage and chooses the new stage's tag; the push (blobs, then the manifest under that tag,
// only while the lease is held) goes on in the background: pushed reports its end, and the
// lock is held until then. The build goes on meanwhile: the next stage can be built on this
// one and pushed along with it, its manifest put only after this one's (parent). A lost lease
// abandons the push attempt: re-lock, re-check (the tag may have landed), push the same tag
// again.
func (s *storage) publish(ctx context.Context, digest string, parentMillis int64, gitStage bool, head, commit string, img v1.Image, parent *pushed) (st *stored, discarded bool, p *pushed, err error) {
	lease, err := s.lock(ctx, digest)
	if err != nil {
		return nil, false, nil, err
	}
	fresh, err := s.list(ctx)
	if err == nil {
		st, err = s.choose(ctx, digest, fresh[digest], parentMillis, gitStage, head)
	}
	if err != nil || st != nil {
		_ = lease.Unlock(context.WithoutCancel(ctx))
		if st != nil {
			s.add(digest, st.Millis)
		}
		return st, st != nil, nil, err
	}
	ms := newMillis(fresh[digest], parentMillis)
	tag := stages.Tag{Digest: digest, Millis: ms}.String()
	p = &pushed{done: make(chan struct{})}
	recheck := func(times []int64) (*stored, error) {
		return s.choose(ctx, digest, times, parentMillis, gitStage, head)
	}
	go func() {
		defer close(p.done)
		p.err = s.store(ctx, digest, lease, tag, img, parent, recheck)
		if p.err == nil {
			s.add(digest, ms)
		}
	}()
	return &stored{Tag: tag, Millis: ms, Commit: commit}, false, p, nil
}

// pushed is the end of a stage's push (publish): done is closed then, err says why it failed.
type pushed struct {
	done chan struct{}
	err  error
}

// wait waits for the push to end and returns its error; a nil push (a stage that was stored
// already) has nothing to wait for.
func (p *pushed) wait(ctx context.Context) error {
	if p == nil {
		return nil
	}
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// result waits for the push to end, however long (its context ends it), and returns its error.
func (p *pushed) result() error {
	if p == nil {
		return nil
	}
	<-p.done
	return p.err
}

// store pushes img under tag with the lease of digest's lock, which it releases at the end; its
// manifest is put after parent's push ended well. A lost lease abandons the attempt: re-lock,
// and unless the re-listing shows the tag (the manifest PUT landed), re-check: a suitable stage
// another builder stored meanwhile (recheck) wins, the push ends with a *superseded error;
// else push again.
func (s *storage) store(ctx context.Context, digest string, lease lock.Lease, tag string, img v1.Image, parent *pushed, recheck func(times []int64) (*stored, error)) (err error) {
	defer func() {
		if lease != nil {
			_ = lease.Unlock(context.WithoutCancel(ctx))
		}
	}()
	for attempt := 0; ; attempt++ {
		lost, err := s.push(ctx, lease, tag, img, parent)
		if errors.Is(err, errTagTaken) {
			return fmt.Errorf("publish stage %s: tag %s exists although the listing under the lock did not show it", digest, tag)
		}
		if lost == "" {
			if err != nil {
				return err
			}
			break
		}
		if lease, err = s.relock(ctx, digest, lease, attempt, lost); err != nil {
			return err
		}
		fresh, err := s.list(ctx)
		if err != nil {
			return err
		}
		if t, ok := stages.ParseTag(tag); ok && slices.Contains(fresh[digest], t.Millis) {
			break // the manifest PUT landed before the lease was found lost
		}
		// First to finish wins: the lock may have been taken over while the lease was lost.
		existing, err := recheck(fresh[digest])
		if err != nil {
			return err
		}
		if existing != nil {
			s.add(digest, existing.Millis)
			return &superseded{digest: digest, tag: tag, stored: existing}
		}
	}
	if desc, err := published(img); err == nil {
		s.keep(tag, desc)
	}
	if cfg, err := img.RawConfigFile(); err == nil {
		s.tagCache.putBlob(cfg)
	}
	return nil
}

// superseded is the end of a push abandoned with a lost lease when the re-check under the new
// lock found a suitable stage another builder stored meanwhile: that one wins and tag is never
// put. The stages built on this one (labelled with tag) are not stored either: the image is
// built again on the stored stage (buildImage).
type superseded struct {
	digest, tag string
	stored      *stored
}

func (e *superseded) Error() string {
	return fmt.Sprintf("stage %s was stored by another builder as %s while the lease of its lock was lost: %s not pushed", shortDigest(e.digest), e.stored.Tag, e.tag)
}

// newMillis returns the creation time of a new stage: now, but after its parent's and not one
// of the digest's stored stages (taken); it waits until that time is not in the future.
func newMillis(taken []int64, parentMillis int64) int64 {
	used := map[int64]bool{}
	for _, ms := range taken {
		used[ms] = true
	}
	ms := time.Now().UnixMilli()
	if ms <= parentMillis {
		ms = parentMillis + 1
	}
	for used[ms] {
		ms++
	}
	if ms > time.Now().UnixMilli() {
		time.Sleep(time.Duration(ms-time.Now().UnixMilli()) * time.Millisecond)
	}
	return ms
}

// errTagTaken is a push's answer when its new tag exists although the listing did not show it.
var errTagTaken = errors.New("the tag exists")

// push uploads the blobs of img, then puts its manifest under tag: the irreversible step, taken
// only with the lease held, and only when the tag does not exist (never overwrite, even if the
// listing missed it: asked while the blobs upload; errTagTaken when it does). A lost lease
// (before or during either step, which it cancels) abandons the push; lost then says when, for
// the caller to re-lock and re-check.
func (s *storage) push(ctx context.Context, lease lock.Lease, tag string, img v1.Image, parent *pushed) (lost string, err error) {
	if lock.IsLost(lease) {
		return "before the push", nil
	}
	start := time.Now()
	s.log.Debug("push stage", "tag", tag)
	taken := make(chan bool, 1)
	go func() {
		_, err := remote.Head(s.Ref(tag), s.repoRemote(ctx)...)
		taken <- err == nil
	}()
	up, err := s.uploadBlobs(ctx, lease, tag, img)
	if <-taken {
		return "", errTagTaken
	}
	if err != nil {
		if lock.IsLost(lease) {
			return "while uploading " + tag, nil
		}
		return "", fmt.Errorf("push stage %s: %w", tag, err)
	}
	s.log.Debug("uploaded", "tag", tag, "bytes", up.Complete)
	// A stage's tag appears after its parent's.
	if err := parent.wait(ctx); err != nil {
		return "", fmt.Errorf("push stage %s: its parent's push failed: %w", tag, err)
	}
	if lock.IsLost(lease) {
		return "after uploading " + tag, nil
	}
	pctx, stop := whileHeld(ctx, lease)
	err = remote.Put(s.Ref(tag), img, s.repoRemote(pctx)...)
	stop()
	if err != nil {
		if lock.IsLost(lease) {
			// Cancelled by the loss; if the PUT landed anyway, the re-check finds the tag.
			return "while putting the manifest of " + tag, nil
		}
		return "", fmt.Errorf("push stage %s: manifest: %w", tag, err)
	}
	s.log.Debug("pushed stage", "tag", tag, "time", time.Since(start).Round(time.Millisecond))
	return "", nil
}

// building takes the #building lock of digest, waiting while another builder holds it, then
// re-lists the digest bypassing the cache. A suitable stage stored meanwhile is returned (the
// lock is released); else the caller builds the stage and then calls doneBuilding with the
// lease. While it waits it also re-lists the storage now and then (after a tenth of the time
// waited, 100 ms to 1 s): a stage the holder stored is reused at once instead of after the lock is handed to
// every waiter in turn. Losing this lease is harmless: another builder may then build the
// stage too, and the publish lock keeps one stored result.
func (s *storage) building(ctx context.Context, digest string, parentMillis int64, gitStage bool, head string) (lock.Lease, *stored, error) {
	name := stages.BuildingLock(s.project, digest)
	start := time.Now()
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	type locked struct {
		lease lock.Lease
		err   error
	}
	got := make(chan locked, 1)
	go func() {
		l, err := s.locker.Lock(lctx, name)
		got <- locked{l, err}
	}()
	check := func() (*stored, error) {
		fresh, err := s.list(ctx)
		if err != nil {
			return nil, err
		}
		return s.choose(ctx, digest, fresh[digest], parentMillis, gitStage, head)
	}
	reuse := func(existing *stored) (lock.Lease, *stored, error) {
		s.add(digest, existing.Millis)
		s.log.Info("stage stored by another builder while waiting", "digest", shortDigest(digest), "tag", existing.Tag, "waited", time.Since(start).Round(time.Millisecond))
		return nil, existing, nil
	}
	timer := time.NewTimer(100 * time.Millisecond)
	defer timer.Stop()
	for {
		select {
		case r := <-got:
			if r.err != nil {
				return nil, nil, fmt.Errorf("lock %s: %w", name, r.err)
			}
			existing, err := check()
			if err != nil || existing != nil {
				_ = r.lease.Unlock(context.WithoutCancel(ctx))
			}
			if err != nil {
				return nil, nil, err
			}
			if existing != nil {
				return reuse(existing)
			}
			return r.lease, nil, nil
		case <-timer.C:
			existing, err := check()
			if err != nil {
				// Only an early look: the re-check under the lock decides.
				s.log.Debug("re-listing while waiting for the builder in flight", "lock", name, "error", err)
			}
			if existing != nil {
				stop()
				if r := <-got; r.err == nil {
					_ = r.lease.Unlock(context.WithoutCancel(ctx))
				}
				return reuse(existing)
			}
			// The next look after a tenth of the time waited so far (100 ms to 1 s): a stored
			// stage is seen at most ~10 % later than it appeared.
			timer.Reset(min(max(time.Since(start)/10, 100*time.Millisecond), time.Second))
		}
	}
}

// doneBuilding releases the #building lock of digest.
func (s *storage) doneBuilding(ctx context.Context, digest string, lease lock.Lease) {
	if lock.IsLost(lease) {
		s.log.Info("the building lock was lost meanwhile: another builder may have built the stage too", "lock", stages.BuildingLock(s.project, digest), "reason", lease.Err())
	}
	_ = lease.Unlock(context.WithoutCancel(ctx))
}

// relock abandons a publish attempt whose lease was lost (when: at which step): it releases the
// lease and takes the lock again so the caller re-checks the storage before trying once more.
func (s *storage) relock(ctx context.Context, digest string, lease lock.Lease, attempt int, when string) (lock.Lease, error) {
	reason := lease.Err()
	_ = lease.Unlock(context.WithoutCancel(ctx))
	if attempt > 3 {
		return nil, fmt.Errorf("publish stage %s: lock lost %d times, giving up: %v", digest, attempt+1, reason)
	}
	s.log.Warn("lock lost "+when+": abandoning the push, re-locking and re-checking the storage", "lock", stages.PublishLock(s.project, digest), "reason", reason)
	return s.lock(ctx, digest)
}

// lock takes the publish lock of digest.
func (s *storage) lock(ctx context.Context, digest string) (lock.Lease, error) {
	name := stages.PublishLock(s.project, digest)
	lease, err := s.locker.Lock(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	return lease, nil
}

// whileHeld returns a context that is cancelled when the lease is lost.
func whileHeld(ctx context.Context, lease lock.Lease) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-lease.Lost():
			cancel()
		case <-c.Done():
		}
	}()
	return c, cancel
}

// uploadBlobs uploads the layers and the config of img, but not its manifest: nothing is tagged.
// The upload is cancelled as soon as the lease is lost. It logs progress once per second and
// returns the last progress update.
func (s *storage) uploadBlobs(ctx context.Context, lease lock.Lease, tag string, img v1.Image) (v1.Update, error) {
	uctx, cancel := whileHeld(ctx, lease)
	defer cancel()
	progress := make(chan v1.Update, 16)
	done := make(chan v1.Update)
	go func() {
		// Progress: a line per second while uploading, the total at the end.
		var last v1.Update
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case u, ok := <-progress:
				if !ok {
					done <- last
					return
				}
				if u.Error == nil {
					last = u
				}
			case <-tick.C:
				s.log.Info("pushing stage", "tag", tag, "bytes", last.Complete, "of", last.Total)
			}
		}
	}()
	err := s.writeBlobs(uctx, img, progress)
	close(progress)
	up := <-done
	if err == nil {
		err = uctx.Err()
	}
	return up, err
}

// writeBlobs uploads the layers and the config blob (up to 4 at a time), through its own
// pusher: a shared one would swallow the progress updates. Only the manifest must come after
// them, not the config after the layers.
func (s *storage) writeBlobs(ctx context.Context, img v1.Image, progress chan<- v1.Update) error {
	p, err := remote.NewPusher(append(s.Registry.Remote(ctx), remote.WithProgress(progress))...)
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("layers: %w", err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, 4)
	)
	cl, err := partial.ConfigLayer(img)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	for _, l := range append(layers, cl) {
		h, err := l.Digest()
		if err != nil {
			return err
		}
		what := "layer"
		if l == cl {
			what = "config"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A blob of a stage this build read or published, or one another push of this
			// build is uploading (the parent's layers, while a child is pushed along with it).
			up, mine := s.uploading(h)
			if !mine {
				if up.wait(ctx) == nil {
					return
				}
			} else {
				defer close(up.done)
			}
			sem <- struct{}{}
			defer func() { <-sem }()
			upload := func() error { return p.Upload(ctx, s.Repo, l) }
			if _, mountable := l.(*remote.MountableLayer); !mountable {
				// Made by this build: new content, sent in one request after the POST.
				upload = func() error { return s.pushBlob(ctx, l) }
			}
			err := upload()
			if mine {
				up.err = err
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("upload %s: %w", what, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// uploading returns the upload of blob h by this build: mine when the caller is to make it (it
// then sets its err and closes its done), else the one made or being made (nil: the repository
// holds the blob). A failed upload is not remembered: the next caller tries again.
func (s *storage) uploading(h v1.Hash) (up *pushed, mine bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.present[h] {
		return nil, false
	}
	if up, ok := s.uploads[h]; ok {
		select {
		case <-up.done:
			if up.err == nil {
				return nil, false
			}
		default:
			return up, false
		}
	}
	if s.uploads == nil {
		s.uploads = map[v1.Hash]*pushed{}
	}
	up = &pushed{done: make(chan struct{})}
	s.uploads[h] = up
	return up, true
}

// pushBlob uploads a blob this build made (a new layer, a config) monolithically: POST to open
// the upload, then one PUT with the content and its digest. go-containerregistry's upload
// first asks whether the blob exists and sends it in a PATCH before the PUT: four requests
// where two do, for content that is new.
func (s *storage) pushBlob(ctx context.Context, l v1.Layer) error {
	h, err := l.Digest()
	if err != nil {
		return err
	}
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return err
	}
	rt, err := s.repoTransport(ctx)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: rt}
	u := url.URL{Scheme: s.Repo.Scheme(), Host: s.Repo.RegistryStr(), Path: "/v2/" + s.Repo.RepositoryStr() + "/blobs/uploads/"}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("upload blob %s: %w", h, err)
	}
	resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusAccepted); err != nil {
		return fmt.Errorf("upload blob %s: %w", h, err)
	}
	loc, err := resp.Location()
	if err != nil {
		return fmt.Errorf("upload blob %s: %w", h, err)
	}
	q := loc.Query()
	q.Set("digest", h.String())
	loc.RawQuery = q.Encode()
	req, err = http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.ContentLength = int64(len(data))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = client.Do(req)
	if err != nil {
		return fmt.Errorf("upload blob %s: %w", h, err)
	}
	resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusCreated); err != nil {
		return fmt.Errorf("upload blob %s: %w", h, err)
	}
	return nil
}

// repoRemote returns the go-containerregistry options of a request to the storage's repository:
// through one transport authenticated for push and pull, whose registry ping and token every
// request of the build shares (go-containerregistry pings again for a transport it has not
// authenticated). Without it (it could not be made: the credentials may allow pulls only), the
// storage's usual options.
func (s *storage) repoRemote(ctx context.Context) []remote.Option {
	rt, err := s.repoTransport(ctx)
	if err != nil {
		return s.Remote(ctx)
	}
	return append(s.Registry.Remote(ctx), remote.WithTransport(rt))
}

// repoTransport returns the transport of repoRemote, made on first use; an error making it is
// kept too (a registry that refuses push credentials is not asked again for each request).
func (s *storage) repoTransport(ctx context.Context) (http.RoundTripper, error) {
	s.rtMu.Lock()
	defer s.rtMu.Unlock()
	if s.rt == nil && s.rtErr == nil {
		rt, err := s.Registry.RoundTripper(ctx, s.Repo, transport.PushScope)
		if err != nil && ctx.Err() != nil {
			return nil, err // cancelled: the next request tries again
		}
		s.rt, s.rtErr = rt, err
	}
	return s.rt, s.rtErr
}
