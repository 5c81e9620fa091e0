package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"

	"github.com/spf13/cobra"

	"strata.dev/strata/build"
	"strata.dev/strata/stages"
)

func newBuildCmd(a *app) *cobra.Command {
	var (
		o        build.Options
		syncSpec string
		report   string
		signKey  string
	)
	c := &cobra.Command{
		Use:   "build [IMAGE...]",
		Short: "Build the images of strata.yaml stage by stage into the stages storage",
		Long: `Builds the images of strata.yaml (or werf.yaml) in --dir, stage by stage, into the stages
storage --repo REGISTRY/PROJECT: every stage is an image REPO:<digest>-<unix-millis>, reused by any
later build whose stage has the same digest (git stages only from ancestor commits). Shell stages
run in containers of the Docker engine (DOCKER_HOST); git and docker-instruction stages are
applied registry-side. See docs/strata-yaml.md.

Prints one line per image on stdout: NAME REF@MANIFEST-DIGEST (with -q only these lines).
--report FILE writes the JSON report 'strata bundle publish --build-report' reads.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			buildGC()
			ctx := cmd.Context()
			signer, err := newPublishSigner(signKey)
			if err != nil {
				return fmt.Errorf("build: %w", err)
			}
			o.Images, o.Registry, o.Log, o.Output = args, a.registry(), a.log, a.progress()
			locker, err := a.locker(ctx, syncSpec)
			if err != nil {
				return err
			}
			o.Locker = locker
			rep, err := build.Run(ctx, o)
			if err != nil {
				return err
			}
			if err := signer.signImages(cmd, a, o.Registry, rep); err != nil {
				return err
			}
			switch report {
			case "":
			case "-":
				if err := a.printResult(true, rep, ""); err != nil {
					return err
				}
			default:
				if err := stages.WriteReport(report, rep); err != nil {
					return err
				}
			}
			for _, im := range rep.Images {
				fmt.Fprintf(a.stdout, "%s %s@%s\n", im.Name, im.Ref, im.ManifestDigest)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&o.Dir, "dir", ".", "project directory (in a git work tree) with strata.yaml")
	f.StringVar(&o.ConfigFile, "config", "", "config path (default: the first of strata.yaml, strata.yml, werf.yaml, werf.yml in DIR), read from git")
	f.StringVar(&o.Repo, "repo", "", "stages storage REGISTRY/PROJECT")
	f.StringVar(&o.FinalRepo, "final-repo", "", "also publish the final images to this REGISTRY/PATH (registry-side copy)")
	f.StringArrayVar(&o.AddTags, "add-tag", nil, "extra tag template for each final image, e.g. '{{.Image}}-{{.ShortCommit}}' (repeatable)")
	f.IntVar(&o.Parallel, "parallel", 0, "images built at once (default: number of CPUs); reusing stored stages is not limited")
	f.BoolVar(&o.WaitForInFlight, "wait-for-in-flight", false, "before building a stage, wait for a builder already building it (lock <project>/<digest>#building) and reuse its result")
	f.BoolVar(&o.Dev, "dev", false, "include uncommitted changes instead of refusing them")
	f.StringVar(&o.Env, "env", "", "the config templates' .Env (werf's --env)")
	f.StringVar(&o.Network, "network", "host", "network of shell-stage containers and Dockerfile builds: host or none")
	f.StringVar(&o.GitCacheDir, "git-cache-dir", "", "bare clones of remote git mappings (git: - url:); default $XDG_CACHE_HOME/strata/git")
	f.StringVar(&o.CacheDir, "cache-dir", "", "directory kept between builds on this host (build_dir mounts); default: the user cache directory + /strata")
	f.StringVar(&report, "report", "", "write the JSON build report to this file")
	f.StringVar(&signKey, "sign-key", "", "sign every final image with this key (cosign.key, PEM ECDSA P-256 or env://NAME; see docs/signing.md)")
	addSyncFlag(f, &syncSpec, syncUsage)
	a.addRegistryFlags(f)
	return c
}

const (
	// buildGCPercent is the GC percent of a build while its live heap is under buildGCHeap: a
	// build's heap is a few MiB (a source change's stages, the listings), its process lives a
	// fraction of a second, and each collection cycle costs it more than the memory does (on a
	// loaded 2-core runner, ~20 ms of a ~150 ms source change).
	buildGCPercent = 400
	// buildGCHeap is the live heap past which a build collects as usual (GOGC 100): one that holds
	// large layers in memory is not allowed 5x its heap.
	buildGCHeap = 32 << 20
)

// buildGC makes a build collect less often while its heap is small, unless GOGC says otherwise.
func buildGC() {
	if os.Getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(buildGCPercent)
	watchHeap()
}

// gcWatch is an object only a finalizer refers to: it runs after the collection that found it
// unreachable.
type gcWatch struct{ _ [16]byte }

// watchHeap looks at the live heap after each collection and goes back to GC percent 100 once
// it passed buildGCHeap.
func watchHeap() {
	runtime.SetFinalizer(&gcWatch{}, func(*gcWatch) {
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(s)
		if s[0].Value.Kind() == metrics.KindUint64 && s[0].Value.Uint64() > buildGCHeap {
			debug.SetGCPercent(100)
			return
		}
		watchHeap()
	})
}
