package registry_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
)

// fault is a one-shot rule of faultProxy: the first request it matches gets the fault.
type fault struct {
	method, path string // path: a substring of the URL path
	query        string // a substring of the raw query ("" = any)
	status       int    // answer this status without forwarding...
	retryAfter   string
	lose         bool // ...or forward, then close the connection without answering...
	truncate     bool // ...or forward, then send half of the response body and close
	always       bool // every matching request, not only the first
	hit          int
}

// faultProxy is a reverse proxy on 127.0.0.1 in front of the real test registry that injects
// faults, and logs every request it sees (method, path, time).
type faultProxy struct {
	t      *testing.T
	host   string
	proxy  *httputil.ReverseProxy
	mu     sync.Mutex
	faults []*fault
	seen   []string
	at     []time.Time
}

func newFaultProxy(t *testing.T, faults ...*fault) *faultProxy {
	reg := testenv.Registry(t)
	target, _ := url.Parse("http://" + reg)
	p := &faultProxy{t: t, proxy: httputil.NewSingleHostReverseProxy(target), faults: faults}
	srv := httptest.NewServer(p) // 127.0.0.1
	t.Cleanup(srv.Close)
	p.host = strings.TrimPrefix(srv.URL, "http://")
	return p
}

func (p *faultProxy) match(r *http.Request) *fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = append(p.seen, r.Method+" "+r.URL.Path)
	p.at = append(p.at, time.Now())
	for _, f := range p.faults {
		if r.Method == f.method && strings.Contains(r.URL.Path, f.path) && strings.Contains(r.URL.RawQuery, f.query) && (f.always || f.hit == 0) {
			f.hit++
			return f
		}
	}
	return nil
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := p.match(r)
	switch {
	case f == nil:
		p.proxy.ServeHTTP(w, r)
	case f.lose:
		rec := httptest.NewRecorder()
		p.proxy.ServeHTTP(rec, r) // the registry does the work...
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			p.t.Errorf("hijack: %v", err)
			return
		}
		conn.Close() // ...and the answer is lost
	case f.truncate:
		rec := httptest.NewRecorder()
		p.proxy.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		body := rec.Body.Bytes()
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(rec.Code)
		w.Write(body[:len(body)/2])
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // the connection is closed mid-body
	default:
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		w.WriteHeader(f.status)
	}
}

func (p *faultProxy) count(method, path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, s := range p.seen {
		if strings.HasPrefix(s, method+" ") && strings.Contains(s, path) {
			n++
		}
	}
	return n
}

// via is repo (in the test registry) reached through the proxy.
func (p *faultProxy) via(t *testing.T, repo string) string {
	return strings.Replace(repo, testenv.Registry(t), p.host, 1)
}

// stream hides the type of a reader, so that a request cannot give its body again (as when a
// blob is copied from one registry to another).
type stream struct{ io.Reader }

func randomBlob(t *testing.T) ([]byte, ocispec.Descriptor) {
	b := make([]byte, 64<<10)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b, content.NewDescriptorFromBytes("application/octet-stream", b)
}

// blobStored checks, on the registry directly, that the blob is there with its size.
func blobStored(t *testing.T, repo string, desc ocispec.Descriptor) {
	t.Helper()
	r, err := registry.Options{}.Repository(repo)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Blobs().Resolve(context.Background(), desc.Digest.String())
	if err != nil || got.Size != desc.Size {
		t.Fatalf("blob %s in %s: %+v, %v (want size %d)", desc.Digest, repo, got, err, desc.Size)
	}
}

// A blob push (oras) whose upload PUT gets a 503 is sent again, even from a stream.
func TestRetryBlobUpload503(t *testing.T) {
	ctx := context.Background()
	p := newFaultProxy(t, &fault{method: http.MethodPut, path: "/blobs/uploads/", status: http.StatusServiceUnavailable})
	repo := testenv.Repo(t, "r503")
	r, err := registry.Options{}.Repository(p.via(t, repo))
	if err != nil {
		t.Fatal(err)
	}
	b, desc := randomBlob(t)
	if err := r.Push(ctx, desc, stream{bytes.NewReader(b)}); err != nil {
		t.Fatalf("push through one 503: %v", err)
	}
	if n := p.count(http.MethodPut, "/blobs/uploads/"); n != 2 {
		t.Errorf("%d upload PUTs, want 2 (the 503, then the retry)", n)
	}
	blobStored(t, repo, desc)
}

// The registry stores the blob but its answer to the upload PUT is lost: the retry finds the
// blob (HEAD) instead of failing on the finished upload session (404 BLOB_UPLOAD_UNKNOWN).
func TestRetryLostUploadResponse(t *testing.T) {
	ctx := context.Background()
	for _, replayable := range []bool{true, false} {
		t.Run(fmt.Sprintf("replayable=%v", replayable), func(t *testing.T) {
			p := newFaultProxy(t, &fault{method: http.MethodPut, path: "/blobs/uploads/", lose: true})
			repo := testenv.Repo(t, "lost")
			r, err := registry.Options{}.Repository(p.via(t, repo))
			if err != nil {
				t.Fatal(err)
			}
			b, desc := randomBlob(t)
			var body io.Reader = bytes.NewReader(b)
			if !replayable {
				body = stream{body}
			}
			if err := r.Push(ctx, desc, body); err != nil {
				t.Fatalf("push whose PUT response is lost: %v", err)
			}
			if n := p.count(http.MethodHead, "/blobs/"+desc.Digest.String()); n == 0 {
				t.Error("the blob was not checked after the lost response")
			}
			blobStored(t, repo, desc)
		})
	}
}

// go-containerregistry (build, cleanup, stages sync) through a 429 with Retry-After on the
// registry ping: the ping is tried again after the wait, and the image is written.
func TestRetry429OnPing(t *testing.T) {
	ctx := context.Background()
	p := newFaultProxy(t, &fault{method: http.MethodGet, path: "/v2/", status: http.StatusTooManyRequests, retryAfter: "1"})
	repo := testenv.Repo(t, "r429")
	o := registry.Options{}
	ref, err := o.ParseReference(p.via(t, repo) + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, o.Remote(ctx)...); err != nil {
		t.Fatalf("write through one 429: %v", err)
	}
	p.mu.Lock()
	if len(p.at) < 2 || p.at[1].Sub(p.at[0]) < 900*time.Millisecond {
		t.Errorf("the request after the 429 came %v after it, want Retry-After (1s)", p.at[1].Sub(p.at[0]))
	}
	p.mu.Unlock()
	direct, _ := o.ParseReference(repo + ":v1")
	d, err := remote.Head(direct, o.Remote(ctx)...)
	want, _ := img.Digest()
	if err != nil || d.Digest != want {
		t.Fatalf("tag v1 in the registry: %v, %v (want %s)", d, err, want)
	}
}

// A registry that keeps failing fails the operation after a bounded number of tries, with the
// registry's status in the error.
func TestRetryGivesUp(t *testing.T) {
	ctx := context.Background()
	p := newFaultProxy(t, &fault{method: http.MethodHead, path: "/blobs/", status: http.StatusServiceUnavailable, always: true})
	r, err := registry.Options{}.Repository(p.via(t, testenv.Repo(t, "down")))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Exists(ctx, ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromString("x"), Size: 1})
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("exists against a failing registry: %v, want the 503 named", err)
	}
	if n := p.count(http.MethodHead, "/blobs/"); n != 5 {
		t.Errorf("%d tries, want 5", n)
	}
}

// A manifest whose body is cut short (connection closed mid-body) is read again: the image is
// pulled whole.
func TestRetryTruncatedManifest(t *testing.T) {
	ctx := context.Background()
	repo := testenv.Repo(t, "trunc")
	o := registry.Options{}
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	direct, _ := o.ParseReference(repo + ":v1")
	if err := remote.Write(direct, img, o.Remote(ctx)...); err != nil {
		t.Fatal(err)
	}
	p := newFaultProxy(t, &fault{method: http.MethodGet, path: "/manifests/v1", truncate: true})
	ref, _ := o.ParseReference(p.via(t, repo) + ":v1")
	got, err := remote.Image(ref, o.Remote(ctx)...)
	if err != nil {
		t.Fatalf("image through a truncated manifest: %v", err)
	}
	gd, _ := got.Digest()
	want, _ := img.Digest()
	if gd != want {
		t.Errorf("digest %s, want %s", gd, want)
	}
	if n := p.count(http.MethodGet, "/manifests/v1"); n != 2 {
		t.Errorf("%d manifest GETs, want 2 (cut short, then whole)", n)
	}
}
