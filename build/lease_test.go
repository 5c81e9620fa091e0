package build

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// losingLocker hands out file locks whose first lease per name is already lost, as a backend
// does when its lease expires between taking the lock and pushing.
type losingLocker struct {
	lock.Locker
	mu    sync.Mutex
	seen  map[string]int
	locks int
}

type lostLease struct {
	lock.Lease
	ch chan struct{}
}

func (l *lostLease) Lost() <-chan struct{} { return l.ch }
func (l *lostLease) Err() error            { return errors.New("lease expired") }

func (l *losingLocker) Lock(ctx context.Context, name string) (lock.Lease, error) {
	le, err := l.Locker.Lock(ctx, name)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.locks++
	l.seen[name]++
	if l.seen[name] == 1 {
		ch := make(chan struct{})
		close(ch)
		return &lostLease{Lease: le, ch: ch}, nil
	}
	return le, nil
}

func TestLostLeaseAbandonsPushAndRechecks(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "lease")
	g := newGitRepo(t)
	g.commit("init", map[string]string{"strata.yaml": "project: lease\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\ndocker:\n  CMD: [x]\n"})
	cnt := &counter{}
	lk := &losingLocker{Locker: fileLocker(t), seen: map[string]int{}}
	rep, err := Run(context.Background(), Options{Dir: g.dir, Repo: repo, Locker: lk, DockerHost: noEngine, Registry: registry.Options{Transport: cnt}})
	if err != nil {
		t.Fatal(err)
	}
	reported := rep.Image("app").Stages
	if len(reported) != 2 || reported[0].Status != stages.StatusBuilt || reported[1].Status != stages.StatusBuilt {
		t.Fatalf("stages: %+v", reported)
	}
	if lk.locks != 4 {
		t.Errorf("took %d locks for 2 stages, want 4 (each push abandoned once and re-locked)", lk.locks)
	}
	r, _ := registry.Options{}.ParseRepository(repo)
	tags, err := remoteList(context.Background(), registry.Options{}, r)
	if err != nil || len(tags) != 2 {
		t.Errorf("stored tags = %v (%v), want one per stage", tags, err)
	}
}

// midPushLocker hands out file locks whose leases midPush loses while blobs upload.
type midPushLocker struct {
	lock.Locker
	mu    sync.Mutex
	locks int
	first *watchedLease
	all   []*watchedLease
	lost  int // leases lost by loseHeld
}

type watchedLease struct {
	lock.Lease
	name     string
	lost     chan struct{}
	once     sync.Once
	released bool // guarded by midPushLocker.mu
	l        *midPushLocker
}

// loseHeld loses every lease handed out and not released yet: the stages being pushed (the
// first stage's and those pushed along with it).
func (l *midPushLocker) loseHeld() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range l.all {
		if !w.released && !lock.IsLost(w) {
			w.lose()
			l.lost++
		}
	}
}

// heldLost reports whether a lost lease of the lock of digest is still held.
func (l *midPushLocker) heldLost(digest string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range l.all {
		if strings.HasSuffix(w.name, digest) && lock.IsLost(w) && !w.released {
			return true
		}
	}
	return false
}

func (w *watchedLease) Lost() <-chan struct{} { return w.lost }
func (w *watchedLease) Err() error {
	if lock.IsLost(w) {
		return errors.New("lease taken over (test)")
	}
	return nil
}
func (w *watchedLease) lose() { w.once.Do(func() { close(w.lost) }) }
func (w *watchedLease) Unlock(ctx context.Context) error {
	w.l.mu.Lock()
	w.released = true
	w.l.mu.Unlock()
	return w.Lease.Unlock(ctx)
}

func (l *midPushLocker) Lock(ctx context.Context, name string) (lock.Lease, error) {
	le, err := l.Locker.Lock(ctx, name)
	if err != nil {
		return nil, err
	}
	w := &watchedLease{Lease: le, name: name, lost: make(chan struct{}), l: l}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.locks++
	l.all = append(l.all, w)
	if l.first == nil {
		l.first = w
	}
	return w, nil
}

// midPush is a registry transport that loses the held leases when the first blob upload
// starts ("during": it then waits for that upload, whose stage's lease is among them, to be
// cancelled) or right after a blob is committed before any manifest PUT ("after"), and records
// every manifest PUT, and those PUT while a lost lease of the stage's lock was still held.
type midPush struct {
	lk        *midPushLocker
	after     bool
	mu        sync.Mutex
	fired     bool
	cancelled bool     // the in-flight upload was cancelled when the lease was lost
	manifests []string // tags PUT
	violation []string // manifest PUTs while a lost lease of their lock was still held
}

func (m *midPush) RoundTrip(r *http.Request) (*http.Response, error) {
	path := r.URL.Path
	if r.Method == http.MethodPut && strings.Contains(path, "/manifests/") {
		ref := path[strings.LastIndex(path, "/")+1:]
		digest, _, _ := strings.Cut(ref, "-")
		bad := m.lk.heldLost(digest)
		m.mu.Lock()
		m.manifests = append(m.manifests, ref)
		if bad {
			m.violation = append(m.violation, ref)
		}
		m.mu.Unlock()
	}
	blob := strings.Contains(path, "/blobs/uploads/")
	m.mu.Lock()
	fire := !m.fired && blob && !m.after && r.Method == http.MethodPost
	if fire {
		m.fired = true
	}
	m.mu.Unlock()
	if fire {
		m.lk.loseHeld()
		select {
		case <-r.Context().Done():
			m.mu.Lock()
			m.cancelled = true
			m.mu.Unlock()
			return nil, r.Context().Err()
		case <-time.After(10 * time.Second):
			// Not cancelled: let it through; the test then fails on cancelled.
		}
	}
	resp, err := remote.DefaultTransport.RoundTrip(r)
	if m.after && blob && r.Method == http.MethodPut && err == nil {
		// After a blob is committed, before any manifest PUT: the loss must not fall on a
		// manifest PUT in flight (that is TestLeaseLostDuringManifestPutRechecks).
		m.mu.Lock()
		if !m.fired && len(m.manifests) == 0 {
			m.fired = true
			m.lk.loseHeld()
		}
		m.mu.Unlock()
	}
	return resp, err
}

func TestLeaseLostDuringPushWritesNoTag(t *testing.T) {
	base := testenv.BaseImage(t)
	for _, mode := range []string{"during", "after"} {
		t.Run(mode, func(t *testing.T) {
			repo := testenv.Repo(t, "lease-"+mode)
			g := newGitRepo(t)
			g.commit("init", map[string]string{"strata.yaml": "project: lease-" + mode + "\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\ndocker:\n  CMD: [x]\n"})
			lk := &midPushLocker{Locker: fileLocker(t)}
			tr := &midPush{lk: lk, after: mode == "after"}
			rep, err := Run(context.Background(), Options{Dir: g.dir, Repo: repo, Locker: lk, DockerHost: noEngine, Registry: registry.Options{Transport: tr}})
			if err != nil {
				t.Fatal(err)
			}
			if !tr.fired {
				t.Fatal("no blob upload was seen: the test did not lose a lease")
			}
			if len(tr.violation) > 0 {
				t.Errorf("manifests %v were PUT while the lost lease was still held", tr.violation)
			}
			if mode == "during" && !tr.cancelled {
				t.Error("the upload in flight was not cancelled when the lease was lost")
			}
			reported := rep.Image("app").Stages
			if len(reported) != 2 {
				t.Fatalf("stages: %+v", reported)
			}
			if lk.lost == 0 || lk.locks != len(reported)+lk.lost {
				t.Errorf("took %d locks for %d stages with %d leases lost, want %d (each lost attempt re-locked once)", lk.locks, len(reported), lk.lost, len(reported)+lk.lost)
			}
			r, _ := registry.Options{}.ParseRepository(repo)
			tags, err := remoteList(context.Background(), registry.Options{}, r)
			if err != nil {
				t.Fatal(err)
			}
			perDigest := map[string]int{}
			for _, tag := range tags {
				d, _, _ := strings.Cut(tag, "-")
				perDigest[d]++
			}
			for _, st := range reported {
				if st.Status != stages.StatusBuilt {
					t.Errorf("stage %s: status %s, want %s", st.Name, st.Status, stages.StatusBuilt)
				}
				if perDigest[st.Digest] != 1 {
					t.Errorf("stage %s: %d tags for its digest in %v, want exactly 1", st.Name, perDigest[st.Digest], tags)
				}
			}
			// The abandoned attempt left no tag: every tag PUT is a stored one, one per stage.
			if len(tr.manifests) != len(reported) || len(tags) != len(reported) {
				t.Errorf("manifest PUTs %v, stored tags %v: want one per stage, none for the abandoned attempt", tr.manifests, tags)
			}
		})
	}
}

// alwaysLostLocker hands out leases that are lost at once.
type alwaysLostLocker struct{ lock.Locker }

func (l alwaysLostLocker) Lock(ctx context.Context, name string) (lock.Lease, error) {
	le, err := l.Locker.Lock(ctx, name)
	if err != nil {
		return nil, err
	}
	ch := make(chan struct{})
	close(ch)
	return &lostLease{Lease: le, ch: ch}, nil
}

func TestLeaseAlwaysLostFailsClearly(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "lease-lost")
	g := newGitRepo(t)
	g.commit("init", map[string]string{"strata.yaml": "project: lease-lost\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\n"})
	_, err := Run(context.Background(), Options{Dir: g.dir, Repo: repo, Locker: alwaysLostLocker{fileLocker(t)}, DockerHost: noEngine})
	if err == nil || !strings.Contains(err.Error(), "lock lost 5 times, giving up: lease expired") || !strings.Contains(err.Error(), "publish stage ") {
		t.Fatalf("Run = %v, want the stage's publish to give up naming the lost lock", err)
	}
	t.Logf("error: %v", err)
	r, _ := registry.Options{}.ParseRepository(repo)
	if tags, _ := remoteList(context.Background(), registry.Options{}, r); len(tags) != 0 {
		t.Errorf("stored tags %v after every lease was lost, want none", tags)
	}
}

// manifestLoss is a registry transport that loses the first lease while its first manifest PUT
// is in flight, waits for that PUT to be cancelled, and then lets it land anyway: the client
// cannot know whether the tag was written.
type manifestLoss struct {
	lk        *midPushLocker
	mu        sync.Mutex
	fired     bool
	cancelled bool
	manifests int
}

func (m *manifestLoss) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodPut || !strings.Contains(r.URL.Path, "/manifests/") {
		return remote.DefaultTransport.RoundTrip(r)
	}
	m.mu.Lock()
	m.manifests++
	fire := !m.fired
	m.fired = true
	m.mu.Unlock()
	if !fire {
		return remote.DefaultTransport.RoundTrip(r)
	}
	m.lk.mu.Lock()
	f := m.lk.first
	m.lk.mu.Unlock()
	f.lose()
	select {
	case <-r.Context().Done():
		m.mu.Lock()
		m.cancelled = true
		m.mu.Unlock()
	case <-time.After(10 * time.Second):
	}
	landed := r.Clone(context.Background())
	if r.GetBody != nil {
		body, err := r.GetBody()
		if err != nil {
			return nil, err
		}
		landed.Body = body
	}
	resp, err := remote.DefaultTransport.RoundTrip(landed)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	return nil, context.Canceled
}

func TestLeaseLostDuringManifestPutRechecks(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "lease-manifest")
	g := newGitRepo(t)
	g.commit("init", map[string]string{"strata.yaml": "project: lease-manifest\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\ndocker:\n  CMD: [x]\n"})
	lk := &midPushLocker{Locker: fileLocker(t)}
	tr := &manifestLoss{lk: lk}
	rep, err := Run(context.Background(), Options{Dir: g.dir, Repo: repo, Locker: lk, DockerHost: noEngine, Registry: registry.Options{Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	if !tr.cancelled {
		t.Error("the manifest PUT in flight was not cancelled when the lease was lost")
	}
	reported := rep.Image("app").Stages
	if len(reported) != 2 {
		t.Fatalf("stages: %+v", reported)
	}
	// The PUT landed although it was cancelled: the re-check under a new lock finds that tag,
	// the one the build chose and the next stage was built on, and keeps it instead of
	// writing a second one.
	if reported[0].Status != stages.StatusBuilt || reported[1].Status != stages.StatusBuilt {
		t.Errorf("statuses %s, %s; want %s (the landed tag found by the re-check), %s", reported[0].Status, reported[1].Status, stages.StatusBuilt, stages.StatusBuilt)
	}
	if lk.locks != len(reported)+1 {
		t.Errorf("took %d locks for %d stages, want %d", lk.locks, len(reported), len(reported)+1)
	}
	r, _ := registry.Options{}.ParseRepository(repo)
	tags, err := remoteList(context.Background(), registry.Options{}, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) != len(reported) || tr.manifests != len(reported) {
		t.Errorf("stored tags %v after %d manifest PUTs, want one per stage", tags, tr.manifests)
	}
	for _, st := range reported {
		found := false
		for _, tag := range tags {
			found = found || tag == st.Tag
		}
		if !found {
			t.Errorf("stage %s names tag %s, not in %v", st.Name, st.Tag, tags)
		}
	}
}
