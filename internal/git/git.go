package git

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Repo is a git work tree.
type Repo struct {
	Dir string

	mu       sync.Mutex
	ancestor map[[2]string]bool
	trees    map[string]*treeEntry
	reader   *reader // see ShareReader
	cacheDir string  // see CacheObjects
}

// Open finds the work tree containing dir.
func Open(ctx context.Context, dir string) (*Repo, error) {
	r := &Repo{Dir: dir}
	top, err := r.out(ctx, "rev-parse", "--show-toplevel")
	if err != nil {
		return nil, fmt.Errorf("%s is not in a git work tree: %w", dir, err)
	}
	r.Dir = strings.TrimSpace(top)
	return r, nil
}

// OpenHead is Open plus Head in one git process.
func OpenHead(ctx context.Context, dir string) (*Repo, string, error) {
	r := &Repo{Dir: dir}
	out, err := r.out(ctx, "rev-parse", "--show-toplevel", "--verify", "HEAD^{commit}")
	lines := strings.Fields(out)
	if err != nil || len(lines) != 2 {
		if _, oerr := Open(ctx, dir); oerr != nil {
			return nil, "", oerr
		}
		return nil, "", fmt.Errorf("read HEAD of %s (no commit yet?): %w", dir, err)
	}
	r.Dir = lines[0]
	return r, lines[1], nil
}

func (r *Repo) cmd(ctx context.Context, env []string, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, "git", append([]string{"-c", "core.quotepath=off"}, args...)...)
	c.Dir = r.Dir
	c.Env = append(os.Environ(), env...)
	return c
}

func (r *Repo) out(ctx context.Context, args ...string) (string, error) {
	return r.outEnv(ctx, nil, args...)
}

func (r *Repo) outEnv(ctx context.Context, env []string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	c := r.cmd(ctx, env, args...)
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Head returns the commit HEAD points at.
func (r *Repo) Head(ctx context.Context) (string, error) {
	s, err := r.out(ctx, "rev-parse", "--verify", "HEAD^{commit}")
	return strings.TrimSpace(s), err
}

// Status lists uncommitted changes (tracked and untracked, not ignored) under the given paths
// relative to the repository root (none = everything), as porcelain lines.
func (r *Repo) Status(ctx context.Context, paths ...string) ([]string, error) {
	args := []string{"status", "--porcelain", "--untracked-files=all"}
	if len(paths) > 0 {
		args = append(append(args, "--"), paths...)
	}
	s, err := r.out(ctx, args...)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out, nil
}

// StatusOf is Status limited to dir (a directory inside some work tree), run from dir itself,
// so it needs no Repo: callers can start it while the repository is being opened. Porcelain
// paths are relative to the work tree's top, as with Status.
func StatusOf(ctx context.Context, dir string) ([]string, error) {
	return (&Repo{Dir: dir}).Status(ctx, ".")
}

// Snapshot records the work tree (tracked changes and untracked, non-ignored files) as a
// commit whose parent is HEAD, without touching the index, HEAD or any ref.
func (r *Repo) Snapshot(ctx context.Context, head string) (string, error) {
	tmp, err := os.CreateTemp("", "strata-index-*")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	gitDir, err := r.out(ctx, "rev-parse", "--absolute-git-dir")
	if err != nil {
		return "", err
	}
	if idx, err := os.ReadFile(filepath.Join(strings.TrimSpace(gitDir), "index")); err == nil {
		if err := os.WriteFile(tmp.Name(), idx, 0o600); err != nil {
			return "", err
		}
	} else {
		os.Remove(tmp.Name())
	}
	env := []string{"GIT_INDEX_FILE=" + tmp.Name()}
	if _, err := r.outEnv(ctx, env, "add", "-A", "."); err != nil {
		return "", err
	}
	tree, err := r.outEnv(ctx, env, "write-tree")
	if err != nil {
		return "", err
	}
	env = append(env, "GIT_AUTHOR_NAME=strata", "GIT_AUTHOR_EMAIL=strata@localhost", "GIT_COMMITTER_NAME=strata",
		"GIT_COMMITTER_EMAIL=strata@localhost", "GIT_AUTHOR_DATE=@0 +0000", "GIT_COMMITTER_DATE=@0 +0000")
	c, err := r.outEnv(ctx, env, "commit-tree", strings.TrimSpace(tree), "-p", head, "-m", "strata --dev snapshot")
	return strings.TrimSpace(c), err
}

// File is one entry of a tree listing.
type File struct {
	Path string // relative to the repository root, slash-separated
	Mode string // 100644, 100755, 120000 (symlink), 160000 (submodule)
	Hash string // blob hash
}

// Files lists every file of a commit's tree, recursively (one git process per commit, shared by
// concurrent callers).
func (r *Repo) Files(ctx context.Context, commit string) ([]File, error) {
	e := r.tree(commit)
	e.once.Do(func() { e.files, e.err = r.lsTree(ctx, commit) })
	if e.err != nil {
		r.mu.Lock()
		delete(r.trees, commit) // let a later call retry
		r.mu.Unlock()
	}
	return e.files, e.err
}

// ListFiles starts listing the files of commit in the background; Files, and Lookup, answer
// from that listing.
func (r *Repo) ListFiles(ctx context.Context, commit string) {
	r.tree(commit)
	go r.Files(ctx, commit)
}

// tree returns the listing entry of commit, registering it.
func (r *Repo) tree(commit string) *treeEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.trees == nil {
		r.trees = map[string]*treeEntry{}
	}
	e, ok := r.trees[commit]
	if !ok {
		e = &treeEntry{}
		r.trees[commit] = e
	}
	return e
}

type treeEntry struct {
	once  sync.Once
	files []File
	err   error
}

func (r *Repo) lsTree(ctx context.Context, commit string) ([]File, error) {
	s, cached := r.cachedListing(commit)
	if !cached {
		var err error
		if s, err = r.out(ctx, "ls-tree", "-r", "-z", "--full-tree", commit); err != nil {
			return nil, err
		}
	}
	fs := make([]File, 0, strings.Count(s, "\x00"))
	err := parseTree(s, commit, 3, func(f []string, p string) {
		fs = append(fs, File{Path: p, Mode: f[0], Hash: f[2]})
	})
	if err != nil {
		return nil, err
	}
	if !cached {
		r.cacheListing(commit, s)
	}
	return fs, nil
}

// Change is one file changed between two commits.
type Change struct {
	Path    string
	Status  byte // 'A', 'M', 'D', 'T'
	NewMode string
	NewHash string
}

// Diff lists the files changed from one commit to another (no rename detection).
func (r *Repo) Diff(ctx context.Context, from, to string) ([]Change, error) {
	s, err := r.out(ctx, "diff-tree", "-r", "-z", "--no-renames", "--no-commit-id", from, to)
	if err != nil {
		return nil, err
	}
	parts := strings.Split(s, "\x00")
	var out []Change
	for i := 0; i+1 < len(parts); i += 2 {
		meta := strings.Fields(strings.TrimPrefix(parts[i], ":"))
		if len(meta) != 5 {
			return nil, fmt.Errorf("git diff-tree: bad record %q", parts[i])
		}
		out = append(out, Change{Path: parts[i+1], Status: meta[4][0], NewMode: meta[1], NewHash: meta[3]})
	}
	return out, nil
}

// IsAncestor reports whether commit a is an ancestor of (or equal to) b. Unknown commits are
// not ancestors.
func (r *Repo) IsAncestor(ctx context.Context, a, b string) (bool, error) {
	if a == b {
		return true, nil
	}
	key := [2]string{a, b}
	r.mu.Lock()
	if v, ok := r.ancestor[key]; ok {
		r.mu.Unlock()
		return v, nil
	}
	r.mu.Unlock()
	var stderr bytes.Buffer
	c := r.cmd(ctx, nil, "merge-base", "--is-ancestor", a, b)
	c.Stderr = &stderr
	err := c.Run()
	var v bool
	var ee *exec.ExitError
	switch {
	case err == nil:
		v = true
	case errors.As(err, &ee) && (ee.ExitCode() == 1 || ee.ExitCode() == 128):
		v = false // 128: unknown commit (e.g. built from another clone): not an ancestor
	default:
		return false, fmt.Errorf("git merge-base --is-ancestor %s %s: %w: %s", a, b, err, stderr.String())
	}
	r.mu.Lock()
	if r.ancestor == nil {
		r.ancestor = map[[2]string]bool{}
	}
	r.ancestor[key] = v
	r.mu.Unlock()
	return v, nil
}

// Blobs reads many blobs with one `git cat-file --batch` (the shared one after ShareReader),
// calling fn for each in order.
func (r *Repo) Blobs(ctx context.Context, hashes []string, fn func(hash string, data []byte) error) error {
	if len(hashes) == 0 {
		return nil
	}
	if rd := r.sharedReader(); rd != nil {
		return rd.read(ctx, hashes, math.MaxInt64, fn)
	}
	c := r.cmd(ctx, nil, "cat-file", "--batch")
	in, err := c.StdinPipe()
	if err != nil {
		return err
	}
	outp, err := c.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		return err
	}
	go func() {
		w := bufio.NewWriter(in)
		for _, h := range hashes {
			w.WriteString(h + "\n")
		}
		w.Flush()
		in.Close()
	}()
	br := bufio.NewReader(outp)
	var ferr error
	for _, h := range hashes {
		hdr, err := br.ReadString('\n')
		if err != nil {
			ferr = fmt.Errorf("git cat-file: %w: %s", err, stderr.String())
			break
		}
		f := strings.Fields(hdr)
		if len(f) != 3 {
			ferr = fmt.Errorf("git cat-file %s: %s", h, strings.TrimSpace(hdr))
			break
		}
		n, _ := strconv.Atoi(f[2])
		buf := make([]byte, n+1)
		if _, err := io.ReadFull(br, buf); err != nil {
			ferr = fmt.Errorf("git cat-file %s: %w", h, err)
			break
		}
		if err := fn(h, buf[:n]); err != nil {
			ferr = err
			break
		}
	}
	if ferr != nil {
		c.Process.Kill()
		c.Wait()
		return ferr
	}
	return c.Wait()
}

// Lookup runs git with args in dir and returns its output without surrounding white space, or ""
// when git fails (no repository, no remote, no tag): for metadata that is best effort, such as
// the commit and remote URL a bundle or a CI environment records.
func Lookup(dir string, args ...string) string {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
