package main

import (
	"github.com/spf13/cobra"
)

func newBuildCmd(a *app) *cobra.Command {
	return &cobra.Command{Use: "build [IMAGE...]", Short: "Build the images of strata.yaml stage by stage into the stages storage", RunE: notImplemented}
}
