package build

import (
	"context"
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

// takeoverLocker hands out the first lease of lock name with a Lost channel the test closes
// (lose): the lease expired and another builder took the lock over. Other locks are plain.
type takeoverLocker struct {
	lock.Locker
	name  string
	mu    sync.Mutex
	first *lostLease
}

func (l *takeoverLocker) Lock(ctx context.Context, name string) (lock.Lease, error) {
	le, err := l.Locker.Lock(ctx, name)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if name == l.name && l.first == nil {
		l.first = &lostLease{Lease: le, ch: make(chan struct{})}
		return l.first, nil
	}
	return le, nil
}

func (l *takeoverLocker) lose() {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.first.ch)
}

// splitLocker grants lock name from its own directory (the lock taken over from a builder whose
// lease expired) and every other lock from the shared locker.
type splitLocker struct {
	lock.Locker
	name string
	own  lock.Locker
}

func (l splitLocker) Lock(ctx context.Context, name string) (lock.Lease, error) {
	if name == l.name {
		return l.own.Lock(ctx, name)
	}
	return l.Locker.Lock(ctx, name)
}

// takeover is the registry transport of the first builder: at its first blob upload the lease
// of the first stage's lock is lost, and another builder (run) takes that lock over and stores
// the stage before this upload goes on.
type takeover struct {
	lk    *takeoverLocker
	run   func()
	once  sync.Once
	fired bool
}

func (m *takeover) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/blobs/uploads/") {
		m.once.Do(func() {
			m.fired = true
			m.lk.lose()
			m.run()
		})
	}
	return remote.DefaultTransport.RoundTrip(r)
}

// notePut is a registry transport that closes stored once a manifest PUT of a tag of digest
// went through.
type notePut struct {
	digest string
	once   sync.Once
	stored chan struct{}
}

func (n *notePut) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := remote.DefaultTransport.RoundTrip(r)
	if err == nil && r.Method == http.MethodPut && resp.StatusCode == http.StatusCreated && strings.Contains(r.URL.Path, "/manifests/"+n.digest+"-") {
		n.once.Do(func() { close(n.stored) })
	}
	return resp, err
}

// A builder whose lease of a stage's lock expired while it pushed the stage, and whose lock
// another builder took over and stored that stage with, finds the stored stage when it re-locks
// and re-checks: first to finish wins. It uses the stored stage (discarded) and stores no
// second tag for the digest, for the stage and for the stage built on it.
func TestLeaseTakenOverMidPushUsesTheStoredStage(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "takeover")
	scratch := testenv.Repo(t, "takeover-scratch")
	reg := registry.Options{}
	g := newGitRepo(t)
	g.commit("init", map[string]string{"strata.yaml": "project: takeover\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\ndocker:\n  CMD: [x]\n"})
	ctx := context.Background()
	fl := fileLocker(t)
	// The stages' digests (they do not depend on the storage).
	pre, err := Run(ctx, Options{Dir: g.dir, Repo: scratch, Registry: reg, Locker: fl, DockerHost: noEngine})
	if err != nil {
		t.Fatal(err)
	}
	first := stageOf(t, pre.Image("app"), "from").Digest
	second := stageOf(t, pre.Image("app"), "dockerInstructions").Digest
	name := stages.PublishLock("takeover", first)

	lk := &takeoverLocker{Locker: fl, name: name}
	var (
		other    *stages.Report
		otherErr error
		otherEnd = make(chan struct{})
	)
	tr := &takeover{lk: lk, run: func() {
		note := &notePut{digest: first, stored: make(chan struct{})}
		go func() {
			defer close(otherEnd)
			other, otherErr = Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: registry.Options{Transport: note},
				Locker: splitLocker{Locker: fl, name: name, own: fileLocker(t)}, DockerHost: noEngine})
		}()
		// The other builder stores the first stage before this builder's push goes on (its
		// next stage may wait for this builder's lock of it).
		select {
		case <-note.stored:
		case <-otherEnd:
		case <-time.After(30 * time.Second):
			t.Error("the other builder did not store the first stage within 30 s")
		}
	}}
	rep, err := Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: registry.Options{Transport: tr}, Locker: lk, DockerHost: noEngine})
	<-otherEnd
	if !tr.fired {
		t.Fatal("no blob upload was seen: the lease was never lost")
	}
	if otherErr != nil {
		t.Fatalf("other builder: %v", otherErr)
	}
	if err != nil {
		t.Fatalf("builder whose lease was taken over: %v", err)
	}
	theirs := stageOf(t, other.Image("app"), "from")
	if theirs.Status != stages.StatusBuilt {
		t.Fatalf("other builder: stage from %s, want %s (it stored the stage first)", theirs.Status, stages.StatusBuilt)
	}
	mine := stageOf(t, rep.Image("app"), "from")
	if mine.Tag != theirs.Tag || mine.Status != stages.StatusDiscarded {
		t.Errorf("stage from: %s %s, want %s %s (stored by the builder that took the lock over)", mine.Status, mine.Tag, stages.StatusDiscarded, theirs.Tag)
	}
	for _, d := range []string{first, second} {
		if tags := digestTags(t, reg, repo, d); len(tags) != 1 {
			t.Errorf("digest %s has tags %v, want exactly one (first to finish wins)", shortDigest(d), tags)
		}
	}
	if a, b := rep.Image("app"), other.Image("app"); a.Ref != b.Ref || a.ManifestDigest != b.ManifestDigest {
		t.Errorf("the builders' images differ: %s (%s) and %s (%s)", a.Ref, a.ManifestDigest, b.Ref, b.ManifestDigest)
	}
}
