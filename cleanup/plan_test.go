package cleanup

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"strata.dev/strata/stages"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// history builds a commit graph: add("c2", 3*day, "c1") adds commit c2 committed 3 days ago.
type history map[string]Commit

func (h history) add(name string, age time.Duration, parents ...string) {
	h[name] = Commit{Time: now.Add(-age), Parents: parents}
}

const day = 24 * time.Hour

// st makes a stage built at commit c (age before now), with a tag unique per (name).
func st(name string, age time.Duration, commit, parent string) Stage {
	d := fmt.Sprintf("%056x", hash(name))
	created := now.Add(-age)
	s := Stage{
		Tag:            stages.Tag{Digest: d, Millis: created.UnixMilli()}.String(),
		Digest:         d,
		Created:        created,
		ManifestDigest: fmt.Sprintf("sha256:%064x", hash("m"+name)),
		Parent:         parent,
	}
	if commit != "" {
		s.Commits = []string{commit}
	}
	return s
}

func hash(s string) uint64 {
	var h uint64 = 14695981039346656037
	for _, c := range []byte(s) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return h
}

func keptTags(p Plan) []string {
	var out []string
	for _, k := range p.Keep {
		out = append(out, k.Stage.Tag)
	}
	sort.Strings(out)
	return out
}

func names(stages map[string]Stage, tags []string) []string {
	rev := map[string]string{}
	for n, s := range stages {
		rev[s.Tag] = n
	}
	var out []string
	for _, t := range tags {
		out = append(out, rev[t])
	}
	sort.Strings(out)
	return out
}

func run(t *testing.T, in Input, stages map[string]Stage) (kept, deleted []string, p Plan) {
	t.Helper()
	in.Stages = nil
	var ks []string
	for k := range stages {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	for _, k := range ks {
		in.Stages = append(in.Stages, stages[k])
	}
	p = MakePlan(in)
	var del []string
	for _, d := range p.Delete {
		del = append(del, d.Stage.Tag)
	}
	if len(p.Keep)+len(p.Delete) != len(in.Stages) {
		t.Fatalf("plan covers %d+%d stages, input has %d", len(p.Keep), len(p.Delete), len(in.Stages))
	}
	for _, k := range p.Keep {
		if len(k.Reasons) == 0 {
			t.Errorf("kept %s without a reason", k.Stage.Tag)
		}
	}
	return names(stages, keptTags(p)), names(stages, del), p
}

func want(t *testing.T, what string, got, exp []string) {
	t.Helper()
	sort.Strings(exp)
	if len(got) == 0 && len(exp) == 0 {
		return
	}
	if !reflect.DeepEqual(got, exp) {
		t.Errorf("%s:\n got  %v\n want %v", what, got, exp)
	}
}

func TestPlanBranchWindowLastNAndWithin(t *testing.T) {
	h := history{}
	stages := map[string]Stage{}
	prev := ""
	// 15 commits on main, c1 oldest (15 days ago) … c15 (1 day ago); one stage per commit,
	// each built on the previous commit's stage.
	for i := 1; i <= 15; i++ {
		c := fmt.Sprintf("c%02d", i)
		age := time.Duration(16-i) * day
		if prev == "" {
			h.add(c, age)
		} else {
			h.add(c, age, prev)
		}
		stages[c] = st(c, age, c, "")
		prev = c
	}
	pol := Policy{Branches: []Rule{{Last: 10, Within: 7 * day}}}
	in := Input{Now: now, Policy: pol, Commits: h, Refs: []GitRef{{Name: "main", Commit: "c15"}}}
	kept, deleted, _ := run(t, in, stages)
	// within 7 days: c09 (7 days ago, exactly at the edge, kept) … c15.
	want(t, "kept", kept, []string{"c09", "c10", "c11", "c12", "c13", "c14", "c15"})
	if len(deleted) != 8 {
		t.Errorf("deleted %v, want c01..c08", deleted)
	}

	in.Policy.Branches = []Rule{{Last: 3, Within: 0}}
	kept, _, _ = run(t, in, stages)
	want(t, "kept last 3", kept, []string{"c13", "c14", "c15"})

	in.Policy.Branches = []Rule{{Last: 100}}
	kept, _, _ = run(t, in, stages)
	if len(kept) != 15 {
		t.Errorf("last 100 unlimited kept %d, want 15", len(kept))
	}
}

func TestPlanMergesDeletedBranchAndTags(t *testing.T) {
	h := history{}
	h.add("a1", 10*day)
	h.add("a2", 5*day, "a1")
	h.add("f1", 4*day, "a2")       // feature branch, merged
	h.add("m1", 3*day, "a2", "f1") // merge into main
	h.add("g1", 2*day, "a2")       // branch deleted: unreachable from any ref
	h.add("r1", 9*day, "a1")       // tagged release, old
	h.add("r2", 8*day, "r1")       // tagged release
	stages := map[string]Stage{
		"a1": st("a1", 10*day, "a1", ""),
		"a2": st("a2", 5*day, "a2", ""),
		"f1": st("f1", 4*day, "f1", ""),
		"m1": st("m1", 3*day, "m1", ""),
		"g1": st("g1", 2*day, "g1", ""),
		"r1": st("r1", 9*day, "r1", ""),
		"r2": st("r2", 9*day, "r2", ""),
	}
	in := Input{Now: now, Policy: Policy{
		Branches: []Rule{{Last: 10, Within: 7 * day}},
		Tags:     []Rule{{Last: 1}},
	}, Commits: h, Refs: []GitRef{
		{Name: "main", Commit: "m1"},
		{Name: "v1.0.0", Tag: true, Commit: "r1"},
		{Name: "v1.0.1", Tag: true, Commit: "r2"},
	}}
	kept, deleted, p := run(t, in, stages)
	want(t, "kept", kept, []string{"a2", "f1", "m1", "r2"})
	want(t, "deleted", deleted, []string{"a1", "g1", "r1"})
	if len(p.Manifests) != 3 {
		t.Errorf("manifests %v, want the 3 deleted ones", p.Manifests)
	}
	for _, k := range p.Keep {
		if k.Stage.Tag == stages["r2"].Tag && !strings.Contains(k.Reasons[0], "tag v1.0.1") {
			t.Errorf("r2 reasons %q", k.Reasons)
		}
		if k.Stage.Tag == stages["f1"].Tag && !strings.Contains(k.Reasons[0], "branch main") {
			t.Errorf("f1 reasons %q", k.Reasons)
		}
	}

	// A rule that matches only release branches keeps nothing for main.
	in.Policy.Branches = []Rule{{Match: mustRe(`release/.*`), Last: 10}}
	in.Policy.Tags = []Rule{{Last: 2}}
	kept, _, _ = run(t, in, stages)
	want(t, "kept with tag rule only", kept, []string{"r1", "r2"})
}

func TestPlanRecentUsesParentsManifests(t *testing.T) {
	h := history{}
	h.add("c1", 30*day)
	base := st("base", 30*day, "", "") // from stage: no commit label
	mid := st("mid", 30*day, "c1", base.Tag)
	top := st("top", 30*day, "c1", mid.Tag)
	byDigest := st("bydigest", 20*day, "c1", base.Digest) // parent recorded as a bare digest
	recent := st("recent", time.Hour, "gone", "")
	pinned := st("pinned", 40*day, "gone", "")
	running := st("running", 40*day, "gone", "")
	twin := st("twin", 40*day, "gone", "")
	twin.ManifestDigest = pinned.ManifestDigest // same manifest under two tags
	other := st("other", 40*day, "gone", "")
	other.ManifestDigest = "sha256:" + strings.Repeat("ab", 32)
	foreign := st("foreign", 40*day, "gone", "")
	foreign.Project = "someone-else"
	lonely := st("lonely", 40*day, "gone", "")
	stages := map[string]Stage{"base": base, "mid": mid, "top": top, "bydigest": byDigest, "recent": recent,
		"pinned": pinned, "running": running, "twin": twin, "other": other, "foreign": foreign, "lonely": lonely}
	in := Input{Now: now, Project: "p", Policy: Policy{KeepBuiltWithin: 2 * time.Hour}, Commits: h,
		Uses: []Use{
			{Tag: top.Tag, Why: "bundle b:1"},
			{Tag: pinned.Tag, Why: "bundle b:2"},
			{ManifestDigest: running.ManifestDigest, Why: "Deployment default/web"},
		},
		Others: []Tagged{{Tag: "latest", ManifestDigest: other.ManifestDigest}},
	}
	kept, deleted, p := run(t, in, stages)
	want(t, "kept", kept, []string{"base", "mid", "top", "recent", "pinned", "running", "twin", "other", "foreign"})
	want(t, "deleted", deleted, []string{"bydigest", "lonely"})

	// A kept child recorded with a bare-digest parent keeps the oldest stage of that digest.
	in.Uses = append(in.Uses, Use{Tag: byDigest.Tag, Why: "bundle b:3"})
	kept, _, _ = run(t, in, stages)
	if !contains(kept, "bydigest") || !contains(kept, "base") {
		t.Errorf("kept %v", kept)
	}
	for _, m := range p.Manifests {
		for _, k := range p.Keep {
			if k.Stage.ManifestDigest == m {
				t.Errorf("manifest %s deleted but carried by kept %s", m, k.Stage.Tag)
			}
		}
	}
}

func TestPlanReuseFromAncestorPerImage(t *testing.T) {
	h := history{}
	h.add("c1", 20*day)
	h.add("c2", 2*day, "c1") // changes only image "api": "web" is reused from c1
	h.add("c3", 1*day, "c2") // changes nothing: both reused
	h.add("c0", 25*day)      // unrelated root
	web1 := st("web1", 20*day, "c1", "")
	web1.Image = "web"
	api1 := st("api1", 20*day, "c1", "")
	api1.Image = "api"
	api2 := st("api2", 2*day, "c2", "")
	api2.Image = "api"
	web0 := st("web0", 25*day, "c0", "")
	web0.Image = "web"
	stages := map[string]Stage{"web1": web1, "api1": api1, "api2": api2, "web0": web0}
	in := Input{Now: now, Policy: Policy{Branches: []Rule{{Last: 10, Within: 7 * day}}}, Commits: h,
		Refs: []GitRef{{Name: "main", Commit: "c3"}}}
	kept, deleted, _ := run(t, in, stages)
	want(t, "kept", kept, []string{"web1", "api2"})
	want(t, "deleted", deleted, []string{"api1", "web0"})
}

func TestLastCommitsOrder(t *testing.T) {
	h := history{}
	h.add("a", 5*day)
	h.add("b", 4*day, "a")
	h.add("x", 2*day, "a") // side branch commit, newer than b
	h.add("m", 1*day, "b", "x")
	got := lastCommits(h, "m", 10, time.Time{})
	if !reflect.DeepEqual(got, []string{"m", "x", "b", "a"}) {
		t.Errorf("lastCommits = %v", got)
	}
	if got := lastCommits(h, "m", 10, now.Add(-3*day)); !reflect.DeepEqual(got, []string{"m", "x"}) {
		t.Errorf("lastCommits within 3d = %v", got)
	}
	if got := lastCommits(h, "nope", 10, time.Time{}); got != nil {
		t.Errorf("unknown tip: %v", got)
	}
}

func mustRe(s string) *regexp.Regexp { return regexp.MustCompile("^(?:" + s + ")$") }

// Tags cosign's scheme attaches to a deleted manifest go with it, unless their manifest carries a
// tag that stays; those of kept manifests and other tags stay.
func TestPlanAttachedTags(t *testing.T) {
	hex := func(c string) string { return strings.Repeat(c, 64) }
	deleted := map[string]bool{"sha256:" + hex("a"): true}
	others := []Tagged{
		{Tag: "sha256-" + hex("a") + ".sig", ManifestDigest: "sha256:" + hex("1")},
		{Tag: "sha256-" + hex("a") + ".sbom", ManifestDigest: "sha256:" + hex("2")},
		{Tag: "sha256-" + hex("a") + ".att", ManifestDigest: "sha256:" + hex("3")},
		{Tag: "pinned", ManifestDigest: "sha256:" + hex("3")},                      // keeps the .att's manifest
		{Tag: "sha256-" + hex("b") + ".sig", ManifestDigest: "sha256:" + hex("4")}, // kept subject
		{Tag: "sha256-" + hex("a") + ".txt", ManifestDigest: "sha256:" + hex("5")}, // not cosign's
	}
	got := attachedTo(deleted, others, []string{"sha256:" + hex("2")}) // a kept stage carries the .sbom's manifest
	if len(got) != 1 || got[0].Tag != "sha256-"+hex("a")+".sig" {
		t.Errorf("attachedTo = %+v, want only the .sig of the deleted manifest", got)
	}
}

// A kept import stage keeps the stage it copied files from and that stage's parents, as werf
// protects import sources; a stage only another deleted stage imported from goes.
func TestPlanKeepsImportSources(t *testing.T) {
	h := history{}
	h.add("c1", 30*day)
	srcBase := st("srcbase", 30*day, "gone", "")
	src := st("src", 30*day, "gone", srcBase.Tag)
	oldSrc := st("oldsrc", 30*day, "gone", "")
	app := st("app", 30*day, "gone", "")
	imp := st("imp", 30*day, "gone", app.Tag)
	imp.Sources = []string{src.Tag}
	oldImp := st("oldimp", 30*day, "gone", "")
	oldImp.Sources = []string{oldSrc.Tag}
	stages := map[string]Stage{"srcbase": srcBase, "src": src, "oldsrc": oldSrc, "app": app, "imp": imp, "oldimp": oldImp}
	in := Input{Now: now, Project: "p", Commits: h, Uses: []Use{{Tag: imp.Tag, Why: "bundle b:1"}}}
	kept, deleted, p := run(t, in, stages)
	want(t, "kept", kept, []string{"srcbase", "src", "app", "imp"})
	want(t, "deleted", deleted, []string{"oldsrc", "oldimp"})
	var fromLabels Stage
	StageFromLabels(&fromLabels, map[string]string{"dev.strata.import.0.source": src.Tag, "dev.strata.import.1.source": oldSrc.Tag})
	if len(fromLabels.Sources) != 2 || fromLabels.Sources[0] != src.Tag {
		t.Errorf("sources from labels %q", fromLabels.Sources)
	}
	for _, k := range p.Keep {
		if k.Stage.Tag == src.Tag && !strings.Contains(strings.Join(k.Reasons, ";"), "import source of kept stage "+imp.Tag) {
			t.Errorf("src kept for %q", k.Reasons)
		}
	}
}
