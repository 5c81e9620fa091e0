package build

import (
	"context"
	"fmt"
	"testing"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testenv"
	"strata.dev/strata/internal/version"
)

// stageConfigLabels reads the labels of a stored stage from the registry.
func stageConfigLabels(t *testing.T, reg registry.Options, repo, tag string) map[string]string {
	t.Helper()
	img, err := remoteImage(context.Background(), reg, repo+":"+tag)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf.Config.Labels
}

// Every stored stage, not only the final image, carries the project, its digest, its parent
// stage, the commit of each git mapping (once it holds git content) and the strata version.
func TestLabelsOnEveryStage(t *testing.T) {
	host := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "labels")
	reg := registry.Options{}
	g := newGitRepo(t)
	c1 := g.commit("init", map[string]string{
		"strata.yaml": "project: lbl\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\n" +
			"git:\n- add: /src\n  to: /app\n- add: /conf\n  to: /etc/app\n" +
			"shell:\n  beforeInstall: [echo bi > /bi]\n  install: [cat /app/a.txt > /inst]\n" +
			"docker:\n  CMD: [cat, /app/a.txt]\n" +
			"---\nimage: child\nfromImage: app\ndocker:\n  LABEL: {role: child}\n",
		"src/a.txt": "1", "conf/c.txt": "c",
	})
	ctx := context.Background()
	locker := fileLocker(t)
	run := func() *Report {
		t.Helper()
		rep, err := Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: locker, DockerHost: host})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	// check verifies the labels of every stage; commits gives the expected commit per stage of
	// app ("" = no git content yet).
	check := func(what string, rep *Report, commits map[string]string) {
		t.Helper()
		app, child := rep.Image("app"), rep.Image("child")
		type want struct {
			image   string
			mapping int // number of commit labels
			parent  string
			commit  string
			s       StageReport
		}
		var all []want
		parent := ""
		for _, s := range app.Stages {
			c, ok := commits[s.Name]
			if !ok {
				t.Fatalf("%s: unexpected stage %s of app", what, s.Name)
			}
			all = append(all, want{"app", 2, parent, c, s})
			parent = s.Tag
		}
		if len(app.Stages) != len(commits) {
			t.Fatalf("%s: app stages %+v, want %v", what, app.Stages, commits)
		}
		for _, s := range child.Stages {
			all = append(all, want{"child", 1, parent, commits["dockerInstructions"], s})
			parent = s.Tag
		}
		for _, w := range all {
			l := stageConfigLabels(t, reg, repo, w.s.Tag)
			at := fmt.Sprintf("%s: %s/%s", what, w.image, w.s.Name)
			for k, v := range map[string]string{LabelProject: "lbl", LabelDigest: w.s.Digest, LabelImage: w.image, LabelStage: w.s.Name, LabelVersion: version.String()} {
				if l[k] != v {
					t.Errorf("%s: label %s = %q, want %q", at, k, l[k], v)
				}
			}
			if p, ok := l[LabelParent]; w.parent == "" && ok {
				t.Errorf("%s: first stage has parent label %q", at, p)
			} else if l[LabelParent] != w.parent {
				t.Errorf("%s: parent label %q, want %q", at, l[LabelParent], w.parent)
			}
			for i := 0; i < 3; i++ {
				k := fmt.Sprintf(LabelCommitFmt, i)
				got, ok := l[k]
				switch {
				case w.commit != "" && i < w.mapping && got != w.commit:
					t.Errorf("%s: %s = %q, want %s", at, k, got, w.commit)
				case (w.commit == "" || i >= w.mapping) && ok:
					t.Errorf("%s: unexpected %s = %q", at, k, got)
				}
			}
		}
	}
	check("first build", run(), map[string]string{"from": "", "beforeInstall": "", "gitArchive": c1, "install": c1, "dockerInstructions": c1})

	// A mapped file changes: the patch and later stages carry the new commit, the reused
	// stages keep theirs.
	c2 := g.commit("a2", map[string]string{"src/a.txt": "2"})
	rep := run()
	if st := statuses(rep.Image("app")); st["install"] != StatusReused || st["gitLatestPatch"] != StatusBuilt {
		t.Fatalf("second build statuses %v", st)
	}
	check("after a change", rep, map[string]string{"from": "", "beforeInstall": "", "gitArchive": c1, "install": c1, "gitLatestPatch": c2, "dockerInstructions": c2})
}
