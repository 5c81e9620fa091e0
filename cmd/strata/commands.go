package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"strata.dev/strata/internal/version"
)

// Commands whose work lives in a package get their own file (build.go, bundle.go, ...). The ones
// below have not landed yet and say so.

func newBuildCmd(a *app) *cobra.Command {
	return &cobra.Command{Use: "build [IMAGE...]", Short: "Build the images of strata.yaml stage by stage into the stages storage", RunE: notImplemented}
}

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

func newCMPCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "cmp", Short: "Argo CD config-management plugin commands (run inside the sidecar)"}
	c.AddCommand(
		&cobra.Command{Use: "generate", Short: "Render the bundle Argo CD hands the plugin", RunE: notImplemented},
		&cobra.Command{Use: "discover", Short: "Exit 0 if the current directory is a Strata bundle", RunE: notImplemented},
		&cobra.Command{Use: "parameters", Short: "Announce the bundle's parameters to Argo CD", RunE: notImplemented},
	)
	return c
}

func newImageUpdaterCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "image-updater", Short: "Move Argo CD Applications to newly published bundles"}
	c.AddCommand(&cobra.Command{Use: "run", Short: "Run the updater controller", RunE: notImplemented})
	return c
}

func newSyncServerCmd(a *app) *cobra.Command {
	return &cobra.Command{Use: "sync-server", Short: "Serve distributed locks over HTTP for builders", RunE: notImplemented}
}

func newCleanupCmd(a *app) *cobra.Command {
	return &cobra.Command{Use: "cleanup", Short: "Delete unused stages from the stages storage", RunE: notImplemented}
}

func newCIEnvCmd(a *app) *cobra.Command {
	return &cobra.Command{Use: "ci-env gitlab|github|generic", Short: "Print the environment that wires strata into a CI system", RunE: notImplemented}
}

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the strata version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(a.stdout, version.String())
			return err
		},
	}
}
