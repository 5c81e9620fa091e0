package main

import (
	"github.com/spf13/cobra"
)

func newCMPCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "cmp", Short: "Argo CD config-management plugin commands (run inside the sidecar)"}
	c.AddCommand(
		&cobra.Command{Use: "generate", Short: "Render the bundle Argo CD hands the plugin", RunE: notImplemented},
		&cobra.Command{Use: "discover", Short: "Exit 0 if the current directory is a Strata bundle", RunE: notImplemented},
		&cobra.Command{Use: "parameters", Short: "Announce the bundle's parameters to Argo CD", RunE: notImplemented},
	)
	return c
}
