package httplock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"strata.dev/strata/internal/lock"
)

// ClientOptions configure a Client.
type ClientOptions struct {
	// URL of the sync-server, http(s)://HOST:PORT. Required.
	URL string
	// Token is sent as a bearer token.
	Token string
	// Owner identifies this process to other waiters; default lock.DefaultOwner().
	Owner string
	// Wait is the long-poll duration of one acquire request; default 20 s.
	Wait time.Duration
	// RenewEvery overrides the renew period; default a third of the TTL the server grants.
	RenewEvery time.Duration
	// HTTPClient, default a client with sane timeouts.
	HTTPClient *http.Client
	// Log receives wait and lost messages; nil discards them.
	Log *slog.Logger
}

// Client is a lock.Locker talking to a `strata sync-server`.
type Client struct{ o ClientOptions }

var _ lock.Locker = (*Client)(nil)

// NewClient checks the options and returns a Client.
func NewClient(o ClientOptions) (*Client, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("sync-server URL %q: want http(s)://HOST:PORT", o.URL)
	}
	o.URL = strings.TrimRight(o.URL, "/")
	if o.Owner == "" {
		o.Owner = lock.DefaultOwner()
	}
	if o.Wait <= 0 {
		o.Wait = 20 * time.Second
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second, ResponseHeaderTimeout: o.Wait + 30*time.Second,
		}}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Client{o: o}, nil
}

// httpError is a non-2xx answer.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.code, http.StatusText(e.code), e.msg)
}

func (c *Client) post(ctx context.Context, path string, in, out any) error {
	body, _ := json.Marshal(in)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.o.URL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.o.Token)
	}
	resp, err := c.o.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("POST %s%s: read answer: %w", c.o.URL, path, err)
	}
	if len(b) > 0 && out != nil {
		_ = json.Unmarshal(b, out)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return &httpError{code: resp.StatusCode, msg: e.Error}
	}
	return nil
}

// firstWait is the long poll of a Lock's first acquire request.
const firstWait = time.Second

// answerMargin is how long before a Lock's deadline the server is asked to have answered: a
// grant arriving after the deadline would go to a client that is gone, and the lock would sit
// idle until its TTL.
const answerMargin = 200 * time.Millisecond

// Lock implements lock.Locker: long polls until granted, retrying through server outages until
// ctx ends. A wrong token or a bad request fails at once.
func (c *Client) Lock(ctx context.Context, name string) (lock.Lease, error) {
	w := &waiter{
		c: c, name: name, log: c.o.Log.With("lock", name, "server", c.o.URL),
		// The first poll is short so that a held lock is reported (who, since when) within a
		// second instead of after a whole long poll.
		wait:  min(c.o.Wait, firstWait),
		pause: firstPause,
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("lock %q at %s: %w", name, c.o.URL, context.Cause(ctx))
		}
		if l, err := w.poll(ctx); l != nil || err != nil {
			return l, err
		}
	}
}

// firstPause is the first pause after a failed request; it doubles up to 2 s.
const firstPause = 100 * time.Millisecond

// waiter is one Lock call: its next long poll, its pause after failures, what it has logged.
type waiter struct {
	c    *Client
	name string
	log  *slog.Logger

	wait, pause  time.Duration
	loggedHolder string
	loggedErr    bool
}

// poll sends one acquire request. It returns the lease once granted, an error retrying cannot
// fix, or neither when the caller should poll again.
func (w *waiter) poll(ctx context.Context) (lock.Lease, error) {
	wait, last := w.wait, false
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl) - answerMargin; left < wait {
			// The last poll before the deadline: after a 409 only the deadline is left.
			wait, last = max(left, time.Millisecond), left <= time.Millisecond
		}
	}
	w.wait = w.c.o.Wait
	var res AcquireResponse
	err := w.c.post(ctx, "/v1/acquire", AcquireRequest{Name: w.name, Owner: w.c.o.Owner, WaitSeconds: wait.Seconds()}, &res)
	if err == nil {
		if res.Token == "" || res.TTLSeconds <= 0 {
			return nil, fmt.Errorf("lock %q at %s: answer without token or TTL", w.name, w.c.o.URL)
		}
		return w.c.hold(w.name, res.Token, time.Duration(res.TTLSeconds*float64(time.Second)), time.Now()), nil
	}
	var he *httpError
	if errors.As(err, &he) {
		switch {
		case he.code == http.StatusConflict && res.Held:
			w.held(res.Holder)
			if last {
				<-ctx.Done()
			}
			return nil, nil
		case he.code == http.StatusUnauthorized, he.code == http.StatusBadRequest, he.code == http.StatusNotFound:
			return nil, fmt.Errorf("lock %q at %s: %w", w.name, w.c.o.URL, err)
		}
	}
	if ctx.Err() == nil {
		w.retry(ctx, err)
	}
	return nil, nil
}

// held logs a new holder of the lock.
func (w *waiter) held(h *lock.Holder) {
	w.loggedErr, w.pause = false, firstPause
	if h != nil && h.Owner != w.loggedHolder {
		w.log.Info("waiting for lock", "holder", h.String())
		w.loggedHolder = h.Owner
	}
}

// retry logs a failed request (a warning the first time in a row) and waits out a doubling,
// jittered pause.
func (w *waiter) retry(ctx context.Context, err error) {
	if !w.loggedErr {
		w.log.Warn("sync-server unavailable; retrying", "error", err)
		w.loggedErr = true
	}
	d := w.pause*3/4 + time.Duration(mrand.Int64N(int64(w.pause)/2+1))
	w.pause = min(w.pause*2, 2*time.Second)
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// hold returns the Lease of a grant received at granted, renewed by Keep.
func (c *Client) hold(name, token string, ttl time.Duration, granted time.Time) lock.Lease {
	every := c.o.RenewEvery
	if every <= 0 || every >= ttl {
		every = ttl / 3
	}
	return lock.Keep(&grantKeeper{c: c, name: name, token: token, ttl: ttl}, lock.KeepOptions{
		Name: name, TTL: ttl, RenewEvery: every, Acquired: granted, Where: "sync-server " + c.o.URL,
		Log: c.o.Log.With("lock", name, "server", c.o.URL),
	})
}

// grantKeeper renews and releases one grant of the server.
type grantKeeper struct {
	c     *Client
	name  string
	token string
	ttl   time.Duration
}

// Renew implements lock.Keeper. A grant the server no longer knows (410) or a token it refuses
// (401) is Gone.
func (g *grantKeeper) Renew(ctx context.Context) error {
	err := g.c.post(ctx, "/v1/renew", TokenRequest{Token: g.token}, nil)
	var he *httpError
	if errors.As(err, &he) && (he.code == http.StatusGone || he.code == http.StatusUnauthorized) {
		return lock.Gone(fmt.Errorf("sync-server %s: %s", g.c.o.URL, he.msg))
	}
	return err
}

// Release implements lock.Keeper, with up to three attempts.
func (g *grantKeeper) Release(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		err := g.c.post(ctx, "/v1/release", TokenRequest{Token: g.token}, nil)
		var he *httpError
		if err == nil || (errors.As(err, &he) && he.code == http.StatusGone) {
			return nil
		}
		if attempt == 2 || ctx.Err() != nil {
			return fmt.Errorf("unlock %q at %s: %w; the server drops it after %s", g.name, g.c.o.URL, err, g.ttl)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
