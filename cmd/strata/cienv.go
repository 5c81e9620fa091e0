package main

import (
	"github.com/spf13/cobra"
)

func newCIEnvCmd(a *app) *cobra.Command {
	return &cobra.Command{Use: "ci-env gitlab|github|generic", Short: "Print the environment that wires strata into a CI system", RunE: notImplemented}
}
