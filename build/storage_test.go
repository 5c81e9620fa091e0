package build

import (
	"context"
	"strings"
	"testing"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// retag stores the manifest of repo:from under repo:to (registry-side, no layer moves).
func retag(t *testing.T, reg registry.Options, repo, from, to string) {
	t.Helper()
	ctx := context.Background()
	src, err := reg.ParseReference(repo + ":" + from)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remoteGet(ctx, reg, src)
	if err != nil {
		t.Fatal(err)
	}
	r, err := reg.ParseRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	if err := remoteTag(ctx, reg, r.Tag(to), desc); err != nil {
		t.Fatal(err)
	}
}

// digestTags lists the tags of repo that carry digest.
func digestTags(t *testing.T, reg registry.Options, repo, digest string) []string {
	t.Helper()
	r, err := reg.ParseRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := remoteList(context.Background(), reg, r)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tag := range tags {
		if strings.HasPrefix(tag, digest+"-") {
			out = append(out, tag)
		}
	}
	return out
}

func stageOf(t *testing.T, r *stages.ImageReport, name string) stages.StageReport {
	t.Helper()
	for _, s := range r.Stages {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("image %s has no stage %s: %+v", r.Name, name, r.Stages)
	return stages.StageReport{}
}

// A stored stage whose tag is older than its parent's chosen tag was made on another parent
// stage: it is skipped, even though it is the oldest candidate for its digest.
func TestStageCreatedBeforeParentSkipped(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "before-parent")
	scratch := testenv.Repo(t, "before-parent-scratch")
	reg := registry.Options{}
	g := newGitRepo(t)
	cfg := func(cmd string) map[string]string {
		return map[string]string{"strata.yaml": "project: bp\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\ndocker:\n  CMD: [" + cmd + "]\n"}
	}
	g.commit("a", cfg("a"))
	ctx := context.Background()
	locker := fileLocker(t)
	run := func(repo string) *stages.ImageReport {
		t.Helper()
		rep, err := Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: locker, DockerHost: noEngine})
		if err != nil {
			t.Fatal(err)
		}
		return rep.Image("app")
	}
	first := run(repo)
	from, docker := stageOf(t, first, "from"), stageOf(t, first, "dockerInstructions")
	fromMs := mustParseTag(t, from.Tag).Millis

	// Another candidate: a copy of the stage tagged before its parent is the oldest one, and
	// must not be chosen; the stage created after the parent is.
	planted := stages.Tag{Digest: docker.Digest, Millis: fromMs - 1000}.String()
	retag(t, reg, repo, docker.Tag, planted)
	again := run(repo)
	if s := stageOf(t, again, "from"); s.Tag != from.Tag || s.Status != stages.StatusReused {
		t.Fatalf("from stage %+v, want %s reused", s, from.Tag)
	}
	if s := stageOf(t, again, "dockerInstructions"); s.Tag != docker.Tag || s.Status != stages.StatusReused {
		t.Errorf("dockerInstructions = %s %s, want %s (the planted %s predates its parent %s)", s.Tag, s.Status, docker.Tag, planted, from.Tag)
	}
	if again.Ref != first.Ref {
		t.Errorf("final ref moved to %s", again.Ref)
	}

	// The only candidate predates the parent: the stage is built and published anew.
	g.commit("b", cfg("b"))
	other := stageOf(t, run(scratch), "dockerInstructions") // learns the digest of CMD [b]
	if other.Digest == docker.Digest {
		t.Fatalf("CMD change kept the digest")
	}
	planted = stages.Tag{Digest: other.Digest, Millis: fromMs - 1}.String()
	retag(t, reg, repo, docker.Tag, planted)
	rebuilt := run(repo)
	s := stageOf(t, rebuilt, "dockerInstructions")
	if s.Digest != other.Digest || s.Status != stages.StatusBuilt || s.Tag == planted {
		t.Errorf("dockerInstructions = %+v, want built anew instead of the planted %s", s, planted)
	}
	if mustParseTag(t, s.Tag).Millis <= fromMs {
		t.Errorf("new stage %s not after its parent %s", s.Tag, from.Tag)
	}
	if tags := digestTags(t, reg, repo, other.Digest); len(tags) != 2 {
		t.Errorf("tags for %s: %v, want the planted and the new one", other.Digest, tags)
	}
	img, err := remoteImage(ctx, reg, rebuilt.Ref)
	if err != nil {
		t.Fatal(err)
	}
	if cf, _ := img.ConfigFile(); len(cf.Config.Cmd) != 1 || cf.Config.Cmd[0] != "b" {
		t.Errorf("rebuilt image CMD = %v", cf.Config.Cmd)
	}
}
