package main

import (
	"os"

	"github.com/spf13/cobra"

	"strata.dev/strata/internal/cienv"
)

func newCIEnvCmd(a *app) *cobra.Command {
	o := cienv.RunOptions{Options: cienv.Options{Getenv: os.Getenv}}
	c := &cobra.Command{
		Use:   "ci-env gitlab|github|generic",
		Short: "Print the environment that wires strata into a CI system",
		Long: `Prints export lines for STRATA_REPO and the bundle metadata (commit, branch or tag, git URL,
pipeline/job URLs) read from the CI system's variables, and logs in to the registry with the
CI-provided token by writing the docker config. Secrets are never printed.

  eval "$(strata ci-env gitlab)"`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{cienv.GitLab, cienv.GitHub, cienv.Generic},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Out, o.Log = a.stdout, a.log
			return cienv.Run(args[0], o)
		},
	}
	c.Flags().StringVar(&o.File, "as-file", "", "write the export lines to this file instead of stdout")
	c.Flags().BoolVar(&o.NoLogin, "no-login", false, "do not log in to the registry")
	c.Flags().StringVar(&o.DockerConfig, "docker-config", "", "docker config directory to store the login in (default $DOCKER_CONFIG or ~/.docker)")
	c.Flags().StringVar(&o.Dir, "dir", ".", "project directory (generic: commit and branch are read from its git repository)")
	return c
}
