package git

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The shared reader answers Blobs and ReadBlob as the per-read processes do, stays in step after
// a missing object, a blob over the limit and a callback's error, sees objects written after it
// started, and after Close the reads start their own process again.
func TestSharedReader(t *testing.T) {
	dir := t.TempDir()
	sh(t, dir, "init", "-q", "-b", "main")
	big := strings.Repeat("x", 200<<10) // larger than a pipe's buffer
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a"), 0o644)
	os.WriteFile(filepath.Join(dir, "big.txt"), []byte(big), 0o644)
	sh(t, dir, "add", "-A")
	sh(t, dir, "commit", "-q", "-m", "1")
	ctx := context.Background()
	r, head, err := OpenHead(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	r.ShareReader()
	defer r.Close()
	fs, err := r.Files(ctx, head)
	if err != nil {
		t.Fatal(err)
	}
	hash := map[string]string{}
	for _, f := range fs {
		hash[f.Path] = f.Hash
	}
	readAll := func(hashes ...string) (map[string]string, error) {
		got := map[string]string{}
		err := r.Blobs(ctx, hashes, func(h string, d []byte) error { got[h] = string(d); return nil })
		return got, err
	}
	for round := 0; round < 2; round++ {
		got, err := readAll(hash["a.txt"], hash["big.txt"], hash["a.txt"])
		if err != nil || got[hash["a.txt"]] != "a" || got[hash["big.txt"]] != big {
			t.Fatalf("round %d: Blobs = %d blobs, %v", round, len(got), err)
		}
	}
	missing := strings.Repeat("0", len(hash["a.txt"]))
	if _, err := readAll(missing, hash["a.txt"]); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Blobs of a missing object = %v, want it named missing", err)
	}
	if _, err := r.ReadBlob(ctx, hash["big.txt"], 1000); err == nil || !strings.Contains(err.Error(), "larger than 1000 bytes") {
		t.Errorf("ReadBlob over the limit = %v", err)
	}
	stop := r.Blobs(ctx, []string{hash["big.txt"], hash["a.txt"]}, func(string, []byte) error { return os.ErrInvalid })
	if stop != os.ErrInvalid {
		t.Errorf("Blobs with a failing callback = %v", stop)
	}
	if d, err := r.ReadBlob(ctx, hash["a.txt"], 10); err != nil || string(d) != "a" {
		t.Errorf("ReadBlob after the errors = %q, %v: the stream is out of step", d, err)
	}
	// An object written after the reader started.
	os.WriteFile(filepath.Join(dir, "c.txt"), []byte("c"), 0o644)
	c := sh(t, dir, "hash-object", "-w", "c.txt")
	if d, err := r.ReadBlob(ctx, c, 10); err != nil || string(d) != "c" {
		t.Errorf("ReadBlob of a new object = %q, %v", d, err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if d, err := r.ReadBlob(ctx, hash["a.txt"], 10); err != nil || string(d) != "a" {
		t.Errorf("ReadBlob after Close = %q, %v", d, err)
	}
}

// A shared reader whose git process died fails the reads with an error naming it (and what git
// wrote on stderr, read once the process was waited for: no race with its copying), every
// later read too, and Close then has nothing left to stop.
func TestSharedReaderGitDied(t *testing.T) {
	dir := t.TempDir()
	sh(t, dir, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a"), 0o644)
	a := sh(t, dir, "hash-object", "-w", "a.txt")
	ctx := context.Background()
	r, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	r.ShareReader()
	if d, err := r.ReadBlob(ctx, a, 10); err != nil || string(d) != "a" {
		t.Fatalf("ReadBlob = %q, %v", d, err)
	}
	rd := r.sharedReader()
	rd.mu.Lock()
	rd.cmd.Process.Kill()
	rd.mu.Unlock()
	for i := 0; i < 2; i++ {
		if _, err := r.ReadBlob(ctx, a, 10); err == nil || !strings.Contains(err.Error(), "git cat-file "+a+": the process ended") {
			t.Errorf("read %d after git died: %v, want it to say git cat-file ended", i, err)
		}
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close after git died = %v", err)
	}
}
