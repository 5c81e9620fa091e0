package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/lock/backends"
	"strata.dev/strata/internal/logging"
	"strata.dev/strata/internal/registry"
)

// app carries what every command shares: the output streams, and the logger and registry options
// built once from the flags.
type app struct {
	stdout, stderr io.Writer
	log            *slog.Logger

	logLevel  string
	logFormat string
	quiet     bool
	verbose   bool
	// insecure is --insecure-registry of the command that runs (see addRegistryFlags).
	insecure []string
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
		newConfigCmd(a),
		newSignCmd(a), newVerifyCmd(a),
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

const insecureUsage = "registry (host[:port]) reached over plain HTTP (repeatable; loopback always is)"

const syncUsage = "lock backend: :local, kubernetes://NAMESPACE[:CONTEXT] or http(s)://HOST:PORT"

// addRegistryFlags defines the flags of a command that reaches registries (--insecure-registry).
func (a *app) addRegistryFlags(f *pflag.FlagSet) {
	f.StringArrayVar(&a.insecure, "insecure-registry", nil, insecureUsage)
}

// registry says how the running command reaches registries.
func (a *app) registry() registry.Options {
	return registry.Options{Insecure: a.insecure}
}

// progress is where long work reports its progress: stderr, nothing with --quiet.
func (a *app) progress() io.Writer {
	if a.quiet {
		return nil
	}
	return a.stderr
}

// addSyncFlag defines --synchronization, the lock backend of a command that takes locks.
func addSyncFlag(f *pflag.FlagSet, spec *string, usage string) {
	f.StringVar(spec, "synchronization", ":local", usage)
}

// locker opens the lock backend spec (--synchronization) names.
func (a *app) locker(ctx context.Context, spec string) (lock.Locker, error) {
	return backends.Open(ctx, spec, backends.Options{Log: a.log})
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
