package locktest

import (
	"context"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitLog is a slog.Handler keeping the holder attribute of each "waiting for lock" record.
type waitLog struct {
	mu      sync.Mutex
	holders []string
}

func (w *waitLog) Enabled(context.Context, slog.Level) bool { return true }
func (w *waitLog) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w *waitLog) WithGroup(string) slog.Handler            { return w }

func (w *waitLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "waiting for lock" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "holder" {
			w.mu.Lock()
			w.holders = append(w.holders, a.Value.String())
			w.mu.Unlock()
		}
		return true
	})
	return nil
}

func (w *waitLog) first() (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.holders) == 0 {
		return "", false
	}
	return w.holders[0], true
}

// testWaitLog holds a lock as "holder-a" and checks that a second Locker waiting for it logs,
// within a few seconds, who holds it and since when.
func testWaitLog(t *testing.T, b Backend) {
	name := Name(t)
	before := time.Now().Truncate(time.Second)
	held := lockWithin(t, open(t, b, "holder-a"), name, 30*time.Second)
	after := time.Now()
	defer held.Unlock(context.Background())

	logs := &waitLog{}
	waiter, err := b.Open("waiter-b", slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if l, err := waiter.Lock(ctx, name); err == nil {
			_ = l.Unlock(context.Background())
		}
	}()
	defer func() { cancel(); <-done }()

	deadline := time.Now().Add(5 * time.Second)
	line, ok := logs.first()
	for ; !ok; line, ok = logs.first() {
		if time.Now().After(deadline) {
			t.Fatal(`no "waiting for lock" record 5 s into the wait`)
		}
		time.Sleep(20 * time.Millisecond)
	}
	m := regexp.MustCompile(`^(.+) \(since (\S+)\)$`).FindStringSubmatch(line)
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
}
