package main

import (
	"runtime/debug"
	"testing"
)

// `strata cmp generate` collects less often with a soft memory limit, unless GOGC / GOMEMLIMIT
// say otherwise.
func TestGenerateGC(t *testing.T) {
	percent, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(percent); debug.SetMemoryLimit(limit) })

	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	debug.SetGCPercent(100)
	debug.SetMemoryLimit(1 << 40)
	generateGC()
	if got := debug.SetGCPercent(100); got != generateGCPercent {
		t.Errorf("GC percent %d, want %d", got, generateGCPercent)
	}
	if got := debug.SetMemoryLimit(-1); got != generateMemoryLimit {
		t.Errorf("memory limit %d, want %d", got, generateMemoryLimit)
	}

	t.Setenv("GOGC", "50")
	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetGCPercent(50)
	debug.SetMemoryLimit(1 << 30)
	generateGC()
	if got := debug.SetGCPercent(100); got != 50 {
		t.Errorf("GOGC=50: GC percent %d, want 50 (the environment wins)", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 1<<30 {
		t.Errorf("GOMEMLIMIT=1GiB: memory limit %d, want %d", got, 1<<30)
	}
}
