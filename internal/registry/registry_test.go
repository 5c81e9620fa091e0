package registry

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

func TestInsecureOnlyForLoopbackAndListed(t *testing.T) {
	o := Options{Insecure: []string{"registry.internal:5000"}}
	for reg, want := range map[string]bool{
		"127.0.0.1:5000":         true,
		"localhost:5000":         true,
		"[::1]:5000":             true,
		"registry.internal:5000": true,
		"registry.internal":      false,
		"ghcr.io":                false,
		"10.0.0.1:5000":          false,
	} {
		if got := o.IsInsecure(reg); got != want {
			t.Errorf("IsInsecure(%q) = %v, want %v", reg, got, want)
		}
	}
	ref, err := o.ParseReference("127.0.0.1:5000/p/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if ref.Context().Registry.Scheme() != "http" {
		t.Errorf("loopback scheme = %s, want http", ref.Context().Registry.Scheme())
	}
	ref, err = o.ParseReference("ghcr.io/p/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if ref.Context().Registry.Scheme() != "https" {
		t.Errorf("ghcr.io scheme = %s, want https", ref.Context().Registry.Scheme())
	}
	if _, err := o.ParseReference("UPPER/case:tag"); err == nil {
		t.Error("want an error for an invalid reference")
	}
}

// A registry that answers plain HTTP under a name that is not a loopback address (here
// registry.test:5000, dialled to a plain-HTTP server on loopback) is reached over HTTPS; the error
// says it answers plain HTTP and which flag makes Strata use it.
func TestPlainHTTPRegistryErrorSaysWhatToDo(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}
	o := Options{Transport: &http.Transport{DialContext: dial}}
	ref, err := o.ParseReference("registry.test:5000/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Head(ref, o.Remote(context.Background())...)
	if err == nil || !strings.Contains(err.Error(), "registry registry.test:5000 answers plain HTTP") ||
		!strings.Contains(err.Error(), "--insecure-registry registry.test:5000") {
		t.Fatalf("error = %v, want it to say the registry answers plain HTTP and name --insecure-registry", err)
	}
	o.Insecure = []string{"registry.test:5000"}
	ref, _ = o.ParseReference("registry.test:5000/app:v1")
	if _, err = remote.Head(ref, o.Remote(context.Background())...); !IsNotFound(err) {
		t.Errorf("with --insecure-registry: %v, want the server's 404", err)
	}
}

// A loopback registry served over TLS (a port-forward to an in-cluster registry) keeps working:
// loopback hosts are tried over HTTPS first and fall back to plain HTTP only when that fails.
func TestLoopbackRegistryOverTLSWorks(t *testing.T) {
	var schemes []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		schemes = append(schemes, "https")
		http.NotFound(w, r)
	}))
	defer srv.Close()
	o := Options{Transport: srv.Client().Transport}
	ref, err := o.ParseReference(strings.TrimPrefix(srv.URL, "https://") + "/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(ref, o.Remote(context.Background())...); !IsNotFound(err) {
		t.Fatalf("%v, want the TLS server's 404", err)
	}
	if len(schemes) == 0 {
		t.Fatal("no request reached the TLS registry")
	}
}

// The one transport a build makes per stages storage (RoundTripper) reaches a loopback
// registry served over TLS too: its ping tries HTTPS first, and requests made with the
// repository's plain-HTTP scheme (loopback) are sent over the scheme the ping found.
func TestRoundTripperLoopbackOverTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			w.WriteHeader(http.StatusOK)
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	o := Options{Transport: srv.Client().Transport}
	repo, err := o.ParseRepository(strings.TrimPrefix(srv.URL, "https://") + "/app")
	if err != nil {
		t.Fatal(err)
	}
	if repo.Scheme() != "http" {
		t.Fatalf("scheme of a loopback repository = %s; the test needs the plain-HTTP default", repo.Scheme())
	}
	rt, err := o.RoundTripper(context.Background(), repo, transport.PullScope)
	if err != nil {
		t.Fatalf("RoundTripper: %v", err)
	}
	req, _ := http.NewRequest(http.MethodGet, repo.Scheme()+"://"+repo.RegistryStr()+"/v2/app/tags/list", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("request through the transport: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || resp.Request.URL.Scheme != "https" {
		t.Errorf("answer %d over %s, want the TLS server's 404 over https", resp.StatusCode, resp.Request.URL.Scheme)
	}
}
