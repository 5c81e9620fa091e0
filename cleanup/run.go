package cleanup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/config"
	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/sign"
	"strata.dev/strata/stages"
)

// Options configure Run.
type Options struct {
	// Dir is the project directory: its git repository and strata.yaml; default ".".
	Dir string
	// ConfigFile is the config's path; default the first of config.FileNames in Dir. It is read
	// from HEAD's git objects.
	ConfigFile string
	// Repo is the stages storage, REGISTRY/PATH.
	Repo string
	// BundleRepos are bundle repositories whose every tag pins images.
	BundleRepos []string
	// KubeContexts name the clusters whose workloads' images are kept ("" = current context).
	KubeContexts []string
	// Kubeconfig is the kubeconfig file; "" = default loading rules.
	Kubeconfig string
	// GitRemote holds the branches; default origin (or the only remote; local branches if none).
	GitRemote string
	Registry  registry.Options
	// Locker serializes cleanups and publishes; nil = file locks on this host.
	Locker lock.Locker
	// DryRun plans and prints without deleting.
	DryRun bool
	// Out receives the plan (what is deleted, why each kept stage is kept) and the summary.
	Out io.Writer
	Log *slog.Logger
	// Now is the current time; zero = time.Now().
	Now time.Time
	// LockBatch is how many content digests are locked and deleted at a time; default 32.
	LockBatch int
}

// Result is what Run did.
type Result struct {
	Project string
	Plan    Plan
	// Deleted are the manifests deleted (and not restored); Spared the planned ones left because
	// the storage changed meanwhile (a new tag on the same manifest or a new stage built on it).
	Deleted []string
	Spared  []string
	// Restored are the stage tags deleted and then put back, with their exact manifests, because
	// a stage built on them was published meanwhile.
	Restored []string
	// Attached are the tags cosign's scheme attached to the deleted manifests (signatures
	// sha256-<hex>.sig, attestations .att, SBOM .sbom), deleted after them.
	Attached []string
	// Referrers are the OCI 1.1 referrers of the deleted manifests (on a registry with the
	// referrers API), deleted after them: their manifest digests.
	Referrers []string
}

// Run collects the inputs, plans, prints the plan and, unless DryRun, deletes. The whole run
// holds the lock "<project>/cleanup"; each content digest's deletion also holds the build's
// publish lock "<project>/<digest>", taken before the storage is re-listed. A stage published
// while cleanup runs is never deleted, and neither is, in the end, any stage it is built on: a
// parent deleted before the child appeared is put back under its tag with its exact manifest
// (see raceCheck).
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Dir == "" {
		o.Dir = "."
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Repo == "" {
		return nil, errors.New("cleanup: the stages storage is required (--repo or STRATA_REPO)")
	}
	// The config is read from HEAD's git objects by the same reader as the build's, so every
	// name the build accepts (strata.yaml, strata.yml, werf.yaml, werf.yml) works here too.
	cfg, err := config.Load(ctx, config.Options{Dir: o.Dir, File: o.ConfigFile})
	if err != nil {
		return nil, fmt.Errorf("cleanup: %w", err)
	}
	if w := cfg.Cleanup.Werf; len(w) > 0 {
		return nil, fmt.Errorf("cleanup: werf cleanup keys are not supported yet (write cleanup.branches, cleanup.tags and cleanup.keepBuiltWithin, see docs/cleanup.md): %s", strings.Join(w, "; "))
	}
	storage, err := OpenStorage(o.Repo, o.Registry)
	if err != nil {
		return nil, fmt.Errorf("cleanup: %w", err)
	}
	locker := o.Locker
	if locker == nil {
		locker = &lock.File{Log: o.Log}
	}
	lease, err := locker.Lock(ctx, stages.CleanupLock(cfg.Project))
	if err != nil {
		return nil, fmt.Errorf("cleanup: %w", err)
	}
	defer func() {
		if err := lease.Unlock(context.WithoutCancel(ctx)); err != nil {
			o.Log.Warn("unlock cleanup", "err", err)
		}
	}()

	in, err := collect(ctx, o, cfg, storage)
	if err != nil {
		return nil, fmt.Errorf("cleanup: %w", err)
	}
	plan := MakePlan(*in)
	res := &Result{Project: cfg.Project, Plan: plan}
	PrintPlan(o.Out, plan)
	if o.DryRun || len(plan.Manifests) == 0 {
		fmt.Fprintf(o.Out, "%d stages: keep %d, delete %d (%d manifests%s)%s\n", len(in.Stages), len(plan.Keep), len(plan.Delete), len(plan.Manifests),
			attachedCount(len(plan.Attached), 0), map[bool]string{true: " [dry run]", false: ""}[o.DryRun])
		return res, nil
	}
	if err := deletePlanned(ctx, o, cfg.Project, storage, locker, lease, in, res); err != nil {
		return res, fmt.Errorf("cleanup: %w", err)
	}
	fmt.Fprintf(o.Out, "%d stages: kept %d, deleted %d manifests%s, spared %d changed meanwhile, restored %d\n", len(in.Stages), len(plan.Keep), len(res.Deleted),
		attachedCount(len(res.Attached), len(res.Referrers)), len(res.Spared), len(res.Restored))
	return res, nil
}

// attachedCount is " + N signature/attestation/SBOM tags and M referrers" for a summary line,
// or nothing for none.
func attachedCount(tags, referrers int) string {
	s := ""
	if tags > 0 {
		s = fmt.Sprintf(" + %d signature/attestation/SBOM tags", tags)
	}
	if referrers > 0 {
		s += fmt.Sprintf(" + %d referrers", referrers)
	}
	return s
}

func collect(ctx context.Context, o Options, cfg *config.Config, storage *Storage) (*Input, error) {
	in := &Input{Now: o.Now, Project: cfg.Project, Policy: cfg.Cleanup}
	g, err := ReadGit(ctx, o.Dir, o.GitRemote)
	if err != nil {
		return nil, err
	}
	in.Refs, in.Commits = g.Refs, g.Commits
	for _, w := range g.Warnings {
		o.Log.Warn(w)
	}
	o.Log.Info("read git references", "source", g.Source, "refs", len(g.Refs), "commits", len(g.Commits))
	if in.Stages, in.Others, err = storage.Stages(ctx, nil); err != nil {
		return nil, err
	}
	o.Log.Info("read stages storage", "repo", o.Repo, "stages", len(in.Stages), "otherTags", len(in.Others))
	for _, b := range o.BundleRepos {
		u, err := BundleUses(ctx, b, o.Registry, o.Log)
		if err != nil {
			return nil, err
		}
		o.Log.Info("read bundles", "repo", b, "references", len(u))
		in.Uses = append(in.Uses, u...)
	}
	if len(o.KubeContexts) > 0 {
		u, err := ClusterUses(ctx, o.Kubeconfig, o.KubeContexts)
		if err != nil {
			return nil, err
		}
		o.Log.Info("read cluster workloads", "contexts", strings.Join(o.KubeContexts, ","), "references", len(u))
		in.Uses = append(in.Uses, u...)
	}
	return in, nil
}

// PrintPlan writes one line per stage: "keep TAG  reason; reason" or "delete TAG  …".
func PrintPlan(w io.Writer, p Plan) {
	for _, k := range p.Keep {
		r := k.Reasons
		more := ""
		if len(r) > 3 {
			more = fmt.Sprintf("; and %d more", len(r)-3)
			r = r[:3]
		}
		fmt.Fprintf(w, "keep   %s  %s%s\n", k.Stage.Tag, strings.Join(r, "; "), more)
	}
	for _, d := range p.Delete {
		s := d.Stage
		why := "built " + s.Created.UTC().Format(time.RFC3339)
		if len(s.Commits) > 0 {
			why += " at commit " + short(s.Commits[0])
		}
		fmt.Fprintf(w, "delete %s  %s, %s; nothing keeps it\n", s.Tag, short(s.ManifestDigest), why)
	}
	for _, a := range p.Attached {
		subject, holds, _ := sign.AttachedTo(a.Tag)
		fmt.Fprintf(w, "delete %s  %s of %s, deleted with it\n", a.Tag, holds, short(subject))
	}
}

// deletePlanned deletes the planned manifests, LockBatch content digests at a time, each batch
// under the publish locks of its digests. Before each batch and once after the last one it
// re-lists the storage (see raceCheck): a stage that appeared meanwhile spares the manifests it
// and its parent chain need, and puts back a parent chain already deleted.
func deletePlanned(ctx context.Context, o Options, project string, storage *Storage, locker lock.Locker, run lock.Lease, in *Input, res *Result) error {
	rc := newRaceCheck(storage, in, o.Out, o.Log)
	// Manifests grouped by the content digests of their stages.
	digests := map[string][]string{}
	for _, d := range res.Plan.Delete {
		digests[d.Stage.Digest] = append(digests[d.Stage.Digest], d.Stage.ManifestDigest)
	}
	order := make([]string, 0, len(digests))
	for d := range digests {
		order = append(order, d)
	}
	sort.Strings(order)
	batch := o.LockBatch
	if batch <= 0 {
		batch = 32
	}
	done := map[string]bool{}
	var errs []error
	for len(order) > 0 {
		n := min(batch, len(order))
		chunk := order[:n]
		order = order[n:]
		err := func() error {
			var leases []lock.Lease
			defer func() {
				for _, l := range leases {
					if err := l.Unlock(context.WithoutCancel(ctx)); err != nil {
						o.Log.Warn("unlock", "err", err)
					}
				}
			}()
			for _, d := range chunk {
				l, err := locker.Lock(ctx, stages.PublishLock(project, d))
				if err != nil {
					return err
				}
				leases = append(leases, l)
			}
			protected, err := rc.check(ctx, res)
			if err != nil {
				return err
			}
			for _, d := range chunk {
				for _, m := range digests[d] {
					if done[m] {
						continue
					}
					done[m] = true
					if why, ok := protected[m]; ok {
						fmt.Fprintf(o.Out, "spared %s: %s meanwhile\n", short(m), why)
						res.Spared = append(res.Spared, m)
						continue
					}
					if lock.IsLost(run) {
						return fmt.Errorf("lost the cleanup lock: %w", run.Err())
					}
					for _, l := range leases {
						if lock.IsLost(l) {
							return fmt.Errorf("lost a publish lock: %w", l.Err())
						}
					}
					// Keep the manifest, byte for byte, so that it can be put back.
					saved, err := storage.Manifest(ctx, m)
					if err != nil {
						if registry.IsNotFound(err) {
							o.Log.Info("already deleted", "manifest", m)
							continue
						}
						errs = append(errs, err)
						continue
					}
					rc.saved[m] = saved
					if err := rc.listReferrers(ctx, o.Registry, m); err != nil {
						errs = append(errs, err)
						continue
					}
					if err := storage.Delete(ctx, m); err != nil {
						errs = append(errs, err)
						continue
					}
					o.Log.Info("deleted", "manifest", m)
					res.Deleted = append(res.Deleted, m)
				}
			}
			return nil
		}()
		if err != nil {
			errs = append(errs, err)
			break
		}
	}
	// The last look: stages published during the last batch.
	if len(rc.saved) > 0 {
		if _, err := rc.check(context.WithoutCancel(ctx), res); err != nil {
			errs = append(errs, err)
		} else if err := rc.deleteAttached(ctx, run, res); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// listReferrers records the OCI 1.1 referrers of manifest m, to delete them once m stays
// deleted. After the registry said it has no referrers API it is not asked again.
func (rc *raceCheck) listReferrers(ctx context.Context, ro registry.Options, m string) error {
	if rc.noReferrersAPI {
		return nil
	}
	refs, err := sign.ListReferrers(ctx, rc.storage.Repo.Digest(m).String(), sign.Options{Registry: ro})
	switch {
	case errors.Is(err, sign.ErrNoReferrersAPI):
		rc.noReferrersAPI = true
		return nil
	case err != nil:
		return err
	}
	for _, r := range refs {
		rc.referrers[m] = append(rc.referrers[m], r.Digest.String())
	}
	return nil
}

// deleteAttached deletes the referrers and the tags cosign's scheme attaches to the manifests this run deleted and
// did not put back (their signatures, attestations, SBOM), as the last listing shows them — also
// those pushed while cleanup ran. It runs after that listing, so no manifest they belong to can
// be restored any more. An attached tag whose manifest a remaining tag carries stays.
func (rc *raceCheck) deleteAttached(ctx context.Context, run lock.Lease, res *Result) error {
	deleted := map[string]bool{}
	for _, m := range res.Deleted {
		deleted[m] = true
	}
	var others []Tagged
	for _, t := range append(slices.Clone(rc.listed), slices.Collect(maps.Values(rc.others))...) {
		if rc.present[t.Tag] {
			others = append(others, t)
		}
	}
	var remaining []string
	for _, m := range []map[string]Stage{rc.byTag, rc.fresh} {
		for tag, s := range m {
			if rc.present[tag] {
				remaining = append(remaining, s.ManifestDigest)
			}
		}
	}
	var errs []error
	done := map[string]bool{}
	// The referrers of what stays deleted: whatever their artifactType, they describe nothing
	// any more.
	for _, m := range res.Deleted {
		for _, r := range rc.referrers[m] {
			if lock.IsLost(run) {
				return errors.Join(append(errs, fmt.Errorf("lost the cleanup lock: %w", run.Err()))...)
			}
			if done[r] {
				continue
			}
			done[r] = true
			if err := rc.storage.Delete(ctx, r); err != nil && !registry.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("delete referrer %s of %s: %w", r, m, err))
				continue
			}
			rc.log.Info("deleted", "referrer", r, "of", m)
			res.Referrers = append(res.Referrers, r)
		}
	}
	for _, a := range attachedTo(deleted, others, remaining) {
		if lock.IsLost(run) {
			return errors.Join(append(errs, fmt.Errorf("lost the cleanup lock: %w", run.Err()))...)
		}
		if !done[a.ManifestDigest] {
			done[a.ManifestDigest] = true
			if err := rc.storage.Delete(ctx, a.ManifestDigest); err != nil && !registry.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("delete %s: %w", a.Tag, err))
				continue
			}
		}
		subject, holds, _ := sign.AttachedTo(a.Tag)
		rc.log.Info("deleted", "tag", a.Tag, "holds", holds, "of", subject)
		res.Attached = append(res.Attached, a.Tag)
	}
	return errors.Join(errs...)
}

// raceCheck re-lists the storage while cleanup deletes. Builds lock only the content digest of
// the stage they publish, and a build decides to reuse a parent stage long before it publishes
// the child, without a lock: the parent's digest lock held by cleanup does not keep a child from
// being published on top of a parent being deleted. So every re-list looks at the stage tags
// that were not in the plan's input and follows each one's parent chain:
//   - a manifest on that chain not deleted yet is spared (protected);
//   - a stage on that chain whose manifest this run already deleted is put back under its tag,
//     with the exact manifest bytes and media type read right before deleting it (so its
//     manifest digest, named by build reports, is unchanged). Its blobs are still stored:
//     deleting a manifest does not delete blobs, only an offline garbage collection does.
//
// This covers every publish that completes before cleanup's last re-list, which follows its last
// deletion. A build that publishes a child later, on a parent it chose before the deletion,
// must itself check after publishing that the parent is still stored.
type raceCheck struct {
	storage *Storage
	out     io.Writer
	log     *slog.Logger
	known   map[string]bool   // tags in the plan's input
	byTag   map[string]Stage  // stages in the plan's input
	fresh   map[string]Stage  // stages seen appearing since, read once
	others  map[string]Tagged // other tags seen appearing since
	listed  []Tagged          // other tags in the plan's input
	present map[string]bool   // the tags of the last listing
	// saved are the manifests deleted by this run, as they were.
	saved map[string]*remote.Descriptor
	// referrers of the manifests deleted by this run, listed right before deleting each;
	// noReferrersAPI once the registry said it has no referrers API.
	referrers      map[string][]string
	noReferrersAPI bool
}

func newRaceCheck(storage *Storage, in *Input, out io.Writer, log *slog.Logger) *raceCheck {
	rc := &raceCheck{
		storage: storage, out: out, log: log,
		known: map[string]bool{}, byTag: map[string]Stage{}, fresh: map[string]Stage{},
		others: map[string]Tagged{}, saved: map[string]*remote.Descriptor{}, referrers: map[string][]string{},
	}
	for _, s := range in.Stages {
		rc.known[s.Tag] = true
		rc.byTag[s.Tag] = s
	}
	for _, t := range in.Others {
		rc.known[t.Tag] = true
	}
	rc.listed = in.Others
	return rc
}

// check re-lists the storage, restores the deleted parent chains of stages that appeared and
// returns the manifests that must not be deleted, each with why.
func (rc *raceCheck) check(ctx context.Context, res *Result) (map[string]string, error) {
	tags, err := rc.storage.Tags(ctx)
	if err != nil {
		return nil, err
	}
	present := map[string]bool{}
	rc.present = present
	var unread []string
	for _, t := range tags {
		present[t] = true
		_, seen := rc.fresh[t]
		_, other := rc.others[t]
		if !rc.known[t] && !seen && !other {
			unread = append(unread, t)
		}
	}
	if len(unread) > 0 {
		stages, others, err := rc.storage.Stages(ctx, unread)
		if err != nil {
			return nil, err
		}
		for _, s := range stages {
			rc.fresh[s.Tag] = s
		}
		for _, t := range others {
			rc.others[t.Tag] = t
		}
	}
	protected := map[string]string{}
	for _, t := range rc.others {
		if present[t.Tag] {
			protected[t.ManifestDigest] = "tag " + t.Tag + " appeared"
		}
	}
	if len(rc.fresh) == 0 {
		return protected, nil
	}
	p := &planner{byTag: map[string]*Stage{}, byDigest: map[string][]*Stage{}}
	for _, m := range []map[string]Stage{rc.byTag, rc.fresh} {
		for t := range m {
			s := m[t]
			p.byTag[t] = &s
			p.byDigest[s.Digest] = append(p.byDigest[s.Digest], &s)
		}
	}
	for _, l := range p.byDigest {
		sort.Slice(l, func(i, j int) bool { return l[i].Created.Before(l[j].Created) })
	}
	fresh := make([]string, 0, len(rc.fresh))
	for t := range rc.fresh {
		if present[t] {
			fresh = append(fresh, t)
		}
	}
	sort.Strings(fresh)
	var errs []error
	for _, t := range fresh {
		why := "stage " + t + " appeared"
		cur := p.byTag[t]
		for seen := map[string]bool{}; cur != nil && !seen[cur.Tag]; cur = p.byTag[p.resolveParent(cur)] {
			seen[cur.Tag] = true
			protected[cur.ManifestDigest] = why
			saved, deleted := rc.saved[cur.ManifestDigest]
			if !deleted || present[cur.Tag] {
				continue
			}
			if err := rc.storage.Restore(ctx, cur.Tag, saved); err != nil {
				errs = append(errs, fmt.Errorf("restore %s (parent chain of %s): %w", cur.Tag, t, err))
				continue
			}
			present[cur.Tag] = true
			rc.log.Info("restored", "tag", cur.Tag, "manifest", cur.ManifestDigest, "for", t)
			fmt.Fprintf(rc.out, "restored %s (%s): on the parent chain of %s, published meanwhile\n", cur.Tag, short(cur.ManifestDigest), t)
			res.Restored = append(res.Restored, cur.Tag)
			res.Deleted = slices.DeleteFunc(res.Deleted, func(m string) bool { return m == cur.ManifestDigest })
		}
	}
	return protected, errors.Join(errs...)
}
