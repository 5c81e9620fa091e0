package config

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"strata.dev/strata/internal/git"
)

// Limits of what Load reads and renders.
const (
	// DefaultMaxSize bounds the config file and every file a template reads.
	DefaultMaxSize = 1 << 20
	// DefaultMaxRendered bounds the rendered config.
	DefaultMaxRendered = 4 << 20
	// DefaultRenderTimeout bounds rendering the templates.
	DefaultRenderTimeout = 10 * time.Second
)

// Options say where the config is and how to render it.
type Options struct {
	// Dir is the project directory on this host (inside a git work tree); default ".".
	Dir string
	// File is the config path on this host; default the first of FileNames committed in Dir.
	// Its directory is the project directory.
	File string
	// Repo is the opened repository of Dir; nil opens it.
	Repo *git.Repo
	// Commit is the commit the config and its templates are read from; "" = HEAD.
	Commit string
	// Env is the template's .Env (werf's --env).
	Env string
	// LookupEnv reads environment variables for the template's env function; nil = os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// MaxSize bounds each file read (config, partials, .Files); 0 = DefaultMaxSize.
	MaxSize int64
	// MaxRendered bounds the rendered config; 0 = DefaultMaxRendered.
	MaxRendered int64
	// RenderTimeout bounds rendering; 0 = DefaultRenderTimeout.
	RenderTimeout time.Duration
}

// Rendered is a config after its templates ran, before it is parsed.
type Rendered struct {
	// File names the config in messages (its path on this host).
	File string
	// Path is the config's path in the repository; Dir its directory ("." = root).
	Path, Dir string
	// Commit is the commit it was read from.
	Commit string
	// Source is the committed text, Data the rendered one.
	Source, Data []byte
}

// Parse parses the rendered config. When templates changed the text, errors name the rendered
// text's lines (print it with `strata config render`).
func (r *Rendered) Parse() (*Config, error) {
	name := r.File
	if string(r.Source) != string(r.Data) {
		name += " (rendered)"
	}
	cfg, err := Parse(name, r.Data)
	if err != nil {
		return nil, err
	}
	cfg.File, cfg.Dir = r.File, r.Dir
	return cfg, nil
}

// Load reads the config from the commit, renders and parses it.
func Load(ctx context.Context, o Options) (*Config, error) {
	r, err := Render(ctx, o)
	if err != nil {
		return nil, err
	}
	return r.Parse()
}

// Render finds the config in the commit and renders its templates.
func Render(ctx context.Context, o Options) (*Rendered, error) {
	if o.Dir == "" {
		o.Dir = "."
	}
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.MaxRendered <= 0 {
		o.MaxRendered = DefaultMaxRendered
	}
	if o.RenderTimeout <= 0 {
		o.RenderTimeout = DefaultRenderTimeout
	}
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	repo := o.Repo
	if repo == nil || o.Commit == "" {
		r, head, err := git.OpenHead(ctx, o.Dir)
		if err != nil {
			return nil, err
		}
		if repo == nil {
			repo = r
		}
		if o.Commit == "" {
			o.Commit = head
		}
	}
	hostDir := o.Dir
	if o.File != "" {
		hostDir = filepath.Dir(o.File)
	}
	dir, err := repoPath(repo, hostDir)
	if err != nil {
		return nil, err
	}
	var candidates []string
	if o.File != "" {
		candidates = []string{filepath.Base(o.File)}
	} else {
		candidates = FileNames()
	}
	paths := make([]string, len(candidates))
	for i, c := range candidates {
		paths[i] = path.Join(dir, c)
	}
	// From the commit's file listing when the build is reading it anyway (one git process less).
	entries, err := repo.Lookup(ctx, o.Commit, paths...)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	byPath := map[string]git.Entry{}
	for _, e := range entries {
		byPath[e.Path] = e
	}
	for i, p := range paths {
		e, ok := byPath[p]
		if !ok {
			continue
		}
		display := filepath.Join(hostDir, candidates[i])
		data, err := readEntry(ctx, repo, e, display, o.MaxSize)
		if err != nil {
			return nil, err
		}
		r := &Rendered{File: display, Path: p, Dir: dir, Commit: o.Commit, Source: data}
		if r.Data, err = render(ctx, repo, r, o); err != nil {
			return nil, err
		}
		return r, nil
	}
	for i := range paths {
		if _, err := os.Lstat(filepath.Join(hostDir, candidates[i])); err == nil {
			return nil, fmt.Errorf("%s is not in commit %s: the config is read from git (commit it, or build with --dev)", filepath.Join(hostDir, candidates[i]), short(o.Commit))
		}
	}
	if o.File != "" {
		return nil, fmt.Errorf("%s: not in commit %s", o.File, short(o.Commit))
	}
	return nil, fmt.Errorf("no %s in %s (commit %s)", strings.Join(FileNames(), ", "), hostDir, short(o.Commit))
}

// readEntry reads a committed regular file of at most limit bytes; display names it in errors.
// A symbolic link is refused, never followed: its target may be any file of the host.
func readEntry(ctx context.Context, repo *git.Repo, e git.Entry, display string, limit int64) ([]byte, error) {
	switch {
	case e.Symlink():
		return nil, fmt.Errorf("%s is a symbolic link in git: want a regular file (links are not followed)", display)
	case !e.Regular():
		return nil, fmt.Errorf("%s is not a regular file in git (mode %s)", display, e.Mode)
	case e.Size > limit:
		return nil, fmt.Errorf("%s is %d bytes, over the limit of %d bytes", display, e.Size, limit)
	}
	data, err := repo.ReadBlob(ctx, e.Hash, limit)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", display, err)
	}
	return data, nil
}

// repoPath is hostDir relative to the repository root, slash-separated ("." = root).
func repoPath(repo *git.Repo, hostDir string) (string, error) {
	abs, err := filepath.Abs(hostDir)
	if err != nil {
		return "", err
	}
	if d, err := filepath.EvalSymlinks(abs); err == nil {
		abs = d
	}
	top := repo.Dir
	if d, err := filepath.EvalSymlinks(top); err == nil {
		top = d
	}
	rel, err := filepath.Rel(top, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("%s is outside the git work tree %s: the config is read from git", hostDir, repo.Dir)
	}
	return filepath.ToSlash(rel), nil
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}
