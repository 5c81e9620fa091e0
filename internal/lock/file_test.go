package lock

import (
	"context"
	"testing"
	"time"
)

// TestFileLockRecordsHolder checks the holder record waiters read (the conformance suite in
// internal/lock/backends runs the rest against File).
func TestFileLockRecordsHolder(t *testing.T) {
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
