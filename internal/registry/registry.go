package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	orasremote "oras.land/oras-go/v2/registry/remote"
	orasauth "oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"

	"strata.dev/strata/internal/version"
)

// Options says how to reach registries. The zero value uses the docker config's credentials and
// plain HTTP only for loopback registries.
type Options struct {
	// Insecure lists registries (host or host:port) reached over plain HTTP.
	Insecure []string
	// Keychain resolves credentials; nil means the docker config and its credential helpers.
	Keychain authn.Keychain
	// Transport is the HTTP transport under Strata's retries of transient failures (see
	// retryTransport); nil means go-containerregistry's default transport.
	Transport http.RoundTripper
}

// IsInsecure reports whether registry host[:port] is reached over plain HTTP: loopback hosts
// (localhost, 127.0.0.0/8, ::1) and those listed in Insecure.
func (o Options) IsInsecure(registry string) bool {
	for _, r := range o.Insecure {
		if strings.EqualFold(strings.TrimSuffix(r, "/"), registry) {
			return true
		}
	}
	return IsLoopback(registry)
}

// IsLoopback reports whether registry host[:port] names this machine.
func IsLoopback(registry string) bool {
	host := registry
	if h, _, err := net.SplitHostPort(registry); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (o Options) nameOpts(registry string) []name.Option {
	opts := []name.Option{name.StrictValidation}
	if o.IsInsecure(registry) {
		opts = append(opts, name.Insecure)
	}
	return opts
}

func registryOf(s string) string {
	// name.ParseReference's own registry detection: first path element with '.', ':' or localhost.
	first, _, ok := strings.Cut(s, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return first
	}
	return name.DefaultRegistry
}

// ParseReference parses REPO:TAG or REPO@DIGEST, choosing plain HTTP where it applies.
func (o Options) ParseReference(s string) (name.Reference, error) {
	ref, err := name.ParseReference(s, o.nameOpts(registryOf(s))...)
	if err != nil {
		return nil, fmt.Errorf("parse image reference %q: %w", s, err)
	}
	return ref, nil
}

// ParseRepository parses REGISTRY/PATH, choosing plain HTTP where it applies.
func (o Options) ParseRepository(s string) (name.Repository, error) {
	repo, err := name.NewRepository(s, o.nameOpts(registryOf(s))...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("parse repository %q: %w", s, err)
	}
	return repo, nil
}

func (o Options) keychain() authn.Keychain {
	if o.Keychain != nil {
		return o.Keychain
	}
	return authn.DefaultKeychain
}

func (o Options) transport() http.RoundTripper {
	base := o.Transport
	if base == nil {
		base = remote.DefaultTransport
	}
	return Retrying(base)
}

// Retrying returns base under Strata's retries of transient failures (see retryTransport), for
// a client that builds its own transport (the image updater's rate-limited one).
func Retrying(base http.RoundTripper) http.RoundTripper { return &retryTransport{base: base} }

// UserAgent is sent with every registry request.
func UserAgent() string { return "strata/" + version.String() }

// uploadRetries is how go-containerregistry retries a whole blob upload (existence check, POST,
// PATCH, PUT) that failed transiently: the PATCH of an upload is never sent twice by the
// transport (a chunk would be appended twice), so a fault there restarts the upload. Five tries,
// 250 ms doubling to 2 s between them (go-containerregistry's default is three, 1 s then 3 s).
func uploadRetries() remote.Backoff {
	return remote.Backoff{Duration: 250 * time.Millisecond, Factor: 2, Jitter: 0.2, Steps: maxAttempts}
}

// Remote returns go-containerregistry options: context, credentials, transport, user agent,
// retries of whole blob uploads.
func (o Options) Remote(ctx context.Context) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(o.keychain()),
		remote.WithTransport(o.transport()),
		remote.WithUserAgent(UserAgent()),
		remote.WithRetryBackoff(uploadRetries()),
	}
}

// RoundTripper returns the transport of requests to repo's API with credentials for scope
// (transport.PushScope, transport.PullScope), through the same retries as every other request.
func (o Options) RoundTripper(ctx context.Context, repo name.Repository, scope string) (http.RoundTripper, error) {
	auth, err := o.keychain().Resolve(repo)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", repo, err)
	}
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, transport.NewUserAgent(o.transport(), UserAgent()), []string{repo.Scope(scope)})
	if err != nil {
		return nil, fmt.Errorf("reach %s: %w", repo, err)
	}
	return rt, nil
}

// Repository returns an oras-go repository for REGISTRY/PATH with credentials from the docker
// config (and its credential helpers) and plain HTTP where it applies.
func (o Options) Repository(repo string) (*orasremote.Repository, error) {
	r, err := orasremote.NewRepository(repo)
	if err != nil {
		return nil, fmt.Errorf("repository %q: %w", repo, err)
	}
	r.PlainHTTP = o.IsInsecure(r.Reference.Registry)
	store, err := credentials.NewStoreFromDocker(credentials.StoreOptions{})
	if err != nil {
		return nil, fmt.Errorf("read docker credentials: %w", err)
	}
	r.Client = redactingClient{&orasauth.Client{
		Client:     &http.Client{Transport: o.transport()},
		Cache:      orasauth.NewCache(),
		Credential: credentials.Credential(store),
		Header:     http.Header{"User-Agent": {UserAgent()}},
	}}
	return r, nil
}

// IsNotFound reports whether err is a registry's 404 answer (through go-containerregistry):
// the tag, manifest or repository is not stored.
func IsNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}
