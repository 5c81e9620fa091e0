package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"strata.dev/strata/internal/cienv"
)

func newCIEnvCmd(a *app) *cobra.Command {
	var (
		asFile       string
		noLogin      bool
		dockerConfig string
		dir          string
	)
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
			e, err := cienv.Detect(args[0], cienv.Options{Getenv: os.Getenv, Dir: dir})
			if err != nil {
				return err
			}
			if !noLogin {
				if err := e.Login(dockerConfig); err != nil {
					return err
				}
				if e.Registry != "" {
					a.log.Info("logged in to registry", "registry", e.Registry, "user", e.Username)
				}
			}
			if asFile != "" {
				if err := os.WriteFile(asFile, []byte(e.Exports()), 0o600); err != nil {
					return fmt.Errorf("ci-env: %w", err)
				}
				a.log.Info("wrote CI environment", "file", asFile)
				return nil
			}
			_, err = fmt.Fprint(a.stdout, e.Exports())
			return err
		},
	}
	c.Flags().StringVar(&asFile, "as-file", "", "write the export lines to this file instead of stdout")
	c.Flags().BoolVar(&noLogin, "no-login", false, "do not log in to the registry")
	c.Flags().StringVar(&dockerConfig, "docker-config", "", "docker config directory to store the login in (default $DOCKER_CONFIG or ~/.docker)")
	c.Flags().StringVar(&dir, "dir", ".", "project directory (generic: commit and branch are read from its git repository)")
	return c
}
