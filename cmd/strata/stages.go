package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"strata.dev/strata/cleanup"
)

func newStagesCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "stages", Short: "Maintain stages storages"}
	var (
		o cleanup.SyncOptions
	)
	sync := &cobra.Command{
		Use:   "sync --from REPO --to REPO",
		Short: "Copy the stages of one storage to another, by digest, skipping blobs already there",
		Long: `Copies every stage tag (<digest>-<millis>) of --from missing at --to, byte for byte (same
manifest digest), e.g. to move a project to another registry. Blobs present at the destination
are skipped; blobs in another repository of the same registry are mounted. A stage tag that exists
at the destination with another manifest is left as it is and reported.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.From == "" || o.To == "" {
				return fmt.Errorf("stages sync: --from and --to are required")
			}
			o.Registry, o.Log = a.registry(), a.log
			res, err := cleanup.SyncStages(cmd.Context(), o)
			if res != nil {
				fmt.Fprintf(a.stdout, "copied %d stages, %d already present, %d conflicting tags left as they are\n", len(res.Copied), len(res.Present), len(res.Conflicts))
			}
			return err
		},
	}
	f := sync.Flags()
	f.StringVar(&o.From, "from", "", "source stages storage REGISTRY/PATH")
	f.StringVar(&o.To, "to", "", "destination stages storage REGISTRY/PATH")
	f.IntVar(&o.Jobs, "jobs", 4, "stages copied at once")
	a.addRegistryFlags(f)
	c.AddCommand(sync)
	return c
}
