package main

import (
	"github.com/spf13/cobra"
)

func newImageUpdaterCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "image-updater", Short: "Move Argo CD Applications to newly published bundles"}
	c.AddCommand(&cobra.Command{Use: "run", Short: "Run the updater controller", RunE: notImplemented})
	return c
}
