package main

import (
	"github.com/spf13/cobra"
)

func newBundleCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "bundle", Short: "Publish, pull, render and copy bundles (Helm charts in OCI with image refs)"}
	c.AddCommand(
		&cobra.Command{Use: "publish", Short: "Publish the chart with the built images' refs as an OCI artifact", RunE: notImplemented},
		&cobra.Command{Use: "pull REF", Short: "Pull a bundle into a directory", RunE: notImplemented},
		&cobra.Command{Use: "render (REF | --dir DIR)", Short: "Render a bundle to Kubernetes manifests on stdout", RunE: notImplemented},
		&cobra.Command{Use: "copy", Short: "Copy a bundle and every image it references", RunE: notImplemented},
	)
	return c
}
