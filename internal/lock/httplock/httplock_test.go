package httplock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/lock/kubelock"
	"strata.dev/strata/internal/testing/locktest"
	"strata.dev/strata/internal/testing/testenv"
)

func startServer(t testing.TB, o ServerOptions) *httptest.Server {
	t.Helper()
	s := NewServer(o)
	hs := httptest.NewServer(s)
	t.Cleanup(func() { hs.Close(); s.Close() })
	return hs
}

func newClient(t testing.TB, url, token, owner string) *Client {
	t.Helper()
	c, err := NewClient(ClientOptions{URL: url, Token: token, Owner: owner, Wait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// hammer has clients Clients, each its own, take one lock rounds times (locktest.Exclusion) and
// returns how many critical sections ran.
func hammer(t *testing.T, url, token string, clients, rounds int) int64 {
	t.Helper()
	var lockers []lock.Locker
	for i := 0; i < clients; i++ {
		lockers = append(lockers, newClient(t, url, token, fmt.Sprintf("client-%d", i)))
	}
	return locktest.Exclusion(t, lockers, "project/digest", rounds, time.Millisecond)
}

func TestNoDoubleGrant200Clients(t *testing.T) {
	hs := startServer(t, ServerOptions{Token: "s3cret"})
	if n := hammer(t, hs.URL, "s3cret", 200, 3); n != 600 {
		t.Fatalf("ran %d critical sections, want 600", n)
	}
	body := get(t, hs.URL+"/metrics")
	for _, want := range []string{`strata_sync_acquire_total{result="granted"} 600`, "strata_sync_release_total 600", "strata_sync_held_locks 0", "strata_sync_acquire_seconds_bucket"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestKubernetesBackedServer(t *testing.T) {
	cs, err := kubelock.ClientFor(testenv.KubeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	ns := testenv.UniqueName(t, "ns")
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	k, err := kubelock.New(kubelock.Options{Client: cs, Namespace: ns, Owner: "sync-server", TTL: 5 * time.Second, RenewEvery: time.Second, MaxWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	hs := startServer(t, ServerOptions{Backend: k})
	// A held lock is a Lease in the namespace (the conformance suite runs the rest).
	l, err := newClient(t, hs.URL, "", "x").Lock(context.Background(), "project/digest")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(context.Background())
	lease, err := cs.CoordinationV1().Leases(ns).Get(context.Background(), kubelock.LeaseName("project/digest"), metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Lease of a held lock: %v", err)
	}
	if h := *lease.Spec.HolderIdentity; !strings.HasPrefix(h, "sync-server/") {
		t.Fatalf("Lease holder %q, want the server's identity", h)
	}
}

func get(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	return string(b)
}

func post(t testing.TB, url, token string, in any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(in)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestAuthHealthAndHolder(t *testing.T) {
	hs := startServer(t, ServerOptions{Token: "right"})
	if body := get(t, hs.URL+"/healthz"); strings.TrimSpace(body) != "ok" {
		t.Fatalf("/healthz = %q", body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := newClient(t, hs.URL, "wrong", "x").Lock(ctx, "a"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("Lock with a wrong token: %v, want an immediate 401", err)
	}
	if code, _ := post(t, hs.URL+"/v1/acquire", "right", map[string]any{"owner": "x"}); code != http.StatusBadRequest {
		t.Fatalf("acquire without name: %d, want 400", code)
	}
	l, err := newClient(t, hs.URL, "right", "builder-1").Lock(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	code, out := post(t, hs.URL+"/v1/acquire", "right", AcquireRequest{Name: "a", Owner: "builder-2", WaitSeconds: 0.2})
	if code != http.StatusConflict || out["held"] != true || !strings.Contains(fmt.Sprint(out["holder"]), "builder-1") {
		t.Fatalf("acquire of a held lock: %d %v, want 409 naming builder-1", code, out)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestServerDropsUnrenewedGrant(t *testing.T) {
	hs := startServer(t, ServerOptions{TTL: time.Second})
	// A holder that never renews (a raw request, no client).
	code, out := post(t, hs.URL+"/v1/acquire", "", AcquireRequest{Name: "n", Owner: "silent"})
	if code != http.StatusOK {
		t.Fatalf("acquire: %d %v", code, out)
	}
	granted := time.Now()
	l, err := newClient(t, hs.URL, "", "next").Lock(context.Background(), "n")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(context.Background())
	if waited := time.Since(granted); waited < time.Second {
		t.Fatalf("granted again after %s, before the silent holder's TTL of 1 s", waited)
	}
	if code, _ := post(t, hs.URL+"/v1/renew", "", TokenRequest{Token: out["token"].(string)}); code != http.StatusGone {
		t.Fatalf("renew of an expired grant: %d, want 410", code)
	}
}

// TestClientLostWhenServerGone checks that a lease is lost with the server unreachable past the TTL (the
// conformance suite covers a server that forgets the grant).
func TestClientLostWhenServerGone(t *testing.T) {
	s := NewServer(ServerOptions{TTL: time.Second})
	hs := httptest.NewServer(s)
	defer s.Close()
	l, err := newClient(t, hs.URL, "", "holder").Lock(context.Background(), "n")
	if err != nil {
		t.Fatal(err)
	}
	hs.CloseClientConnections()
	hs.Close()
	locktest.WaitLost(t, l, 3*time.Second, "the server became unreachable past the TTL", "no successful renew within the TTL")
}

// BenchmarkAcquire measures acquire latency with 200 concurrent clients against one server:
// "uncontended" (each client its own lock: server overhead) and "contended" (one lock: queueing).
func BenchmarkAcquire(b *testing.B) {
	for _, mode := range []string{"uncontended", "contended"} {
		b.Run(mode, func(b *testing.B) {
			hs := startServer(b, ServerOptions{Token: "t"})
			const clients = 200
			var mu sync.Mutex
			var lat []time.Duration
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for i := 0; i < clients; i++ {
				c := newClient(b, hs.URL, "t", fmt.Sprintf("c%d", i))
				name := "shared"
				if mode == "uncontended" {
					name = fmt.Sprintf("lock-%d", i)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					var mine []time.Duration
					for next.Add(1) <= int64(b.N) {
						start := time.Now()
						l, err := c.Lock(context.Background(), name)
						if err != nil {
							b.Error(err)
							return
						}
						mine = append(mine, time.Since(start))
						_ = l.Unlock(context.Background())
					}
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
				}()
			}
			wg.Wait()
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			if len(lat) == 0 {
				return
			}
			p := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
			b.ReportMetric(float64(p(0.50).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(p(0.99).Microseconds())/1000, "p99-ms")
			b.Logf("%s, %d clients, %d acquires: p50 %s, p99 %s", mode, clients, len(lat), p(0.50), p(0.99))
		})
	}
}

func TestMemoryBackendFirstComeFirstServed(t *testing.T) {
	m := newMemory()
	ctx := context.Background()
	first, err := m.Lock(ctx, "n")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := m.Lock(wctx, "n")
			if err != nil {
				return // the cancelled waiter
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			l.Unlock(ctx)
		}()
		time.Sleep(20 * time.Millisecond) // queue them in order
		if i == 2 {
			cancel() // a waiter giving up leaves the queue without blocking the others
		}
	}
	first.Unlock(ctx)
	wg.Wait()
	if fmt.Sprint(order) != "[0 1 3 4 5]" {
		t.Fatalf("grant order %v, want [0 1 3 4 5]", order)
	}
	if len(m.locks) != 0 {
		t.Fatalf("%d lock records left after every release", len(m.locks))
	}
}

// TestClientLostBeforeServerExpiry blocks the client's renews and checks its lease is lost while
// the server still holds the grant: the holder stops trusting it before anyone else may get it.
func TestClientLostBeforeServerExpiry(t *testing.T) {
	s := NewServer(ServerOptions{TTL: 3 * time.Second})
	hs := httptest.NewServer(s)
	t.Cleanup(func() { hs.Close(); s.Close() })
	var block atomic.Bool
	base := http.DefaultTransport
	c, err := NewClient(ClientOptions{URL: hs.URL, Owner: "holder", Wait: 5 * time.Second, HTTPClient: &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if block.Load() && strings.HasSuffix(r.URL.Path, "/v1/renew") {
			return nil, errors.New("renew blocked by the test")
		}
		return base.RoundTrip(r)
	})}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.Lock(context.Background(), "margin")
	if err != nil {
		t.Fatal(err)
	}
	block.Store(true)
	lostAt := locktest.WaitLost(t, l, 6*time.Second, "every renew failed", "safety margin")
	s.mu.Lock()
	g := s.byName["margin"]
	s.mu.Unlock()
	if g == nil || !g.expires.After(lostAt) {
		t.Fatalf("lease lost at %s, after the server let the grant go (%+v): another client could already hold it", lostAt.Format(time.RFC3339Nano), g)
	}
	t.Logf("lease lost %s before the server's expiry of the grant", g.expires.Sub(lostAt).Round(time.Millisecond))
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestWaiterGivingUpGetsNoGrant has a waiter give up (its deadline passes) just before the holder
// releases: the server must not hand the lock to the departed waiter, which would leave it idle
// until the TTL; the next client gets it at once.
func TestWaiterGivingUpGetsNoGrant(t *testing.T) {
	const ttl = 3 * time.Second
	hs := startServer(t, ServerOptions{TTL: ttl})
	for i := 0; i < 5; i++ {
		name := fmt.Sprintf("n%d", i)
		held, err := newClient(t, hs.URL, "", "holder").Lock(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err = newClient(t, hs.URL, "", "quitter").Lock(ctx, name)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("waiter: %v, want deadline exceeded", err)
		}
		if err := held.Unlock(context.Background()); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		ctx, cancel = context.WithTimeout(context.Background(), ttl/2)
		l, err := newClient(t, hs.URL, "", "next").Lock(ctx, name)
		cancel()
		if err != nil {
			t.Fatalf("round %d: the lock was not free %s after its release (granted to the waiter that gave up?): %v", i, ttl/2, err)
		}
		t.Logf("round %d: next client got the released lock after %s", i, time.Since(start).Round(time.Millisecond))
		_ = l.Unlock(context.Background())
	}
}
