package cachefile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteOnce(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a", "b", "entry")
	WriteOnce(p, []byte("first"))
	WriteOnce(p, []byte("second")) // an entry never changes
	if got, err := os.ReadFile(p); err != nil || string(got) != "first" {
		t.Fatalf("entry = %q %v, want first", got, err)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".tmp-*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	// An unwritable place leaves no entry and no panic.
	WriteOnce(filepath.Join(p, "under-a-file"), []byte("x"))
	if _, err := os.Stat(filepath.Join(p, "under-a-file")); err == nil {
		t.Error("an entry under a file")
	}
}
