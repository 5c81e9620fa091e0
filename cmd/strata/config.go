package main

import (
	"github.com/spf13/cobra"

	"strata.dev/strata/config"
)

func newConfigCmd(a *app) *cobra.Command {
	c := &cobra.Command{
		Use:   "config",
		Short: "Inspect strata.yaml (or werf.yaml)",
	}
	var o config.Options
	render := &cobra.Command{
		Use:   "render",
		Short: "Print the config after its Go templates ran, as build and cleanup read it",
		Long: `Reads the config of --dir from git (HEAD, or --commit) — strata.yaml, strata.yml, werf.yaml or
werf.yml — runs it as a Go template with werf's functions (sprig, env, required, include, tpl,
.Files.Get, .Files.Glob, .Env, .Commit, partials in .werf/**/*.tmpl) and prints the result, like
'werf config render'. Line numbers in config errors of a templated file refer to this output.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := config.Render(cmd.Context(), o)
			if err != nil {
				return err
			}
			_, err = a.stdout.Write(r.Data)
			return err
		},
	}
	f := render.Flags()
	f.StringVar(&o.Dir, "dir", ".", "project directory (inside a git work tree)")
	f.StringVar(&o.File, "config", "", "config path (default: the first of strata.yaml, strata.yml, werf.yaml, werf.yml in DIR)")
	f.StringVar(&o.Commit, "commit", "", "commit to read the config from (default HEAD)")
	f.StringVar(&o.Env, "env", "", "the templates' .Env (werf's --env)")
	c.AddCommand(render)
	return c
}
