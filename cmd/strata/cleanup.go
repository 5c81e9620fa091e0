package main

import (
	"github.com/spf13/cobra"

	"strata.dev/strata/cleanup"
)

func newCleanupCmd(a *app) *cobra.Command {
	var (
		o        cleanup.Options
		syncSpec string
	)
	c := &cobra.Command{
		Use:   "cleanup",
		Short: "Delete unused stages from the stages storage",
		Long: `Deletes the stages no one needs from the stages storage (--repo), keeping:
  - per git branch the images of its last N commits within T (default 10 within 7 days),
    per git tag the last N tags (default 10) — policy under cleanup: in strata.yaml;
  - every stage built within the last 2 hours;
  - every image pinned by a bundle tag of each --bundle-repo (its images lock);
  - every image used by a workload in the clusters of each --kube-context;
  - every stage a kept stage is built on.
Git references are read from the repository in --dir: the remote's branches (fetch them all
first, unshallowed, with --prune) and tags; local branches when there is no remote.
With --dry-run nothing is deleted: every stage is printed with "keep" and why, or "delete".
Deletion is by manifest digest, under the --synchronization lock. A stage published while
cleanup runs is never deleted; a stage it is built on that cleanup had already deleted is put
back under its tag with its exact manifest ("restored").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			o.Registry, o.Out, o.Log = a.registry(), a.stdout, a.log
			locker, err := a.locker(ctx, syncSpec)
			if err != nil {
				return err
			}
			o.Locker = locker
			_, err = cleanup.Run(ctx, o)
			return err
		},
	}
	f := c.Flags()
	f.StringVar(&o.Dir, "dir", ".", "project directory: its git repository and strata.yaml")
	f.StringVar(&o.ConfigFile, "config", "", "config path (default: the first of strata.yaml, strata.yml, werf.yaml, werf.yml in DIR), read from git HEAD")
	f.StringVar(&o.Repo, "repo", "", "stages storage REGISTRY/PATH")
	f.StringArrayVar(&o.BundleRepos, "bundle-repo", nil, "bundle repository whose every tag pins its images (repeatable)")
	f.StringArrayVar(&o.KubeContexts, "kube-context", nil, `kubeconfig context of a cluster whose workloads' images are kept (repeatable; "" = current context)`)
	f.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG or ~/.kube/config)")
	f.StringVar(&o.GitRemote, "git-remote", "", "git remote holding the branches (default origin, else the only remote; local branches if none)")
	f.BoolVar(&o.DryRun, "dry-run", false, "print what would be deleted and why each kept stage is kept; delete nothing")
	addSyncFlag(f, &syncSpec, syncUsage)
	a.addRegistryFlags(f)
	return c
}
