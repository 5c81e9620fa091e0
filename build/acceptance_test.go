package build

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

const noEngine = "unix:///nonexistent/strata-no-engine.sock"

func appConfig(base string) string {
	return `project: acc
configVersion: 1
---
image: app
from: ` + base + `
git:
- add: /src
  to: /app
  excludePaths: ["*.tmp"]
  stageDependencies:
    install: ["deps.txt"]
shell:
  install:
  - cat /app/deps.txt > /installed
docker:
  WORKDIR: /app
  ENV: {MODE: prod}
  CMD: ["cat", "/app/main.txt"]
---
image: tools
fromImage: app
docker:
  LABEL: {role: tools}
`
}

func TestAcceptanceStagesReuseAndRebuild(t *testing.T) {
	host := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "stages")
	cnt := &counter{}
	reg := registry.Options{Transport: cnt}
	g := newGitRepo(t)
	g.commit("init", map[string]string{
		"strata.yaml":  appConfig(base),
		"src/main.txt": "v1", "src/old.txt": "old", "src/deps.txt": "dep-a", "src/x.tmp": "ignored",
	})
	ctx := context.Background()
	locker := fileLocker(t)
	run := func(dockerHost string) *stages.Report {
		t.Helper()
		rep, err := Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: locker, DockerHost: dockerHost, Parallel: 2})
		if err != nil {
			t.Fatalf("build: %v", err)
		}
		return rep
	}

	// First build: everything built.
	rep := run(host)
	app := rep.Image("app")
	if app == nil || rep.Image("tools") == nil {
		t.Fatalf("report lacks images: %+v", rep)
	}
	if got := statuses(app); got["from"] != stages.StatusBuilt || got["gitArchive"] != stages.StatusBuilt || got["install"] != stages.StatusBuilt || got["dockerInstructions"] != stages.StatusBuilt {
		t.Fatalf("first build statuses = %v", got)
	}
	if _, ok := statuses(app)["gitLatestPatch"]; ok {
		t.Errorf("gitLatestPatch not skipped when archive is at HEAD")
	}
	for _, s := range app.Stages {
		if len(s.Digest) != 56 || !strings.HasPrefix(s.Tag, s.Digest+"-") {
			t.Errorf("stage %s: digest %q tag %q", s.Name, s.Digest, s.Tag)
		}
	}
	fs := files(t, app.Ref, reg)
	if fs["/app/main.txt"] != "v1" || fs["/installed"] != "dep-a" || fs["/app/old.txt"] != "old" {
		t.Errorf("first image files: main=%q installed=%q old=%q", fs["/app/main.txt"], fs["/installed"], fs["/app/old.txt"])
	}
	if _, ok := fs["/app/x.tmp"]; ok {
		t.Errorf("excludePaths ignored: /app/x.tmp in image")
	}
	if !strings.HasPrefix(app.Ref, repo+":") || !strings.HasPrefix(app.ManifestDigest, "sha256:") || rep.Commit == "" {
		t.Errorf("report: ref %q digest %q commit %q", app.Ref, app.ManifestDigest, rep.Commit)
	}

	// Idle rebuild: every stage reused, nothing pushed or pulled, no engine.
	cnt.reset()
	rep2 := run(noEngine)
	for _, im := range rep2.Images {
		for _, s := range im.Stages {
			if s.Status != stages.StatusReused {
				t.Errorf("idle rebuild: %s/%s %s", im.Name, s.Name, s.Status)
			}
		}
	}
	if rep2.Image("app").Ref != app.Ref || rep2.Image("app").ManifestDigest != app.ManifestDigest {
		t.Errorf("idle rebuild moved the final image: %s -> %s", app.Ref, rep2.Image("app").Ref)
	}
	w, blobs := cnt.reset()
	if len(w) != 0 {
		t.Errorf("idle rebuild pushed: %v", w)
	}
	// Only config blobs of git stages are read (commit labels for the ancestor check): no layer.
	layers := map[string]bool{}
	for _, im := range rep2.Images {
		img, err := remoteImage(ctx, reg, im.Ref)
		if err != nil {
			t.Fatal(err)
		}
		ls, _ := img.Layers()
		for _, l := range ls {
			d, _ := l.Digest()
			layers[d.String()] = true
		}
	}
	for _, p := range blobs {
		if layers[p[strings.LastIndex(p, "/")+1:]] {
			t.Errorf("idle rebuild pulled layer %s", p)
		}
	}

	// Change only a mapped file (and delete one): only gitLatestPatch and later rebuild, no engine.
	g.git("rm", "-q", "src/old.txt")
	g.commit("main v2", map[string]string{"src/main.txt": "v2"})
	cnt.reset()
	rep3 := run(noEngine)
	st := statuses(rep3.Image("app"))
	want := map[string]string{"from": stages.StatusReused, "gitArchive": stages.StatusReused, "install": stages.StatusReused, "gitLatestPatch": stages.StatusBuilt, "dockerInstructions": stages.StatusBuilt}
	for k, v := range want {
		if st[k] != v {
			t.Errorf("mapping change: stage %s %s, want %s (all %v)", k, st[k], v, st)
		}
	}
	fs = files(t, rep3.Image("app").Ref, reg)
	if fs["/app/main.txt"] != "v2" || fs["/installed"] != "dep-a" {
		t.Errorf("after mapping change: main=%q installed=%q", fs["/app/main.txt"], fs["/installed"])
	}
	if _, ok := fs["/app/old.txt"]; ok {
		t.Errorf("deleted file still in the image (no whiteout)")
	}
	if w, _ := cnt.reset(); len(w) == 0 {
		t.Errorf("mapping change pushed nothing")
	}

	// Change a stageDependencies.install file: install and later rebuild.
	g.commit("deps", map[string]string{"src/deps.txt": "dep-b"})
	rep4 := run(host)
	st = statuses(rep4.Image("app"))
	want = map[string]string{"from": stages.StatusReused, "gitArchive": stages.StatusReused, "install": stages.StatusBuilt, "dockerInstructions": stages.StatusBuilt}
	for k, v := range want {
		if st[k] != v {
			t.Errorf("deps change: stage %s %s, want %s (all %v)", k, st[k], v, st)
		}
	}
	if _, ok := st["gitLatestPatch"]; ok {
		t.Errorf("gitLatestPatch after install synced to HEAD: %v", st)
	}
	fs = files(t, rep4.Image("app").Ref, reg)
	if fs["/app/main.txt"] != "v2" || fs["/installed"] != "dep-b" {
		t.Errorf("after deps change: main=%q installed=%q", fs["/app/main.txt"], fs["/installed"])
	}
	if _, ok := fs["/app/old.txt"]; ok {
		t.Errorf("deleted file back in the image after install rebuild")
	}
	tools := rep4.Image("tools")
	if len(tools.Stages) != 1 || tools.Stages[0].Name != "dockerInstructions" {
		t.Errorf("tools stages: %+v", tools.Stages)
	}
}

func TestAcceptanceSiblingBranches(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "branches")
	reg := registry.Options{}
	g := newGitRepo(t)
	cfg := "project: br\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\ngit:\n- add: /\n  to: /src\n  includePaths: [\"*.txt\"]\ndocker:\n  WORKDIR: /src\n---\nimage: child\nfromImage: app\ndocker:\n  LABEL: {role: child}\n"
	g.commit("init", map[string]string{"strata.yaml": cfg, "a.txt": "base"})
	ctx := context.Background()
	locker := fileLocker(t)
	var child *stages.ImageReport
	run := func() *stages.ImageReport {
		t.Helper()
		rep, err := Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: locker, DockerHost: noEngine})
		if err != nil {
			t.Fatal(err)
		}
		child = rep.Image("child")
		return rep.Image("app")
	}
	stage := func(r *stages.ImageReport, name string) stages.StageReport {
		for _, s := range r.Stages {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("no stage %s in %+v", name, r.Stages)
		return stages.StageReport{}
	}
	g.git("checkout", "-q", "-b", "feature-a")
	g.commit("a", map[string]string{"a.txt": "from-a"})
	ra := run()
	childA := child
	archA := stage(ra, "gitArchive")
	if archA.Status != stages.StatusBuilt {
		t.Fatalf("branch a: gitArchive %s", archA.Status)
	}
	g.git("checkout", "-q", "main")
	g.git("checkout", "-q", "-b", "feature-b")
	g.commit("b", map[string]string{"b.txt": "from-b"})
	rb := run()
	childB := child
	archB := stage(rb, "gitArchive")
	if archB.Digest != archA.Digest {
		t.Fatalf("gitArchive digest differs between branches: %s vs %s", archA.Digest, archB.Digest)
	}
	if archB.Status != stages.StatusBuilt || archB.Tag == archA.Tag {
		t.Errorf("sibling branch reused a stage of feature-a: %+v", archB)
	}
	fs := files(t, rb.Ref, reg)
	if fs["/src/a.txt"] != "base" || fs["/src/b.txt"] != "from-b" {
		t.Errorf("branch b image: %v", fs)
	}
	// A stage without git mappings on top of git content is isolated too.
	if c := stage(childB, "dockerInstructions"); c.Status != stages.StatusBuilt || c.Tag == stage(childA, "dockerInstructions").Tag {
		t.Errorf("sibling branch reused feature-a's child stage: %+v", c)
	}
	if fs := files(t, childB.Ref, reg); fs["/src/a.txt"] != "base" || fs["/src/b.txt"] != "from-b" {
		t.Errorf("branch b child image: %v", fs)
	}
	g.git("merge", "-q", "--no-edit", "feature-a")
	rm := run()
	archM := stage(rm, "gitArchive")
	if archM.Status != stages.StatusReused || archM.Tag != archA.Tag {
		t.Errorf("after merge: gitArchive %s %s, want feature-a's (oldest) %s", archM.Status, archM.Tag, archA.Tag)
	}
	fs = files(t, rm.Ref, reg)
	if fs["/src/a.txt"] != "from-a" || fs["/src/b.txt"] != "from-b" {
		t.Errorf("merged image: %v", fs)
	}
}

func TestAcceptanceOldestCandidateWins(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "oldest")
	reg := registry.Options{}
	g := newGitRepo(t)
	g.commit("init", map[string]string{"strata.yaml": "project: old\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\ndocker:\n  USER: \"1000\"\n"})
	ctx := context.Background()
	o := Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: noEngine}
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	from := rep.Image("app").Stages[0]
	ms := mustParseTag(t, from.Tag).Millis
	// Store the same stage under an older and a newer tag.
	src, _ := reg.ParseReference(repo + ":" + from.Tag)
	desc, err := remoteGet(ctx, reg, src)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := reg.ParseRepository(repo)
	older, newer := stages.Tag{Digest: from.Digest, Millis: ms - 5000}.String(), stages.Tag{Digest: from.Digest, Millis: ms + 5000}.String()
	for _, tag := range []string{older, newer} {
		if err := remoteTag(ctx, reg, r.Tag(tag), desc); err != nil {
			t.Fatal(err)
		}
	}
	rep2, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	st := rep2.Image("app").Stages
	if st[0].Tag != older || st[0].Status != stages.StatusReused {
		t.Errorf("from stage = %s %s, want the oldest %s", st[0].Tag, st[0].Status, older)
	}
	// The next stage was created after its new parent: still reused.
	if st[1].Status != stages.StatusReused {
		t.Errorf("dockerInstructions %s after choosing an older parent", st[1].Status)
	}
}

func TestUncommittedChanges(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "dev")
	g := newGitRepo(t)
	cfg := "project: dev\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\ngit:\n- add: /\n  to: /src\n  includePaths: [\"*.txt\"]\n"
	g.commit("init", map[string]string{"strata.yaml": cfg, "a.txt": "committed"})
	if err := os.WriteFile(filepath.Join(g.dir, "a.txt"), []byte("dirty"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	o := Options{Dir: g.dir, Repo: repo, Locker: fileLocker(t), DockerHost: noEngine}
	if _, err := Run(ctx, o); err == nil || !strings.Contains(err.Error(), "uncommitted") || !strings.Contains(err.Error(), "a.txt") {
		t.Fatalf("dirty tree without --dev: %v", err)
	}
	o.Dev = true
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Dev {
		t.Errorf("report does not say dev")
	}
	if fs := files(t, rep.Image("app").Ref, registry.Options{}); fs["/src/a.txt"] != "dirty" {
		t.Errorf("--dev image a.txt = %q", fs["/src/a.txt"])
	}
	if out := g.git("status", "--porcelain"); !strings.Contains(out, "a.txt") {
		t.Errorf("--dev touched the work tree/index: %q", out)
	}
}

func TestConcurrentBuildsPublishOnce(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "race")
	g := newGitRepo(t)
	g.commit("init", map[string]string{"strata.yaml": "project: race\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\ngit:\n- to: /src\n  includePaths: [f]\ndocker:\n  CMD: [x]\n", "f": "1"})
	ctx := context.Background()
	locker := fileLocker(t)
	var wg sync.WaitGroup
	reps := make([]*stages.Report, 3)
	errs := make([]error, 3)
	for i := range reps {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			reps[i], errs[i] = Run(ctx, Options{Dir: g.dir, Repo: repo, Locker: locker, DockerHost: noEngine})
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("build %d: %v", i, err)
		}
	}
	for i := 1; i < len(reps); i++ {
		if reps[i].Image("app").Ref != reps[0].Image("app").Ref {
			t.Errorf("concurrent builds disagree: %s vs %s", reps[i].Image("app").Ref, reps[0].Image("app").Ref)
		}
	}
	r, _ := registry.Options{}.ParseRepository(repo)
	tags, err := remoteList(ctx, registry.Options{}, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) != len(reps[0].Image("app").Stages) {
		t.Errorf("stored %d tags for %d stages: %v", len(tags), len(reps[0].Image("app").Stages), tags)
	}
}

// A fromImage child has no git mappings of its own but sits on git content: a child stage built
// on a sibling branch must not be reused even when it was created after this branch's parent.
func TestAcceptanceChildOfGitImageIsolated(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "child")
	reg := registry.Options{}
	g := newGitRepo(t)
	cfg := "project: ch\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\ngit:\n- to: /src\n  includePaths: [\"*.txt\"]\n---\nimage: child\nfromImage: app\ndocker:\n  LABEL: {role: child}\n"
	g.commit("init", map[string]string{"strata.yaml": cfg, "a.txt": "base"})
	ctx := context.Background()
	locker := fileLocker(t)
	run := func(images ...string) *stages.Report {
		t.Helper()
		rep, err := Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: locker, DockerHost: noEngine, Images: images})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	g.git("checkout", "-q", "-b", "feature-a")
	g.commit("a", map[string]string{"a.txt": "from-a"})
	if rep := run("app"); rep.Image("child") != nil {
		t.Fatalf("--images app built child too")
	}
	g.git("checkout", "-q", "main")
	g.git("checkout", "-q", "-b", "feature-b")
	g.commit("b", map[string]string{"a.txt": "from-b"})
	repB := run()
	g.git("checkout", "-q", "feature-a")
	repA := run()
	ca, cb := repA.Image("child"), repB.Image("child")
	if ca.Stages[0].Digest != cb.Stages[0].Digest {
		t.Fatalf("child digests differ: the scenario needs them equal")
	}
	if ca.Stages[0].Status != stages.StatusBuilt || ca.Ref == cb.Ref {
		t.Errorf("feature-a reused feature-b's child stage: %+v", ca.Stages[0])
	}
	if fs := files(t, ca.Ref, reg); fs["/src/a.txt"] != "from-a" {
		t.Errorf("feature-a child has a.txt = %q", fs["/src/a.txt"])
	}
}
