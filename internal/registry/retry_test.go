package registry_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/faultproxy"
	"strata.dev/strata/internal/testing/testenv"
)

func proxy(t *testing.T, rules ...*faultproxy.Rule) *faultproxy.Proxy {
	return faultproxy.Start(t, testenv.Registry(t), rules...)
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
	p := proxy(t, &faultproxy.Rule{Method: http.MethodPut, Path: "/blobs/uploads/", Status: http.StatusServiceUnavailable})
	repo := testenv.Repo(t, "r503")
	r, err := registry.Options{}.Repository(p.Via(repo))
	if err != nil {
		t.Fatal(err)
	}
	b, desc := randomBlob(t)
	if err := r.Push(ctx, desc, stream{bytes.NewReader(b)}); err != nil {
		t.Fatalf("push through one 503: %v", err)
	}
	if n := len(p.Seen(http.MethodPut, "/blobs/uploads/")); n != 2 {
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
			p := proxy(t, &faultproxy.Rule{Method: http.MethodPut, Path: "/blobs/uploads/", Lose: true})
			repo := testenv.Repo(t, "lost")
			r, err := registry.Options{}.Repository(p.Via(repo))
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
			if n := len(p.Seen(http.MethodHead, "/blobs/"+desc.Digest.String())); n == 0 {
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
	p := proxy(t, &faultproxy.Rule{Method: http.MethodGet, Path: "/v2/", Status: http.StatusTooManyRequests, RetryAfter: "1"})
	repo := testenv.Repo(t, "r429")
	o := registry.Options{}
	ref, err := o.ParseReference(p.Via(repo) + ":v1")
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
	if pings := p.Seen(http.MethodGet, "/v2/"); len(pings) < 2 || pings[1].At.Sub(pings[0].At) < 900*time.Millisecond {
		t.Errorf("the ping after the 429 came too early, want Retry-After (1s): %+v", pings)
	}
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
	p := proxy(t, &faultproxy.Rule{Method: http.MethodHead, Path: "/blobs/", Status: http.StatusServiceUnavailable, Always: true})
	r, err := registry.Options{}.Repository(p.Via(testenv.Repo(t, "down")))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Exists(ctx, ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromString("x"), Size: 1})
	if err == nil || !strings.Contains(err.Error(), "503 Service Unavailable after 5 attempts") || !strings.Contains(err.Error(), "/blobs/") {
		t.Fatalf("exists against a failing registry: %v, want the request and the 503 after 5 attempts named", err)
	}
	if n := len(p.Seen(http.MethodHead, "/blobs/")); n != 5 {
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
	p := proxy(t, &faultproxy.Rule{Method: http.MethodGet, Path: "/manifests/v1", Truncate: true})
	ref, _ := o.ParseReference(p.Via(repo) + ":v1")
	got, err := remote.Image(ref, o.Remote(ctx)...)
	if err != nil {
		t.Fatalf("image through a truncated manifest: %v", err)
	}
	gd, _ := got.Digest()
	want, _ := img.Digest()
	if gd != want {
		t.Errorf("digest %s, want %s", gd, want)
	}
	if n := len(p.Seen(http.MethodGet, "/manifests/v1")); n != 2 {
		t.Errorf("%d manifest GETs, want 2 (cut short, then whole)", n)
	}
}

// The upload state token (_state) of a failed upload is not printed in the error: neither when
// the registry refuses the upload (400), nor when the connection is reset on every try (the
// error then comes from net/http, with the URL).
func TestRetryErrorRedactsUploadState(t *testing.T) {
	for name, rule := range map[string]faultproxy.Rule{
		"400":   {Status: http.StatusBadRequest},
		"reset": {Reset: true},
		"lost":  {Lose: true},
	} {
		t.Run(name, func(t *testing.T) {
			rule.Method, rule.Path, rule.Always = http.MethodPut, "/blobs/uploads/", true
			p := proxy(t, &rule)
			r, err := registry.Options{}.Repository(p.Via(testenv.Repo(t, "redact")))
			if err != nil {
				t.Fatal(err)
			}
			b, desc := randomBlob(t)
			if name == "lost" {
				b = b[:100] // lost answers are checked with a HEAD: make the blob one that is never stored
				desc.Digest = digest.FromString("never stored")
			}
			err = r.Push(context.Background(), desc, stream{bytes.NewReader(b)})
			if err == nil || !strings.Contains(err.Error(), "/blobs/uploads/") {
				t.Fatalf("push that fails: %v", err)
			}
			if strings.Contains(err.Error(), "_state=") && !strings.Contains(err.Error(), "_state=REDACTED") {
				t.Errorf("the upload state is printed: %v", err)
			}
		})
	}
	if got := registry.Redact(`Put "http://r/v2/a/blobs/uploads/x?_state=abc-DEF_1&digest=sha256%3A00": EOF`); got != `Put "http://r/v2/a/blobs/uploads/x?_state=REDACTED&digest=sha256%3A00": EOF` {
		t.Errorf("Redact = %s", got)
	}
}

// The final error of a go-containerregistry write that keeps failing names the operation, the
// registry, the repository and reference, the status, the registry's message and the attempts.
func TestRetryFinalErrorNamesEverything(t *testing.T) {
	ctx := context.Background()
	p := proxy(t, &faultproxy.Rule{Method: http.MethodPut, Path: "/manifests/v1", Status: http.StatusServiceUnavailable, Always: true})
	repo := p.Via(testenv.Repo(t, "final"))
	o := registry.Options{}
	ref, _ := o.ParseReference(repo + ":v1")
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	err = remote.Write(ref, img, o.Remote(ctx)...)
	want := []string{"PUT", "http://" + strings.Replace(repo, "/", "/v2/", 1) + "/manifests/v1", "503 Service Unavailable after 5 attempts"}
	for _, w := range want {
		if err == nil || !strings.Contains(strings.ToUpper(err.Error()), strings.ToUpper(w)) {
			t.Errorf("error = %v, want %q in it", err, w)
		}
	}
	if n := len(p.Seen(http.MethodPut, "/manifests/v1")); n != 5 {
		t.Errorf("%d manifest PUTs, want 5 (no retries on top of the transport's)", n)
	}
}

// A registry's error answer cut short (here the 404 of a repository not yet written, to a tags
// listing) is read again, not failed on: the listing says the repository has no tags.
func TestRetryTruncatedErrorBody(t *testing.T) {
	p := proxy(t, &faultproxy.Rule{Method: http.MethodGet, Path: "/tags/list", Truncate: true})
	o := registry.Options{}
	repo, err := o.ParseRepository(p.Via(testenv.Repo(t, "empty")))
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.List(repo, o.Remote(context.Background())...)
	if !registry.IsNotFound(err) {
		t.Fatalf("list tags of a repository never written, through one cut-short answer: %v, want its 404", err)
	}
	if n := len(p.Seen(http.MethodGet, "/tags/list")); n != 2 {
		t.Errorf("%d listings, want 2 (cut short, then whole)", n)
	}
}

// A large blob (streamed, not read whole) whose body breaks off is read on from where it broke
// off (Range), and arrives whole; one that breaks off every time fails after 5 tries.
func TestRetryResumesLargeBlob(t *testing.T) {
	ctx := context.Background()
	repo := testenv.Repo(t, "large")
	r, err := registry.Options{}.Repository(repo)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6<<20)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	desc := content.NewDescriptorFromBytes("application/octet-stream", b)
	if err := r.Push(ctx, desc, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	for _, always := range []bool{false, true} {
		p := proxy(t, &faultproxy.Rule{Method: http.MethodGet, Path: "/blobs/" + desc.Digest.String(), Truncate: true, Always: always})
		pr, _ := registry.Options{}.Repository(p.Via(repo))
		rc, err := pr.Blobs().Fetch(ctx, desc)
		if err != nil {
			t.Fatal(err)
		}
		got, err := content.ReadAll(rc, desc)
		rc.Close()
		gets := p.Seen(http.MethodGet, "/blobs/"+desc.Digest.String())
		if always {
			if err == nil || len(gets) != 5 {
				t.Errorf("a blob cut short every time: %v after %d GETs, want an error after 5", err, len(gets))
			}
			continue
		}
		if err != nil || !bytes.Equal(got, b) || len(gets) != 2 {
			t.Errorf("a blob cut short once: %v after %d GETs, want it whole after 2", err, len(gets))
		}
	}
}

// A DELETE whose answer is lost is sent again; the 404 it then gets means the first one
// deleted the manifest: the delete succeeds (cleanup failed 1 of 20 runs at 20 % faults on it).
func TestRetryLostDeleteSucceeds(t *testing.T) {
	ctx := context.Background()
	repo := testenv.Repo(t, "del")
	o := registry.Options{}
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	direct, _ := o.ParseReference(repo + ":v1")
	if err := remote.Write(direct, img, o.Remote(ctx)...); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	p := proxy(t, &faultproxy.Rule{Method: http.MethodDelete, Path: "/manifests/", Lose: true})
	ref, _ := o.ParseReference(p.Via(repo) + "@" + d.String())
	if err := remote.Delete(ref, o.Remote(ctx)...); err != nil {
		t.Fatalf("delete whose answer is lost: %v", err)
	}
	if n := len(p.Seen(http.MethodDelete, "/manifests/")); n != 2 {
		t.Errorf("%d DELETEs, want 2", n)
	}
	if _, err := remote.Head(direct, o.Remote(ctx)...); !registry.IsNotFound(err) {
		t.Errorf("the manifest after the delete: %v, want 404", err)
	}
}

// A manifest PUT refused because a blob it names is unknown, right after the blobs were stored
// (a registry that does not see them yet), is tried again.
func TestRetryManifestBlobUnknown(t *testing.T) {
	ctx := context.Background()
	p := proxy(t, &faultproxy.Rule{Method: http.MethodPut, Path: "/manifests/v1", Status: http.StatusBadRequest,
		Body: `{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content"},{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:00"}]}`})
	repo := p.Via(testenv.Repo(t, "blobunknown"))
	o := registry.Options{}
	ref, _ := o.ParseReference(repo + ":v1")
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, o.Remote(ctx)...); err != nil {
		t.Fatalf("write through one MANIFEST_BLOB_UNKNOWN: %v", err)
	}
	if n := len(p.Seen(http.MethodPut, "/manifests/v1")); n != 2 {
		t.Errorf("%d manifest PUTs, want 2", n)
	}
}
