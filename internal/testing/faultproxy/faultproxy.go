package faultproxy

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Rule injects one fault into the requests it matches: by default only the first one.
type Rule struct {
	// Method and Path (a substring of the URL path) select requests; Query, when set, must be
	// a substring of the raw query. An empty Method matches every method.
	Method, Path, Query string
	// Status answers this status without forwarding (with RetryAfter as Retry-After and Body
	// as its JSON body)...
	Status     int
	RetryAfter string
	Body       string
	// ...or Reset closes the connection without forwarding the request (the server never sees
	// it)...
	Reset bool
	// ...or Lose forwards the request, then closes the connection without answering...
	Lose bool
	// ...or Truncate forwards it, then sends half of the response body and closes...
	Truncate bool
	// ...or Slow forwards it, then sends the response body in 8 pieces spread over Slow.
	Slow time.Duration
	// Always applies the rule to every matching request; otherwise it applies to the first
	// Times ones (default 1: a one-shot rule).
	Always bool
	Times  int

	hits int
}

// Kind names the fault of the rule: "503", "429 (Retry-After 1)", "reset", "lost", "truncated",
// "slow".
func (f *Rule) Kind() string {
	switch {
	case f.Reset:
		return "reset"
	case f.Lose:
		return "lost"
	case f.Truncate:
		return "truncated"
	case f.Slow > 0:
		return "slow"
	case f.RetryAfter != "":
		return fmt.Sprintf("%d (Retry-After %s)", f.Status, f.RetryAfter)
	}
	return fmt.Sprint(f.Status)
}

// Faults are the faults Chaos chooses from by default: every kind, each as likely.
func Faults() []Rule {
	return []Rule{
		{Status: http.StatusInternalServerError},
		{Status: http.StatusServiceUnavailable},
		{Status: http.StatusTooManyRequests, RetryAfter: "0"},
		{Status: http.StatusTooManyRequests, RetryAfter: "1"},
		{Reset: true},
		{Lose: true},
		{Truncate: true},
		{Slow: 400 * time.Millisecond},
	}
}

// Chaos injects a fault into a random fraction of the requests.
type Chaos struct {
	// Rate is the fraction of requests (0..1) that get a fault.
	Rate float64
	// Seed seeds the choice of requests and faults: the same seed and requests, the same faults.
	Seed uint64
	// Faults are the faults chosen from, each as likely; nil means Faults().
	Faults []Rule
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
	chaos  *Chaos
	rnd    *rand.Rand
}

// Request is a request the proxy saw.
type Request struct {
	Method, Path string
	At           time.Time
	// Fault is the kind of fault injected (Rule.Kind), "" for none.
	Fault string
}

// Start starts a proxy to http://target (host:port) on 127.0.0.1, closed when the test ends.
func Start(t testing.TB, target string, rules ...*Rule) *Proxy {
	u, err := url.Parse("http://" + target)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{t: t, target: target, proxy: httputil.NewSingleHostReverseProxy(u), rules: rules}
	p.proxy.ErrorLog = nil
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

// SetChaos injects random faults from now on (nil: no more random faults). Rules still apply
// first.
func (p *Proxy) SetChaos(c *Chaos) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.chaos = c
	if c != nil {
		p.rnd = rand.New(rand.NewPCG(c.Seed, c.Seed^0x9e3779b97f4a7c15))
	}
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

// Injected returns the faults injected since the last call, e.g. "PUT /v2/x/blobs/uploads/…: 503",
// and forgets the requests seen.
func (p *Proxy) Injected() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, r := range p.seen {
		if r.Fault != "" {
			out = append(out, r.Method+" "+r.Path+": "+r.Fault)
		}
	}
	p.seen = nil
	return out
}

// Count returns how many faults of each kind were injected in faults (Injected's result).
func Count(faults []string) string {
	n := map[string]int{}
	for _, f := range faults {
		n[f[strings.LastIndex(f, ": ")+2:]]++
	}
	var kinds []string
	for k := range n {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var b strings.Builder
	for i, k := range kinds {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s ×%d", k, n[k])
	}
	return b.String()
}

func (p *Proxy) match(r *http.Request) *Rule {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := Request{Method: r.Method, Path: r.URL.Path, At: time.Now()}
	var fault *Rule
	for _, f := range p.rules {
		if (f.Method == "" || r.Method == f.Method) && strings.Contains(r.URL.Path, f.Path) &&
			strings.Contains(r.URL.RawQuery, f.Query) && (f.Always || f.hits < max(f.Times, 1)) {
			f.hits++
			fault = f
			break
		}
	}
	if fault == nil && p.chaos != nil && p.rnd.Float64() < p.chaos.Rate {
		faults := p.chaos.Faults
		if faults == nil {
			faults = Faults()
		}
		f := faults[p.rnd.IntN(len(faults))]
		fault = &f
	}
	if fault != nil {
		seen.Fault = fault.Kind()
	}
	p.seen = append(p.seen, seen)
	return fault
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := p.match(r)
	switch {
	case f == nil:
		p.proxy.ServeHTTP(w, r)
	case f.Reset:
		p.hangUp(w) // the target never sees the request
	case f.Lose:
		p.proxy.ServeHTTP(httptest.NewRecorder(), r) // the target does the work...
		p.hangUp(w)                                  // ...and the answer is lost
	case f.Truncate, f.Slow > 0:
		rec := httptest.NewRecorder()
		p.proxy.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		body := rec.Body.Bytes()
		if r.Method != http.MethodHead {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		}
		w.WriteHeader(rec.Code)
		if f.Truncate {
			w.Write(body[:len(body)/2])
			http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler) // the connection is closed mid-body
		}
		piece := len(body)/8 + 1
		for len(body) > 0 {
			n := min(piece, len(body))
			w.Write(body[:n])
			http.NewResponseController(w).Flush()
			body = body[n:]
			time.Sleep(f.Slow / 8)
		}
	default:
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		if f.Body != "" {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", fmt.Sprint(len(f.Body)))
		}
		w.WriteHeader(f.Status)
		w.Write([]byte(f.Body))
	}
}

// hangUp closes the client's connection without an answer.
func (p *Proxy) hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		p.t.Errorf("faultproxy: hijack: %v", err)
		return
	}
	conn.Close()
}
