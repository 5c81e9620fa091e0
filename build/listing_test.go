package build

import (
	"context"
	"testing"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testenv"
)

// One tags listing of the stages storage per build serves every stage of every image; only
// publishing a stage re-lists (under its lock, bypassing the build's listing), once per stage.
func TestOneTagsListingPerBuild(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "listing")
	final := testenv.Repo(t, "listing-final")
	cnt := &counter{}
	reg := registry.Options{Transport: cnt}
	g := newGitRepo(t)
	g.commit("init", map[string]string{
		"strata.yaml": "project: ls\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\ngit:\n- to: /src\n  includePaths: [\"*.txt\"]\ndocker:\n  CMD: [cat, /src/a.txt]\n" +
			"---\nimage: tools\nfromImage: app\ndocker:\n  LABEL: {role: tools}\n" +
			"---\nimage: other\nfrom: " + base + "\nfromCacheVersion: other\ndocker:\n  USER: \"1000\"\n",
		"a.txt": "1",
	})
	ctx := context.Background()
	locker := fileLocker(t)
	r, err := reg.ParseRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	stagesPath := r.RepositoryStr()
	run := func() (rep *Report, listings map[string]int) {
		t.Helper()
		cnt.reset()
		rep, err := Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: locker, DockerHost: noEngine, FinalRepo: final, Parallel: 3})
		if err != nil {
			t.Fatal(err)
		}
		return rep, cnt.listings()
	}
	count := func(rep *Report) (stages, built int) {
		for _, im := range rep.Images {
			for _, s := range im.Stages {
				stages++
				// A discarded stage was published too: it re-listed under the lock.
				if s.Status == StatusBuilt || s.Status == StatusDiscarded {
					built++
				}
			}
		}
		return
	}
	check := func(what string, rep *Report, got map[string]int) {
		t.Helper()
		stages, built := count(rep)
		if got[stagesPath] != 1+built {
			t.Errorf("%s: %d listings of %s for %d stages (%d built), want 1 for the build + 1 per published stage", what, got[stagesPath], stagesPath, stages, built)
		}
		for p, n := range got {
			if p != stagesPath {
				t.Errorf("%s: listed %s %d times; only the stages storage is listed", what, p, n)
			}
		}
	}

	rep, got := run()
	if stages, built := count(rep); built != stages || stages != 6 {
		t.Fatalf("first build: %d of %d stages built, want 6 of 6: %+v", built, stages, rep.Images)
	}
	check("first build", rep, got)

	rep, got = run()
	if _, built := count(rep); built != 0 {
		t.Fatalf("idle rebuild built %d stages", built)
	}
	check("idle rebuild", rep, got)
	if got[stagesPath] != 1 {
		t.Errorf("idle rebuild: %d listings, want exactly 1", got[stagesPath])
	}

	// A mapped file changes: app gets a patch and a new dockerInstructions, tools a new stage.
	g.commit("a2", map[string]string{"a.txt": "2"})
	rep, got = run()
	if _, built := count(rep); built != 3 {
		t.Fatalf("after a change: %d stages built, want 3: %+v", built, rep.Images)
	}
	check("after a change", rep, got)
}
