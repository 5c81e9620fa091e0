package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"strata.dev/strata/imageupdater"
)

func newImageUpdaterCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "image-updater", Short: "Move Argo CD Applications to newly published bundles"}
	var (
		o             imageupdater.Options
		registries    string
		commitMsgPath string
	)
	run := &cobra.Command{
		Use:   "run",
		Short: "Run the updater controller",
		Long: `Watches Argo CD Applications opted in with the annotation
argocd-image-updater.argoproj.io/chart-version (or strata.dev/bundle-constraint) whose source is a
bundle (Helm-OCI repoURL + chart, or oci://), lists the bundle repository's tags once per cycle,
picks the best tag by argocd-image-updater.argoproj.io/update-strategy (semver, newest-build,
digest, alphabetical) and sets the source's targetRevision (never downgrading unless
force-update=true). See docs/image-updater.md.

HTTP on --listen: POST /webhook[?type=docker.io|ghcr.io|harbor|quay.io|acr|cloudevents] (default:
distribution notifications or {"repository","tag"}; needs --webhook-secret), /healthz, /metrics.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Registry, o.Logger = a.registry(), a.log
			if registries != "" {
				rc, err := imageupdater.LoadRegistriesConfig(registries)
				if err != nil {
					return err
				}
				o.Registries = rc
			}
			if commitMsgPath != "" {
				b, err := os.ReadFile(commitMsgPath)
				if err != nil {
					return fmt.Errorf("--git-commit-message-path: %w", err)
				}
				o.GitCommitMessageTemplate = string(b)
			}
			if o.Once && !cmd.Flags().Changed("listen") {
				o.Listen = ""
			}
			return imageupdater.Run(cmd.Context(), o)
		},
	}
	f := run.Flags()
	f.StringArrayVar(&o.Namespaces, "namespace", nil, "namespace whose Applications are watched (repeatable; default all)")
	f.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG, ~/.kube/config, else in-cluster)")
	f.DurationVar(&o.Interval, "interval", imageupdater.DefaultInterval, "time between check cycles")
	f.DurationVar(&o.CheckTimeout, "check-timeout", imageupdater.DefaultCheckTimeout, "deadline of one Application's check; past it the check fails and is retried with backoff")
	f.BoolVar(&o.Once, "once", false, "run one cycle and exit (non-zero if an Application failed its check)")
	f.BoolVar(&o.DryRun, "dry-run", false, "log the updates, write nothing")
	f.StringVar(&o.Listen, "listen", ":8080", `address for /webhook, /healthz and /metrics ("" = none; off with --once unless given)`)
	f.StringVar(&registries, "registries-config", "", "YAML file: insecure registries, per-registry rate limits (default 20 rps) and credentials")
	f.StringVar(&o.WebhookSecret, "webhook-secret", "", "secret /webhook requires, sent as each registry sends it (see docs/image-updater.md); without it /webhook is disabled")
	f.BoolVar(&o.WebhookInsecureNoSecret, "webhook-insecure-no-secret", false, "serve /webhook without a secret (anyone reaching it can trigger checks)")
	f.StringVar(&o.VerifyPolicy, "verify-policy", "", "verification policy file (the plugin's, docs/signing.md): never move an Application to a bundle that fails it")
	f.DurationVar(&o.WebhookReplayWindow, "webhook-replay-window", imageupdater.DefaultWebhookReplayWindow, "how long webhook deliveries are remembered (a delivery seen before or dated outside it checks nothing); negative: off")
	f.StringVar(&o.GitCommitUser, "git-commit-user", imageupdater.DefaultGitCommitUser, "author name of git write-back commits")
	f.StringVar(&o.GitCommitEmail, "git-commit-email", imageupdater.DefaultGitCommitEmail, "author e-mail of git write-back commits")
	f.StringVar(&commitMsgPath, "git-commit-message-path", "", "file holding a text/template for git write-back commit messages (upstream's fields; default upstream's message)")
	f.StringVar(&o.GitWorkDir, "git-work-dir", "", "directory for git write-back's scratch clones (default a temporary directory)")
	a.addRegistryFlags(f)
	c.AddCommand(run)
	return c
}
