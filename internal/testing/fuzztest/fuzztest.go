package fuzztest

import (
	"io/fs"
	"os"
	"path/filepath"
	"runtime/metrics"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Bounds of one fuzz input.
type Bounds struct {
	// Time is how long one input may run (generous: the fuzzer shares the machine).
	Time time.Duration
	// Heap is how many bytes of heap one input may take above what was in use before it.
	Heap int64
}

// heapMetric is the Go heap's bytes in objects, live or not yet swept (an upper bound of live).
const heapMetric = "/memory/classes/heap/objects:bytes"

// Bounded runs f and fails t if f runs longer than b.Time or takes more than b.Heap bytes of
// heap. On a time-out f's goroutine is left behind (nothing can stop it) and t stops at once.
func Bounded(t testing.TB, b Bounds, what string, f func()) {
	t.Helper()
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		f()
	}()
	sample := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(sample)
	base := int64(sample[0].Value.Uint64())
	var peak int64
	timer := time.NewTimer(b.Time)
	defer timer.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case p := <-done:
			if p != nil {
				panic(p) // the fuzzer reports it with f's input
			}
			if b.Heap > 0 && peak > b.Heap {
				t.Fatalf("%s: heap grew by %d MiB, bound %d MiB", what, peak>>20, b.Heap>>20)
			}
			return
		case <-timer.C:
			t.Fatalf("%s: still running after %s", what, b.Time)
		case <-tick.C:
			metrics.Read(sample)
			if d := int64(sample[0].Value.Uint64()) - base; d > peak {
				peak = d
			}
		}
	}
}

// Tree is a snapshot of a directory: every path under it with its type and size.
type Tree map[string]string

// Snapshot records dir's tree (a missing dir is an empty tree).
func Snapshot(t testing.TB, dir string) Tree {
	t.Helper()
	tree := Tree{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p == dir {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		size := ""
		if fi.Mode().IsRegular() {
			size = " " + strconv.FormatInt(fi.Size(), 10)
		}
		tree[filepath.ToSlash(rel)] = fi.Mode().Type().String() + size
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", dir, err)
	}
	return tree
}

// Same fails t with the differences if dir's tree is no longer tr, ignoring the paths below the
// directories allowed (relative to dir), where writing is expected.
func (tr Tree) Same(t testing.TB, dir string, allowed ...string) {
	t.Helper()
	now := Snapshot(t, dir)
	var diff []string
	skip := func(p string) bool {
		for _, a := range allowed {
			if p == a || strings.HasPrefix(p, a+"/") {
				return true
			}
		}
		return false
	}
	for p, v := range now {
		if w, ok := tr[p]; (!ok || w != v) && !skip(p) {
			diff = append(diff, "+ "+p+" "+v)
		}
	}
	for p, v := range tr {
		if _, ok := now[p]; !ok && !skip(p) {
			diff = append(diff, "- "+p+" "+v)
		}
	}
	if len(diff) > 0 {
		sort.Strings(diff)
		t.Fatalf("%s changed outside %v:\n%s", dir, allowed, strings.Join(diff, "\n"))
	}
}
