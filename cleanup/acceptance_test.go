package cleanup

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"strata.dev/strata/bundle"
	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// gitRepo is a scripted git history with controlled commit dates.
type gitRepo struct {
	t   *testing.T
	dir string
	now time.Time
}

func (g *gitRepo) run(age time.Duration, args ...string) string {
	g.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = g.dir
	date := g.now.Add(-age).Format(time.RFC3339)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_DATE="+date, "GIT_COMMITTER_DATE="+date,
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		g.t.Fatalf("git %v: %v: %s", args, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

func (g *gitRepo) commit(msg string, age time.Duration) string {
	g.t.Helper()
	if err := os.WriteFile(filepath.Join(g.dir, "history.txt"), []byte(msg+"\n"), 0o644); err != nil {
		g.t.Fatal(err)
	}
	g.run(age, "add", "history.txt")
	g.run(age, "commit", "-q", "-m", msg)
	return g.run(age, "rev-parse", "HEAD")
}

func randomDigest(t testing.TB) string {
	b := make([]byte, 28)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// pushStage pushes a small random image as a stage tag with the labels strata build writes.
func pushStage(t testing.TB, repo name.Repository, project string, created time.Time, commit, parent string) (tag, manifest string) {
	t.Helper()
	return pushStageAs(t, repo, randomDigest(t), project, created, commit, parent)
}

// pushStageAs is pushStage with a given content digest.
func pushStageAs(t testing.TB, repo name.Repository, d, project string, created time.Time, commit, parent string) (tag, manifest string) {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{stages.LabelProject: project, stages.LabelDigest: d, stages.LabelImage: "app"}
	if commit != "" {
		labels[stages.CommitLabel(0)] = commit
	}
	if parent != "" {
		labels[stages.LabelParent] = parent
	}
	img = withLabels(t, img, labels)
	tag = stages.Tag{Digest: d, Millis: created.UnixMilli()}.String()
	if err := remote.Write(repo.Tag(tag), img, registry.Options{}.Remote(context.Background())...); err != nil {
		t.Fatal(err)
	}
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return tag, h.String()
}

func withLabels(t testing.TB, img v1.Image, labels map[string]string) v1.Image {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config
	cfg.Labels = labels
	img, err = mutate.Config(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func listTags(t *testing.T, repo name.Repository) []string {
	t.Helper()
	tags, err := remote.List(repo, registry.Options{}.Remote(context.Background())...)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(tags)
	return tags
}

// racingLocker publishes a stage right before cleanup takes its first publish lock, as a build
// running at the same time would.
type racingLocker struct {
	lock.Locker
	project string
	once    sync.Once
	publish func()
}

func (r *racingLocker) Lock(ctx context.Context, n string) (lock.Lease, error) {
	if n != stages.CleanupLock(r.project) {
		r.once.Do(r.publish)
	}
	return r.Locker.Lock(ctx, n)
}

// TestAcceptanceScriptedHistory: branches, tags, a merge, a deleted branch, a bundle pinned to an
// old image, a Deployment using another old image, a tag sharing a manifest, a recent build and a
// publish racing the cleanup: after cleanup exactly the expected set remains, tag by tag.
func TestAcceptanceScriptedHistory(t *testing.T) {
	repoName := testenv.Repo(t, "stages")
	bundleRepo := testenv.Repo(t, "bundles") + "/app"
	kubeconfig := testenv.Kubeconfig(t)
	kube := testenv.Kube(t)
	ctx := context.Background()
	reg := registry.Options{}
	repo, err := reg.ParseRepository(repoName)
	if err != nil {
		t.Fatal(err)
	}
	project := testenv.UniqueName(t, "p")
	now := time.Now()

	// --- git: origin with main, feat (merged), old (deleted), tags v1.0 and v1.1.
	origin := filepath.Join(t.TempDir(), "origin.git")
	work := filepath.Join(t.TempDir(), "work")
	for _, d := range []string{origin, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	(&gitRepo{t: t, dir: origin, now: now}).run(0, "init", "-q", "--bare")
	g := &gitRepo{t: t, dir: work, now: now}
	g.run(0, "init", "-q", "-b", "main")
	g.run(0, "remote", "add", "origin", origin)
	cfg := fmt.Sprintf("project: %s\nconfigVersion: 1\ncleanup:\n  branches:\n    last: 3\n    within: 7d\n  tags:\n    last: 1\n---\nimage: app\nfrom: busybox\n", project)
	if err := os.WriteFile(filepath.Join(work, "strata.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	g.run(25*day, "add", "strata.yaml")
	m0 := g.commit("m0", 25*day)
	m1 := g.commit("m1", 20*day)
	g.run(20*day, "tag", "-a", "v1.0", "-m", "release 1.0")
	m2 := g.commit("m2", 15*day)
	g.run(15*day, "tag", "v1.1")
	m3 := g.commit("m3", 6*day)
	g.run(0, "checkout", "-q", "-b", "old")
	o0 := g.commit("o0", 5*day)
	o1 := g.commit("o1", 2*day)
	g.run(0, "checkout", "-q", "-b", "feat", m3)
	f1 := g.commit("f1", 4*day)
	g.run(0, "checkout", "-q", "main")
	g.run(3*day, "merge", "-q", "--no-ff", "-m", "m4: merge feat", "feat")
	m4 := g.run(0, "rev-parse", "HEAD")
	m5 := g.commit("m5", 1*day)
	g.run(0, "push", "-q", "origin", "main", "feat", "old", "--tags")
	g.run(0, "push", "-q", "origin", "--delete", "old")
	g.run(0, "branch", "-q", "-D", "old")

	// --- stages: a base stage, then one stage per commit built on it.
	base, _ := pushStage(t, repo, project, now.Add(-30*day), "", "")
	type stage struct{ tag, manifest string }
	pushed := map[string]stage{}
	add := func(key string, age time.Duration, commit string) {
		tag, m := pushStage(t, repo, project, now.Add(-age), commit, base)
		pushed[key] = stage{tag, m}
	}
	add("m0", 25*day, m0)
	add("m1", 20*day, m1)
	add("m2", 15*day, m2)
	add("m3", 6*day, m3)
	add("f1", 4*day, f1)
	add("m4", 3*day, m4)
	add("m5", 1*day, m5)
	add("o0", 5*day, o0)
	add("o1", 2*day, o1)
	add("o1b", 2*day, o1)
	add("o1c", 2*day, o1)
	add("recent", 30*time.Minute, o1)
	// Another tag on o1b's manifest: deleting that manifest would delete the tag.
	if err := remote.Tag(repo.Tag("keepme"), mustImage(t, repo.Tag(pushed["o1b"].tag)), reg.Remote(ctx)...); err != nil {
		t.Fatal(err)
	}

	// --- a bundle pinned to m1's old image.
	chart := t.TempDir()
	writeFile(t, chart, "Chart.yaml", "apiVersion: v2\nname: app\nversion: 0.1.0\n")
	writeFile(t, chart, "templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  image: {{ .Values.strata.image.app | quote }}\n")
	_, err = bundle.Publish(ctx, bundle.PublishOptions{
		Repo: bundleRepo, Version: "1.0.0", ChartDir: chart, ProjectDir: work, Registry: reg,
		Report: &stages.Report{Project: project, Repo: repoName, Commit: m1, Images: []stages.ImageReport{{
			Name: "app", Repo: repoName, Tag: pushed["m1"].tag, Ref: repoName + ":" + pushed["m1"].tag + "@" + pushed["m1"].manifest,
			ManifestDigest: pushed["m1"].manifest,
		}}},
	})
	if err != nil {
		t.Fatalf("publish bundle: %v", err)
	}

	// --- a Deployment on the test apiserver running o0's old image.
	ns := testenv.UniqueName(t, "ns")
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kube.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	labels := map[string]string{"app": "web"}
	_, err = kube.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: repoName + ":" + pushed["o0"].tag}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	opts := Options{
		Dir: work, Repo: repoName, BundleRepos: []string{bundleRepo}, KubeContexts: []string{""},
		Kubeconfig: kubeconfig, Registry: reg, Locker: &lock.File{Dir: t.TempDir()}, Now: now,
	}

	// --- dry run: the plan, with reasons; nothing deleted.
	var out bytes.Buffer
	opts.DryRun, opts.Out = true, &out
	before := listTags(t, repo)
	res, err := Run(ctx, opts)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if after := listTags(t, repo); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("dry run changed the storage: %v -> %v", before, after)
	}
	text := out.String()
	t.Logf("dry run:\n%s", text)
	wantDeleted := []string{pushed["m0"].tag, pushed["o1"].tag, pushed["o1c"].tag}
	sort.Strings(wantDeleted)
	var planned []string
	for _, d := range res.Plan.Delete {
		planned = append(planned, d.Stage.Tag)
	}
	if strings.Join(planned, ",") != strings.Join(wantDeleted, ",") {
		t.Errorf("planned deletions %v, want m0, o1, o1c %v", planned, wantDeleted)
	}
	for key, want := range map[string]string{
		"m1":     "bundle " + bundleRepo + ":1.0.0 pins it (images lock: app)",
		"o0":     "Deployment " + ns + "/web uses it",
		"m5":     "branch main: commit " + m5[:12] + " is 1st of its last 3 within 7d",
		"f1":     "branch feat: commit " + f1[:12] + " is 1st",
		"m3":     "branch feat: commit " + m3[:12] + " is 2nd",
		"m2":     "tag v1.1 (commit " + m2[:12] + ") is 1st of the last 1 tags",
		"recent": "built 30m0s ago (keepBuiltWithin 2h)",
		"o1b":    `same manifest ` + short(pushed["o1b"].manifest) + ` as tag "keepme"`,
	} {
		line := lineOf(text, "keep   "+pushed[key].tag)
		if !strings.Contains(line, want) {
			t.Errorf("dry run: %s kept for %q, want %q", key, line, want)
		}
	}
	if line := lineOf(text, "keep   "+base); !strings.Contains(line, "parent of kept stage") {
		t.Errorf("dry run: base stage line %q", line)
	}
	for _, tag := range wantDeleted {
		if line := lineOf(text, "delete "+tag); line == "" {
			t.Errorf("dry run does not print the deletion of %s", tag)
		}
	}

	// --- the real run, with a build publishing a stage on top of o1c while cleanup runs.
	var raced string
	opts.DryRun, opts.Out = false, &out
	opts.Locker = &racingLocker{Locker: &lock.File{Dir: t.TempDir()}, project: project, publish: func() {
		raced, _ = pushStage(t, repo, project, time.Now(), m5, pushed["o1c"].tag)
	}}
	out.Reset()
	res, err = Run(ctx, opts)
	if err != nil {
		t.Fatalf("cleanup: %v\n%s", err, out.String())
	}
	t.Logf("cleanup:\n%s", out.String())
	if raced == "" {
		t.Fatal("the racing publish did not happen: cleanup took no publish lock")
	}
	want := []string{base, raced, "keepme"}
	for _, k := range []string{"m1", "m2", "m3", "f1", "m4", "m5", "o0", "o1b", "o1c", "recent"} {
		want = append(want, pushed[k].tag)
	}
	sort.Strings(want)
	got := listTags(t, repo)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("after cleanup:\n got  %v\n want %v", got, want)
	}
	if len(res.Deleted) != 2 || len(res.Spared) != 1 || res.Spared[0] != pushed["o1c"].manifest {
		t.Errorf("deleted %v spared %v, want m0 and o1 deleted, o1c spared", res.Deleted, res.Spared)
	}

	// A second run deletes nothing: o1c is now the parent of the raced stage, which is recent.
	out.Reset()
	opts.Locker = &lock.File{Dir: t.TempDir()}
	if res, err = Run(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if len(res.Plan.Delete) != 0 {
		t.Errorf("second run plans deletions: %v", res.Plan.Delete)
	}
}

func mustImage(t *testing.T, ref name.Reference) v1.Image {
	t.Helper()
	img, err := remote.Image(ref, registry.Options{}.Remote(context.Background())...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func writeFile(t *testing.T, dir, rel, content string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func lineOf(text, prefix string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}
