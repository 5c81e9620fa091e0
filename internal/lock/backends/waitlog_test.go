package backends

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"strata.dev/strata/internal/lock/httplock"
	"strata.dev/strata/internal/testing/testenv"
)

// logBuffer collects JSON log records; safe for concurrent writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// waiting returns the holder attribute of the first "waiting for lock" record, if any.
func (l *logBuffer) waiting() (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range strings.Split(l.b.String(), "\n") {
		var rec struct {
			Msg    string `json:"msg"`
			Lock   string `json:"lock"`
			Holder string `json:"holder"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "waiting for lock" {
			return rec.Holder, true
		}
	}
	return "", false
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestWaitingLogsHolderAndSince holds a lock as "holder-a" with each backend and checks that a
// second locker waiting for it logs, within a few seconds, who holds it and since when.
func TestWaitingLogsHolderAndSince(t *testing.T) {
	specs := map[string]func(t *testing.T) (string, Options){
		":local": func(t *testing.T) (string, Options) {
			return ":local", Options{FileDir: t.TempDir()}
		},
		"kubernetes": func(t *testing.T) (string, Options) {
			kubeconfig := testenv.Kubeconfig(t)
			cs := testenv.Kube(t)
			ns := testenv.UniqueName(t, "ns")
			t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
			return "kubernetes://" + ns, Options{Kubeconfig: kubeconfig}
		},
		"http": func(t *testing.T) (string, Options) {
			s := httplock.NewServer(httplock.ServerOptions{Token: "tok"})
			hs := httptest.NewServer(s)
			t.Cleanup(func() { hs.Close(); s.Close() })
			return hs.URL, Options{Token: "tok"}
		},
	}
	since := regexp.MustCompile(`^(.+) \(since (\S+)\)$`)
	for name, setup := range specs {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			spec, o := setup(t)
			lockName := testenv.UniqueName(t, "project") + "/digest"

			ho := o
			ho.Owner = "holder-a"
			holder, err := Open(ctx, spec, ho)
			if err != nil {
				t.Fatal(err)
			}
			before := time.Now().Truncate(time.Second)
			held, err := holder.Lock(ctx, lockName)
			if err != nil {
				t.Fatal(err)
			}
			after := time.Now()

			logs := &logBuffer{}
			wo := o
			wo.Owner = "waiter-b"
			wo.Log = slog.New(slog.NewJSONHandler(logs, nil))
			waiter, err := Open(ctx, spec, wo)
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan error, 1)
			go func() {
				l, err := waiter.Lock(ctx, lockName)
				if err == nil {
					err = l.Unlock(ctx)
				}
				got <- err
			}()

			deadline := time.Now().Add(5 * time.Second)
			var line string
			for {
				h, ok := logs.waiting()
				if ok {
					line = h
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no \"waiting for lock\" record 5 s into the wait; logs:\n%s", logs)
				}
				time.Sleep(20 * time.Millisecond)
			}
			m := since.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("waiting record holder %q, want \"OWNER (since TIME)\"", line)
			}
			if !strings.HasPrefix(m[1], "holder-a") {
				t.Errorf("waiting record names holder %q, want holder-a", m[1])
			}
			at, err := time.Parse(time.RFC3339, m[2])
			if err != nil {
				t.Fatalf("since %q: %v", m[2], err)
			}
			if at.Before(before) || at.After(after) {
				t.Errorf("waiting record says held since %s, the lock was taken between %s and %s", at, before.UTC().Format(time.RFC3339), after.UTC().Format(time.RFC3339))
			}

			select {
			case err := <-got:
				t.Fatalf("the waiter got the lock while it was held (err %v)", err)
			default:
			}
			if err := held.Unlock(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-got:
				if err != nil {
					t.Fatalf("waiter after release: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the waiter did not get the lock 30 s after its release")
			}
		})
	}
}
