package lock

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestFileLockIsExclusive(t *testing.T) {
	l := &File{Dir: t.TempDir(), Poll: time.Millisecond}
	var inside, max atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lease, err := l.Lock(context.Background(), "p/digest")
			if err != nil {
				t.Error(err)
				return
			}
			n := inside.Add(1)
			if n > max.Load() {
				max.Store(n)
			}
			time.Sleep(2 * time.Millisecond)
			inside.Add(-1)
			if err := lease.Unlock(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if max.Load() != 1 {
		t.Fatalf("%d holders at once, want 1", max.Load())
	}
}

func TestFileLockWaitEndsWithContext(t *testing.T) {
	l := &File{Dir: t.TempDir()}
	lease, err := l.Lock(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Unlock(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := l.Lock(ctx, "x"); err == nil {
		t.Fatal("second Lock succeeded while the first is held")
	}
	if h := readHolder(l.Dir + "/" + Key("x") + ".lock"); h.Owner != DefaultOwner() {
		t.Fatalf("holder = %+v", h)
	}
	if _, err := l.Lock(context.Background(), "other"); err != nil {
		t.Fatalf("different name should not block: %v", err)
	}
}
