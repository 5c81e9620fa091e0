package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"strata.dev/strata/bundle"
	"strata.dev/strata/ship"
)

func newBundleCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "bundle", Short: "Publish, pull, render and copy bundles (Helm charts in OCI with image refs)"}
	c.AddCommand(newBundlePublishCmd(a), newBundlePullCmd(a), newBundleRenderCmd(a), newBundleCopyCmd(a), newBundleVerifyCmd(a))
	return c
}

// printResult prints a command's result v: indented JSON with --json, else the line text.
func (a *app) printResult(asJSON bool, v any, text string) error {
	if asJSON {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		text = string(b)
	}
	_, err := fmt.Fprintln(a.stdout, text)
	return err
}

func newBundlePublishCmd(a *app) *cobra.Command {
	var (
		o       ship.Options
		asJSON  bool
		signKey string
	)
	c := &cobra.Command{
		Use:   "publish --repo REGISTRY/PATH/NAME --tag VERSION --build-report FILE",
		Short: "Publish the chart with the built images' refs as an OCI artifact",
		Long: `Publishes the chart (--chart-dir, default .helm in --dir) as a Helm chart in OCI at
REGISTRY/PATH/NAME:VERSION: chart name NAME, version VERSION (semver as is, '+' stored as '_' in
the tag; other values become 0.0.0-<VERSION>, see docs/bundles.md). The images of the build report
are written into values.yaml (strata.image.<name> = repo:tag@sha256:..., strata.tag/digest,
strata.repo, strata.commit, mirrored under global.strata) so plain 'helm template' renders the
bundle; strata-bundle.json and the manifest annotations carry the commit and CI metadata. A
werf.yaml project's bundle (or any with --werf-values) also carries werf's service values
(werf.image.<name>, werf.tag.<name>, werf.repo, werf.commit, werf.env, global.werf.*), so charts
written for werf render unchanged.

Blobs are pushed first and the manifest last: a failure leaves no tag. An existing VERSION with the
same content is left alone; with different content it is refused unless --force.

The images come from --build-report FILE ('strata build --report FILE'); without it, publish runs
the build first (--stages-repo, default $STRATA_REPO; stages already built are reused). Commit, branch/tag, git URL and CI links
default to STRATA_COMMIT, STRATA_GIT_*, STRATA_CI_* (see 'strata ci-env') and to git in --dir.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			signer, err := newPublishSigner(signKey)
			if err != nil {
				return fmt.Errorf("bundle publish: %w", err)
			}
			if o.Build.Repo == "" {
				o.Build.Repo = os.Getenv("STRATA_REPO")
			}
			o.Build.Output, o.Registry, o.Log = a.progress(), a.registry(), a.log
			res, err := ship.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			signed, err := signer.sign(cmd, a, o.Registry, res)
			if err != nil {
				return err
			}
			return a.printResult(asJSON, signed, res.Ref+"@"+res.Digest)
		},
	}
	f := c.Flags()
	f.StringVar(&o.Publish.Repo, "repo", "", "bundle repository REGISTRY/PATH/NAME (NAME is the chart name)")
	f.StringVar(&o.Publish.Version, "tag", "", "bundle version (semver; anything else is turned into 0.0.0-<VERSION>)")
	f.StringVar(&o.Dir, "dir", ".", "project directory (git work tree)")
	f.StringVar(&o.Publish.ChartDir, "chart-dir", "", "chart directory (default <dir>/.helm)")
	f.StringVar(&o.ReportFile, "build-report", "", "JSON report written by 'strata build --report' listing the images (default: build now)")
	f.StringVar(&o.Build.Repo, "stages-repo", "", "without --build-report: stages storage to build in (default $STRATA_REPO)")
	f.StringVar(&o.Build.ConfigFile, "config", "", "without --build-report: config path (default DIR/strata.yaml)")
	f.BoolVar(&o.Build.Dev, "dev", false, "without --build-report: include uncommitted changes")
	addSyncFlag(f, &o.Synchronization, "without --build-report: lock backend (see strata build)")
	f.StringVar(&o.Publish.Commit.Hash, "commit", "", "commit hash (default: the build report's, else git rev-parse HEAD in --dir)")
	f.StringVar(&o.Publish.Commit.Date, "commit-date", "", "commit date, RFC 3339 (default: from git)")
	f.StringVar(&o.Publish.Branch, "git-branch", "", "branch the commit was built for")
	f.StringVar(&o.Publish.Tag, "git-tag", "", "git tag the commit was built for")
	f.StringVar(&o.Publish.GitURL, "git-url", "", "project repository URL (default: git remote origin; credentials are removed)")
	f.StringVar(&o.Publish.CI.PipelineURL, "ci-pipeline-url", "", "CI pipeline URL")
	f.StringVar(&o.Publish.CI.JobURL, "ci-job-url", "", "CI job URL")
	f.BoolVar(&o.Publish.Force, "force", false, "replace an existing VERSION whose content differs")
	f.BoolVar(&o.Publish.WerfValues, "werf-values", false, "also write werf's service values (werf.image.<name>, werf.tag, werf.repo, werf.commit, werf.env, global.werf.*) into values.yaml; automatic for a werf.yaml project")
	f.StringVar(&o.Publish.WerfEnv, "werf-env", "", "werf.env and global.env of the werf service values (werf's --env); implies --werf-values")
	f.StringVar(&signKey, "sign-key", "", "sign the published bundle with this key (cosign.key, PEM ECDSA P-256 or env://NAME; see docs/signing.md)")
	f.BoolVar(&o.Publish.SkipRenderCheck, "skip-render-check", false, "do not render the chart before publishing (charts that need deploy-time values)")
	f.Int64Var(&o.Publish.MaxChartBytes, "max-chart-bytes", bundle.DefaultMaxChartBytes, "refuse charts larger than this")
	a.addRegistryFlags(f)
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}

func newBundlePullCmd(a *app) *cobra.Command {
	var (
		o      bundle.PullOptions
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "pull REF --dir DIR",
		Short: "Pull a bundle into a directory",
		Long: `Pulls the bundle REF (REGISTRY/PATH/NAME:VERSION or @sha256:...) and extracts its chart into
DIR (Chart.yaml at DIR's root). DIR must not exist or be empty. Prints REPO@DIGEST.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Ref, o.Registry, o.Log = args[0], a.registry(), a.log
			p, err := bundle.Pull(cmd.Context(), o)
			if err != nil {
				return err
			}
			return a.printResult(asJSON, p, p.Ref)
		},
	}
	f := c.Flags()
	f.StringVar(&o.Dir, "dir", "", "directory to extract the chart into (required)")
	f.Int64Var(&o.MaxChartBytes, "max-chart-bytes", bundle.DefaultMaxChartBytes, "refuse charts larger than this")
	a.addRegistryFlags(f)
	f.BoolVar(&asJSON, "json", false, "print the pulled bundle's description (ref, chart, version, metadata) as JSON")
	_ = c.MarkFlagRequired("dir")
	return c
}

func newBundleRenderCmd(a *app) *cobra.Command {
	var (
		o   bundle.RenderRefOptions
		dir string
	)
	c := &cobra.Command{
		Use:   "render (REF | --dir DIR)",
		Short: "Render a bundle to Kubernetes manifests on stdout",
		Long: `Renders a bundle (pulled from REF, or the chart in --dir) with the Helm engine, without any
cluster access, and prints every object with the commit annotations the Argo CD plugin adds
(strata.dev/commit, strata.dev/git, strata.dev/bundle, strata.dev/ci-url,
link.argocd.argoproj.io/commit and /ci). The output is deterministic byte for byte. Values:
the chart's values.yaml, then --values files in order, then --set.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out []byte
			var err error
			switch {
			case len(args) == 1 && dir != "":
				return fmt.Errorf("bundle render: give REF or --dir, not both")
			case len(args) == 0 && dir == "":
				return fmt.Errorf("bundle render: give REF or --dir DIR")
			case dir != "":
				o.ChartDir = dir
				out, err = bundle.Render(cmd.Context(), o.RenderOptions)
			default:
				o.Ref, o.Registry, o.Log = args[0], a.registry(), a.log
				out, err = bundle.RenderRef(cmd.Context(), o)
			}
			if err != nil {
				return err
			}
			_, err = a.stdout.Write(out)
			return err
		},
	}
	f := c.Flags()
	f.StringVar(&dir, "dir", "", "render the chart in this directory instead of pulling REF")
	addRenderFlags(f, &o.RenderOptions)
	a.addRegistryFlags(f)
	return c
}

func addRenderFlags(f *pflag.FlagSet, o *bundle.RenderOptions) {
	f.StringVar(&o.ReleaseName, "release-name", "release", "release name (.Release.Name)")
	f.StringVarP(&o.Namespace, "namespace", "n", "default", "release namespace (.Release.Namespace)")
	f.StringArrayVarP(&o.ValueFiles, "values", "f", nil, "values file merged over the chart's (repeatable, later wins)")
	f.StringArrayVar(&o.Set, "set", nil, "value KEY=VALUE[,KEY=VALUE] in Helm --set syntax (repeatable, wins over --values)")
	f.StringVar(&o.KubeVersion, "kube-version", "", "Kubernetes version for .Capabilities.KubeVersion (default: Helm's)")
	f.StringArrayVarP(&o.APIVersions, "api-versions", "a", nil, "API version for .Capabilities.APIVersions (repeatable)")
	f.StringVar(&o.BundleRef, "bundle-ref", "", "value of the strata.dev/bundle annotation (default: the pulled REPO@DIGEST, or the metadata's)")
	f.Int64Var(&o.MaxChartBytes, "max-chart-bytes", bundle.DefaultMaxChartBytes, "refuse charts larger than this")
	f.Int64Var(&o.MaxOutputBytes, "max-output-bytes", bundle.DefaultMaxOutputBytes, "refuse rendered output larger than this")
	f.DurationVar(&o.Timeout, "render-timeout", bundle.DefaultRenderTimeout, "fail when the chart's templates run longer than this")
	f.Int64Var(&o.MaxRenderMemory, "max-render-memory", bundle.DefaultMaxRenderMemory, "fail when the chart's templates take more memory than this (bytes)")
}

func newBundleCopyCmd(a *app) *cobra.Command {
	var (
		o       bundle.CopyOptions
		asJSON  bool
		signKey string
	)
	c := &cobra.Command{
		Use:   "copy --from (REF | archive:FILE.tar) --to (REPO[:TAG] | archive:FILE.tar)",
		Short: "Copy a bundle and every image it references",
		Long: `Copies a bundle and every image of its images lock, by digest, to another registry or
repository, or into/out of an OCI layout tar archive for air-gapped transfer. At a registry
destination the images go to --images-repo (default: the bundle's repository) under their own
tags, and the bundle's values and images lock are rewritten to point there. Blobs already at
the destination are skipped; blobs in another repository of the same registry are mounted.
An archive holds the bundle as published; it is rewritten when copied on to a registry.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			signer, err := newPublishSigner(signKey)
			if err != nil {
				return fmt.Errorf("bundle copy: %w", err)
			}
			o.Registry, o.Log = a.registry(), a.log
			res, err := bundle.Copy(cmd.Context(), o)
			if err != nil {
				return err
			}
			signed, err := signCopy(cmd, a, o, res, signer)
			if err != nil {
				return err
			}
			return a.printResult(asJSON, signed, res.Ref+"@"+res.Digest)
		},
	}
	f := c.Flags()
	f.StringVar(&o.From, "from", "", "source bundle REF or archive:FILE.tar")
	f.StringVar(&o.To, "to", "", "destination REPO[:TAG] or archive:FILE.tar")
	f.StringVar(&o.ImagesRepo, "images-repo", "", "destination repository of the images (default: the bundle's)")
	f.BoolVar(&o.Force, "force", false, "replace an existing destination tag whose content differs")
	f.StringVar(&signKey, "sign-key", "", "sign the bundle at a registry destination (it is rewritten there; see docs/signing.md)")
	f.Int64Var(&o.MaxChartBytes, "max-chart-bytes", bundle.DefaultMaxChartBytes, "refuse charts larger than this")
	f.Int64Var(&o.MaxArchiveBytes, "max-archive-bytes", bundle.DefaultMaxArchiveBytes, "refuse archives holding more than this")
	a.addRegistryFlags(f)
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	_ = c.MarkFlagRequired("from")
	_ = c.MarkFlagRequired("to")
	return c
}
