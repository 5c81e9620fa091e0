package cleanup

import (
	"container/heap"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"strata.dev/strata/sign"
	"strata.dev/strata/stages"
)

// Stage is one stage image in the stages storage, as its tag and labels describe it.
type Stage struct {
	Tag            string    // <56-hex digest>-<unix millis>
	Digest         string    // the content digest (the tag's first part)
	Created        time.Time // the tag's millis
	ManifestDigest string    // sha256:… of the manifest the tag points at
	Parent         string    // the parent stage's tag (or bare digest), "" for none
	Sources        []string  // the stages an import stage copied files from (tags)
	Commits        []string  // commits of the stage's git mappings
	Image          string    // name of the image the stage was built for, when recorded
	Project        string    // project label, when recorded
}

// Tagged is a tag in the storage that is not a stage tag (e.g. one added by --add-tag). Cleanup
// never deletes it, nor a manifest it points at — except the tags cosign's scheme attaches to a
// manifest cleanup deletes (see Plan.Attached).
type Tagged struct {
	Tag            string
	ManifestDigest string
}

// GitRef is a branch or a tag of the project's git repository.
type GitRef struct {
	Name   string // short name: "main", "feature/x", "v1.2.0"
	Tag    bool   // a git tag rather than a branch
	Commit string // the commit it points at (tags peeled)
}

// Commit is one node of the git history.
type Commit struct {
	Time    time.Time // committer date
	Parents []string
}

// Use is an image something outside the storage needs: a bundle pins it or a workload runs it.
// Either field identifies stages: Tag by their tag, ManifestDigest by their manifest.
type Use struct {
	Tag            string
	ManifestDigest string
	Why            string // e.g. "bundle 127.0.0.1:5000/app:1.2.0"
}

// Input is everything Plan decides from.
type Input struct {
	Now     time.Time
	Project string
	Policy  Policy
	Stages  []Stage
	Others  []Tagged
	Refs    []GitRef
	Commits map[string]Commit
	Uses    []Use
}

// Item is a stage with the reasons it is kept (empty for deleted stages).
type Item struct {
	Stage   Stage
	Reasons []string
}

// Plan is the outcome: every input stage is either kept or deleted.
type Plan struct {
	Keep   []Item // sorted by tag
	Delete []Item // sorted by tag
	// Manifests are the manifest digests to delete: exactly those of the deleted stages, none
	// carried by a kept stage or another tag.
	Manifests []string
	// Attached are the tags cosign's tag scheme attaches to those manifests
	// (sha256-<hex>.sig, .att, .sbom: their signatures, attestations, SBOM), deleted with them.
	// The signatures of kept stages stay; an attached tag whose manifest another remaining tag
	// carries stays too. Sorted by tag.
	Attached []Tagged
}

type planner struct {
	in       Input
	byTag    map[string]*Stage
	byDigest map[string][]*Stage // sorted oldest first
	byCommit map[string][]*Stage
	families []string
	reasons  map[string][]string
}

// MakePlan decides what to keep and what to delete. It is a pure function of its input.
func MakePlan(in Input) Plan {
	p := &planner{
		in:       in,
		byTag:    map[string]*Stage{},
		byDigest: map[string][]*Stage{},
		byCommit: map[string][]*Stage{},
		reasons:  map[string][]string{},
	}
	fam := map[string]bool{}
	for i := range in.Stages {
		s := &in.Stages[i]
		p.byTag[s.Tag] = s
		p.byDigest[s.Digest] = append(p.byDigest[s.Digest], s)
		for _, c := range uniq(s.Commits) {
			p.byCommit[c] = append(p.byCommit[c], s)
			fam[s.Image] = true
		}
	}
	for _, l := range p.byDigest {
		sort.Slice(l, func(i, j int) bool { return l[i].Created.Before(l[j].Created) })
	}
	for f := range fam {
		p.families = append(p.families, f)
	}
	sort.Strings(p.families)

	// Stages of other projects are not ours to delete.
	for _, s := range in.Stages {
		if s.Project != "" && in.Project != "" && s.Project != in.Project {
			p.keep(s.Tag, fmt.Sprintf("belongs to project %q", s.Project))
		}
	}
	if in.Policy.KeepBuiltWithin > 0 {
		since := in.Now.Add(-in.Policy.KeepBuiltWithin)
		for _, s := range in.Stages {
			if s.Created.After(since) {
				p.keep(s.Tag, fmt.Sprintf("built %s ago (keepBuiltWithin %s)", ago(in.Now, s.Created), formatDuration(in.Policy.KeepBuiltWithin)))
			}
		}
	}
	p.keepUses()
	p.keepBranches()
	p.keepTags()

	// Parent chains and shared manifests, until nothing changes.
	others := map[string]string{}
	for _, o := range in.Others {
		others[o.ManifestDigest] = o.Tag
	}
	for changed := true; changed; {
		changed = p.keepParents()
		keptManifest := map[string]string{}
		for _, s := range in.Stages {
			if _, ok := p.reasons[s.Tag]; ok && s.ManifestDigest != "" {
				keptManifest[s.ManifestDigest] = s.Tag
			}
		}
		for _, s := range in.Stages {
			if _, ok := p.reasons[s.Tag]; ok {
				continue
			}
			switch {
			case s.ManifestDigest == "":
				p.keep(s.Tag, "manifest digest unknown: cannot delete it safely")
			case keptManifest[s.ManifestDigest] != "":
				p.keep(s.Tag, fmt.Sprintf("same manifest %s as kept stage %s (deleting a manifest deletes all its tags)", short(s.ManifestDigest), keptManifest[s.ManifestDigest]))
			case others[s.ManifestDigest] != "":
				p.keep(s.Tag, fmt.Sprintf("same manifest %s as tag %q", short(s.ManifestDigest), others[s.ManifestDigest]))
			default:
				continue
			}
			changed = true
		}
	}

	var plan Plan
	manifests := map[string]bool{}
	for _, s := range in.Stages {
		if r, ok := p.reasons[s.Tag]; ok {
			plan.Keep = append(plan.Keep, Item{Stage: s, Reasons: r})
			continue
		}
		plan.Delete = append(plan.Delete, Item{Stage: s})
		manifests[s.ManifestDigest] = true
	}
	sort.Slice(plan.Keep, func(i, j int) bool { return plan.Keep[i].Stage.Tag < plan.Keep[j].Stage.Tag })
	sort.Slice(plan.Delete, func(i, j int) bool { return plan.Delete[i].Stage.Tag < plan.Delete[j].Stage.Tag })
	for m := range manifests {
		plan.Manifests = append(plan.Manifests, m)
	}
	sort.Strings(plan.Manifests)
	var remaining []string
	for _, k := range plan.Keep {
		remaining = append(remaining, k.Stage.ManifestDigest)
	}
	plan.Attached = attachedTo(manifests, in.Others, remaining)
	return plan
}

// attachedTo returns the tags of others that cosign's tag scheme attaches to a manifest of
// deleted, sorted, leaving out any whose manifest a remaining tag carries: another tag of
// others, or a remaining stage (remaining are their manifest digests). Deleting a manifest
// deletes every tag on it.
func attachedTo(deleted map[string]bool, others []Tagged, remaining []string) []Tagged {
	keep := map[string]bool{}
	for _, m := range remaining {
		keep[m] = true
	}
	var del []Tagged
	for _, o := range others {
		if subject, _, ok := sign.AttachedTo(o.Tag); ok && deleted[subject] {
			del = append(del, o)
			continue
		}
		keep[o.ManifestDigest] = true
	}
	del = slices.DeleteFunc(del, func(o Tagged) bool { return keep[o.ManifestDigest] })
	sort.Slice(del, func(i, j int) bool { return del[i].Tag < del[j].Tag })
	return del
}

func (p *planner) keep(tag, why string) bool {
	if _, ok := p.byTag[tag]; !ok {
		return false
	}
	r, had := p.reasons[tag]
	for _, x := range r {
		if x == why {
			return false
		}
	}
	p.reasons[tag] = append(r, why)
	return !had
}

func (p *planner) keepUses() {
	byManifest := map[string][]*Stage{}
	for i := range p.in.Stages {
		s := &p.in.Stages[i]
		byManifest[s.ManifestDigest] = append(byManifest[s.ManifestDigest], s)
	}
	for _, u := range p.in.Uses {
		if u.Tag != "" {
			p.keep(u.Tag, u.Why)
		}
		if u.ManifestDigest != "" {
			for _, s := range byManifest[u.ManifestDigest] {
				p.keep(s.Tag, u.Why)
			}
		}
	}
}

func (p *planner) ruleFor(rules []Rule, name string) (Rule, bool) {
	for _, r := range rules {
		if r.Matches(name) {
			return r, true
		}
	}
	return Rule{}, false
}

func (p *planner) keepBranches() {
	for _, ref := range p.in.Refs {
		if ref.Tag {
			continue
		}
		rule, ok := p.ruleFor(p.in.Policy.Branches, ref.Name)
		if !ok || rule.Last == 0 {
			continue
		}
		var since time.Time
		if rule.Within > 0 {
			since = p.in.Now.Add(-rule.Within)
		}
		for i, c := range lastCommits(p.in.Commits, ref.Commit, rule.Last, since) {
			p.keepCommit(c, fmt.Sprintf("branch %s: commit %s is %s of its %s", ref.Name, short(c), ordinal(i+1), rule))
		}
	}
}

func (p *planner) keepTags() {
	byRule := make([][]GitRef, len(p.in.Policy.Tags))
	for _, ref := range p.in.Refs {
		if !ref.Tag {
			continue
		}
		for i, r := range p.in.Policy.Tags {
			if r.Matches(ref.Name) {
				byRule[i] = append(byRule[i], ref)
				break
			}
		}
	}
	for i, rule := range p.in.Policy.Tags {
		refs := byRule[i]
		t := func(r GitRef) time.Time { return p.in.Commits[r.Commit].Time }
		sort.Slice(refs, func(a, b int) bool {
			if ta, tb := t(refs[a]), t(refs[b]); !ta.Equal(tb) {
				return ta.After(tb)
			}
			return refs[a].Name > refs[b].Name
		})
		n := 0
		for _, ref := range refs {
			if n >= rule.Last {
				break
			}
			if rule.Within > 0 && t(ref).Before(p.in.Now.Add(-rule.Within)) {
				continue
			}
			n++
			p.keepCommit(ref.Commit, fmt.Sprintf("tag %s (commit %s) is %s of the %s tags", ref.Name, short(ref.Commit), ordinal(n), rule))
		}
	}
}

// keepCommit keeps the stages built at commit c. For an image (family) with no stage built at c,
// a build of c reused the image of an ancestor: the stages of the nearest ancestor that has
// stages of that image are kept instead.
func (p *planner) keepCommit(c, why string) {
	missing := map[string]bool{}
	for _, f := range p.families {
		missing[f] = true
	}
	for _, s := range p.byCommit[c] {
		p.keep(s.Tag, why)
		delete(missing, s.Image)
	}
	if len(missing) == 0 {
		return
	}
	if _, ok := p.in.Commits[c]; !ok {
		return
	}
	walk := newWalker(p.in.Commits, c)
	walk.next() // c itself
	for len(missing) > 0 {
		a, ok := walk.next()
		if !ok {
			return
		}
		found := map[string]bool{}
		for _, s := range p.byCommit[a] {
			if missing[s.Image] {
				p.keep(s.Tag, fmt.Sprintf("%s; its build reuses the image of ancestor %s", why, short(a)))
				found[s.Image] = true
			}
		}
		for f := range found {
			delete(missing, f)
		}
	}
}

// keepParents keeps the parent and the import sources of every kept stage; it reports whether
// anything was added.
func (p *planner) keepParents() bool {
	added := false
	queue := make([]string, 0, len(p.reasons))
	for t := range p.reasons {
		queue = append(queue, t)
	}
	sort.Strings(queue)
	for len(queue) > 0 {
		t := queue[0]
		queue = queue[1:]
		s := p.byTag[t]
		if s == nil {
			continue
		}
		type link struct{ tag, why string }
		var next []link
		if s.Parent != "" {
			next = append(next, link{p.resolveParent(s), "parent of kept stage " + t})
		}
		// As werf protects import sources: the HEAD rebuild reads the source stage's digest.
		for _, src := range s.Sources {
			next = append(next, link{src, "import source of kept stage " + t})
		}
		for _, n := range next {
			if p.byTag[n.tag] == nil {
				continue
			}
			if _, had := p.reasons[n.tag]; had {
				continue
			}
			p.keep(n.tag, n.why)
			queue = append(queue, n.tag)
			added = true
		}
	}
	return added
}

// resolveParent turns a parent label into a stored stage tag: a full tag (or a reference ending
// in one) as is; a bare digest as the oldest stage of that digest not created after the child.
func (p *planner) resolveParent(s *Stage) string {
	v := s.Parent
	if i := strings.LastIndexAny(v, ":/"); i >= 0 {
		v = v[i+1:]
	}
	if _, ok := stages.ParseTag(v); ok {
		return v
	}
	if stages.IsDigest(v) {
		for _, c := range p.byDigest[v] {
			if !c.Created.After(s.Created) {
				return c.Tag
			}
		}
	}
	return ""
}

// lastCommits returns up to n commits reachable from tip, newest first (git log's order),
// stopping at the first commit older than since (when since is set).
func lastCommits(g map[string]Commit, tip string, n int, since time.Time) []string {
	if _, ok := g[tip]; !ok {
		return nil
	}
	var out []string
	w := newWalker(g, tip)
	for len(out) < n {
		c, ok := w.next()
		if !ok {
			break
		}
		if !since.IsZero() && g[c].Time.Before(since) {
			break
		}
		out = append(out, c)
	}
	return out
}

// walker visits the commits reachable from a tip, newest committer date first.
type walker struct {
	g    map[string]Commit
	seen map[string]bool
	h    commitHeap
}

func newWalker(g map[string]Commit, tip string) *walker {
	w := &walker{g: g, seen: map[string]bool{tip: true}}
	w.h = commitHeap{g: g, items: []string{tip}}
	return w
}

func (w *walker) next() (string, bool) {
	if w.h.Len() == 0 {
		return "", false
	}
	c := heap.Pop(&w.h).(string)
	for _, par := range w.g[c].Parents {
		if _, ok := w.g[par]; ok && !w.seen[par] {
			w.seen[par] = true
			heap.Push(&w.h, par)
		}
	}
	return c, true
}

type commitHeap struct {
	g     map[string]Commit
	items []string
}

func (h commitHeap) Len() int { return len(h.items) }
func (h commitHeap) Less(i, j int) bool {
	ti, tj := h.g[h.items[i]].Time, h.g[h.items[j]].Time
	if !ti.Equal(tj) {
		return ti.After(tj)
	}
	return h.items[i] < h.items[j]
}
func (h commitHeap) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *commitHeap) Push(x any)   { h.items = append(h.items, x.(string)) }
func (h *commitHeap) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}

func uniq(l []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range l {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func short(s string) string {
	s = strings.TrimPrefix(s, "sha256:")
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func ordinal(n int) string {
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return strconv.Itoa(n) + suffix
}

func ago(now, t time.Time) string {
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		return "0s"
	}
	return d.String()
}
