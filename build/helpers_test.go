package build

import (
	"archive/tar"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/stages"
)

// counter counts registry requests: writes (pushes), blob reads (pulls) and tags listings.
type counter struct {
	mu     sync.Mutex
	writes []string
	blobs  []string
	lists  map[string]int // repository path -> GET /v2/<repo>/tags/list requests
	all    int
	// held, when set, tells whether a stage lock is held; listings made then are also counted
	// in locked.
	held   func() bool
	locked map[string]int
	heads  []string // HEAD /v2/<repo>/manifests/<ref> paths
	paths  []string // every request: METHOD PATH
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.all++
	c.paths = append(c.paths, r.Method+" "+r.URL.Path)
	switch {
	case r.Method == http.MethodPut || r.Method == http.MethodPost || r.Method == http.MethodPatch:
		c.writes = append(c.writes, r.Method+" "+r.URL.Path)
	case r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/manifests/"):
		c.heads = append(c.heads, r.URL.Path)
	case r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/"):
		c.blobs = append(c.blobs, r.URL.Path)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v2/") && strings.HasSuffix(r.URL.Path, "/tags/list"):
		if c.lists == nil {
			c.lists = map[string]int{}
		}
		repo := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v2/"), "/tags/list")
		c.lists[repo]++
		if c.held != nil && c.held() {
			if c.locked == nil {
				c.locked = map[string]int{}
			}
			c.locked[repo]++
		}
	}
	c.mu.Unlock()
	return remote.DefaultTransport.RoundTrip(r)
}

func (c *counter) reset() (writes, blobs []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	writes, blobs = c.writes, c.blobs
	c.writes, c.blobs, c.lists, c.locked, c.heads, c.paths, c.all = nil, nil, nil, nil, nil, nil, 0
	return
}

// manifestHeads returns the manifest HEAD requests since the last reset, by tag (or digest).
func (c *counter) manifestHeads() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for _, p := range c.heads {
		out[p[strings.LastIndex(p, "/")+1:]]++
	}
	return out
}

// listings returns the tags listings per repository path since the last reset: all of them,
// and those made while a stage lock was held.
func (c *counter) listings() (all, locked map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	all, locked = map[string]int{}, map[string]int{}
	for k, v := range c.lists {
		all[k] = v
	}
	for k, v := range c.locked {
		locked[k] = v
	}
	return all, locked
}

// gitRepo is a throwaway git repository in a temp dir.
type gitRepo struct {
	t   *testing.T
	dir string
	n   int
}

func newGitRepo(t *testing.T) *gitRepo {
	g := &gitRepo{t: t, dir: t.TempDir()}
	g.git("init", "-q", "-b", "main")
	return g
}

func (g *gitRepo) git(args ...string) string {
	g.t.Helper()
	g.n++
	c := exec.Command("git", args...)
	c.Dir = g.dir
	date := time.Unix(1700000000+int64(g.n)*60, 0).Format(time.RFC3339)
	c.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t",
		"GIT_AUTHOR_DATE="+date, "GIT_COMMITTER_DATE="+date)
	out, err := c.CombinedOutput()
	if err != nil {
		g.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func (g *gitRepo) write(files map[string]string) {
	g.t.Helper()
	for p, content := range files {
		full := filepath.Join(g.dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			g.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			g.t.Fatal(err)
		}
	}
}

func (g *gitRepo) commit(msg string, files map[string]string) string {
	g.t.Helper()
	g.write(files)
	g.git("add", "-A")
	g.git("commit", "-q", "-m", msg)
	return g.git("rev-parse", "HEAD")
}

func statuses(r *stages.ImageReport) map[string]string {
	m := map[string]string{}
	for _, s := range r.Stages {
		m[s.Name] = s.Status
	}
	return m
}

// files flattens an image registry-side and returns regular files and their content.
func files(t *testing.T, ref string, o registry.Options) map[string]string {
	t.Helper()
	r, err := o.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, o.Remote(context.Background())...)
	if err != nil {
		t.Fatal(err)
	}
	return flatten(t, img)
}

func flatten(t *testing.T, img v1.Image) map[string]string {
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	out := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			out["/"+strings.TrimPrefix(h.Name, "/")] = string(b)
		}
	}
}

func fileLocker(t *testing.T) lock.Locker { return &lock.File{Dir: t.TempDir()} }

func remoteGet(ctx context.Context, o registry.Options, ref name.Reference) (*remote.Descriptor, error) {
	return remote.Get(ref, o.Remote(ctx)...)
}

func remoteTag(ctx context.Context, o registry.Options, tag name.Tag, d *remote.Descriptor) error {
	return remote.Tag(tag, d, o.Remote(ctx)...)
}

func remoteList(ctx context.Context, o registry.Options, r name.Repository) ([]string, error) {
	return remote.List(r, o.Remote(ctx)...)
}

func remoteImage(ctx context.Context, o registry.Options, ref string) (v1.Image, error) {
	r, err := o.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	return remote.Image(r, o.Remote(ctx)...)
}

// gitAppConfig is a strata.yaml with one image "app" on base: the repository's /src mapped to
// /app (gitArchive, then gitLatestPatch on changes) and a CMD (dockerInstructions). No shell
// stage: it builds without an engine.
func gitAppConfig(project, base string) string {
	return "project: " + project + "\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\n" +
		"git:\n- add: /src\n  to: /app\ndocker:\n  CMD: [cat, /app/a.txt]\n"
}

// head is the project document of test configs.
const head = "project: p\nconfigVersion: 1\n---\n"

// mustParseTag parses a stage tag of a report.
func mustParseTag(t testing.TB, tag string) stages.Tag {
	t.Helper()
	st, ok := stages.ParseTag(tag)
	if !ok {
		t.Fatalf("%q is not a stage tag", tag)
	}
	return st
}
