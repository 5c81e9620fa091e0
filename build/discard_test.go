package build

import (
	"context"
	"sync"
	"testing"

	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// racingLocker runs before() once, when the lock of name is first asked for and before it is
// granted: another builder publishing the same stage while this one was building it.
type racingLocker struct {
	lock.Locker
	name   string
	before func()
	once   sync.Once
	fired  bool
}

func (l *racingLocker) Lock(ctx context.Context, name string) (lock.Lease, error) {
	if name == l.name {
		l.once.Do(func() { l.fired = true; l.before() })
	}
	return l.Locker.Lock(ctx, name)
}

// A stage published by someone else between building it and taking its lock wins: the own
// result is discarded, the stored stage is used, and no second tag appears for the digest.
func TestDiscardOwnResultWhenStageAppeared(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "discard")
	scratch := testenv.Repo(t, "discard-scratch")
	reg := registry.Options{}
	g := newGitRepo(t)
	g.commit("init", map[string]string{
		"strata.yaml": "project: disc\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\ngit:\n- to: /src\n  includePaths: [\"*.txt\"]\ndocker:\n  CMD: [cat, /src/a.txt]\n",
		"a.txt":       "a",
	})
	ctx := context.Background()
	fl := fileLocker(t)
	// The digest of the dockerInstructions stage (digests do not depend on the storage).
	pre, err := Run(ctx, Options{Dir: g.dir, Repo: scratch, Registry: reg, Locker: fl, DockerHost: noEngine})
	if err != nil {
		t.Fatal(err)
	}
	target := stageOf(t, pre.Image("app"), "dockerInstructions").Digest

	var other *stages.Report
	lk := &racingLocker{Locker: fl, name: "disc/" + target, before: func() {
		var err error
		if other, err = Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: fl, DockerHost: noEngine}); err != nil {
			t.Errorf("competing build: %v", err)
		}
	}}
	rep, err := Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: lk, DockerHost: noEngine})
	if err != nil {
		t.Fatal(err)
	}
	if !lk.fired || other == nil {
		t.Fatalf("the lock of %s was never asked for (fired=%v)", target, lk.fired)
	}
	theirs := stageOf(t, other.Image("app"), "dockerInstructions")
	if theirs.Status != stages.StatusBuilt {
		t.Fatalf("competing build: dockerInstructions %s, want built", theirs.Status)
	}
	app := rep.Image("app")
	for _, name := range []string{"from", "gitArchive"} {
		if s := stageOf(t, app, name); s.Status != stages.StatusBuilt {
			t.Errorf("%s: %s, want built (published before the race)", name, s.Status)
		}
	}
	mine := stageOf(t, app, "dockerInstructions")
	if mine.Status != stages.StatusDiscarded || mine.Digest != target || mine.Tag != theirs.Tag {
		t.Errorf("dockerInstructions = %+v, want %s with the competitor's tag %s", mine, stages.StatusDiscarded, theirs.Tag)
	}
	if app.Ref != other.Image("app").Ref || app.ManifestDigest != other.Image("app").ManifestDigest {
		t.Errorf("final image %s (%s), want the stored %s (%s)", app.Ref, app.ManifestDigest, other.Image("app").Ref, other.Image("app").ManifestDigest)
	}
	if tags := digestTags(t, reg, repo, target); len(tags) != 1 || tags[0] != theirs.Tag {
		t.Errorf("tags for %s: %v, want only %s", target, tags, theirs.Tag)
	}
	// The next build reuses the surviving stage.
	again, err := Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: fl, DockerHost: noEngine})
	if err != nil {
		t.Fatal(err)
	}
	if s := stageOf(t, again.Image("app"), "dockerInstructions"); s.Status != stages.StatusReused || s.Tag != theirs.Tag {
		t.Errorf("after the race: %+v", s)
	}
}
