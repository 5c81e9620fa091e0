package httplock

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/lock/kubelock"
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

// hammer runs clients goroutines, each with its own Client, taking lock name rounds times. Each
// critical section reads a shared counter, sleeps, and writes it back incremented: a double
// grant loses an update or shows two holders at once. It fails on any overlap and returns how
// many critical sections ran.
func hammer(t *testing.T, url, token string, clients, rounds int) int64 {
	t.Helper()
	var inside, maxInside, total, counter atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients*rounds)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for i := 0; i < clients; i++ {
		c := newClient(t, url, token, fmt.Sprintf("client-%d", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				l, err := c.Lock(ctx, "project/digest")
				if err != nil {
					errs <- err
					return
				}
				n := inside.Add(1)
				for m := maxInside.Load(); n > m && !maxInside.CompareAndSwap(m, n); m = maxInside.Load() {
				}
				v := counter.Load()
				time.Sleep(time.Millisecond)
				counter.Store(v + 1)
				total.Add(1)
				inside.Add(-1)
				if err := l.Unlock(ctx); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if m := maxInside.Load(); m != 1 {
		t.Fatalf("double grant: %d holders inside the critical section at once, want 1", m)
	}
	if c, n := counter.Load(), total.Load(); c != n {
		t.Fatalf("double grant: the shared counter reads %d after %d critical sections (lost updates)", c, n)
	}
	return total.Load()
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
	if n := hammer(t, hs.URL, "", 20, 2); n != 40 {
		t.Fatalf("ran %d critical sections, want 40", n)
	}
	// A held lock is a Lease in the namespace.
	l, err := newClient(t, hs.URL, "", "x").Lock(context.Background(), "project/digest")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoordinationV1().Leases(ns).Get(context.Background(), kubelock.LeaseName("project/digest"), metav1.GetOptions{}); err != nil {
		t.Fatalf("Lease of a held lock: %v", err)
	}
	// Deleting the Lease behind the server's back loses the lease at the client.
	if err := cs.CoordinationV1().Leases(ns).Delete(context.Background(), kubelock.LeaseName("project/digest"), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("client lease not lost after its Lease was deleted")
	}
	if err := l.Err(); err == nil || !strings.Contains(err.Error(), "deleted") {
		t.Fatalf("Err() = %v, want the Lease deletion", err)
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
	// The renewing client keeps its grant over several TTLs.
	time.Sleep(2500 * time.Millisecond)
	if lock.IsLost(l) {
		t.Fatalf("a renewing client lost its lease: %v", l.Err())
	}
}

func TestClientLostWhenServerGoneOrForgets(t *testing.T) {
	s := NewServer(ServerOptions{TTL: time.Second})
	hs := httptest.NewServer(s)
	l, err := newClient(t, hs.URL, "", "holder").Lock(context.Background(), "n")
	if err != nil {
		t.Fatal(err)
	}
	s.Close() // forgets every grant (as a restarted in-memory server would)
	select {
	case <-l.Lost():
	case <-time.After(3 * time.Second):
		t.Fatal("lease not lost after the server forgot it")
	}
	if err := l.Err(); err == nil || !strings.Contains(err.Error(), "unknown lease token") {
		t.Fatalf("Err() = %v", err)
	}

	s2 := NewServer(ServerOptions{TTL: time.Second})
	hs2 := httptest.NewServer(s2)
	defer s2.Close()
	l, err = newClient(t, hs2.URL, "", "holder").Lock(context.Background(), "n")
	if err != nil {
		t.Fatal(err)
	}
	hs2.CloseClientConnections()
	hs2.Close()
	hs.Close()
	select {
	case <-l.Lost():
	case <-time.After(3 * time.Second):
		t.Fatal("lease not lost with the server unreachable past the TTL")
	}
	if err := l.Err(); err == nil || !strings.Contains(err.Error(), "no successful renew within the TTL") {
		t.Fatalf("Err() = %v", err)
	}
	if err := l.Unlock(context.Background()); err != nil {
		t.Fatalf("Unlock of a lost lease: %v", err)
	}
}

const helperEnv = "STRATA_HTTPLOCK_TEST_HELPER"

func TestMain(m *testing.M) {
	if url := os.Getenv(helperEnv); url != "" {
		c, err := NewClient(ClientOptions{URL: url, Owner: "doomed-helper"})
		if err == nil {
			_, err = c.Lock(context.Background(), "n")
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println("locked")
		select {}
	}
	os.Exit(m.Run())
}

func TestSIGKILLedHolderBlocksAtMostTTLPlusRenew(t *testing.T) {
	const ttl = 2 * time.Second
	hs := startServer(t, ServerOptions{TTL: ttl})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+hs.URL)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || strings.TrimSpace(line) != "locked" {
		t.Fatalf("helper: %q, %v", line, err)
	}
	time.Sleep(1500 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	killed := time.Now()
	l, err := newClient(t, hs.URL, "", "survivor").Lock(context.Background(), "n")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(context.Background())
	blocked := time.Since(killed)
	if limit := ttl + ttl/3 + 200*time.Millisecond; blocked > limit {
		t.Fatalf("a SIGKILLed holder blocked others for %s, want at most %s (TTL + renew period)", blocked, limit)
	}
	t.Logf("SIGKILLed holder blocked others for %s (TTL %s)", blocked, ttl)
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
	select {
	case <-l.Lost():
	case <-time.After(6 * time.Second):
		t.Fatal("Lost() not closed with every renew failing")
	}
	lostAt := time.Now()
	s.mu.Lock()
	g := s.byName["margin"]
	s.mu.Unlock()
	if g == nil || !g.expires.After(lostAt) {
		t.Fatalf("lease lost at %s, after the server let the grant go (%+v): another client could already hold it", lostAt.Format(time.RFC3339Nano), g)
	}
	t.Logf("lease lost %s before the server's expiry of the grant", g.expires.Sub(lostAt).Round(time.Millisecond))
	if err := l.Err(); err == nil || !strings.Contains(err.Error(), "safety margin") {
		t.Fatalf("Err() = %v, want the missed renews and the safety margin", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
