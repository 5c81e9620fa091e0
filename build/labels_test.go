package build

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/internal/version"
	"strata.dev/strata/stages"
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
	run := func() *stages.Report {
		t.Helper()
		rep, err := Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: locker, DockerHost: host})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	// check verifies the labels of every stage; commits gives the expected commit per stage of
	// app ("" = no git content yet).
	check := func(what string, rep *stages.Report, commits map[string]string) {
		t.Helper()
		app, child := rep.Image("app"), rep.Image("child")
		type want struct {
			image   string
			mapping int // number of commit labels
			parent  string
			commit  string
			s       stages.StageReport
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
			for k, v := range map[string]string{stages.LabelProject: "lbl", stages.LabelDigest: w.s.Digest, stages.LabelImage: w.image, stages.LabelStage: w.s.Name, stages.LabelVersion: version.String()} {
				if l[k] != v {
					t.Errorf("%s: label %s = %q, want %q", at, k, l[k], v)
				}
			}
			if p, ok := l[stages.LabelParent]; w.parent == "" && ok {
				t.Errorf("%s: first stage has parent label %q", at, p)
			} else if l[stages.LabelParent] != w.parent {
				t.Errorf("%s: parent label %q, want %q", at, l[stages.LabelParent], w.parent)
			}
			for i := 0; i < 3; i++ {
				k := stages.CommitLabel(i)
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
	if st := statuses(rep.Image("app")); st["install"] != stages.StatusReused || st["gitLatestPatch"] != stages.StatusBuilt {
		t.Fatalf("second build statuses %v", st)
	}
	check("after a change", rep, map[string]string{"from": "", "beforeInstall": "", "gitArchive": c1, "install": c1, "gitLatestPatch": c2, "dockerInstructions": c2})
}

// withoutAnnotations is a stage image as an older strata stored it: no manifest annotations.
type withoutAnnotations struct{ v1.Image }

func (i withoutAnnotations) Manifest() (*v1.Manifest, error) {
	m, err := i.Image.Manifest()
	if err != nil {
		return nil, err
	}
	m = m.DeepCopy()
	m.Annotations = nil
	return m, nil
}

func (i withoutAnnotations) RawManifest() ([]byte, error) {
	m, err := i.Manifest()
	if err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

func (i withoutAnnotations) Digest() (v1.Hash, error) {
	raw, err := i.RawManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	return h, err
}

// Every stage carries its digest (and, with git content, its commits) as manifest annotations,
// so an idle rebuild selects git stages from their manifests alone: no blob is read. Stages
// stored without annotations are still selected, through their config labels.
func TestSelectionReadsAnnotations(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "ann")
	oldRepo := testenv.Repo(t, "ann-old")
	cnt := &counter{}
	reg := registry.Options{Transport: cnt}
	g := newGitRepo(t)
	c1 := g.commit("init", map[string]string{
		"strata.yaml": gitAppConfig("ann", base),
		"src/a.txt":   "1",
	})
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
	want := map[string]string{"from": "", "gitArchive": c1, "dockerInstructions": c1}
	if len(first.Stages) != len(want) {
		t.Fatalf("stages %+v, want %v", first.Stages, want)
	}
	for _, s := range first.Stages {
		ref, err := reg.ParseReference(repo + ":" + s.Tag)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remoteGet(ctx, reg, ref)
		if err != nil {
			t.Fatal(err)
		}
		m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Annotations[stages.LabelDigest]; got != s.Digest {
			t.Errorf("%s: annotation %s = %q, want %s", s.Name, stages.LabelDigest, got, s.Digest)
		}
		if got, ok := m.Annotations[stages.CommitLabel(0)]; got != want[s.Name] || ok != (want[s.Name] != "") {
			t.Errorf("%s: commit annotation %q (present %v), want %q", s.Name, got, ok, want[s.Name])
		}
		// The config labels stay: cleanup and older builders read them.
		if l := stageConfigLabels(t, reg, repo, s.Tag); l[stages.CommitLabel(0)] != want[s.Name] {
			t.Errorf("%s: commit label %q, want %q", s.Name, l[stages.CommitLabel(0)], want[s.Name])
		}
	}

	cnt.reset()
	idle := run(repo)
	_, blobs := cnt.reset()
	for i, s := range idle.Stages {
		if s.Status != stages.StatusReused || s.Tag != first.Stages[i].Tag {
			t.Errorf("idle rebuild: %s %s %s, want reused %s", s.Name, s.Status, s.Tag, first.Stages[i].Tag)
		}
	}
	if len(blobs) != 0 {
		t.Errorf("idle rebuild read blobs %v, want none (labels from the annotations)", blobs)
	}

	// The same stages stored without annotations, under the same tags.
	for _, s := range first.Stages {
		img, err := remoteImage(ctx, reg, repo+":"+s.Tag)
		if err != nil {
			t.Fatal(err)
		}
		dst, err := reg.ParseReference(oldRepo + ":" + s.Tag)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(dst, withoutAnnotations{img}, reg.Remote(ctx)...); err != nil {
			t.Fatal(err)
		}
	}
	cnt.reset()
	old := run(oldRepo)
	writes, blobs := cnt.reset()
	for i, s := range old.Stages {
		if s.Status != stages.StatusReused || s.Tag != first.Stages[i].Tag {
			t.Errorf("stages without annotations: %s %s %s, want reused %s", s.Name, s.Status, s.Tag, first.Stages[i].Tag)
		}
	}
	if len(writes) != 0 {
		t.Errorf("stages without annotations: writes %v", writes)
	}
	// One config blob per git stage: gitArchive and dockerInstructions.
	if len(blobs) != 2 {
		t.Errorf("stages without annotations: blob reads %v, want the 2 configs of the git stages", blobs)
	}
}
