package git

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Entry is one entry of a commit's tree, with its size (-1 for trees and submodules).
type Entry struct {
	Path string // relative to the repository root, slash-separated
	Mode string // 100644, 100755, 120000 (symlink), 040000 (tree), 160000 (submodule)
	Hash string
	Size int64
}

// Symlink reports whether the entry is a symbolic link.
func (e Entry) Symlink() bool { return e.Mode == "120000" }

// Regular reports whether the entry is a regular file (executable or not).
func (e Entry) Regular() bool { return e.Mode == "100644" || e.Mode == "100755" }

// Entries lists the entries of commit at the given repository paths (one git process); with
// recursive, the files under directories instead of the directories themselves. Paths that do
// not exist in the commit are simply absent.
func (r *Repo) Entries(ctx context.Context, commit string, recursive bool, paths ...string) ([]Entry, error) {
	args := []string{"ls-tree", "-l", "-z", "--full-tree"}
	if recursive {
		args = append(args, "-r")
	}
	args = append(append(args, commit, "--"), paths...)
	s, err := r.out(ctx, args...)
	if err != nil {
		return nil, err
	}
	var out []Entry
	err = parseTree(s, commit, 4, func(f []string, p string) {
		size, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil {
			size = -1 // "-" for trees and submodules
		}
		out = append(out, Entry{Path: p, Mode: f[0], Hash: f[2], Size: size})
	})
	return out, err
}

// Lookup returns the entries of commit at the given repository paths, like Entries without
// recursion, but answered from the commit's recursive listing when this Repo has one for it
// (Files, started or done) instead of starting another git process; sizes are then -1 and a
// directory is an entry with mode 040000 and no hash.
func (r *Repo) Lookup(ctx context.Context, commit string, paths ...string) ([]Entry, error) {
	r.mu.Lock()
	_, listing := r.trees[commit]
	r.mu.Unlock()
	if !listing {
		return r.Entries(ctx, commit, false, paths...)
	}
	files, err := r.Files(ctx, commit)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, p := range paths {
		i := searchPath(files, p)
		switch {
		case i < len(files) && files[i].Path == p:
			out = append(out, Entry{Path: p, Mode: files[i].Mode, Hash: files[i].Hash, Size: -1})
		case hasDir(files, p):
			out = append(out, Entry{Path: p, Mode: "040000", Size: -1})
		}
	}
	return out, nil
}

// searchPath returns the index of the first file of a recursive listing whose path is not
// before p. A recursive listing is in byte order of the full paths (git sorts a tree's entries
// with directories compared as name+"/").
func searchPath(files []File, p string) int {
	return sort.Search(len(files), func(i int) bool { return files[i].Path >= p })
}

// hasDir reports whether some file of the listing is under directory dir: they follow where
// dir+"/" sorts.
func hasDir(files []File, dir string) bool {
	i := searchPath(files, dir+"/")
	return i < len(files) && strings.HasPrefix(files[i].Path, dir+"/")
}

// parseTree calls fn with the fields (mode, type, hash[, size]) and path of every record of
// `git ls-tree -z` output whose metadata has want fields.
func parseTree(s, commit string, want int, fn func(fields []string, path string)) error {
	for _, rec := range strings.Split(s, "\x00") {
		if rec == "" {
			continue
		}
		meta, p, ok := strings.Cut(rec, "\t")
		f := strings.Fields(meta)
		if !ok || len(f) != want {
			return fmt.Errorf("git ls-tree %s: bad record %q", commit, rec)
		}
		fn(f, p)
	}
	return nil
}

// ReadBlob reads one blob, refusing it when it is larger than limit bytes (it never reads more
// than limit+1 bytes of it).
func (r *Repo) ReadBlob(ctx context.Context, hash string, limit int64) ([]byte, error) {
	if data, ok := r.cachedBlob(hash); ok {
		if int64(len(data)) > limit {
			return nil, fmt.Errorf("blob %s is larger than %d bytes", hash, limit)
		}
		return data, nil
	}
	data, err := r.readBlob(ctx, hash, limit)
	if err == nil {
		r.cacheBlob(hash, data)
	}
	return data, err
}

func (r *Repo) readBlob(ctx context.Context, hash string, limit int64) ([]byte, error) {
	if rd := r.sharedReader(); rd != nil {
		var data []byte
		err := rd.read(ctx, []string{hash}, limit, func(_ string, d []byte) error { data = d; return nil })
		return data, err
	}
	c := r.cmd(ctx, nil, "cat-file", "blob", hash)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.Start(); err != nil {
		return nil, err
	}
	data, rerr := io.ReadAll(io.LimitReader(out, limit+1))
	if rerr == nil && int64(len(data)) > limit {
		c.Process.Kill()
		c.Wait()
		return nil, fmt.Errorf("blob %s is larger than %d bytes", hash, limit)
	}
	if err := c.Wait(); err != nil {
		return nil, fmt.Errorf("git cat-file blob %s: %w: %s", hash, err, strings.TrimSpace(stderr.String()))
	}
	return data, rerr
}

// CommitTime returns the committer date of commit as Unix seconds.
func (r *Repo) CommitTime(ctx context.Context, commit string) (int64, error) {
	s, err := r.out(ctx, "show", "-s", "--format=%ct", commit)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(s), 10, 64)
}
