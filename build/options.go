package build

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"

	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/registry"
)

// Options configure Run.
type Options struct {
	// Dir is the project directory (inside a git work tree); default ".".
	Dir string
	// ConfigFile is the config path; default Dir/strata.yaml (or werf.yaml).
	ConfigFile string
	// Env is the config template's .Env (werf's --env).
	Env string
	// Images limits the build to these images (and what they need); empty = all.
	Images []string
	// Repo is the stages storage REGISTRY/PATH (required).
	Repo string
	// Registry says how to reach registries (credentials, insecure, transport).
	Registry registry.Options
	// Locker serializes publishing a stage; nil means file locks on this host.
	Locker lock.Locker
	// Parallel is how many images build at once; default runtime.NumCPU(). Only building
	// takes one of these slots: every image's walk over stored stages runs concurrently.
	Parallel int
	// WaitForInFlight makes a build that finds no stored stage for a digest first take the lock
	// "<project>/<digest>#building" of Locker, held while it builds and publishes the stage:
	// builders needing the same stage meanwhile wait for it, then reuse the stored result
	// instead of building it again. Off, every builder builds and only the first publish is kept.
	WaitForInFlight bool
	// Dev includes uncommitted changes (reported) instead of refusing them.
	Dev bool
	// DockerHost is the engine address; "" means DOCKER_HOST or the default socket. The engine
	// is contacted only when a shell stage or a Dockerfile image must be built.
	DockerHost string
	// Network is the network mode of shell-stage containers and Dockerfile builds: "host"
	// (default) or "none". The default bridge is never used.
	Network string
	// CacheDir holds what builds keep between runs on this host: the build_dir mounts of shell
	// stages (CacheDir/mounts/projects/<project>/...), and what never changes for its name: the
	// manifests of stored stages by tag (CacheDir/manifests; tags are never overwritten) and the
	// file lists of layers by digest (CacheDir/layers), and git objects read on every build
	// (CacheDir/git: commit listings, small blobs). Default: the user cache directory + /strata.
	CacheDir string
	// AddTags are text/template tags published for every final image ({{.Image}}, {{.Commit}},
	// {{.ShortCommit}}, {{.Digest}}, {{.Project}}, {{.Tag}}).
	AddTags []string
	// FinalRepo, when set, receives each final image (registry-side copy) under its stage tag
	// and the AddTags.
	FinalRepo string
	// GitCacheDir holds the bare clones of remote git mappings (`git: - url:`); default
	// $XDG_CACHE_HOME/strata/git (os.UserCacheDir).
	GitCacheDir string
	// Log receives per-stage lines; nil discards them.
	Log *slog.Logger
	// Output receives the output of shell commands and docker builds; nil discards it.
	Output io.Writer
}

func (o *Options) defaults() {
	if o.Dir == "" {
		o.Dir = "."
	}
	if o.Parallel <= 0 {
		o.Parallel = runtime.NumCPU()
	}
	if o.Network == "" {
		o.Network = "host"
	}
	if o.GitCacheDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			dir = os.TempDir()
		}
		o.GitCacheDir = filepath.Join(dir, "strata", "git")
	}
	if o.CacheDir == "" {
		if d, err := os.UserCacheDir(); err == nil {
			o.CacheDir = filepath.Join(d, "strata")
		}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Output == nil {
		o.Output = io.Discard
	}
}
