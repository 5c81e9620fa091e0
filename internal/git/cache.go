package git

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
)

// RemoteRef names a commit of a remote repository: by Branch, Tag or Commit (at most one), or
// none of them for the remote's default branch (the branch its HEAD points at), as werf's
// `git: - url:` does.
type RemoteRef struct {
	URL, Branch, Tag, Commit string
}

// String names the reference in messages: "URL branch main", "URL tag v1", "URL commit abc".
func (r RemoteRef) String() string {
	switch {
	case r.Branch != "":
		return r.URL + " branch " + r.Branch
	case r.Tag != "":
		return r.URL + " tag " + r.Tag
	case r.Commit != "":
		return r.URL + " commit " + r.Commit
	}
	return r.URL + " (default branch)"
}

var fullHash = regexp.MustCompile(`^[0-9a-f]{40}$|^[0-9a-f]{64}$`)

// FetchRemote resolves ref to a commit with the git CLI, in a bare repository cached under
// cacheDir (one per URL, created on first use, shared by later builds), and returns that
// repository and the full commit hash. A commit already in the cache is used without asking
// the remote (a commit never changes); a branch, a tag or the default branch is fetched every
// time, since they move. Fetches into one cache entry are serialized across processes by a
// file lock. Git's own configuration applies (credential helpers, SSH agent, insteadOf);
// prompts are disabled.
//
// auth, when set, goes to git through its environment (http.extraHeader), never the command
// line or the cached repository's config.
func FetchRemote(ctx context.Context, cacheDir string, ref RemoteRef, auth Auth) (*Repo, string, error) {
	if ref.URL == "" || strings.HasPrefix(ref.URL, "-") {
		return nil, "", fmt.Errorf("git remote %q: not a repository URL", ref.URL)
	}
	sum := sha256.Sum256([]byte(ref.URL))
	dir := filepath.Join(cacheDir, hex.EncodeToString(sum[:12])+".git")
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, "", fmt.Errorf("git cache %s: %w", cacheDir, err)
	}
	unlock, err := lockFile(dir + ".lock")
	if err != nil {
		return nil, "", err
	}
	defer unlock()
	r := &Repo{Dir: dir}
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil {
		os.RemoveAll(dir) // a clone interrupted before HEAD was written
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, "", err
		}
		if _, err := r.out(ctx, "init", "-q", "--bare"); err != nil {
			return nil, "", err
		}
	}
	commit, err := r.resolveRemote(ctx, ref, auth)
	if err != nil {
		return nil, "", fmt.Errorf("git remote %s: %w", ref, err)
	}
	return r, commit, nil
}

func (r *Repo) fetch(ctx context.Context, url string, auth Auth, refspecs ...string) error {
	args := append([]string{"-c", "protocol.ext.allow=never", "fetch", "-q", "--no-tags", "--force", "--", url}, refspecs...)
	_, err := r.outEnv(ctx, auth.env(), args...) // no prompts: nobody would answer

	return err
}

func (r *Repo) resolveRemote(ctx context.Context, ref RemoteRef, auth Auth) (string, error) {
	switch {
	case ref.Commit != "":
		c := strings.ToLower(ref.Commit)
		if full, err := r.out(ctx, "rev-parse", "-q", "--verify", c+"^{commit}"); err == nil {
			return strings.TrimSpace(full), nil
		}
		// Not cached yet: every branch and tag, then (servers allowing it) the commit itself.
		ferr := r.fetch(ctx, ref.URL, auth, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
		if full, err := r.out(ctx, "rev-parse", "-q", "--verify", c+"^{commit}"); err == nil {
			return strings.TrimSpace(full), nil
		}
		if fullHash.MatchString(c) {
			if err := r.fetch(ctx, ref.URL, auth, c); err == nil {
				if full, err := r.out(ctx, "rev-parse", "-q", "--verify", c+"^{commit}"); err == nil {
					return strings.TrimSpace(full), nil
				}
			}
		}
		if ferr != nil {
			return "", ferr
		}
		return "", errors.New("commit not found in the repository's branches and tags")
	case ref.Branch != "":
		local := "refs/heads/" + ref.Branch
		if err := r.fetch(ctx, ref.URL, auth, "+"+local+":"+local); err != nil {
			return "", err
		}
		return r.verify(ctx, local)
	case ref.Tag != "":
		local := "refs/tags/" + ref.Tag
		if err := r.fetch(ctx, ref.URL, auth, "+"+local+":"+local); err != nil {
			return "", err
		}
		return r.verify(ctx, local)
	}
	const local = "refs/strata/default-branch"
	if err := r.fetch(ctx, ref.URL, auth, "+HEAD:"+local); err != nil {
		return "", err
	}
	return r.verify(ctx, local)
}

func (r *Repo) verify(ctx context.Context, ref string) (string, error) {
	s, err := r.out(ctx, "rev-parse", "-q", "--verify", ref+"^{commit}")
	if err != nil {
		return "", fmt.Errorf("%s is not a commit: %w", ref, err)
	}
	return strings.TrimSpace(s), nil
}

// lockFile takes an exclusive lock on path (created if needed), waiting for other holders.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("git cache lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("git cache lock %s: %w", path, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
