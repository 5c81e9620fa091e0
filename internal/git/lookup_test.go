package git

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
)

// Lookup answers as Entries (without recursion) does, whether it runs ls-tree or reads the
// commit's recursive listing: files, links, directories, names sorting around "/" and paths
// that are not there.
func TestLookupIsEntries(t *testing.T) {
	dir := t.TempDir()
	sh(t, dir, "init", "-q", "-b", "main")
	for name, mode := range map[string]os.FileMode{
		"a.txt": 0o644, "a/x.yaml": 0o644, "a/b/strata.yaml": 0o755, "a0": 0o644, "a-b": 0o644,
		"strata.yaml/inner": 0o644, "sub/strata.yaml": 0o644, "z": 0o644,
	} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(name), mode); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("a.txt", filepath.Join(dir, "werf.yaml"))
	sh(t, dir, "add", "-A")
	sh(t, dir, "commit", "-q", "-m", "1")
	ctx := context.Background()
	paths := []string{"a.txt", "a", "a/b", "a/b/strata.yaml", "a0", "a-b", "strata.yaml", "werf.yaml",
		"sub/strata.yaml", "sub/werf.yaml", "missing", "a/missing", "z"}
	// What ls-tree says of each path on its own (given together, ls-tree's pathspecs also list
	// the trees they pass through).
	want := func(r *Repo, head string) []Entry {
		var out []Entry
		for _, p := range paths {
			es, err := r.Entries(ctx, head, false, p)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				if e.Path != p {
					continue
				}
				e.Size = -1
				if e.Mode == "040000" {
					e.Hash = ""
				}
				out = append(out, e)
			}
		}
		return sorted(out)
	}

	r, head, err := OpenHead(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := r.Lookup(ctx, head, paths...) // no listing: one ls-tree, sizes known
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range plain {
		if e.Regular() && e.Size <= 0 {
			t.Errorf("without a listing, %s has size %d", e.Path, e.Size)
		}
	}
	if _, err := r.Files(ctx, head); err != nil {
		t.Fatal(err)
	}
	fromListing, err := r.Lookup(ctx, head, paths...)
	if err != nil {
		t.Fatal(err)
	}
	if got, w := sorted(fromListing), want(r, head); !reflect.DeepEqual(got, w) {
		t.Errorf("Lookup from the listing:\n got %+v\nwant %+v", got, w)
	}
	if len(fromListing) != 10 {
		t.Errorf("%d entries, want 10 (3 of the paths are not in the commit)", len(fromListing))
	}
}

func sorted(es []Entry) []Entry {
	out := append([]Entry(nil), es...)
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}
