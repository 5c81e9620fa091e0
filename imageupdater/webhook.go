package imageupdater

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
)

// handler serves /webhook, /healthz and /metrics.
func (c *controller) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		c.mu.Lock()
		ready := c.ready
		c.mu.Unlock()
		if !ready {
			http.Error(w, "applications informer not synced", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(c.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/webhook", c.webhook)
	return mux
}

// pushEvent is a pushed repository[:tag]. Repository is REGISTRY/PATH when the sender named the
// registry, else PATH only.
type pushEvent struct {
	repository string
	tag        string
}

// parseWebhook reads distribution's notification envelope or a simple {"repository", "tag"}.
func parseWebhook(body []byte) ([]pushEvent, error) {
	var env struct {
		Events []struct {
			Action string `json:"action"`
			Target struct {
				Repository string `json:"repository"`
				Tag        string `json:"tag"`
			} `json:"target"`
			Request struct {
				Host string `json:"host"`
			} `json:"request"`
		} `json:"events"`
		Repository string `json:"repository"`
		Tag        string `json:"tag"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("webhook body: %w", err)
	}
	if env.Events == nil {
		if env.Repository == "" {
			return nil, fmt.Errorf("webhook body: neither a distribution envelope (events[]) nor {\"repository\", \"tag\"}")
		}
		return []pushEvent{{repository: strings.TrimPrefix(env.Repository, "oci://"), tag: env.Tag}}, nil
	}
	var out []pushEvent
	for _, e := range env.Events {
		if e.Action != "push" || e.Target.Repository == "" {
			continue
		}
		repo := e.Target.Repository
		if e.Request.Host != "" {
			repo = e.Request.Host + "/" + repo
		}
		out = append(out, pushEvent{repository: repo, tag: e.Target.Tag})
	}
	return out, nil
}

// Delays after a tagged push event at which its Applications are checked again, with a fresh
// listing.
const (
	webhookRecheckSoon = 300 * time.Millisecond
	webhookRecheckLate = 1500 * time.Millisecond
)

func tagged(events []pushEvent) bool {
	for _, e := range events {
		if e.tag != "" {
			return true
		}
	}
	return false
}

// maxWebhookBody is the largest body /webhook reads; a larger one is refused with 413.
const maxWebhookBody = 1 << 20

// webhookEnabled: /webhook needs a secret unless WebhookInsecureNoSecret says otherwise.
func (c *controller) webhookEnabled() bool {
	return c.opts.WebhookSecret != "" || c.opts.WebhookInsecureNoSecret
}

// webhook handles POST /webhook[?type=KIND][&registry_url=HOST]: the sender's secret is checked
// (401, nothing processed), the body parsed (400 naming the problem) and the Applications on the
// pushed repositories are checked at once (202 with their keys).
func (c *controller) webhook(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if !c.webhookEnabled() {
		http.Error(w, "webhook disabled: the updater runs without --webhook-secret (and without --webhook-insecure-no-secret)", http.StatusForbidden)
		return
	}
	name := r.URL.Query().Get("type")
	if name == "" {
		name = r.Header.Get("X-Registry-Type")
	}
	kind, ok := webhookKinds[strings.ToLower(name)]
	if !ok {
		http.Error(w, fmt.Sprintf("unknown webhook type %q (known: %s)", name, webhookKindNames()), http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, fmt.Sprintf("webhook body larger than %d bytes", maxWebhookBody), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading webhook body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if c.opts.WebhookSecret != "" && !kind.authorized(r, body, c.opts.WebhookSecret) {
		c.log.Warn("webhook refused: bad or missing secret", "type", name, "remote", r.RemoteAddr)
		http.Error(w, "bad or missing webhook secret", http.StatusUnauthorized)
		return
	}
	events, err := kind.parse(r, body)
	if err != nil {
		c.log.Warn("webhook refused", "type", name, "error", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// A delivery seen before, or dated outside the replay window, checks nothing. It is answered
	// 200, not an error: a sender retrying a delivery whose answer it lost must stop retrying.
	if why := c.replay.admit(deliveryOf(strings.ToLower(name), r, body), time.Now()); why != "" {
		c.metrics.webhookReplays.Inc()
		c.log.Warn("webhook refused: replay", "type", name, "remote", r.RemoteAddr, "why", why)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"refused": why, "applications": []string{}})
		return
	}
	if host := r.URL.Query().Get("registry_url"); host != "" {
		host = strings.TrimSuffix(hostOfURL(host), "/")
		for i, e := range events {
			if h, p, ok := strings.Cut(e.repository, "/"); ok && isRegistryHost(h) {
				e.repository = p
			}
			events[i].repository = joinRepository(host, e.repository)
		}
	}
	keys, repos := c.affected(events)
	if len(keys) > 0 {
		c.refresh(keys, repos)
		if tagged(events) {
			// distribution sends a manifest's push event before it links the tag (the event
			// fires when the manifest is stored): a listing made at once can miss the new tag.
			// Check again a little later; an up-to-date Application costs one listing.
			for _, d := range []time.Duration{webhookRecheckSoon, webhookRecheckLate} {
				time.AfterFunc(d, func() { c.refresh(keys, repos) })
			}
		}
	}
	c.log.Info("webhook", "type", name, "pushes", len(events), "applications", len(keys))
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]any{"applications": keys})
}

// affected returns the opted-in Applications whose bundle repository a push names, and those
// repositories. A push without registry host matches on the path.
func (c *controller) affected(events []pushEvent) (keys, repos []string) {
	seenRepo := map[string]bool{}
	for _, l := range c.listers {
		apps, err := l.List(labels.Everything())
		if err != nil {
			continue
		}
		for _, o := range apps {
			a, ok := o.(*unstructured.Unstructured)
			if !ok || !optedIn(a.GetAnnotations()) {
				continue
			}
			t, ok, err := selectTarget(a)
			if err != nil || !ok {
				continue
			}
			src := t.source
			for _, e := range events {
				if repositoryMatches(src.repository, e.repository) {
					keys = append(keys, a.GetNamespace()+"/"+a.GetName())
					if !seenRepo[src.repository] {
						seenRepo[src.repository] = true
						repos = append(repos, src.repository)
					}
					break
				}
			}
		}
	}
	return keys, repos
}

// repositoryMatches compares a bundle repository with a pushed one. Loopback aliases
// (localhost, 127.0.0.1) are the same registry; a pushed repository without a registry host
// matches on its path.
func repositoryMatches(bundle, pushed string) bool {
	if strings.EqualFold(bundle, pushed) {
		return true
	}
	bh, bp, _ := strings.Cut(bundle, "/")
	ph, pp, ok := strings.Cut(pushed, "/")
	if !ok || !isRegistryHost(ph) {
		return bp == pushed
	}
	if bp != pp {
		return false
	}
	if dockerHub(bh) && dockerHub(ph) {
		return true
	}
	return sameLoopback(bh, ph)
}

// isRegistryHost tells a registry host from a repository path's first element.
func isRegistryHost(h string) bool {
	return strings.ContainsAny(h, ".:") || h == "localhost"
}

// dockerHub: Docker Hub's names (its webhooks say docker.io; clients pull from the others).
func dockerHub(h string) bool {
	switch strings.ToLower(h) {
	case "docker.io", "index.docker.io", "registry-1.docker.io":
		return true
	}
	return false
}

func sameLoopback(a, b string) bool {
	port := func(h string) string {
		if i := strings.LastIndex(h, ":"); i >= 0 {
			return h[i+1:]
		}
		return ""
	}
	return isLoopbackHost(a) && isLoopbackHost(b) && port(a) == port(b)
}
