package main

import (
	"github.com/spf13/cobra"
)

func newCleanupCmd(a *app) *cobra.Command {
	return &cobra.Command{Use: "cleanup", Short: "Delete unused stages from the stages storage", RunE: notImplemented}
}
