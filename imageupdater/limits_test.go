package imageupdater

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"strata.dev/strata/internal/testing/testenv"
)

// A hostile allow-tags expression (20,000 alternatives, 138 KB: under Kubernetes' annotation
// limit) is refused with an error naming the annotation, on that Application only; a healthy
// Application in the same --once run still moves.
func TestHostilePatternIsRefusedAndOthersMove(t *testing.T) {
	k := newKubeEnv(t)
	repo := testenv.Repo(t, "app")
	publishSeries(t, repo)
	alts := make([]string, 20000)
	for i := range alts {
		alts[i] = fmt.Sprintf("v%d\\.x", i)
	}
	hostile := "regexp:^(" + strings.Join(alts, "|") + ")$"
	if len(hostile) < 130_000 {
		t.Fatalf("hostile pattern is only %d bytes", len(hostile))
	}
	k.app(t, "hostile", map[string]string{AnnotationChartVersion: "1.x", AnnotationAllowTags: hostile}, helmSource(repo, "1.0.0"))
	k.app(t, "healthy", map[string]string{AnnotationChartVersion: "1.x"}, helmSource(repo, "1.0.0"))

	logs := &logBuffer{}
	err := Run(context.Background(), Options{
		RestConfig: k.cfg, Namespaces: []string{k.ns}, Once: true,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err == nil || !strings.Contains(err.Error(), "1 of 2 Applications failed") {
		t.Errorf("--once: %v, want 1 of 2 Applications failed", err)
	}
	if got := revision(k.getApp(t, "healthy"), -1); got != "1.2.0" {
		t.Errorf("healthy: %q, want 1.2.0", got)
	}
	if got := revision(k.getApp(t, "hostile"), -1); got != "1.0.0" {
		t.Errorf("hostile was moved: %q", got)
	}
	want := fmt.Sprintf("annotation %s: value of %d bytes: at most %d are allowed", AnnotationAllowTags, len(hostile), MaxAnnotationBytes)
	evs := k.events(t, "hostile")
	if len(evs) != 1 || evs[0].Type != "Warning" || evs[0].Reason != reasonInvalid || !strings.Contains(evs[0].Message, want) {
		t.Errorf("hostile: events %+v, want one Warning %s saying %q", evs, reasonInvalid, want)
	}
	if !strings.Contains(logs.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, logs.String())
	}
}

// Expressions small in bytes but large once compiled are refused too.
func TestTagPatternLimits(t *testing.T) {
	for expr, want := range map[string]string{
		`^(ab|cd|ef|gh){1000}$`:                   "instructions: at most",
		strings.Repeat("a", MaxAnnotationBytes+1): "bytes: at most",
		`^v1\.[0-9]+\.[0-9]+(-rc\.[0-9]+)?$`:      "",
	} {
		_, err := compileTagPattern(expr)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("compileTagPattern(%.40q) = %v, want %q", expr, err, want)
		}
	}
}

// blackhole is a TCP server on loopback that accepts connections and never answers: a registry
// that hangs. accepted receives once per connection.
func blackhole(t *testing.T) (addr string, accepted <-chan struct{}) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{}, 100)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String(), ch
}

// A registry that never answers costs one Application its check deadline, not the cycle: the
// healthy Application moves, the stuck one reports BundleCheckTimeout.
func TestCheckDeadlineBoundsOneApplication(t *testing.T) {
	k := newKubeEnv(t)
	repo := testenv.Repo(t, "app")
	publishSeries(t, repo)
	hang, _ := blackhole(t)
	k.app(t, "stuck", map[string]string{AnnotationChartVersion: "1.x"}, helmSource(hang+"/team/app", "1.0.0"))
	k.app(t, "healthy", map[string]string{AnnotationChartVersion: "1.x"}, helmSource(repo, "1.0.0"))
	c, _, logs := k.startController(t, func(o *Options) { o.CheckTimeout = 500 * time.Millisecond })
	res := c.runCycle(context.Background())
	if res.checked != 2 || res.updated != 1 || res.failed != 1 {
		t.Fatalf("cycle = %+v, want 1 updated, 1 failed", res)
	}
	if got := revision(k.getApp(t, "healthy"), -1); got != "1.2.0" {
		t.Errorf("healthy: %q, want 1.2.0", got)
	}
	evs := k.events(t, "stuck")
	if len(evs) != 1 || evs[0].Reason != reasonTimeout || !strings.Contains(evs[0].Message, "check did not finish within 500ms") {
		t.Errorf("stuck: events %+v, want one %s", evs, reasonTimeout)
	}
	if !strings.Contains(logs.String(), hang) {
		t.Errorf("log does not name the registry %s:\n%s", hang, logs.String())
	}
}

// Cancelling the context (SIGTERM in `strata image-updater run`) stops the controller promptly
// even while a check waits on a registry that never answers and the check deadline is an hour:
// in daemon mode and with --once.
func TestCancellationStopsTheController(t *testing.T) {
	for _, once := range []bool{false, true} {
		t.Run(fmt.Sprintf("once=%v", once), func(t *testing.T) {
			k := newKubeEnv(t)
			hang, accepted := blackhole(t)
			k.app(t, "stuck", map[string]string{AnnotationChartVersion: "1.x"}, helmSource(hang+"/team/app", "1.0.0"))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- Run(ctx, Options{RestConfig: k.cfg, Namespaces: []string{k.ns}, Once: once, CheckTimeout: time.Hour, Interval: time.Hour})
			}()
			select {
			case <-accepted:
			case err := <-done:
				t.Fatalf("Run returned before the check reached the registry: %v", err)
			case <-time.After(30 * time.Second):
				t.Fatal("the check never reached the registry")
			}
			cancel()
			cancelled := time.Now()
			select {
			case err := <-done:
				t.Logf("Run returned %v after cancellation", time.Since(cancelled).Round(time.Millisecond))
				if once && (err == nil || !strings.Contains(err.Error(), "interrupted")) {
					t.Errorf("--once after cancel: %v, want an interrupted error", err)
				}
				if !once && err != nil {
					t.Errorf("daemon after cancel: %v, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return within 5 s of cancellation")
			}
		})
	}
}
