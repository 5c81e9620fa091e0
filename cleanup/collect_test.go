package cleanup

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/config"
	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

func TestScanRefs(t *testing.T) {
	d := strings.Repeat("ab", 28)
	m := "sha256:" + strings.Repeat("cd", 32)
	text := "image: 127.0.0.1:5000/p:" + d + "-1700000000123@" + m + "\nnot: " + d + "0-1700000000123\n"
	tags, digests := scanRefs(text)
	if !reflect.DeepEqual(tags, []string{d + "-1700000000123"}) {
		t.Errorf("tags %v", tags)
	}
	if !reflect.DeepEqual(digests, []string{m}) {
		t.Errorf("digests %v", digests)
	}
	// Pod status image IDs.
	_, digests = scanRefs("docker-pullable://127.0.0.1:5000/p@" + m)
	if len(digests) != 1 {
		t.Errorf("imageID digests %v", digests)
	}
}

func TestStageFromLabels(t *testing.T) {
	c1, c2 := strings.Repeat("1", 40), strings.Repeat("2", 40)
	var s Stage
	StageFromLabels(&s, map[string]string{
		"dev.strata.project":          "demo",
		"dev.strata.parent":           "abc-1",
		"dev.strata.image":            "app",
		"dev.strata.git.0.commit":     c1,
		"dev.strata.git.src.commit":   c1,
		"strata.dev/git-commit-other": c2,
		"dev.strata.commit.bad":       "not-a-hash",
		"org.opencontainers.commit":   strings.Repeat("3", 40),
	})
	if s.Project != "demo" || s.Parent != "abc-1" || s.Image != "app" {
		t.Errorf("stage %+v", s)
	}
	if !reflect.DeepEqual(s.Commits, []string{c1, c2}) {
		t.Errorf("commits %v, want %v", s.Commits, []string{c1, c2})
	}
}

// StageFromLabels reads every label build writes (named by package stages).
func TestStageFromLabelsReadsBuildLabels(t *testing.T) {
	c := strings.Repeat("4", 40)
	var s Stage
	StageFromLabels(&s, map[string]string{
		stages.LabelProject: "demo", stages.LabelParent: "p-1", stages.LabelImage: "app",
		stages.LabelDigest: strings.Repeat("a", stages.DigestLen), stages.LabelStage: "install",
		stages.CommitLabel(0): c, stages.CommitLabel(1): c,
	})
	if s.Project != "demo" || s.Parent != "p-1" || s.Image != "app" || !reflect.DeepEqual(s.Commits, []string{c}) {
		t.Errorf("stage %+v", s)
	}
}

func TestReadGitLocalBranchesAndShallow(t *testing.T) {
	now := time.Now()
	dir := t.TempDir()
	g := &gitRepo{t: t, dir: dir, now: now}
	g.run(0, "init", "-q", "-b", "main")
	a := g.commit("a", 3*day)
	g.run(0, "tag", "-a", "v1", "-m", "v1")
	g.run(0, "checkout", "-q", "-b", "topic")
	b := g.commit("b", 2*day)
	got, err := ReadGit(context.Background(), dir, "")
	if err != nil {
		t.Fatal(err)
	}
	wantRefs := []GitRef{{Name: "main", Commit: a}, {Name: "topic", Commit: b}, {Name: "v1", Tag: true, Commit: a}}
	if !reflect.DeepEqual(got.Refs, wantRefs) || got.Source != "local branches" {
		t.Errorf("refs %+v (%s), want %+v", got.Refs, got.Source, wantRefs)
	}
	if c := got.Commits[b]; !reflect.DeepEqual(c.Parents, []string{a}) || c.Time.Unix() != now.Add(-2*day).Unix() {
		t.Errorf("commit b = %+v", c)
	}
	if _, err := ReadGit(context.Background(), dir, "upstream"); err == nil || !strings.Contains(err.Error(), `no remote "upstream"`) {
		t.Errorf("unknown remote: %v", err)
	}

	shallow := filepath.Join(t.TempDir(), "shallow")
	g.run(0, "clone", "-q", "--depth", "1", "file://"+dir, shallow)
	if _, err := ReadGit(context.Background(), shallow, ""); err == nil || !strings.Contains(err.Error(), "shallow clone") {
		t.Errorf("shallow clone: %v", err)
	}
	if _, err := ReadGit(context.Background(), t.TempDir(), ""); err == nil || !strings.Contains(err.Error(), "git rev-parse") {
		t.Errorf("not a repository: %v", err)
	}
}

func TestRunBadInput(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	g := &gitRepo{t: t, dir: dir, now: time.Now()}
	g.run(0, "init", "-q", "-b", "main")
	g.commit("c0", 0)
	if _, err := Run(ctx, Options{Dir: dir}); err == nil || !strings.Contains(err.Error(), "--repo") {
		t.Errorf("no repo: %v", err)
	}
	if _, err := Run(ctx, Options{Dir: dir, Repo: "127.0.0.1:5000/x"}); err == nil || !strings.Contains(err.Error(), "strata.yaml") {
		t.Errorf("no config: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "strata.yaml"), []byte("project: p\nconfigVersion: 1\ncleanup:\n  tags: {last: -1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The config is read from the commit: an uncommitted one is named as such.
	if _, err := Run(ctx, Options{Dir: dir, Repo: "127.0.0.1:5000/x"}); err == nil || !strings.Contains(err.Error(), "strata.yaml is not in commit") {
		t.Errorf("uncommitted config: %v", err)
	}
	g.run(0, "add", "strata.yaml")
	g.commit("c1", 0)
	if _, err := Run(ctx, Options{Dir: dir, Repo: "127.0.0.1:5000/x"}); err == nil || !strings.Contains(err.Error(), "strata.yaml:4: cleanup.tags.last") {
		t.Errorf("bad policy: %v", err)
	}
	g.run(0, "rm", "-q", "strata.yaml")
	if err := os.WriteFile(filepath.Join(dir, "werf.yaml"), []byte("project: p\nconfigVersion: 1\ncleanup:\n  keepPolicies:\n  - references: {branch: /.*/}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g.run(0, "add", "werf.yaml")
	g.commit("c2", 0)
	if _, err := Run(ctx, Options{Dir: dir, Repo: "127.0.0.1:5000/x"}); err == nil || !strings.Contains(err.Error(), "werf.yaml:5: cleanup.keepPolicies") || !strings.Contains(err.Error(), "not supported yet") {
		t.Errorf("werf keepPolicies: %v", err)
	}
}

// Every name the build accepts is accepted by cleanup (it used to know only strata.yaml and
// werf.yaml: a project with strata.yml built but could not be cleaned).
func TestRunAcceptsEveryConfigName(t *testing.T) {
	ctx := context.Background()
	for _, name := range config.FileNames() {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			g := &gitRepo{t: t, dir: dir, now: time.Now()}
			g.run(0, "init", "-q", "-b", "main")
			project := testenv.UniqueName(t, "names")
			if err := os.WriteFile(filepath.Join(dir, name), []byte("project: "+project+"\nconfigVersion: 1\n---\nimage: app\nfrom: busybox\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			g.run(0, "add", name)
			g.commit("c0", 0)
			res, err := Run(ctx, Options{Dir: dir, Repo: testenv.Repo(t, "names"), DryRun: true, Locker: &lock.File{Dir: t.TempDir()}})
			if err != nil {
				t.Fatalf("cleanup with %s: %v", name, err)
			}
			if res.Project != project {
				t.Errorf("project %q, want %q", res.Project, project)
			}
		})
	}
}

func TestSyncStages(t *testing.T) {
	from := testenv.Repo(t, "from")
	to := testenv.Repo(t, "to")
	ctx := context.Background()
	reg := registry.Options{}
	src, err := reg.ParseRepository(from)
	if err != nil {
		t.Fatal(err)
	}
	dst, _ := reg.ParseRepository(to)
	now := time.Now()
	var tags []string
	manifests := map[string]string{}
	for i := 0; i < 3; i++ {
		tag, m := pushStage(t, src, "p", now.Add(-time.Duration(i)*time.Hour), "", "")
		tags = append(tags, tag)
		manifests[tag] = m
	}
	img, _ := random.Image(64, 1)
	if err := remote.Write(src.Tag("latest"), img, reg.Remote(ctx)...); err != nil {
		t.Fatal(err)
	}
	// A conflicting tag already at the destination is left alone.
	conflict, _ := random.Image(64, 1)
	if err := remote.Write(dst.Tag(tags[0]), conflict, reg.Remote(ctx)...); err != nil {
		t.Fatal(err)
	}
	res, err := SyncStages(ctx, SyncOptions{From: from, To: to, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Copied) != 2 || len(res.Conflicts) != 1 || res.Conflicts[0] != tags[0] {
		t.Errorf("first sync %+v", res)
	}
	got := listTags(t, dst)
	if len(got) != 3 || contains(got, "latest") {
		t.Errorf("destination tags %v, want the 3 stage tags only", got)
	}
	for _, tag := range tags[1:] {
		d, err := remote.Head(dst.Tag(tag), reg.Remote(ctx)...)
		if err != nil || d.Digest.String() != manifests[tag] {
			t.Errorf("%s at destination: %v %v, want manifest %s", tag, d, err, manifests[tag])
		}
	}
	res, err = SyncStages(ctx, SyncOptions{From: from, To: to, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Copied) != 0 || len(res.Present) != 2 || len(res.Conflicts) != 1 {
		t.Errorf("second sync %+v, want nothing copied", res)
	}
	if _, err := SyncStages(ctx, SyncOptions{From: from, To: from, Registry: reg}); err == nil {
		t.Error("sync onto itself accepted")
	}
}

func TestReadGitRemoteMustBeFetched(t *testing.T) {
	now := time.Now()
	ctx := context.Background()
	origin := t.TempDir()
	o := &gitRepo{t: t, dir: origin, now: now}
	o.run(0, "init", "-q", "-b", "main")
	a := o.commit("a", 3*day)
	o.run(0, "checkout", "-q", "-b", "other")
	o.commit("b", 2*day)
	o.run(0, "checkout", "-q", "main")

	clone := filepath.Join(t.TempDir(), "clone")
	c := &gitRepo{t: t, dir: t.TempDir(), now: now}
	c.run(0, "clone", "-q", "--single-branch", "--branch", "main", origin, clone)
	c.dir = clone
	if _, err := ReadGit(ctx, clone, ""); err == nil || !strings.Contains(err.Error(), "refs/heads/other is missing") {
		t.Fatalf("single-branch clone: %v", err)
	}
	c.run(0, "fetch", "-q", "--prune", "--tags", "origin", "+refs/heads/*:refs/remotes/origin/*")
	g, err := ReadGit(ctx, clone, "")
	if err != nil {
		t.Fatal(err)
	}
	if g.Source != "branches of remote origin" || len(g.Refs) != 2 || g.Refs[0].Name != "main" || g.Refs[0].Commit != a || len(g.Warnings) != 0 {
		t.Errorf("fetched clone: %+v", g)
	}
	// A new commit on the remote not fetched yet: behind.
	o.commit("c", day)
	if _, err := ReadGit(ctx, clone, ""); err == nil || !strings.Contains(err.Error(), "refs/heads/main is at") {
		t.Errorf("behind the remote: %v", err)
	}
	// A branch deleted on the remote but still fetched: a warning, its images are kept.
	o.run(0, "branch", "-q", "-D", "other")
	c.run(0, "fetch", "-q", "origin", "+refs/heads/main:refs/remotes/origin/main")
	g, err = ReadGit(ctx, clone, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Warnings) != 1 || !strings.Contains(g.Warnings[0], "branch other was deleted on remote origin") {
		t.Errorf("warnings %v", g.Warnings)
	}
	// No branches at all: refuse.
	empty := t.TempDir()
	(&gitRepo{t: t, dir: empty, now: now}).run(0, "init", "-q")
	if _, err := ReadGit(ctx, empty, ""); err == nil || !strings.Contains(err.Error(), "refusing to clean up without branches") {
		t.Errorf("no branches: %v", err)
	}
}

// BenchmarkStorageStages reads 100 stages (tags listing, manifests and configs) per iteration.
func BenchmarkStorageStages(b *testing.B) {
	repoName := testenv.Repo(b, "bench")
	reg := registry.Options{}
	repo, err := reg.ParseRepository(repoName)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		pushStage(b, repo, "p", time.Now().Add(-time.Duration(i)*time.Minute), strings.Repeat("a", 40), "")
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st, err := OpenStorage(repoName, reg)
		if err != nil {
			b.Fatal(err)
		}
		stages, _, err := st.Stages(context.Background(), nil)
		if err != nil || len(stages) != 100 {
			b.Fatalf("%d stages, %v", len(stages), err)
		}
	}
}
