package git

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FetchRemote resolves the default branch, a branch, a tag and a commit of a repository served
// over file:// into one cached bare repository; a cached commit resolves with the remote gone,
// a moving branch is fetched again, and what does not exist is named.
func TestFetchRemote(t *testing.T) {
	src := t.TempDir()
	sh(t, src, "init", "-q", "-b", "trunk")
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("1"), 0o644)
	sh(t, src, "add", "-A")
	sh(t, src, "commit", "-q", "-m", "1")
	c1 := sh(t, src, "rev-parse", "HEAD")
	sh(t, src, "tag", "v1")
	sh(t, src, "checkout", "-q", "-b", "feature")
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("2"), 0o644)
	sh(t, src, "commit", "-q", "-am", "2")
	c2 := sh(t, src, "rev-parse", "HEAD")
	sh(t, src, "checkout", "-q", "trunk")
	url := "file://" + src
	cache := t.TempDir()
	ctx := context.Background()
	get := func(ref RemoteRef) (*Repo, string) {
		t.Helper()
		ref.URL = url
		r, c, err := FetchRemote(ctx, cache, ref, Auth{})
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		return r, c
	}
	if _, c := get(RemoteRef{}); c != c1 {
		t.Errorf("default branch = %s, want %s", c, c1)
	}
	if _, c := get(RemoteRef{Branch: "feature"}); c != c2 {
		t.Errorf("branch feature = %s, want %s", c, c2)
	}
	if _, c := get(RemoteRef{Tag: "v1"}); c != c1 {
		t.Errorf("tag v1 = %s, want %s", c, c1)
	}
	r, c := get(RemoteRef{Commit: c2[:10]})
	if c != c2 {
		t.Errorf("short commit = %s, want %s", c, c2)
	}
	if fs, err := r.Files(ctx, c); err != nil || len(fs) != 1 || fs[0].Path != "a.txt" {
		t.Errorf("files of the cached commit: %v %v", fs, err)
	}
	if ents, _ := os.ReadDir(cache); len(ents) != 2 { // one repository and its lock
		t.Errorf("cache holds %d entries, want one repository and its lock", len(ents))
	}

	// A branch moves: it is fetched again.
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("3"), 0o644)
	sh(t, src, "commit", "-q", "-am", "3")
	c3 := sh(t, src, "rev-parse", "HEAD")
	if _, c := get(RemoteRef{Branch: "trunk"}); c != c3 {
		t.Errorf("moved branch = %s, want %s", c, c3)
	}

	for _, bad := range []struct {
		ref  RemoteRef
		want string
	}{
		{RemoteRef{URL: url, Branch: "nope"}, "branch nope"},
		{RemoteRef{URL: url, Tag: "v9"}, "tag v9"},
		{RemoteRef{URL: url, Commit: strings.Repeat("ab", 20)}, "commit not found"},
		{RemoteRef{URL: "-upload-pack=touch"}, "not a repository URL"},
	} {
		if _, _, err := FetchRemote(ctx, cache, bad.ref, Auth{}); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: %v, want an error naming %q", bad.ref, err, bad.want)
		}
	}

	// A cached commit needs no remote.
	os.RemoveAll(src)
	if _, c, err := FetchRemote(ctx, cache, RemoteRef{URL: url, Commit: c1}, Auth{}); err != nil || c != c1 {
		t.Errorf("cached commit with the remote gone: %s %v", c, err)
	}
	if _, _, err := FetchRemote(ctx, cache, RemoteRef{URL: url, Branch: "trunk"}, Auth{}); err == nil {
		t.Error("a branch of a vanished remote resolved from the cache")
	}
}
