package git

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// A listing and small blobs read once are answered from the object cache afterwards, by a Repo
// that cannot even run git on its directory; a damaged entry is not believed.
func TestObjectCache(t *testing.T) {
	dir := t.TempDir()
	sh(t, dir, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(dir, "strata.yaml"), []byte("project: p\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644)
	sh(t, dir, "add", "-A")
	sh(t, dir, "commit", "-q", "-m", "1")
	ctx := context.Background()
	cache := t.TempDir()
	r, head, err := OpenHead(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	r.CacheObjects(cache)
	r.ShareReader()
	files, err := r.Files(ctx, head)
	if err != nil {
		t.Fatal(err)
	}
	hashes := map[string]string{}
	for _, f := range files {
		hashes[f.Path] = f.Hash
	}
	cfg, err := r.ReadBlob(ctx, hashes["strata.yaml"], 1<<20)
	if err != nil || string(cfg) != "project: p\n" {
		t.Fatalf("ReadBlob = %q %v", cfg, err)
	}
	got := map[string]string{}
	if err := r.CachedBlobs(ctx, []string{hashes["Dockerfile"]}, func(h string, d []byte) error { got[h] = string(d); return nil }); err != nil {
		t.Fatal(err)
	}
	r.Close()

	// No git repository here: only the cache can answer.
	off := &Repo{Dir: t.TempDir()}
	off.CacheObjects(cache)
	cached, err := off.Files(ctx, head)
	if err != nil || !reflect.DeepEqual(cached, files) {
		t.Fatalf("Files from the cache = %v %v, want %v", cached, err, files)
	}
	if d, err := off.ReadBlob(ctx, hashes["strata.yaml"], 1<<20); err != nil || string(d) != "project: p\n" {
		t.Errorf("ReadBlob from the cache = %q %v", d, err)
	}
	if _, err := off.ReadBlob(ctx, hashes["strata.yaml"], 4); err == nil {
		t.Error("a cached blob over the limit was returned")
	}
	n := 0
	if err := off.CachedBlobs(ctx, []string{hashes["Dockerfile"]}, func(h string, d []byte) error {
		n++
		if string(d) != "FROM scratch\n" {
			t.Errorf("CachedBlobs from the cache = %q", d)
		}
		return nil
	}); err != nil || n != 1 {
		t.Errorf("CachedBlobs from the cache: %v, %d calls", err, n)
	}

	// Damaged entries are read from git again (here: fail, as there is no git repository).
	os.WriteFile(filepath.Join(cache, "blobs", hashes["strata.yaml"]), []byte("project: evil\n"), 0o644)
	if d, err := off.ReadBlob(ctx, hashes["strata.yaml"], 1<<20); err == nil {
		t.Errorf("a damaged cached blob was believed: %q", d)
	}
	listing := filepath.Join(cache, "trees", head)
	raw, _ := os.ReadFile(listing)
	os.WriteFile(listing, append(raw, "x"...), 0o644)
	if fs, err := (&Repo{Dir: t.TempDir(), cacheDir: cache}).Files(ctx, head); err == nil {
		t.Errorf("a damaged cached listing was believed: %v", fs)
	}
}

// The cache keeps the newest listings only.
func TestPruneOldest(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 5; i++ {
		p := filepath.Join(dir, string(rune('a'+i)))
		os.WriteFile(p, []byte("x"), 0o644)
		mod := time.Unix(int64(1000+i), 0)
		os.Chtimes(p, mod, mod)
	}
	pruneOldest(dir, 3)
	es, _ := os.ReadDir(dir)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	if !reflect.DeepEqual(names, []string{"c", "d", "e"}) {
		t.Errorf("kept %v, want the 3 newest [c d e]", names)
	}
}
