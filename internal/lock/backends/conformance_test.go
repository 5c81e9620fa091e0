package backends

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/lock/httplock"
	"strata.dev/strata/internal/lock/kubelock"
	"strata.dev/strata/internal/testing/locktest"
	"strata.dev/strata/internal/testing/testenv"
)

// TestMain lets the test binary act as a lock holder in a child process (killed by the
// conformance suite).
func TestMain(m *testing.M) {
	locktest.Main(m, func(spec, owner string) (lock.Locker, error) {
		s, o, err := decodeSpec(spec)
		if err != nil {
			return nil, err
		}
		o.Owner = owner
		return Open(context.Background(), s, o)
	})
}

// childSpec is a --synchronization spec with its Options, as a child holder process gets it.
type childSpec struct {
	Spec    string
	Options Options
}

func decodeSpec(s string) (string, Options, error) {
	var c childSpec
	err := json.Unmarshal([]byte(s), &c)
	return c.Spec, c.Options, err
}

// backend is a locktest.Backend opened with Open(spec, o).
func backend(t *testing.T, spec string, o Options) locktest.Backend {
	child, err := json.Marshal(childSpec{Spec: spec, Options: o})
	if err != nil {
		t.Fatal(err)
	}
	return locktest.Backend{
		Open: func(owner string, log *slog.Logger) (lock.Locker, error) {
			o := o
			o.Owner, o.Log = owner, log
			return Open(context.Background(), spec, o)
		},
		Spec: string(child),
	}
}

// kubeNamespace returns a fresh namespace name on the test apiserver, deleted when the test ends
// (the Locker creates it).
func kubeNamespace(t *testing.T) string {
	cs := testenv.Kube(t)
	ns := testenv.UniqueName(t, "ns")
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	return ns
}

// deleteLease returns a locktest Break deleting the Lease of a lock in namespace ns.
func deleteLease(ns string) func(t *testing.T, name string) {
	return func(t *testing.T, name string) {
		if err := testenv.Kube(t).CoordinationV1().Leases(ns).Delete(context.Background(), kubelock.LeaseName(name), metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConformance runs the one lock conformance suite against every backend: files, Kubernetes
// Leases, the HTTP sync server with its locks in memory, and the sync server keeping them as
// Leases.
func TestConformance(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		locktest.Run(t, func(t *testing.T) locktest.Backend {
			b := backend(t, ":local", Options{FileDir: t.TempDir()})
			b.DeadHolderWithin = time.Second // the kernel drops a dead process's flock at once; waiters poll every 50 ms
			return b
		})
	})
	t.Run("kubernetes", func(t *testing.T) {
		const ttl, renew = 3 * time.Second, time.Second
		kubeconfig := testenv.Kubeconfig(t)
		locktest.Run(t, func(t *testing.T) locktest.Backend {
			ns := kubeNamespace(t)
			b := backend(t, "kubernetes://"+ns, Options{Kubeconfig: kubeconfig, TTL: ttl, RenewEvery: renew})
			b.TTL, b.DeadHolderWithin = ttl, ttl+renew+300*time.Millisecond
			b.Break, b.BreakSays = deleteLease(ns), "the Lease was deleted"
			return b
		})
	})
	t.Run("http", func(t *testing.T) {
		const ttl = 2 * time.Second
		locktest.Run(t, func(t *testing.T) locktest.Backend {
			s := httplock.NewServer(httplock.ServerOptions{Token: "tok", TTL: ttl})
			hs := httptest.NewServer(s)
			t.Cleanup(func() { hs.Close(); s.Close() })
			b := backend(t, hs.URL, Options{Token: "tok"})
			// The client renews every TTL/3; the server drops a silent grant within TTL/20 of its TTL.
			b.TTL, b.DeadHolderWithin = ttl, ttl+ttl/3+200*time.Millisecond
			// A server that forgets its grants (closed, or restarted in memory).
			b.Break, b.BreakSays = func(*testing.T, string) { s.Close() }, "unknown lease token"
			return b
		})
	})
	t.Run("http with kubernetes", func(t *testing.T) {
		const ttl = 2 * time.Second
		cs, err := kubelock.ClientFor(testenv.KubeConfig(t))
		if err != nil {
			t.Fatal(err)
		}
		locktest.Run(t, func(t *testing.T) locktest.Backend {
			ns := kubeNamespace(t)
			k, err := kubelock.New(kubelock.Options{Client: cs, Namespace: ns, Owner: "sync-server", TTL: 5 * time.Second, RenewEvery: time.Second, MaxWait: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			s := httplock.NewServer(httplock.ServerOptions{Backend: k, TTL: ttl})
			hs := httptest.NewServer(s)
			t.Cleanup(func() { hs.Close(); s.Close() })
			b := backend(t, hs.URL, Options{})
			// The server's grant expires, it deletes the Lease, its waiting Lock polls every 200 ms.
			b.TTL, b.DeadHolderWithin = ttl, ttl+ttl/3+time.Second
			// The server's Lease deleted behind its back: its grant is lost, and so the client's.
			b.Break, b.BreakSays = deleteLease(ns), "the Lease was deleted"
			return b
		})
	})
}
