package config

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// repo is a git work tree for tests; commit writes files ("-> TARGET" makes a symlink).
type repo struct {
	t   *testing.T
	dir string
}

func newRepo(t *testing.T) *repo {
	r := &repo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	return r
}

func (r *repo) git(args ...string) string {
	r.t.Helper()
	c := exec.Command("git", args...)
	c.Dir = r.dir
	c.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t",
		"GIT_AUTHOR_DATE=2024-01-02T03:04:05Z", "GIT_COMMITTER_DATE=2024-01-02T03:04:05Z", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := c.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func (r *repo) write(files map[string]string) {
	r.t.Helper()
	for p, content := range files {
		full := filepath.Join(r.dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			r.t.Fatal(err)
		}
		os.Remove(full)
		if target, ok := strings.CutPrefix(content, "-> "); ok {
			if err := os.Symlink(target, full); err != nil {
				r.t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *repo) commit(files map[string]string) string {
	r.t.Helper()
	r.write(files)
	r.git("add", "-A")
	r.git("commit", "-q", "--allow-empty", "-m", "c")
	return r.git("rev-parse", "HEAD")
}

const meta = "project: p\nconfigVersion: 1\n---\n"

// A committed strata.yaml symlink is refused, never followed: the error names the file and
// never prints the target's content (issue 19 item 2).
func TestLoadRefusesSymlinkToHostFile(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "token")
	const marker = "SECRET-MARKER-7f3a9c"
	if err := os.WriteFile(secret, []byte("project: "+marker+"\nconfigVersion: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := newRepo(t)
	r.commit(map[string]string{"strata.yaml": "-> " + secret})
	_, err := Load(context.Background(), Options{Dir: r.dir})
	if err == nil || !strings.Contains(err.Error(), "strata.yaml is a symbolic link") {
		t.Fatalf("error = %v, want the symlink named", err)
	}
	if strings.Contains(err.Error(), marker) {
		t.Errorf("the error leaks the target's content: %v", err)
	}
	// The same through `strata config render`'s function.
	if _, err := Render(context.Background(), Options{Dir: r.dir}); err == nil || strings.Contains(err.Error(), marker) {
		t.Errorf("Render: %v", err)
	}
}

func TestLoadRefusesSymlinkToDevZeroQuickly(t *testing.T) {
	r := newRepo(t)
	r.commit(map[string]string{"werf.yaml": "-> /dev/zero"})
	start := time.Now()
	_, err := Load(context.Background(), Options{Dir: r.dir})
	if err == nil || !strings.Contains(err.Error(), "werf.yaml is a symbolic link") {
		t.Fatalf("error = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
}

// A partial or a .Files.Get target that is a symlink is refused the same way.
func TestLoadRefusesSymlinkedTemplateInputs(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "token")
	const marker = "SECRET-MARKER-partial"
	os.WriteFile(secret, []byte(marker), 0o600)
	r := newRepo(t)
	r.commit(map[string]string{"strata.yaml": meta + "image: a\nfrom: x\nfromCacheVersion: '{{ .Files.Get \"v.txt\" }}'\n", "v.txt": "-> " + secret})
	_, err := Load(context.Background(), Options{Dir: r.dir})
	if err == nil || !strings.Contains(err.Error(), "v.txt is a symbolic link") || strings.Contains(err.Error(), marker) {
		t.Errorf(".Files.Get of a symlink: %v", err)
	}
	r.commit(map[string]string{"strata.yaml": meta + "image: a\nfrom: x\n{{ include \"x.tmpl\" . }}\n", "v.txt": "1", ".werf/x.tmpl": "-> " + secret})
	_, err = Load(context.Background(), Options{Dir: r.dir})
	if err == nil || !strings.Contains(err.Error(), ".werf/x.tmpl is a symbolic link") || strings.Contains(err.Error(), marker) {
		t.Errorf("symlinked partial: %v", err)
	}
}

func TestLoadSizeLimit(t *testing.T) {
	r := newRepo(t)
	big := meta + "image: a\nfrom: x\n#" + strings.Repeat("x", DefaultMaxSize) + "\n"
	r.commit(map[string]string{"strata.yaml": big})
	_, err := Load(context.Background(), Options{Dir: r.dir})
	if err == nil || !strings.Contains(err.Error(), "over the limit of 1048576 bytes") {
		t.Errorf("error = %v", err)
	}
	if _, err := Load(context.Background(), Options{Dir: r.dir, MaxSize: 4 << 20}); err != nil {
		t.Errorf("with a larger limit: %v", err)
	}
}

func TestLoadReadsTheCommitNotTheWorkTree(t *testing.T) {
	r := newRepo(t)
	first := r.commit(map[string]string{"strata.yaml": meta + "image: a\nfrom: committed\n"})
	r.write(map[string]string{"strata.yaml": meta + "image: a\nfrom: worktree\n"})
	cfg, err := Load(context.Background(), Options{Dir: r.dir})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Images[0].From != "committed" {
		t.Errorf("from = %q, want the committed one", cfg.Images[0].From)
	}
	r.commit(nil)
	cfg, err = Load(context.Background(), Options{Dir: r.dir, Commit: first})
	if err != nil || cfg.Images[0].From != "committed" {
		t.Errorf("at the first commit: %v %+v", err, cfg)
	}
}

// The accepted names, in order; an uncommitted config is named as such; a config in a
// subdirectory knows its directory in the repository.
func TestLoadFindsConfig(t *testing.T) {
	r := newRepo(t)
	r.commit(map[string]string{"README": "x"})
	if _, err := Load(context.Background(), Options{Dir: r.dir}); err == nil || !strings.Contains(err.Error(), "no strata.yaml, strata.yml, werf.yaml, werf.yml in") {
		t.Errorf("no config: %v", err)
	}
	r.write(map[string]string{"strata.yml": meta + "image: a\nfrom: x\n"})
	if _, err := Load(context.Background(), Options{Dir: r.dir}); err == nil || !strings.Contains(err.Error(), "strata.yml is not in commit") {
		t.Errorf("uncommitted: %v", err)
	}
	r.commit(map[string]string{"werf.yml": meta + "image: b\nfrom: x\n"})
	cfg, err := Load(context.Background(), Options{Dir: r.dir})
	if err != nil || cfg.Images[0].Name != "a" || filepath.Base(cfg.File) != "strata.yml" {
		t.Errorf("strata.yml before werf.yml: %v %+v", err, cfg)
	}
	r.commit(map[string]string{"svc/werf.yaml": meta + "image: s\nfrom: x\n"})
	cfg, err = Load(context.Background(), Options{Dir: filepath.Join(r.dir, "svc")})
	if err != nil || cfg.Dir != "svc" || cfg.Images[0].Name != "s" {
		t.Errorf("svc: %v %+v", err, cfg)
	}
	cfg, err = Load(context.Background(), Options{Dir: r.dir, File: filepath.Join(r.dir, "svc", "werf.yaml")})
	if err != nil || cfg.Dir != "svc" {
		t.Errorf("--config svc/werf.yaml: %v %+v", err, cfg)
	}
	if _, err := Load(context.Background(), Options{Dir: r.dir, File: filepath.Join(t.TempDir(), "strata.yaml")}); err == nil || !strings.Contains(err.Error(), "outside the git work tree") {
		t.Errorf("config outside: %v", err)
	}
}
