package httplock

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"strata.dev/strata/internal/lock"
)

// Wire format of the JSON endpoints (all POST, bearer token in Authorization).
type (
	// AcquireRequest asks for lock Name, waiting up to WaitSeconds (long poll; capped by the server).
	AcquireRequest struct {
		Name        string  `json:"name"`
		Owner       string  `json:"owner"`
		WaitSeconds float64 `json:"waitSeconds"`
	}
	// AcquireResponse grants a lease (200) or, with Held set, reports the holder (409).
	AcquireResponse struct {
		Token      string       `json:"token,omitempty"`
		TTLSeconds float64      `json:"ttlSeconds,omitempty"`
		Held       bool         `json:"held,omitempty"`
		Holder     *lock.Holder `json:"holder,omitempty"`
		Error      string       `json:"error,omitempty"`
	}
	// TokenRequest names a granted lease for renew and release.
	TokenRequest struct {
		Token string `json:"token"`
	}
	// TokenResponse answers renew and release; 410 Gone with Error when the lease is lost.
	TokenResponse struct {
		TTLSeconds float64 `json:"ttlSeconds,omitempty"`
		Error      string  `json:"error,omitempty"`
	}
)

// ServerOptions configure a Server.
type ServerOptions struct {
	// Backend holds the locks; nil keeps them in this process's memory. With a kubelock.Locker the
	// server is stateless: restart it and the Leases stay.
	Backend lock.Locker
	// Token, when set, is the bearer token every lock request must carry.
	Token string
	// TTL is how long a grant lives without a renew; default 15 s.
	TTL time.Duration
	// MaxWait caps an acquire's long poll; default 30 s.
	MaxWait time.Duration
	// Log receives grant, expiry and lost messages; nil discards them.
	Log *slog.Logger
}

// Server serves locks over HTTP. Create it with NewServer; it is an http.Handler.
type Server struct {
	o       ServerOptions
	mux     *http.ServeMux
	metrics *metrics

	mu     sync.Mutex
	grants map[string]*grant // by token
	byName map[string]*grant

	stop chan struct{}
	done chan struct{}
}

type grant struct {
	name    string
	holder  lock.Holder
	lease   lock.Lease
	expires time.Time
	lostErr error
}

type metrics struct {
	reg      *prometheus.Registry
	acquires *prometheus.CounterVec
	latency  prometheus.Histogram
	renews   *prometheus.CounterVec
	releases prometheus.Counter
	expired  prometheus.Counter
	held     prometheus.Gauge
	waiting  prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		acquires: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_sync_acquire_total", Help: "Acquire requests by result (granted, held, error)."}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "strata_sync_acquire_seconds", Help: "Time from an acquire request to its grant.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18)}),
		renews: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_sync_renew_total", Help: "Renew requests by result (ok, gone)."}, []string{"result"}),
		releases: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_sync_release_total", Help: "Released leases."}),
		expired:  prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_sync_expired_total", Help: "Leases dropped because their holder stopped renewing."}),
		held:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "strata_sync_held_locks", Help: "Locks held now."}),
		waiting:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "strata_sync_waiting_requests", Help: "Acquire requests waiting now."}),
	}
	m.reg.MustRegister(m.acquires, m.latency, m.renews, m.releases, m.expired, m.held, m.waiting,
		prometheus.NewGoCollector())
	return m
}

// NewServer returns a Server; call Close to release every grant and stop its expiry loop.
func NewServer(o ServerOptions) *Server {
	if o.Backend == nil {
		o.Backend = newMemory()
	}
	if o.TTL <= 0 {
		o.TTL = 15 * time.Second
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 30 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		o: o, mux: http.NewServeMux(), metrics: newMetrics(),
		grants: map[string]*grant{}, byName: map[string]*grant{},
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("POST /v1/acquire", s.auth(s.acquire))
	s.mux.HandleFunc("POST /v1/renew", s.auth(s.renew))
	s.mux.HandleFunc("POST /v1/release", s.auth(s.release))
	go s.expireLoop()
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close stops the expiry loop and releases every grant still held.
func (s *Server) Close() {
	select {
	case <-s.stop:
		return
	default:
	}
	close(s.stop)
	<-s.done
	s.mu.Lock()
	grants := s.grants
	s.grants, s.byName = map[string]*grant{}, map[string]*grant{}
	s.mu.Unlock()
	for _, g := range grants {
		_ = g.lease.Unlock(context.Background())
	}
}

func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.o.Token != "" {
			got := r.Header.Get("Authorization")
			if subtle.ConstantTimeCompare([]byte(got), []byte("Bearer "+s.o.Token)) != 1 {
				writeJSON(w, http.StatusUnauthorized, TokenResponse{Error: "missing or wrong bearer token"})
				return
			}
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads a JSON request body whole: only once the body is read to its end does net/http
// watch the connection, so that r.Context() ends when a long-polling client gives up (else a
// lock could be granted to a client that is gone, and sit idle until the TTL).
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body := http.MaxBytesReader(w, r.Body, 64<<10)
	err := json.NewDecoder(body).Decode(v)
	if err == nil {
		_, err = io.Copy(io.Discard, body)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, TokenResponse{Error: "bad JSON body: " + err.Error()})
		return false
	}
	return true
}

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) acquire(w http.ResponseWriter, r *http.Request) {
	var req AcquireRequest
	if !decode(w, r, &req) {
		return
	}
	if req.Name == "" {
		writeJSON(w, http.StatusBadRequest, AcquireResponse{Error: "name is required"})
		return
	}
	wait := time.Duration(req.WaitSeconds * float64(time.Second))
	if wait <= 0 || wait > s.o.MaxWait {
		wait = s.o.MaxWait
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	s.metrics.waiting.Inc()
	l, err := s.o.Backend.Lock(ctx, req.Name)
	s.metrics.waiting.Dec()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil {
			s.metrics.acquires.WithLabelValues("held").Inc()
			h := s.holder(r.Context(), req.Name)
			writeJSON(w, http.StatusConflict, AcquireResponse{Held: true, Holder: &h, Error: "held by " + h.String()})
			return
		}
		s.metrics.acquires.WithLabelValues("error").Inc()
		writeJSON(w, http.StatusServiceUnavailable, AcquireResponse{Error: err.Error()})
		return
	}
	g := &grant{name: req.Name, holder: lock.Holder{Owner: req.Owner, Since: time.Now()}, lease: l, expires: time.Now().Add(s.o.TTL)}
	token := newToken()
	s.mu.Lock()
	s.grants[token] = g
	s.byName[req.Name] = g
	s.mu.Unlock()
	s.metrics.held.Inc()
	s.metrics.acquires.WithLabelValues("granted").Inc()
	s.metrics.latency.Observe(time.Since(start).Seconds())
	s.o.Log.Debug("lock granted", "lock", req.Name, "owner", req.Owner)
	go s.watchLost(token, g)
	writeJSON(w, http.StatusOK, AcquireResponse{Token: token, TTLSeconds: s.o.TTL.Seconds()})
}

// holder names who holds a lock: one of our grants, else the backend if it can tell.
func (s *Server) holder(ctx context.Context, name string) lock.Holder {
	s.mu.Lock()
	g := s.byName[name]
	s.mu.Unlock()
	if g != nil {
		return g.holder
	}
	if hb, ok := s.o.Backend.(interface {
		Holder(context.Context, string) (lock.Holder, bool, error)
	}); ok {
		if h, _, err := hb.Holder(ctx, name); err == nil {
			return h
		}
	}
	return lock.Holder{}
}

// watchLost marks a grant lost when its backend lease is (e.g. a Kubernetes Lease taken over).
func (s *Server) watchLost(token string, g *grant) {
	select {
	case <-g.lease.Lost():
	case <-s.stop:
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.grants[token] == g {
		g.lostErr = g.lease.Err()
	}
}

func (s *Server) renew(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	g := s.grants[req.Token]
	var lost error
	if g != nil {
		lost = g.lostErr
		if lost == nil {
			g.expires = time.Now().Add(s.o.TTL)
		}
	}
	s.mu.Unlock()
	switch {
	case g == nil:
		s.metrics.renews.WithLabelValues("gone").Inc()
		writeJSON(w, http.StatusGone, TokenResponse{Error: "unknown lease token (expired, released or the server restarted)"})
	case lost != nil:
		s.metrics.renews.WithLabelValues("gone").Inc()
		s.drop(req.Token, g)
		writeJSON(w, http.StatusGone, TokenResponse{Error: lost.Error()})
	default:
		s.metrics.renews.WithLabelValues("ok").Inc()
		writeJSON(w, http.StatusOK, TokenResponse{TTLSeconds: s.o.TTL.Seconds()})
	}
}

func (s *Server) release(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	g := s.grants[req.Token]
	s.mu.Unlock()
	if g == nil {
		writeJSON(w, http.StatusGone, TokenResponse{Error: "unknown lease token (expired, released or the server restarted)"})
		return
	}
	if err := s.drop(req.Token, g); err != nil {
		writeJSON(w, http.StatusBadGateway, TokenResponse{Error: err.Error()})
		return
	}
	s.metrics.releases.Inc()
	writeJSON(w, http.StatusOK, TokenResponse{})
}

// drop forgets a grant and releases its backend lease.
func (s *Server) drop(token string, g *grant) error {
	s.mu.Lock()
	if s.grants[token] != g {
		s.mu.Unlock()
		return nil
	}
	delete(s.grants, token)
	if s.byName[g.name] == g {
		delete(s.byName, g.name)
	}
	s.mu.Unlock()
	s.metrics.held.Dec()
	return g.lease.Unlock(context.Background())
}

func (s *Server) expireLoop() {
	defer close(s.done)
	tick := time.NewTicker(max(s.o.TTL/20, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-tick.C:
			s.mu.Lock()
			var dead []string
			for tok, g := range s.grants {
				if now.After(g.expires) {
					dead = append(dead, tok)
				}
			}
			gs := make([]*grant, len(dead))
			for i, tok := range dead {
				gs[i] = s.grants[tok]
			}
			s.mu.Unlock()
			for i, tok := range dead {
				s.o.Log.Info("lease expired without renew; releasing", "lock", gs[i].name, "holder", gs[i].holder.String())
				s.metrics.expired.Inc()
				_ = s.drop(tok, gs[i])
			}
		}
	}
}

// ServeOptions configure Serve.
type ServeOptions struct {
	ServerOptions
	// Listen is host:port; default 127.0.0.1:7373.
	Listen string
	// Ready, if set, receives the bound address once the server listens.
	Ready func(addr string)
	// Insecure allows listening on a non-loopback address without a Token (logged as a
	// warning); without it Serve refuses to.
	Insecure bool
}

// checkExposure refuses a non-loopback listen address without a token unless insecure.
func checkExposure(ctx context.Context, o ServeOptions) error {
	if o.Token != "" {
		return nil
	}
	loopback, err := isLoopback(ctx, o.Listen)
	if err != nil {
		return fmt.Errorf("sync-server: listen address %s: %w", o.Listen, err)
	}
	if loopback {
		return nil
	}
	if !o.Insecure {
		return fmt.Errorf("sync-server: refusing to listen on %s, which is not a loopback address, without a token: "+
			"anyone who reaches it could take and release the publish locks; set --token (or STRATA_TOKEN) and give builders "+
			"the same value in STRATA_SYNC_TOKEN, listen on 127.0.0.1, or pass --insecure to accept unauthenticated clients", o.Listen)
	}
	if o.Log != nil {
		o.Log.Warn("sync-server listens on a non-loopback address without a token (--insecure): any client that reaches it can take and release locks", "address", o.Listen)
	}
	return nil
}

// isLoopback reports whether every address host:port names is a loopback one (an empty host
// means every interface).
func isLoopback(ctx context.Context, listen string) (bool, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false, err
	}
	if host == "" {
		return false, nil
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback(), nil
	}
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return false, nil
		}
	}
	return len(addrs) > 0, nil
}

// Serve runs a Server on Listen until ctx ends, then shuts down gracefully. Without a Token it
// listens only on a loopback address, unless Insecure.
func Serve(ctx context.Context, o ServeOptions) error {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:7373"
	}
	if err := checkExposure(ctx, o); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("sync-server: listen on %s: %w", o.Listen, err)
	}
	srv := NewServer(o.ServerOptions)
	defer srv.Close()
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	if o.Log != nil {
		o.Log.Info("sync-server listening", "address", ln.Addr().String(), "ttl", srv.o.TTL.String(), "auth", o.Token != "")
	}
	if o.Ready != nil {
		o.Ready(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("sync-server on %s: %w", o.Listen, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	return nil
}

// memory is the in-process lock backend of the server: first come, first served.
type memory struct {
	mu    sync.Mutex
	locks map[string]*memLock
}

type memLock struct {
	queue []chan struct{} // waiters in arrival order; closing one hands it the lock
}

func newMemory() *memory { return &memory{locks: map[string]*memLock{}} }

func (m *memory) Lock(ctx context.Context, name string) (lock.Lease, error) {
	m.mu.Lock()
	ml := m.locks[name]
	if ml == nil {
		m.locks[name] = &memLock{}
		m.mu.Unlock()
		return &memLease{m: m, name: name, lost: make(chan struct{})}, nil
	}
	ch := make(chan struct{})
	ml.queue = append(ml.queue, ch)
	m.mu.Unlock()
	select {
	case <-ch:
		return &memLease{m: m, name: name, lost: make(chan struct{})}, nil
	case <-ctx.Done():
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-ch: // handed over just as we gave up: pass it on
		m.handOn(name)
	default:
		for i, c := range ml.queue {
			if c == ch {
				ml.queue = append(ml.queue[:i], ml.queue[i+1:]...)
				break
			}
		}
	}
	return nil, fmt.Errorf("lock %q: %w", name, ctx.Err())
}

// handOn gives the lock to the next waiter, or frees it. m.mu must be held.
func (m *memory) handOn(name string) {
	ml := m.locks[name]
	if ml == nil {
		return
	}
	if len(ml.queue) == 0 {
		delete(m.locks, name)
		return
	}
	next := ml.queue[0]
	ml.queue = ml.queue[1:]
	close(next)
}

type memLease struct {
	m    *memory
	name string
	once sync.Once
	lost chan struct{} // never closed: memory locks are lost only through the server's TTL
}

func (l *memLease) Lost() <-chan struct{} { return l.lost }
func (l *memLease) Err() error            { return nil }
func (l *memLease) Unlock(context.Context) error {
	l.once.Do(func() {
		l.m.mu.Lock()
		l.m.handOn(l.name)
		l.m.mu.Unlock()
	})
	return nil
}
