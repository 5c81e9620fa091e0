package cleanup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/registry"
)

// Options configure Run.
type Options struct {
	// Dir is the project directory: its git repository and strata.yaml; default ".".
	Dir string
	// ConfigFile is strata.yaml's path; default Dir/strata.yaml, else Dir/werf.yaml.
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
	// Deleted are the manifests deleted; Spared the planned ones left because the storage changed
	// meanwhile (a new tag on the same manifest or a new stage built on it).
	Deleted []string
	Spared  []string
}

// Run collects the inputs, plans, prints the plan and, unless DryRun, deletes. The whole run
// holds the lock "<project>/cleanup"; each content digest's deletion also holds the build's
// publish lock "<project>/<digest>", taken before the storage is re-listed, so a stage published
// while cleanup runs, and every stage it is built on, is never deleted.
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
	cfgFile := o.ConfigFile
	if cfgFile == "" {
		cfgFile = filepath.Join(o.Dir, "strata.yaml")
		if _, err := os.Stat(cfgFile); err != nil {
			if alt := filepath.Join(o.Dir, "werf.yaml"); fileExists(alt) {
				cfgFile = alt
			}
		}
	}
	cfg, err := ReadConfig(cfgFile)
	if err != nil {
		return nil, fmt.Errorf("cleanup: %w", err)
	}
	storage, err := OpenStorage(o.Repo, o.Registry)
	if err != nil {
		return nil, fmt.Errorf("cleanup: %w", err)
	}
	locker := o.Locker
	if locker == nil {
		locker = &lock.File{Log: o.Log}
	}
	lease, err := locker.Lock(ctx, cfg.Project+"/cleanup")
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
		fmt.Fprintf(o.Out, "%d stages: keep %d, delete %d (%d manifests)%s\n", len(in.Stages), len(plan.Keep), len(plan.Delete), len(plan.Manifests), map[bool]string{true: " [dry run]", false: ""}[o.DryRun])
		return res, nil
	}
	if err := deletePlanned(ctx, o, cfg.Project, storage, locker, lease, in, res); err != nil {
		return res, fmt.Errorf("cleanup: %w", err)
	}
	fmt.Fprintf(o.Out, "%d stages: kept %d, deleted %d manifests, spared %d changed meanwhile\n", len(in.Stages), len(plan.Keep), len(res.Deleted), len(res.Spared))
	return res, nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func collect(ctx context.Context, o Options, cfg Config, storage *Storage) (*Input, error) {
	in := &Input{Now: o.Now, Project: cfg.Project, Policy: cfg.Policy}
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
}

func deletePlanned(ctx context.Context, o Options, project string, storage *Storage, locker lock.Locker, run lock.Lease, in *Input, res *Result) error {
	known := map[string]bool{}
	byTag := map[string]Stage{}
	for _, s := range in.Stages {
		known[s.Tag] = true
		byTag[s.Tag] = s
	}
	for _, t := range in.Others {
		known[t.Tag] = true
	}
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
				l, err := locker.Lock(ctx, project+"/"+d)
				if err != nil {
					return err
				}
				leases = append(leases, l)
			}
			protected, err := protectNew(ctx, storage, known, byTag)
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
			return errors.Join(append(errs, err)...)
		}
	}
	return errors.Join(errs...)
}

// protectNew re-lists the storage and returns the manifests that must not be deleted because of
// tags that were not in the plan's input: their own manifests and those of the stages they are
// built on.
func protectNew(ctx context.Context, storage *Storage, known map[string]bool, byTag map[string]Stage) (map[string]string, error) {
	tags, err := storage.Tags(ctx)
	if err != nil {
		return nil, err
	}
	var fresh []string
	for _, t := range tags {
		if !known[t] {
			fresh = append(fresh, t)
		}
	}
	protected := map[string]string{}
	if len(fresh) == 0 {
		return protected, nil
	}
	stages, others, err := storage.Stages(ctx, fresh)
	if err != nil {
		return nil, err
	}
	for _, t := range others {
		protected[t.ManifestDigest] = "tag " + t.Tag + " appeared"
	}
	all := map[string]Stage{}
	for t, s := range byTag {
		all[t] = s
	}
	for _, s := range stages {
		all[s.Tag] = s
	}
	p := &planner{byTag: map[string]*Stage{}, byDigest: map[string][]*Stage{}}
	for t := range all {
		s := all[t]
		p.byTag[t] = &s
		p.byDigest[s.Digest] = append(p.byDigest[s.Digest], &s)
	}
	for _, l := range p.byDigest {
		sort.Slice(l, func(i, j int) bool { return l[i].Created.Before(l[j].Created) })
	}
	for _, s := range stages {
		why := "stage " + s.Tag + " appeared"
		cur := p.byTag[s.Tag]
		for seen := map[string]bool{}; cur != nil && !seen[cur.Tag]; {
			seen[cur.Tag] = true
			protected[cur.ManifestDigest] = why
			cur = p.byTag[p.resolveParent(cur)]
		}
	}
	return protected, nil
}
