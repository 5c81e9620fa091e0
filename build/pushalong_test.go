package build

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// heldManifest is a registry transport that holds the first manifest PUT until a blob that
// manifest does not name is uploaded (another stage's: before or while it is held; at most
// 10 s), and can then fail that PUT instead of sending it; it records the manifest PUTs in
// order.
type heldManifest struct {
	fail      bool
	mu        sync.Mutex
	held      bool
	uploaded  []string      // digests of the blob uploads (PUT ...?digest=)
	upload    chan struct{} // signalled on each blob upload
	overlap   bool          // another stage's blob was uploaded before the first manifest PUT went through
	manifests []string      // tags PUT, in order
}

func (h *heldManifest) RoundTrip(r *http.Request) (*http.Response, error) {
	p := r.URL.Path
	if r.Method == http.MethodPut && strings.Contains(p, "/blobs/uploads/") {
		h.mu.Lock()
		h.uploaded = append(h.uploaded, r.URL.Query().Get("digest"))
		h.mu.Unlock()
		select {
		case h.upload <- struct{}{}:
		default:
		}
	}
	if r.Method != http.MethodPut || !strings.Contains(p, "/manifests/") {
		return remote.DefaultTransport.RoundTrip(r)
	}
	h.mu.Lock()
	first := !h.held
	h.held = true
	h.manifests = append(h.manifests, p[strings.LastIndex(p, "/")+1:])
	h.mu.Unlock()
	if !first {
		return remote.DefaultTransport.RoundTrip(r)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	m, err := v1.ParseManifest(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	own := map[string]bool{m.Config.Digest.String(): true}
	for _, l := range m.Layers {
		own[l.Digest.String()] = true
	}
	other := func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, d := range h.uploaded {
			if !own[d] {
				h.overlap = true
			}
		}
		return h.overlap
	}
	timeout := time.After(10 * time.Second)
	for !other() {
		select {
		case <-h.upload:
		case <-timeout:
			return remote.DefaultTransport.RoundTrip(r)
		}
	}
	if h.fail {
		return &http.Response{StatusCode: http.StatusBadRequest, Status: "400 Bad Request", Header: http.Header{},
			Body: io.NopCloser(strings.NewReader(`{"errors":[{"code":"MANIFEST_INVALID","message":"test"}]}`)), Request: r}, nil
	}
	return remote.DefaultTransport.RoundTrip(r)
}

// stagedChain is a project of one staged Dockerfile image whose stages (FROM, ENV, CMD) are all
// built registry-side.
func stagedChain(t *testing.T, base string) *gitRepo {
	g := newGitRepo(t)
	g.commit("init", map[string]string{
		"strata.yaml": "project: pushalong\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\nstaged: true\n",
		"Dockerfile":  "FROM " + base + "\nENV A=1\nCMD [\"x\"]\n",
	})
	return g
}

// The stages of a chain built registry-side are pushed along with each other: a stage's blobs
// upload while its parent's manifest PUT is in flight, but its tag appears only after its
// parent's, in the order of the chain.
func TestStagesPushedAlongParentFirst(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "pushalong")
	g := stagedChain(t, base)
	tr := &heldManifest{upload: make(chan struct{}, 1)}
	rep, err := Run(context.Background(), Options{Dir: g.dir, Repo: repo, Locker: fileLocker(t), DockerHost: noEngine, CacheDir: t.TempDir(), Registry: registry.Options{Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, s := range rep.Image("app").Stages {
		if s.Status != stages.StatusBuilt {
			t.Errorf("stage %s: %s, want built", s.Name, s.Status)
		}
		want = append(want, s.Tag)
	}
	if len(want) != 3 {
		t.Fatalf("stages %+v, want FROM, ENV, CMD", rep.Image("app").Stages)
	}
	if !tr.overlap {
		t.Error("no blob of the next stages was uploaded before the first stage's manifest PUT went through: the stages were pushed one after the other")
	}
	if strings.Join(tr.manifests, " ") != strings.Join(want, " ") {
		t.Errorf("manifest PUTs %v, want the chain's order %v", tr.manifests, want)
	}
}

// A stage whose parent's push failed is not stored: the build fails naming the parent's push,
// and no tag of the chain appears.
func TestStageNotStoredWhenParentPushFails(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "pushalong-fail")
	g := stagedChain(t, base)
	tr := &heldManifest{upload: make(chan struct{}, 1), fail: true}
	_, err := Run(context.Background(), Options{Dir: g.dir, Repo: repo, Locker: fileLocker(t), DockerHost: noEngine, CacheDir: t.TempDir(), Registry: registry.Options{Transport: tr}})
	if err == nil || !strings.Contains(err.Error(), "MANIFEST_INVALID") {
		t.Fatalf("Run = %v, want the failed manifest PUT", err)
	}
	t.Logf("error: %v", err)
	if len(tr.manifests) != 1 {
		t.Errorf("manifest PUTs %v, want only the failed one", tr.manifests)
	}
	r, _ := registry.Options{}.ParseRepository(repo)
	if tags, _ := remoteList(context.Background(), registry.Options{}, r); len(tags) != 0 {
		t.Errorf("stored tags %v, want none", tags)
	}
}
