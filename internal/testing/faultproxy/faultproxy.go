package faultproxy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Rule injects one fault into the requests it matches: by default only the first one.
type Rule struct {
	// Method and Path (a substring of the URL path) select requests; Query, when set, must be
	// a substring of the raw query.
	Method, Path, Query string
	// Status answers this status without forwarding (with RetryAfter as Retry-After)...
	Status     int
	RetryAfter string
	// ...or Lose forwards the request, then closes the connection without answering...
	Lose bool
	// ...or Truncate forwards it, then sends half of the response body and closes.
	Truncate bool
	// Always applies the rule to every matching request, not only the first.
	Always bool

	hits int
}

// Proxy is a fault-injecting reverse proxy.
type Proxy struct {
	t      testing.TB
	target string
	host   string
	proxy  *httputil.ReverseProxy
	mu     sync.Mutex
	rules  []*Rule
	seen   []Request
}

// Request is a request the proxy saw.
type Request struct {
	Method, Path string
	At           time.Time
}

// Start starts a proxy to http://target (host:port) on 127.0.0.1, closed when the test ends.
func Start(t testing.TB, target string, rules ...*Rule) *Proxy {
	u, err := url.Parse("http://" + target)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{t: t, target: target, proxy: httputil.NewSingleHostReverseProxy(u), rules: rules}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	p.host = strings.TrimPrefix(srv.URL, "http://")
	return p
}

// Host is the proxy's host:port.
func (p *Proxy) Host() string { return p.host }

// Via is ref (repository or reference on the target) reached through the proxy.
func (p *Proxy) Via(ref string) string { return strings.Replace(ref, p.target, p.host, 1) }

// Add adds rules.
func (p *Proxy) Add(rules ...*Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, rules...)
}

// Hits is how many requests rule r hit.
func (p *Proxy) Hits(r *Rule) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return r.hits
}

// Seen returns the requests seen so far whose method is method and path contains path.
func (p *Proxy) Seen(method, path string) []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Request
	for _, r := range p.seen {
		if r.Method == method && strings.Contains(r.Path, path) {
			out = append(out, r)
		}
	}
	return out
}

func (p *Proxy) match(r *http.Request) *Rule {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = append(p.seen, Request{Method: r.Method, Path: r.URL.Path, At: time.Now()})
	for _, f := range p.rules {
		if r.Method == f.Method && strings.Contains(r.URL.Path, f.Path) && strings.Contains(r.URL.RawQuery, f.Query) && (f.Always || f.hits == 0) {
			f.hits++
			return f
		}
	}
	return nil
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := p.match(r)
	switch {
	case f == nil:
		p.proxy.ServeHTTP(w, r)
	case f.Lose:
		p.proxy.ServeHTTP(httptest.NewRecorder(), r) // the target does the work...
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			p.t.Errorf("faultproxy: hijack: %v", err)
			return
		}
		conn.Close() // ...and the answer is lost
	case f.Truncate:
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
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		w.WriteHeader(f.Status)
	}
}
