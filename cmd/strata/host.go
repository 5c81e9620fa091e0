package main

import (
	"fmt"
	"math"

	"github.com/spf13/cobra"

	"strata.dev/strata/cleanup"
)

func newHostCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "host", Short: "Maintain this host's Docker engine"}
	o := cleanup.HostOptions{Threshold: cleanup.DefaultHostThreshold}
	hc := &cobra.Command{
		Use:   "cleanup",
		Short: "Remove Strata-made images from the local engine, least recently used first",
		Long: `Removes images carrying a Strata label from the Docker engine (DOCKER_HOST), least recently
used (created or tagged) first, until the disk holding the engine's data is used less than
--threshold percent (above 0, at most 100), measuring again after each removal. Images used
by any container are never removed, nor images that only inherit Strata's labels (built FROM a
Strata image): a Strata image carries its own stage tag. With --dry-run nothing is removed; the
space each listed image frees is estimated from its size not shared with other images.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if t := o.Threshold; math.IsNaN(t) || t <= 0 || t > 100 {
				return fmt.Errorf("host cleanup: --threshold %v: want a disk use percent above 0 and at most 100", t)
			}
			o.Out = a.stdout
			o.Log = a.log
			_, err := cleanup.HostCleanup(cmd.Context(), o)
			return err
		},
	}
	f := hc.Flags()
	f.Float64Var(&o.Threshold, "threshold", cleanup.DefaultHostThreshold, "disk use percent to get under (0 < N <= 100)")
	f.StringVar(&o.Project, "project", "", "only remove images of this project")
	f.StringVar(&o.DiskPath, "disk-path", "", "directory whose file system is measured (default the engine's data root)")
	f.BoolVar(&o.DryRun, "dry-run", false, "print what would be removed; remove nothing")
	c.AddCommand(hc)
	return c
}
