package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"strata.dev/strata/internal/logging"
)

// app carries what every command shares: the logger and the output streams.
type app struct {
	stdout, stderr io.Writer
	log            *slog.Logger

	logLevel  string
	logFormat string
	quiet     bool
	verbose   bool
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	a := &app{stdout: stdout, stderr: stderr, log: slog.New(slog.DiscardHandler)}
	root := &cobra.Command{
		Use:   "strata",
		Short: "Build images stage by stage, bundle them as Helm charts in OCI, deliver them with Argo CD",
		Long: `strata is a CI-to-GitOps delivery chain for Kubernetes.

Every flag can also be set from the environment as STRATA_<FLAG>, e.g. --log-level as
STRATA_LOG_LEVEL and --repo as STRATA_REPO. A flag given on the command line wins.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnv(cmd); err != nil {
				return err
			}
			return a.setupLogging()
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&a.logLevel, "log-level", "info", "log verbosity: quiet, info, verbose or debug")
	pf.StringVar(&a.logFormat, "log-format", "text", "log format on stderr: text or json")
	pf.BoolVarP(&a.quiet, "quiet", "q", false, "same as --log-level=quiet: print only command output")
	pf.BoolVarP(&a.verbose, "verbose", "v", false, "same as --log-level=verbose")

	root.AddCommand(
		newBuildCmd(a),
		newBundleCmd(a),
		newCMPCmd(a),
		newImageUpdaterCmd(a),
		newSyncServerCmd(a),
		newCleanupCmd(a),
		newStagesCmd(a), newHostCmd(a),
		newCIEnvCmd(a),
		newVersionCmd(a),
	)
	return root
}

func (a *app) setupLogging() error {
	level := a.logLevel
	switch {
	case a.quiet && a.verbose:
		return fmt.Errorf("--quiet and --verbose contradict each other")
	case a.quiet:
		level = "quiet"
	case a.verbose:
		level = "verbose"
	}
	l, err := logging.New(a.stderr, logging.Options{Level: level, Format: a.logFormat})
	if err != nil {
		return err
	}
	a.log = l
	return nil
}

// envName is the environment variable that sets a flag: STRATA_ + upper-case name, '-' as '_'.
func envName(flag string) string {
	return "STRATA_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// bindEnv sets every flag of cmd (its own and inherited) that was not given on the command line
// from its STRATA_<FLAG> variable. A bad value names the variable.
func bindEnv(cmd *cobra.Command) error {
	var err error
	visit := func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		v, ok := os.LookupEnv(envName(f.Name))
		if !ok {
			return
		}
		if sv, isSlice := f.Value.(pflag.SliceValue); isSlice {
			if e := sv.Replace(splitList(v)); e != nil {
				err = fmt.Errorf("environment variable %s: %w", envName(f.Name), e)
			}
			return
		}
		if e := f.Value.Set(v); e != nil {
			err = fmt.Errorf("environment variable %s=%q: %w", envName(f.Name), v, e)
			return
		}
		f.Changed = true
	}
	cmd.Flags().VisitAll(visit)
	cmd.InheritedFlags().VisitAll(visit)
	return err
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
