package gitserver

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Options configure Start.
type Options struct {
	// Username and Password every request must carry (basic authentication); empty Username:
	// "strata" / a fixed test password.
	Username, Password string
}

// Server is a running git server. Repositories live in Root as NAME.git and are served at
// URL(NAME).
type Server struct {
	Root               string
	Username, Password string

	base string
	srv  *http.Server
	git  string

	mu            sync.Mutex
	beforeReceive map[string]func() // per repository, run once before the next push is served
	pushes        atomic.Int64
}

// Start serves the bare repositories under a fresh directory on a free port of 127.0.0.1.
// Close stops it and removes the repositories.
func Start(o Options) (*Server, error) {
	git, err := exec.LookPath("git")
	if err != nil {
		return nil, fmt.Errorf("git CLI: %w", err)
	}
	out, err := exec.Command(git, "--exec-path").Output()
	if err != nil {
		return nil, fmt.Errorf("git --exec-path: %w", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		return nil, fmt.Errorf("git http-backend: %w", err)
	}
	root, err := os.MkdirTemp("", "gitserver-")
	if err != nil {
		return nil, err
	}
	s := &Server{Root: root, Username: o.Username, Password: o.Password, git: git, beforeReceive: map[string]func(){}}
	if s.Username == "" {
		s.Username, s.Password = "strata", "git-test-password"
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	s.base = "http://" + l.Addr().String()
	h := &cgi.Handler{
		Path: backend,
		Root: "/",
		Dir:  root,
		Env: []string{
			"GIT_PROJECT_ROOT=" + root,
			"GIT_HTTP_EXPORT_ALL=1",
			"REMOTE_USER=" + s.Username, // http-backend enables receive-pack for an authenticated user
		},
	}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(s.Username)) != 1 ||
			subtle.ConstantTimeCompare([]byte(p), []byte(s.Password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-receive-pack") {
			name := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSuffix(r.URL.Path, "/git-receive-pack"), "/"), ".git")
			s.mu.Lock()
			f := s.beforeReceive[name]
			delete(s.beforeReceive, name)
			s.mu.Unlock()
			if f != nil {
				f()
			}
			s.pushes.Add(1)
		}
		h.ServeHTTP(w, r)
	})}
	go func() { _ = s.srv.Serve(l) }()
	return s, nil
}

// Close stops the server and removes the repositories.
func (s *Server) Close() {
	_ = s.srv.Close()
	_ = os.RemoveAll(s.Root)
}

// URL is the clone URL of repository name (without credentials).
func (s *Server) URL(name string) string { return s.base + "/" + name + ".git" }

// Pushes counts the pushes (receive-pack requests) served so far.
func (s *Server) Pushes() int64 { return s.pushes.Load() }

// BeforeNextPush runs f once, before the next push to repository name is served: a test
// makes a concurrent commit there to force a conflict.
func (s *Server) BeforeNextPush(name string, f func()) {
	s.mu.Lock()
	s.beforeReceive[name] = f
	s.mu.Unlock()
}

// CreateRepo creates the bare repository name with one commit on branch holding files
// (slash-separated path → content) and returns its clone URL.
func (s *Server) CreateRepo(ctx context.Context, name, branch string, files map[string]string) (string, error) {
	dir := s.gitDir(name)
	if _, err := s.run(ctx, "", "init", "--bare", "--quiet", "--initial-branch="+branch, dir); err != nil {
		return "", err
	}
	if _, err := s.run(ctx, dir, "config", "http.receivepack", "true"); err != nil {
		return "", err
	}
	if err := s.Commit(ctx, name, branch, "initial content", files); err != nil {
		return "", err
	}
	return s.URL(name), nil
}

// Commit writes files (path → content; "" deletes) as one commit on top of branch (created if
// missing), directly in the bare repository, as another user pushing would.
func (s *Server) Commit(ctx context.Context, name, branch, message string, files map[string]string) error {
	dir := s.gitDir(name)
	idx, err := os.CreateTemp("", "gitserver-index-")
	if err != nil {
		return err
	}
	idx.Close()
	os.Remove(idx.Name())
	defer os.Remove(idx.Name())
	env := []string{"GIT_INDEX_FILE=" + idx.Name(), "GIT_AUTHOR_NAME=someone else", "GIT_AUTHOR_EMAIL=else@example.com",
		"GIT_COMMITTER_NAME=someone else", "GIT_COMMITTER_EMAIL=else@example.com"}
	parent, _ := s.runEnv(ctx, dir, env, "rev-parse", "--verify", "--quiet", "refs/heads/"+branch)
	parent = strings.TrimSpace(parent)
	if parent != "" {
		if _, err := s.runEnv(ctx, dir, env, "read-tree", parent); err != nil {
			return err
		}
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if files[p] == "" {
			if _, err := s.runIn(ctx, dir, env, "0 0000000000000000000000000000000000000000\t"+p+"\n", "update-index", "--index-info"); err != nil {
				return err
			}
			continue
		}
		blob, err := s.runIn(ctx, dir, env, files[p], "hash-object", "-w", "--stdin")
		if err != nil {
			return err
		}
		if _, err := s.runEnv(ctx, dir, env, "update-index", "--add", "--cacheinfo", "100644,"+strings.TrimSpace(blob)+","+p); err != nil {
			return err
		}
	}
	tree, err := s.runEnv(ctx, dir, env, "write-tree")
	if err != nil {
		return err
	}
	args := []string{"commit-tree", strings.TrimSpace(tree), "-m", message}
	if parent != "" {
		args = append(args, "-p", parent)
	}
	commit, err := s.runEnv(ctx, dir, env, args...)
	if err != nil {
		return err
	}
	_, err = s.runEnv(ctx, dir, env, "update-ref", "refs/heads/"+branch, strings.TrimSpace(commit))
	return err
}

// ErrNotFound: the branch or file does not exist.
var ErrNotFound = errors.New("not found")

// File reads path on branch.
func (s *Server) File(ctx context.Context, name, branch, path string) (string, error) {
	out, err := s.run(ctx, s.gitDir(name), "show", "refs/heads/"+branch+":"+path)
	if err != nil {
		return "", fmt.Errorf("%s %s:%s: %w (%w)", name, branch, path, ErrNotFound, err)
	}
	return out, nil
}

// Log lists the commits of branch, newest first, as "<hash> <author name>: <subject>".
func (s *Server) Log(ctx context.Context, name, branch string) ([]string, error) {
	out, err := s.run(ctx, s.gitDir(name), "log", "--format=%H %an: %s", "refs/heads/"+branch, "--")
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w (%w)", name, branch, ErrNotFound, err)
	}
	return strings.Split(strings.TrimSpace(out), "\n"), nil
}

// Message is the full message of commit (a hash or a branch).
func (s *Server) Message(ctx context.Context, name, commit string) (string, error) {
	return s.run(ctx, s.gitDir(name), "log", "-1", "--format=%B", commit, "--")
}

// Author is "Name <email>" of commit.
func (s *Server) Author(ctx context.Context, name, commit string) (string, error) {
	out, err := s.run(ctx, s.gitDir(name), "log", "-1", "--format=%an <%ae>", commit, "--")
	return strings.TrimSpace(out), err
}

// IsAncestor reports whether commit a is an ancestor of b (history kept: no force push).
func (s *Server) IsAncestor(ctx context.Context, name, a, b string) bool {
	_, err := s.run(ctx, s.gitDir(name), "merge-base", "--is-ancestor", a, b)
	return err == nil
}

func (s *Server) gitDir(name string) string { return filepath.Join(s.Root, name+".git") }

func (s *Server) run(ctx context.Context, dir string, args ...string) (string, error) {
	return s.runIn(ctx, dir, nil, "", args...)
}

func (s *Server) runEnv(ctx context.Context, dir string, env []string, args ...string) (string, error) {
	return s.runIn(ctx, dir, env, "", args...)
}

func (s *Server) runIn(ctx context.Context, dir string, env []string, stdin string, args ...string) (string, error) {
	c := exec.CommandContext(ctx, s.git, args...)
	if dir != "" {
		c.Env = append(os.Environ(), "GIT_DIR="+dir)
	} else {
		c.Env = os.Environ()
	}
	c.Env = append(c.Env, env...)
	c.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
