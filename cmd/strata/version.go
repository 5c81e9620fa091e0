package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"strata.dev/strata/internal/version"
)

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
