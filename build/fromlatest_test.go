package build

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// werf's fromLatest: the base image's current manifest digest is part of the from stage's
// digest. A new image pushed under the same tag rebuilds the image on it (and the stage holds
// the new base); without fromLatest the same push changes nothing, as documented.
func TestFromLatest(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "fromlatest")
	baseRepo := testenv.Repo(t, "fromlatest-base")
	reg := registry.Options{}
	ctx := context.Background()
	img, err := remoteImage(ctx, reg, base)
	if err != nil {
		t.Fatal(err)
	}
	tagged, err := reg.ParseReference(baseRepo + ":stable")
	if err != nil {
		t.Fatal(err)
	}
	push := func(label string) {
		t.Helper()
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		c := cf.Config.DeepCopy()
		c.Labels = map[string]string{"base.version": label}
		im, err := mutate.Config(img, *c)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(tagged, im, reg.Remote(ctx)...); err != nil {
			t.Fatal(err)
		}
	}
	push("1")
	cfg := func(latest bool) string {
		s := "project: fromlatest\nconfigVersion: 1\n---\nimage: app\nfrom: " + tagged.String() + "\n"
		if latest {
			s += "fromLatest: true\n"
		}
		return s + "git:\n- add: /src\n  to: /app\n"
	}
	g := newGitRepo(t)
	g.commit("init", map[string]string{"werf.yaml": cfg(true), "src/a.txt": "a"})
	run := func() *stages.ImageReport {
		t.Helper()
		rep, err := Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: noEngine})
		if err != nil {
			t.Fatal(err)
		}
		return rep.Image("app")
	}
	label := func(r *stages.ImageReport) string {
		t.Helper()
		im, err := remoteImage(ctx, reg, r.Ref)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := im.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		return cf.Config.Labels["base.version"]
	}
	first := run()
	if label(first) != "1" {
		t.Errorf("first build on base version %q", label(first))
	}
	if again := run(); again.Ref != first.Ref {
		t.Errorf("same base: %s, want %s reused", again.Ref, first.Ref)
	}
	push("2")
	second := run()
	if st := statuses(second); st["from"] != stages.StatusBuilt || st["gitArchive"] != stages.StatusBuilt {
		t.Errorf("new base under the same tag: %v, want from and gitArchive built", st)
	}
	if label(second) != "2" {
		t.Errorf("rebuilt on base version %q, want 2", label(second))
	}

	// Without fromLatest the reference alone is the input: the new base is not noticed.
	g.commit("no fromLatest", map[string]string{"werf.yaml": cfg(false)})
	plain := run()
	push("3")
	if again := run(); again.Ref != plain.Ref {
		t.Errorf("without fromLatest a new base changed the image: %s, want %s", again.Ref, plain.Ref)
	}
}
