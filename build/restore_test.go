package build

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/syncbuf"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// onceLocker runs hook once, before taking the next lock requested after it is set: in a build
// that publishes one stage, right when that stage's publish lock is requested (the builder
// chose the stored parent long before).
type onceLocker struct {
	lock.Locker
	mu   sync.Mutex
	hook func(name string)
}

func (l *onceLocker) set(h func(string)) { l.mu.Lock(); l.hook = h; l.mu.Unlock() }

func (l *onceLocker) Lock(ctx context.Context, name string) (lock.Lease, error) {
	l.mu.Lock()
	h := l.hook
	l.hook = nil
	l.mu.Unlock()
	if h != nil {
		h(name)
	}
	return l.Locker.Lock(ctx, name)
}

// restoreFixture is a storage holding the chain from <- gitArchive(c1) <- gitLatestPatch(c2):
// a build of c3, whose only change is docker.CMD (outside the mapping), reuses that chain and
// publishes one new dockerInstructions stage on gitLatestPatch.
type restoreFixture struct {
	t      *testing.T
	g      *gitRepo
	repo   string
	cnt    *counter
	reg    registry.Options // counts requests
	plain  registry.Options // the test's own requests, not counted
	locker *onceLocker
	// chain: the tags of from, gitArchive, gitLatestPatch after the build of c2.
	chain map[string]string
}

func newRestoreFixture(t *testing.T) *restoreFixture {
	base := testenv.BaseImage(t)
	f := &restoreFixture{t: t, g: newGitRepo(t), repo: testenv.Repo(t, "restore"), cnt: &counter{}, locker: &onceLocker{Locker: fileLocker(t)}}
	f.reg = registry.Options{Transport: f.cnt}
	cfg := func(cmd string) string {
		return "project: restore\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\n" +
			"git:\n- add: /src\n  to: /app\ndocker:\n  CMD: [cat, " + cmd + "]\n"
	}
	f.g.commit("c1", map[string]string{"strata.yaml": cfg("/app/a.txt"), "src/a.txt": "1"})
	f.build(nil)
	f.g.commit("c2", map[string]string{"src/a.txt": "2"})
	rep := f.build(nil)
	f.chain = map[string]string{}
	for _, s := range rep.Stages {
		f.chain[s.Name] = s.Tag
	}
	if st := statuses(rep); st["gitLatestPatch"] != stages.StatusBuilt || st["gitArchive"] != stages.StatusReused {
		t.Fatalf("build of c2: %v, want gitArchive reused and gitLatestPatch built", st)
	}
	f.g.commit("c3", map[string]string{"strata.yaml": cfg("/app/b.txt")})
	return f
}

func (f *restoreFixture) build(log *slog.Logger) *stages.ImageReport {
	f.t.Helper()
	rep, err := Run(context.Background(), Options{Dir: f.g.dir, Repo: f.repo, Registry: f.reg, Locker: f.locker, DockerHost: noEngine, Log: log})
	if err != nil {
		f.t.Fatal(err)
	}
	return rep.Image("app")
}

// manifest returns the manifest digest stored under tag, or "" when the tag does not exist.
func (f *restoreFixture) manifest(tag string) string {
	f.t.Helper()
	r, err := f.plain.ParseRepository(f.repo)
	if err != nil {
		f.t.Fatal(err)
	}
	d, err := remote.Head(r.Tag(tag), f.plain.Remote(context.Background())...)
	if err != nil {
		if registry.IsNotFound(err) {
			return ""
		}
		f.t.Fatal(err)
	}
	return d.Digest.String()
}

// deleteByDigest deletes the manifest of tag as cleanup does: DELETE /v2/<repo>/manifests/<digest>.
func (f *restoreFixture) deleteByDigest(tag string) {
	f.t.Helper()
	r, err := f.plain.ParseRepository(f.repo)
	if err != nil {
		f.t.Fatal(err)
	}
	d := f.manifest(tag)
	if d == "" {
		f.t.Fatalf("stage %s is not stored", tag)
	}
	if err := remote.Delete(r.Digest(d), f.plain.Remote(context.Background())...); err != nil {
		f.t.Fatal(err)
	}
	if f.manifest(tag) != "" {
		f.t.Fatalf("stage %s still stored after deleting its manifest %s", tag, d)
	}
}

// A cleanup deletes stages a build chose, after it chose them and before it publishes a stage
// on top of them (and finishes before that publish): the builder puts the deleted parent chain
// back under the same tags with the identical manifests, as far as it read them.
func TestPublishRestoresParentsDeletedMeanwhile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		deleted []string
	}{
		{"parent and grandparent", []string{"gitLatestPatch", "gitArchive"}},
		// from is a stage this build reused without reading its manifest: it cannot be put
		// back, and the build says so.
		{"whole chain", []string{"gitLatestPatch", "gitArchive", "from"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newRestoreFixture(t)
			before := map[string]string{}
			for stage, tag := range f.chain {
				before[stage] = f.manifest(tag)
			}
			var lockName string
			f.locker.set(func(name string) {
				lockName = name
				for _, s := range tc.deleted {
					f.deleteByDigest(f.chain[s])
				}
			})
			var logs syncbuf.Buffer
			rep := f.build(slog.New(slog.NewTextHandler(&logs, nil)))
			st := statuses(rep)
			if st["from"] != stages.StatusReused || st["gitArchive"] != stages.StatusReused || st["gitLatestPatch"] != stages.StatusReused || st["dockerInstructions"] != stages.StatusBuilt {
				t.Fatalf("build of c3: %v, want the chain reused and dockerInstructions built", st)
			}
			x := rep.Stages[len(rep.Stages)-1]
			if lockName != "restore/"+x.Digest {
				t.Fatalf("the deletion ran when lock %q was requested, want the publish lock of dockerInstructions restore/%s", lockName, x.Digest)
			}
			if f.manifest(x.Tag) == "" {
				t.Errorf("published stage %s is not stored", x.Tag)
			}
			unrestorable := map[string]bool{"from": len(tc.deleted) == 3}
			for _, s := range tc.deleted {
				tag := f.chain[s]
				msg := fmt.Sprintf("restored parent stage %s (deleted while this build ran)", tag)
				if unrestorable[s] {
					if got := f.manifest(tag); got != "" {
						t.Errorf("%s %s stored again as %s, want it still deleted", s, tag, got)
					}
					if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "parent stage "+tag+" was deleted while this build ran") {
						t.Errorf("no warning naming %s; logs:\n%s", tag, logs.String())
					}
					continue
				}
				if got := f.manifest(tag); got != before[s] {
					t.Errorf("%s %s: manifest %q after the build, want the identical %s", s, tag, got, before[s])
				}
				if !strings.Contains(logs.String(), msg) {
					t.Errorf("log lacks %q; logs:\n%s", msg, logs.String())
				}
			}
			if len(tc.deleted) == 3 {
				return
			}
			for _, s := range rep.Stages {
				if f.manifest(s.Tag) == "" {
					t.Errorf("stage %s %s of the report is not stored", s.Name, s.Tag)
				}
			}
			again := f.build(nil)
			for i, s := range again.Stages {
				if s.Status != stages.StatusReused || s.Tag != rep.Stages[i].Tag {
					t.Errorf("second build: %s %s %s, want reused %s", s.Name, s.Status, s.Tag, rep.Stages[i].Tag)
				}
			}
		})
	}
}

// When nothing was deleted, a published stage costs one HEAD of its parent's tag (besides the
// HEAD of its own new tag that guards against overwriting), and an idle rebuild none.
func TestPublishChecksParentWithOneHead(t *testing.T) {
	f := newRestoreFixture(t)
	f.cnt.reset()
	rep := f.build(nil)
	heads := f.cnt.manifestHeads()
	f.cnt.reset()
	x := rep.Stages[len(rep.Stages)-1]
	if x.Status != stages.StatusBuilt || x.Name != "dockerInstructions" {
		t.Fatalf("last stage %+v, want dockerInstructions built", x)
	}
	parent := f.chain["gitLatestPatch"]
	want := map[string]int{parent: 1, x.Tag: 1}
	if fmt.Sprint(heads) != fmt.Sprint(want) {
		t.Errorf("one published stage: manifest HEADs %v, want %v (its parent once, its own tag once)", heads, want)
	}

	idle := f.build(nil)
	h := f.cnt.manifestHeads()
	writes, _ := f.cnt.reset()
	for _, s := range idle.Stages {
		if s.Status != stages.StatusReused {
			t.Errorf("idle rebuild: %s %s", s.Name, s.Status)
		}
	}
	if len(h) != 0 || len(writes) != 0 {
		t.Errorf("idle rebuild: manifest HEADs %v and writes %v, want none", h, writes)
	}
}

// The parent chain continues across fromImage: a stage of tools published on app's final
// stage puts that stage back when it was deleted meanwhile.
func TestPublishRestoresFromImageParent(t *testing.T) {
	base := testenv.BaseImage(t)
	f := &restoreFixture{t: t, g: newGitRepo(t), repo: testenv.Repo(t, "restore-fi"), cnt: &counter{}, locker: &onceLocker{Locker: fileLocker(t)}}
	f.reg = registry.Options{Transport: f.cnt}
	cfg := func(role string) string {
		return "project: restore\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\ndocker:\n  CMD: [\"true\"]\n" +
			"---\nimage: tools\nfromImage: app\ndocker:\n  LABEL: {role: " + role + "}\n"
	}
	f.g.commit("c1", map[string]string{"strata.yaml": cfg("a")})
	ctx := context.Background()
	run := func() *stages.Report {
		t.Helper()
		rep, err := Run(ctx, Options{Dir: f.g.dir, Repo: f.repo, Registry: f.reg, Locker: f.locker, DockerHost: noEngine})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	run()
	f.g.commit("c2", map[string]string{"strata.yaml": cfg("b")})
	// app is unchanged: its final stage is the one stored by the first build.
	first, err := Run(ctx, Options{Dir: f.g.dir, Repo: f.repo, Registry: f.reg, Locker: fileLocker(t), DockerHost: noEngine, Images: []string{"app"}})
	if err != nil {
		t.Fatal(err)
	}
	appFinal := first.Image("app").Tag
	want := f.manifest(appFinal)
	f.locker.set(func(string) { f.deleteByDigest(appFinal) })
	rep := run()
	tools := rep.Image("tools")
	if st := statuses(tools); st["dockerInstructions"] != stages.StatusBuilt {
		t.Fatalf("tools: %v, want its dockerInstructions built", st)
	}
	if got := f.manifest(appFinal); got != want {
		t.Errorf("app's final stage %s: manifest %q after the build, want the identical %s", appFinal, got, want)
	}
	for _, im := range rep.Images {
		for _, s := range im.Stages {
			if f.manifest(s.Tag) == "" {
				t.Errorf("%s: stage %s %s of the report is not stored", im.Name, s.Name, s.Tag)
			}
		}
	}
	for _, im := range run().Images {
		for _, s := range im.Stages {
			if s.Status != stages.StatusReused {
				t.Errorf("second build: %s %s %s, want reused", im.Name, s.Name, s.Status)
			}
		}
	}
}
