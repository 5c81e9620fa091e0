package main

import (
	"bytes"
	"errors"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"strata.dev/strata/bundle"
	"strata.dev/strata/cmp"
)

func newCMPCmd(a *app) *cobra.Command {
	var o cmp.Options
	c := &cobra.Command{
		Use:   "cmp",
		Short: "Argo CD config-management plugin commands (run inside the sidecar)",
		Long: `Commands Argo CD's CMP server runs in the directory of an extracted bundle (see
manifests/argocd/plugin.yaml and docs/argocd.md). The Application's context comes from the
environment Argo CD sets (ARGOCD_APP_NAME, ARGOCD_APP_NAMESPACE, KUBE_VERSION, ARGOCD_APP_PARAMETERS...).`,
	}
	c.PersistentFlags().StringVar(&o.Dir, "dir", ".", "bundle directory (Argo CD runs the plugin in it)")
	c.PersistentFlags().Int64Var(&o.MaxChartBytes, "max-chart-bytes", bundle.DefaultMaxChartBytes, "refuse bundles larger than this")
	c.PersistentFlags().StringVar(&o.VerifyPolicy, "verify-policy", "", "signature verification policy file (keys per bundle repository; see docs/signing.md)")
	c.PersistentFlags().Int64Var(&o.MaxOutputBytes, "max-output-bytes", bundle.DefaultMaxOutputBytes, "refuse rendered output larger than this")
	c.AddCommand(
		&cobra.Command{
			Use:   "generate",
			Short: "Render the bundle Argo CD hands the plugin (objects on stdout, nothing else)",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				generateGC()
				o.Environ = os.Environ()
				// Buffer: stdout gets all objects or nothing.
				var out bytes.Buffer
				if err := cmp.Generate(cmd.Context(), o, &out); err != nil {
					return err
				}
				_, err := a.stdout.Write(out.Bytes())
				return err
			},
		},
		&cobra.Command{
			Use:   "discover",
			Short: "Print a line if the directory is a Strata bundle, nothing otherwise (exit 0 both ways)",
			Long: `Argo CD's discovery matches when the command exits 0 with non-empty stdout; a non-zero exit
is reported as an error for every Application, so a directory that is not a bundle gets exit 0
and empty stdout.`,
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				err := cmp.Discover(o, a.stdout)
				if errors.Is(err, cmp.ErrNotBundle) {
					a.log.Debug("not a bundle", "err", err)
					return nil
				}
				return err
			},
		},
		&cobra.Command{
			Use:   "parameters",
			Short: "Announce the bundle's images and commit to Argo CD (dynamic parameters, JSON)",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return cmp.Parameters(o, a.stdout)
			},
		},
	)
	return c
}

// Garbage collector settings of `strata cmp generate`, a short-lived process that builds its whole
// output in memory: collecting less often saves CPU; the soft memory limit keeps the heap well
// below the sidecar's memory limit (512Mi in manifests/argocd). GOGC and GOMEMLIMIT, when set,
// win.
const (
	generateGCPercent   = 400
	generateMemoryLimit = 320 << 20
)

func generateGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(generateGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(generateMemoryLimit)
	}
}
