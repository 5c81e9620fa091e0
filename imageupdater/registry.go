package imageupdater

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/time/rate"
	"k8s.io/client-go/kubernetes"
	orasremote "oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"

	"strata.dev/strata/internal/registry"
)

// registryAccess is how the controller reaches registries: one rate limiter per registry host,
// latency metrics, plain HTTP where it applies.
type registryAccess struct {
	opts      registry.Options
	conf      RegistriesConfig
	kube      kubernetes.Interface
	metrics   *metrics
	transport http.RoundTripper

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

func newRegistryAccess(opts registry.Options, conf RegistriesConfig, kube kubernetes.Interface, m *metrics) *registryAccess {
	for _, r := range conf.Registries {
		if r.Insecure {
			opts.Insecure = append(opts.Insecure, r.Name)
		}
	}
	ra := &registryAccess{opts: opts, conf: conf, kube: kube, metrics: m, limiters: map[string]*rate.Limiter{}}
	base := opts.Transport
	if base == nil {
		base = remote.DefaultTransport
	}
	ra.transport = registry.Retrying(&limitedTransport{ra: ra, base: base})
	return ra
}

func (ra *registryAccess) limiter(host string) *rate.Limiter {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	l, ok := ra.limiters[host]
	if !ok {
		r := ra.conf.limit(host)
		burst := int(r)
		if burst < 1 {
			burst = 1
		}
		l = rate.NewLimiter(rate.Limit(r), burst)
		ra.limiters[host] = l
	}
	return l
}

// limitedTransport waits for the registry's rate limiter and records latency.
type limitedTransport struct {
	ra   *registryAccess
	base http.RoundTripper
}

func (t *limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	host := req.URL.Host
	if err := t.ra.limiter(host).Wait(req.Context()); err != nil {
		return nil, err
	}
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	code := "error"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode)
	}
	t.ra.metrics.latency.WithLabelValues(host, code).Observe(time.Since(start).Seconds())
	return resp, err
}

// credentialKey is the credential source used for host: the Application's pull-secret, else the
// registries config's, else "" (docker config and credential helpers).
func (ra *registryAccess) credentialKey(pullSecret, host string) string {
	if pullSecret != "" {
		return pullSecret
	}
	if r, ok := ra.conf.lookup(host); ok {
		return r.Credentials
	}
	return ""
}

// cycle is the registry state of one check cycle: each repository is listed at most once per
// credential source, each manifest fetched at most once, and credentials resolved once. A
// failure is shared by the checks waiting for it, not remembered: the next check (a retry)
// asks the registry again.
type cycle struct {
	ra *registryAccess

	mu        sync.Mutex
	listings  map[string]*flight[[]string]
	manifests map[string]*flight[manifestInfo]
	creds     map[string]*flight[auth.Credential]
	clients   map[string]*auth.Client
}

// flight is one registry read, shared by every check that needs it while it runs and, once it
// succeeded, for the rest of the cycle.
type flight[T any] struct {
	done chan struct{}
	v    T
	err  error
}

// share returns m[key]'s value, computing it with f unless a computation is running (then it
// waits for that one, or for ctx) or succeeded before.
func share[T any](ctx context.Context, mu *sync.Mutex, m map[string]*flight[T], key string, f func() (T, error)) (T, error) {
	mu.Lock()
	fl, ok := m[key]
	if ok {
		select {
		case <-fl.done:
			ok = fl.err == nil
		default:
		}
	}
	if !ok {
		fl = &flight[T]{done: make(chan struct{})}
		m[key] = fl
		mu.Unlock()
		defer close(fl.done)
		fl.v, fl.err = f()
		return fl.v, fl.err
	}
	mu.Unlock()
	select {
	case <-fl.done:
		return fl.v, fl.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

func (ra *registryAccess) newCycle() *cycle {
	return &cycle{ra: ra,
		listings:  map[string]*flight[[]string]{},
		manifests: map[string]*flight[manifestInfo]{},
		creds:     map[string]*flight[auth.Credential]{},
		clients:   map[string]*auth.Client{},
	}
}

// forget drops what the cycle knows about repository (a webhook said it changed).
func (c *cycle) forget(repository string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.listings {
		if strings.HasSuffix(k, "\x00"+repository) {
			delete(c.listings, k)
		}
	}
	for k := range c.manifests {
		if strings.HasPrefix(k, repository+":") {
			delete(c.manifests, k)
		}
	}
}

func hostOf(repository string) string {
	h, _, _ := strings.Cut(repository, "/")
	return h
}

// client returns the auth client for a credential source, sharing its token cache in the cycle.
func (c *cycle) client(ctx context.Context, credKey string) *auth.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.clients[credKey]; ok {
		return cl
	}
	cl := &auth.Client{
		Client: &http.Client{Transport: c.ra.transport},
		Cache:  auth.NewCache(),
		Header: http.Header{"User-Agent": {registry.UserAgent()}},
		Credential: func(ctx context.Context, host string) (auth.Credential, error) {
			return c.credential(ctx, credKey, host)
		},
	}
	c.clients[credKey] = cl
	return cl
}

func (c *cycle) credential(ctx context.Context, credKey, host string) (auth.Credential, error) {
	return share(ctx, &c.mu, c.creds, credKey+"\x00"+host, func() (auth.Credential, error) {
		if credKey == "" {
			kc := c.ra.opts.Keychain
			if kc == nil {
				kc = authn.DefaultKeychain
			}
			return keychainCredential(kc, host)
		}
		return resolveCredential(ctx, c.ra.kube, credKey, host)
	})
}

func (c *cycle) repository(ctx context.Context, repository, credKey string) (*orasremote.Repository, error) {
	r, err := orasremote.NewRepository(repository)
	if err != nil {
		return nil, fmt.Errorf("repository %q: %w", repository, err)
	}
	r.PlainHTTP = c.ra.opts.IsInsecure(r.Reference.Registry)
	r.Client = c.client(ctx, credKey)
	return r, nil
}

// tags lists repository's tags, once per cycle and credential source.
func (c *cycle) tags(ctx context.Context, repository, pullSecret string) ([]string, error) {
	credKey := c.ra.credentialKey(pullSecret, hostOf(repository))
	return share(ctx, &c.mu, c.listings, credKey+"\x00"+repository, func() ([]string, error) {
		if credKey != "" {
			// Resolve credentials first: a missing secret is a clearer error than a 401.
			if _, err := c.credential(ctx, credKey, hostOf(repository)); err != nil {
				return nil, err
			}
		}
		r, err := c.repository(ctx, repository, credKey)
		if err != nil {
			return nil, err
		}
		c.ra.metrics.listings.Inc()
		var all []string
		err = r.Tags(ctx, "", func(tags []string) error {
			all = append(all, tags...)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list tags of %s: %w", repository, err)
		}
		return all, nil
	})
}

// manifestInfo is what the strategies read from a bundle manifest.
type manifestInfo struct {
	digest  string
	created time.Time
}

// manifest fetches repository:tag's manifest, once per cycle.
func (c *cycle) manifest(ctx context.Context, repository, tag, pullSecret string) (manifestInfo, error) {
	credKey := c.ra.credentialKey(pullSecret, hostOf(repository))
	return share(ctx, &c.mu, c.manifests, repository+":"+tag+"\x00"+credKey, func() (manifestInfo, error) {
		r, err := c.repository(ctx, repository, credKey)
		if err != nil {
			return manifestInfo{}, err
		}
		desc, rc, err := r.FetchReference(ctx, tag)
		if err != nil {
			return manifestInfo{}, fmt.Errorf("fetch manifest %s:%s: %w", repository, tag, err)
		}
		defer rc.Close()
		b, err := io.ReadAll(io.LimitReader(rc, 4<<20))
		if err != nil {
			return manifestInfo{}, fmt.Errorf("read manifest %s:%s: %w", repository, tag, err)
		}
		mi := manifestInfo{digest: desc.Digest.String()}
		var m ocispec.Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return mi, fmt.Errorf("manifest %s:%s: %w", repository, tag, err)
		}
		if s := m.Annotations[ocispec.AnnotationCreated]; s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return mi, fmt.Errorf("manifest %s:%s: annotation %s=%q: %w", repository, tag, ocispec.AnnotationCreated, s, err)
			}
			mi.created = t
		}
		return mi, nil
	})
}

func isLoopbackHost(h string) bool { return registry.IsLoopback(h) }
