package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

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
	var finalOnly bool
	list := &cobra.Command{
		Use:   "list",
		Short: "Print the image names of the config, one a line (~ for the nameless image)",
		Long:  `Like 'werf config list': the images of the config read as 'strata config render' reads it.`,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cmd.Context(), o)
			if err != nil {
				return err
			}
			for _, n := range cfg.ImageNames(finalOnly) {
				fmt.Fprintln(a.stdout, n)
			}
			return nil
		},
	}
	graph := &cobra.Command{
		Use:   "graph [IMAGE...]",
		Short: "Print each image with the images it is built from, imports from and depends on (YAML)",
		Long: `Like 'werf config graph': a YAML list of {image, dependsOn: {from, import, dependencies}} for
the images named (default: all).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(cmd.Context(), o)
			if err != nil {
				return err
			}
			g, err := cfg.Graph(args, finalOnly)
			if err != nil {
				return err
			}
			out, err := yaml.Marshal(g)
			if err != nil {
				return err
			}
			_, err = a.stdout.Write(out)
			return err
		},
	}
	for _, cmd := range []*cobra.Command{render, list, graph} {
		f := cmd.Flags()
		f.StringVar(&o.Dir, "dir", ".", "project directory (inside a git work tree)")
		f.StringVar(&o.File, "config", "", "config path (default: the first of strata.yaml, strata.yml, werf.yaml, werf.yml in DIR)")
		f.StringVar(&o.Commit, "commit", "", "commit to read the config from (default HEAD)")
		f.StringVar(&o.Env, "env", "", "the templates' .Env (werf's --env)")
		if cmd != render {
			f.BoolVar(&finalOnly, "final-images-only", false, "only final images (not artifacts or final: false)")
		}
		c.AddCommand(cmd)
	}
	return c
}
