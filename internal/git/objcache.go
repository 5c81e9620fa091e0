package git

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"sort"

	"strata.dev/strata/internal/cachefile"
)

// Git objects never change: a commit's file listing and a blob's content are the same on every
// read. CacheObjects keeps the ones a build reads on every run (the listing of HEAD; the small
// blobs read with ReadBlob and CachedBlobs: the config, Dockerfiles, .dockerignore files) in a
// directory, so a rebuild of a commit built before starts no `git ls-tree` and no
// `git cat-file`. Entries are checked when read (a blob against its hash, a listing against the
// checksum it is stored with); a bad one is read from git again.

// maxCachedBlob is the largest blob kept; maxCachedListing the largest listing; keptListings
// how many listings stay (one per commit built, up to megabytes each in a large repository: the
// oldest go).
const (
	maxCachedBlob    = 1 << 20
	maxCachedListing = 64 << 20
	keptListings     = 32
)

// CacheObjects keeps r's commit listings and small blobs under dir (created when needed).
func (r *Repo) CacheObjects(dir string) {
	r.mu.Lock()
	r.cacheDir = dir
	r.mu.Unlock()
}

func (r *Repo) objectDir() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cacheDir
}

// cachedListing returns the raw `ls-tree -r -z` output of commit if the cache holds it intact.
func (r *Repo) cachedListing(commit string) (string, bool) {
	dir := r.objectDir()
	if dir == "" || !isHex(commit) {
		return "", false
	}
	raw, err := os.ReadFile(filepath.Join(dir, "trees", commit))
	if err != nil {
		return "", false
	}
	sum, payload, ok := bytes.Cut(raw, []byte("\n"))
	if !ok {
		return "", false
	}
	got := sha256.Sum256(payload)
	if hex.EncodeToString(got[:]) != string(sum) {
		return "", false
	}
	return string(payload), true
}

func (r *Repo) cacheListing(commit, listing string) {
	dir := r.objectDir()
	if dir == "" || !isHex(commit) || len(listing) > maxCachedListing {
		return
	}
	sum := sha256.Sum256([]byte(listing))
	cachefile.WriteOnce(filepath.Join(dir, "trees", commit), append([]byte(hex.EncodeToString(sum[:])+"\n"), listing...))
	pruneOldest(filepath.Join(dir, "trees"), keptListings)
}

// pruneOldest removes the oldest files of dir beyond the newest keep.
func pruneOldest(dir string, keep int) {
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) <= keep {
		return
	}
	type aged struct {
		name string
		mod  int64
	}
	var files []aged
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			files = append(files, aged{e.Name(), info.ModTime().UnixNano()})
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].mod > files[j].mod })
	for _, f := range files[min(keep, len(files)):] {
		os.Remove(filepath.Join(dir, f.name))
	}
}

// cachedBlob returns blob hash if the cache holds it and its content hashes to it.
func (r *Repo) cachedBlob(h string) ([]byte, bool) {
	dir := r.objectDir()
	if dir == "" || !isHex(h) {
		return nil, false
	}
	data, err := os.ReadFile(filepath.Join(dir, "blobs", h))
	if err != nil || blobHash(data, len(h)) != h {
		return nil, false
	}
	return data, true
}

func (r *Repo) cacheBlob(h string, data []byte) {
	dir := r.objectDir()
	if dir == "" || !isHex(h) || len(data) > maxCachedBlob || blobHash(data, len(h)) != h {
		return
	}
	cachefile.WriteOnce(filepath.Join(dir, "blobs", h), data)
}

// blobHash is git's name of a blob with content data, SHA-1 (40 hex digits) or SHA-256 (64).
func blobHash(data []byte, hexLen int) string {
	var hh hash.Hash
	switch hexLen {
	case 40:
		hh = sha1.New()
	case 64:
		hh = sha256.New()
	default:
		return ""
	}
	fmt.Fprintf(hh, "blob %d\x00", len(data))
	hh.Write(data)
	return hex.EncodeToString(hh.Sum(nil))
}

func isHex(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// CachedBlobs is Blobs for small files read on every build (Dockerfiles, .dockerignore): the
// object cache answers what it holds and keeps what git reads; fn is called once per hash, in
// no particular order.
func (r *Repo) CachedBlobs(ctx context.Context, hashes []string, fn func(hash string, data []byte) error) error {
	var missing []string
	for _, h := range hashes {
		if data, ok := r.cachedBlob(h); ok {
			if err := fn(h, data); err != nil {
				return err
			}
			continue
		}
		missing = append(missing, h)
	}
	return r.Blobs(ctx, missing, func(h string, data []byte) error {
		r.cacheBlob(h, data)
		return fn(h, data)
	})
}
