package git

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Auth is how a remote is reached: HTTP basic credentials (none when Username and Password are
// empty). They reach git through its environment (an http.extraHeader set by GIT_CONFIG_*), never
// through the command line, a URL or a file.
type Auth struct {
	Username, Password string
}

func (a Auth) env() []string {
	env := []string{"GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=", "SSH_ASKPASS="}
	if a.Username == "" && a.Password == "" {
		return env
	}
	tok := base64.StdEncoding.EncodeToString([]byte(a.Username + ":" + a.Password))
	return append(env, "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.extraHeader",
		"GIT_CONFIG_VALUE_0=Authorization: Basic "+tok)
}

// ErrPushRejected: the remote refused a push because the branch moved on (not a fast-forward).
var ErrPushRejected = errors.New("push rejected: the remote branch has new commits")

// ErrNoBranch: the remote has no such branch.
var ErrNoBranch = errors.New("no such branch on the remote")

// Init opens the repository in dir, creating it (git init) if needed: a scratch clone whose
// remote is named on every call, so no credentials or URLs are stored in it.
func Init(ctx context.Context, dir string) (*Repo, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	r := &Repo{Dir: dir}
	if _, err := os.Stat(dir + "/.git"); err != nil {
		if _, err := r.out(ctx, "init", "--quiet", dir); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// DefaultBranch asks the remote which branch its HEAD points at.
func (r *Repo) DefaultBranch(ctx context.Context, url string, auth Auth) (string, error) {
	out, err := r.outEnv(ctx, auth.env(), "ls-remote", "--symref", "--", url, "HEAD")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(out, "\n") {
		if ref, ok := strings.CutPrefix(l, "ref: refs/heads/"); ok {
			if b, _, ok := strings.Cut(ref, "\t"); ok {
				return b, nil
			}
		}
	}
	return "", fmt.Errorf("%s: the remote names no default branch (HEAD)", url)
}

// FetchBranch fetches branch of url (shallow: only its tip) and returns the commit it points
// at; ErrNoBranch if the remote has no such branch.
func (r *Repo) FetchBranch(ctx context.Context, url, branch string, auth Auth) (string, error) {
	ref := "refs/strata/fetched/" + branch
	_, err := r.outEnv(ctx, auth.env(), "fetch", "--quiet", "--no-tags", "--depth=1", "--", url, "+refs/heads/"+branch+":"+ref)
	if err != nil {
		if strings.Contains(err.Error(), "couldn't find remote ref") {
			return "", fmt.Errorf("%s: branch %s: %w", url, branch, ErrNoBranch)
		}
		return "", err
	}
	c, err := r.out(ctx, "rev-parse", "--verify", ref+"^{commit}")
	return strings.TrimSpace(c), err
}

// Checkout makes the work tree exactly commit (detached HEAD, no untracked files left).
func (r *Repo) Checkout(ctx context.Context, commit string) error {
	if _, err := r.out(ctx, "checkout", "--quiet", "--force", "--detach", commit); err != nil {
		return err
	}
	_, err := r.out(ctx, "clean", "--quiet", "-fdx")
	return err
}

// Signature is a commit's author and committer.
type Signature struct {
	Name, Email string
}

// CommitAll commits every change of the work tree on top of HEAD and returns the new commit;
// "" when nothing changed (no empty commits).
func (r *Repo) CommitAll(ctx context.Context, message string, who Signature) (string, error) {
	if _, err := r.out(ctx, "add", "--all", "."); err != nil {
		return "", err
	}
	if _, err := r.out(ctx, "diff", "--cached", "--quiet"); err == nil {
		return "", nil
	}
	env := []string{"GIT_AUTHOR_NAME=" + who.Name, "GIT_AUTHOR_EMAIL=" + who.Email,
		"GIT_COMMITTER_NAME=" + who.Name, "GIT_COMMITTER_EMAIL=" + who.Email}
	if _, err := r.outEnv(ctx, env, "-c", "commit.gpgsign=false", "commit", "--quiet", "--no-verify", "--message", message); err != nil {
		return "", err
	}
	return r.Head(ctx)
}

// Push pushes commit to branch of url. Never forced: when the branch moved on the remote it
// returns ErrPushRejected and the caller fetches and applies its change again.
func (r *Repo) Push(ctx context.Context, url, commit, branch string, auth Auth) error {
	args := []string{"push", "--porcelain", "--", url, commit + ":refs/heads/" + branch}
	c := r.cmd(ctx, auth.env(), args...)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		// --porcelain: a refused ref is a line "!<TAB>src:dst<TAB>[rejected] (fetch first|non-fast-forward)"
		// or "[remote rejected] (... failed to lock)" when another push won the race.
		for _, l := range strings.Split(stdout.String(), "\n") {
			if strings.HasPrefix(l, "!") && (strings.Contains(l, "[rejected]") || strings.Contains(l, "lock") || strings.Contains(l, "failed to update ref")) {
				return fmt.Errorf("%s %s: %w (%s)", url, branch, ErrPushRejected, strings.TrimSpace(l))
			}
		}
		return fmt.Errorf("git push %s %s: %w: %s %s", url, branch, err, strings.TrimSpace(stdout.String()), strings.TrimSpace(stderr.String()))
	}
	return nil
}
