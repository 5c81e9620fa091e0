package cleanup

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// randomInput makes a random history with branches, merges and tags, and stages built along it
// (some sharing manifests, some used by bundles or clusters, some with bare-digest parents).
func randomInput(r *rand.Rand, nCommits, nStages int) Input {
	h := history{}
	var commits []string
	for i := 0; i < nCommits; i++ {
		c := fmt.Sprintf("%040x", i)
		age := time.Duration(nCommits-i) * time.Duration(1+r.IntN(6)) * time.Hour
		var parents []string
		if i > 0 {
			parents = append(parents, commits[r.IntN(i)])
			if i > 2 && r.IntN(5) == 0 {
				parents = append(parents, commits[r.IntN(i)])
			}
		}
		h.add(c, age, parents...)
		commits = append(commits, c)
	}
	in := Input{Now: now, Project: "p", Commits: h, Policy: Policy{
		Branches:        []Rule{{Match: mustRe("main"), Last: 20, Within: 30 * day}, {Last: 1 + r.IntN(5), Within: time.Duration(1+r.IntN(10)) * day}},
		Tags:            []Rule{{Last: 1 + r.IntN(4)}},
		KeepBuiltWithin: 2 * time.Hour,
	}}
	for i := 0; i < 1+nCommits/20; i++ {
		in.Refs = append(in.Refs, GitRef{Name: fmt.Sprintf("b%d", i), Commit: commits[r.IntN(nCommits)]})
	}
	in.Refs = append(in.Refs, GitRef{Name: "main", Commit: commits[nCommits-1]})
	for i := 0; i < 1+nCommits/30; i++ {
		in.Refs = append(in.Refs, GitRef{Name: fmt.Sprintf("v%d", i), Tag: true, Commit: commits[r.IntN(nCommits)]})
	}
	for i := 0; i < nStages; i++ {
		c := commits[r.IntN(nCommits)]
		s := st(fmt.Sprintf("s%d", i), time.Duration(r.IntN(60*24))*time.Hour+time.Duration(r.IntN(3600))*time.Second, c, "")
		s.Image = []string{"a", "b", "c"}[r.IntN(3)]
		if r.IntN(10) == 0 {
			s.Commits = nil
		}
		if i > 0 && r.IntN(4) != 0 {
			p := in.Stages[r.IntN(i)]
			s.Parent = p.Tag
			if r.IntN(10) == 0 {
				s.Parent = p.Digest
			}
		}
		if i > 0 && r.IntN(20) == 0 {
			s.ManifestDigest = in.Stages[r.IntN(i)].ManifestDigest
		}
		in.Stages = append(in.Stages, s)
	}
	for i := 0; i < nStages/25; i++ {
		s := in.Stages[r.IntN(nStages)]
		if r.IntN(2) == 0 {
			in.Uses = append(in.Uses, Use{Tag: s.Tag, Why: "bundle"})
		} else {
			in.Uses = append(in.Uses, Use{ManifestDigest: s.ManifestDigest, Why: "cluster"})
		}
	}
	in.Others = append(in.Others, Tagged{Tag: "latest", ManifestDigest: in.Stages[r.IntN(nStages)].ManifestDigest})
	return in
}

// TestPlanInvariants checks, over many random histories, what must hold whatever the policy:
// used stages are kept, parents of kept stages are kept, no deleted manifest is carried by a kept
// stage or another tag, recent stages are kept, and the plan does not depend on input order.
func TestPlanInvariants(t *testing.T) {
	for seed := uint64(1); seed <= 200; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		in := randomInput(r, 5+r.IntN(80), 5+r.IntN(150))
		p := MakePlan(in)
		kept := map[string]bool{}
		keptManifest := map[string]bool{}
		for _, k := range p.Keep {
			kept[k.Stage.Tag] = true
			keptManifest[k.Stage.ManifestDigest] = true
			if len(k.Reasons) == 0 {
				t.Fatalf("seed %d: %s kept without reason", seed, k.Stage.Tag)
			}
		}
		if len(p.Keep)+len(p.Delete) != len(in.Stages) {
			t.Fatalf("seed %d: plan covers %d of %d stages", seed, len(p.Keep)+len(p.Delete), len(in.Stages))
		}
		byTag := map[string]Stage{}
		for _, s := range in.Stages {
			byTag[s.Tag] = s
		}
		pl := &planner{byTag: map[string]*Stage{}, byDigest: map[string][]*Stage{}}
		for i := range in.Stages {
			s := &in.Stages[i]
			pl.byTag[s.Tag] = s
			pl.byDigest[s.Digest] = append(pl.byDigest[s.Digest], s)
		}
		for _, k := range p.Keep {
			s := byTag[k.Stage.Tag]
			if par := pl.resolveParent(&s); par != "" && byTag[par].Tag != "" && !kept[par] {
				t.Fatalf("seed %d: kept %s but not its parent %s", seed, s.Tag, par)
			}
		}
		for _, u := range in.Uses {
			for _, s := range in.Stages {
				if (u.Tag != "" && s.Tag == u.Tag || u.ManifestDigest != "" && s.ManifestDigest == u.ManifestDigest) && !kept[s.Tag] {
					t.Fatalf("seed %d: used stage %s deleted", seed, s.Tag)
				}
			}
		}
		for _, m := range p.Manifests {
			if keptManifest[m] {
				t.Fatalf("seed %d: manifest %s deleted but carried by a kept stage", seed, m)
			}
			for _, o := range in.Others {
				if o.ManifestDigest == m {
					t.Fatalf("seed %d: manifest %s deleted but carried by tag %s", seed, m, o.Tag)
				}
			}
		}
		for _, d := range p.Delete {
			if d.Stage.Created.After(now.Add(-in.Policy.KeepBuiltWithin)) {
				t.Fatalf("seed %d: recent stage %s deleted", seed, d.Stage.Tag)
			}
		}
		shuffled := in
		shuffled.Stages = append([]Stage(nil), in.Stages...)
		r.Shuffle(len(shuffled.Stages), func(i, j int) { shuffled.Stages[i], shuffled.Stages[j] = shuffled.Stages[j], shuffled.Stages[i] })
		if p2 := MakePlan(shuffled); !reflect.DeepEqual(keptSet(p2), keptSet(p)) || !reflect.DeepEqual(p2.Manifests, p.Manifests) {
			t.Fatalf("seed %d: plan depends on the order of the stages", seed)
		}
	}
}

func keptSet(p Plan) map[string]int {
	m := map[string]int{}
	for _, k := range p.Keep {
		m[k.Stage.Tag] = len(k.Reasons)
	}
	return m
}

// BenchmarkPlan plans a large storage: 20,000 commits, 50,000 stages, ~1,000 branches.
func BenchmarkPlan(b *testing.B) {
	in := randomInput(rand.New(rand.NewPCG(1, 2)), 20000, 50000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		MakePlan(in)
	}
}
