package main

import (
	"github.com/spf13/cobra"
)

func newSyncServerCmd(a *app) *cobra.Command {
	return &cobra.Command{Use: "sync-server", Short: "Serve distributed locks over HTTP for builders", RunE: notImplemented}
}
