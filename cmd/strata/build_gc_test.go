package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

// `strata build` collects less often while its heap is small, as usual once it is past
// buildGCHeap, and as GOGC says when it is set.
func TestBuildGC(t *testing.T) {
	percent := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(percent) })

	t.Setenv("GOGC", "50")
	debug.SetGCPercent(50)
	buildGC()
	if got := debug.SetGCPercent(50); got != 50 {
		t.Errorf("with GOGC=50: GC percent %d, want 50", got)
	}

	t.Setenv("GOGC", "")
	debug.SetGCPercent(100)
	buildGC()
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if got := debug.SetGCPercent(buildGCPercent); got != buildGCPercent && s[0].Value.Uint64() < buildGCHeap {
		t.Errorf("live heap of %d KiB: GC percent %d, want %d", s[0].Value.Uint64()>>10, got, buildGCPercent)
	}
	// A live heap past buildGCHeap: after the next collections, back to 100.
	big := make([]byte, 2*buildGCHeap)
	for i := range big {
		big[i] = byte(i)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // the finalizer runs in its own goroutine
		got := debug.SetGCPercent(-1)
		debug.SetGCPercent(got)
		if got == 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("live heap of %d MiB: GC percent still %d, want 100", len(big)>>20, got)
		}
	}
	runtime.KeepAlive(big)
}
