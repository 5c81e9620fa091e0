package config

import (
	"regexp"
	"time"
)

// FileNames are the config file names looked up in a project directory, in this order.
func FileNames() []string { return []string{"strata.yaml", "strata.yml", "werf.yaml", "werf.yml"} }

// Config is a parsed strata.yaml (or werf.yaml).
type Config struct {
	// File names the config in messages (the path it was found at).
	File string
	// Dir is the project directory (the config's directory) relative to the repository root,
	// slash-separated, "." for the root. Set by Load; "." after Parse.
	Dir           string
	Project       string
	ConfigVersion int
	CacheVersion  string // build.cacheVersion
	// Cleanup is the policy of `strata cleanup` (DefaultPolicy when the key is absent).
	Cleanup Policy
	Images  []*Image
	// Platform is build.platform: the platforms of every image without its own platform.
	Platform []string
	// ImageSpec is build.imageSpec, merged into every image's ImageSpec (werf semantics).
	ImageSpec *ImageSpec
	// Unsupported lists werf keys of the project document Strata cannot build yet, each as
	// "FILE:LINE: werf key X is not supported yet"; build refuses a config with any.
	Unsupported []string
}

// Image is one image document (an `image:` list gives one Image per name, in order).
type Image struct {
	// Name is the image name; "" for werf's nameless single image (`image: ~`).
	Name string
	Line int
	// Final is false for werf artifacts (`artifact:` or `final: false`): built for imports only.
	Final bool

	// Dockerfile images.
	Dockerfile string // relative to Context (werf semantics)
	Context    string // relative to the project directory; never outside it
	Target     string
	Args       map[string]string
	// Staged builds the Dockerfile instruction by instruction, each instruction a stage of
	// its own (werf's staged: true); off, the image is one stage built by the engine.
	Staged bool
	// ContextAddFiles (werf's contextAddFiles, legacy contextAddFile) are paths relative to
	// Context read from the working tree (files or directories) and added to the committed
	// context, overriding a committed file at the same path. Clean, relative, inside Context.
	ContextAddFiles []string

	// Stage-built images.
	From             string
	FromImage        string
	FromCacheVersion string
	// FromLatest (werf's fromLatest) makes the base image's current manifest digest, looked up
	// in its registry at every build, part of the from stage's digest.
	FromLatest bool
	Git        []GitMapping
	Shell      Shell
	Docker     DockerInstructions
	// Import copies files from other images in the import stages (see ImportStages).
	Import []Import
	// Mount are bind mounts of the shell stages' containers (never in a layer).
	Mount []Mount
	// DisableGitAfterPatch drops the gitLatestPatch stage (werf disableGitAfterPatch).
	DisableGitAfterPatch bool

	// Keys of both kinds of images.
	// CacheVersion is the image's cacheVersion: part of its first stage's digest.
	CacheVersion string
	// Dependencies expose other images' references as env (stage-built) or build args
	// (Dockerfile); the dependency's final stage is part of the digest.
	Dependencies []Dependency
	// Secrets are exposed to shell stages as files /run/secrets/<id>; never in a layer, the
	// image config, a digest or a log.
	Secrets []Secret
	// Network is the network mode of this image's containers and builds: "host" or "none"
	// ("" = strata build --network).
	Network string
	// AddHost are extra /etc/hosts entries ("host:ip") of a Dockerfile build.
	AddHost []string
	// Platform lists the platforms to build for (os/arch[/variant]); Strata builds for the
	// engine's platform only, and checks it.
	Platform []string
	// ImageSpec is applied to the final image config registry-side (werf imageSpec), merged
	// with build.imageSpec.
	ImageSpec *ImageSpec
	// Unsupported lists the werf keys of this image that Strata parses but cannot build yet,
	// each as "KEY (line N)"; build refuses an image with any.
	Unsupported []string
}

// GitMapping adds files of the project's git repository (or, with URL, of a remote one) to an
// image.
type GitMapping struct {
	// URL is a remote repository (werf's `git: - url:`), "" for the project's own. Branch, Tag
	// or Commit (at most one; none = the remote's default branch) say which commit: build
	// resolves it and the commit is the digest input.
	URL, Branch, Tag, Commit string
	// BasicAuth is werf's basicAuth of a remote mapping: HTTP basic credentials, the password
	// read at build time from one source. Never a digest input.
	BasicAuth         *BasicAuth
	Add               string // path in the repository, from its root ("/" = root)
	To                string // absolute path in the image
	IncludePaths      []string
	ExcludePaths      []string
	Owner, Group      string
	StageDependencies map[string][]string // install, beforeSetup, setup -> globs
}

// BasicAuth are the HTTP basic credentials of a remote git mapping: Username and a password
// from exactly one of PasswordEnv (an environment variable), PasswordFile (a file; werf's src:
// or file:, relative to the project directory, ~ expanded) or PasswordValue (written in the
// config).
type BasicAuth struct {
	Username                                 string
	PasswordEnv, PasswordFile, PasswordValue string
}

// Shell holds the commands of the user stages.
type Shell struct {
	BeforeInstall, Install, BeforeSetup, Setup []string
	CacheVersion                               string
	StageCacheVersion                          map[string]string // stage name -> cacheVersion
}

// Any reports whether a user stage has commands.
func (s Shell) Any() bool {
	return len(s.BeforeInstall)+len(s.Install)+len(s.BeforeSetup)+len(s.Setup) > 0
}

// DockerInstructions change the image config in the last stage.
type DockerInstructions struct {
	Workdir     string
	Env         map[string]string
	Expose      []string
	User        string
	Cmd         []string
	Entrypoint  []string
	Label       map[string]string
	Volume      []string
	Healthcheck *Healthcheck
}

// Empty reports whether no instruction is set.
func (d DockerInstructions) Empty() bool {
	return d.Workdir == "" && len(d.Env) == 0 && len(d.Expose) == 0 && d.User == "" && d.Cmd == nil &&
		d.Entrypoint == nil && len(d.Label) == 0 && len(d.Volume) == 0 && d.Healthcheck == nil
}

// Healthcheck is the docker HEALTHCHECK instruction.
type Healthcheck struct {
	Test                           []string
	Interval, Timeout, StartPeriod string
	Retries                        int
}

// Import copies files from another image (werf `import:`), registry-side, in one of the image's
// import stages (see ImportStages).
type Import struct {
	Image, Artifact string // the source image of the config (one of them; werf v2's from: NAME is Image)
	External        string // or an image outside the config (werf v2's from: REF with a tag or digest)
	Stage           string // the source image's user stage ("" = its last stage)
	Add, To         string // absolute, cleaned; To defaults to Add
	After, Before   string // install | setup (exactly one)
	IncludePaths    []string
	ExcludePaths    []string
	Owner, Group    string
	Line            int
}

// Mount is a werf `mount:` of the shell stages: a directory bind-mounted at To while their
// commands run.
type Mount struct {
	From     string // tmp_dir (per build) | build_dir (kept per project) ("" with FromPath)
	FromPath string // a host directory, relative to the project directory or absolute
	To       string // absolute, cleaned
}

// Dependency is a werf `dependencies:` entry.
type Dependency struct {
	Image   string
	Before  string // install | setup (stage-built images)
	After   string // install | setup (stage-built images)
	Imports []DependencyImport
}

// DependencyImport exposes one value of a dependency under a name.
type DependencyImport struct {
	Type   string // ImageName, ImageTag, ImageRepo, ImageID, ImageDigest
	Target string // targetEnv (stage-built images) or targetBuildArg (Dockerfile images)
}

// DependencyTypes are the values of dependencies[].imports[].type.
func DependencyTypes() []string {
	return []string{"ImageName", "ImageTag", "ImageRepo", "ImageID", "ImageDigest"}
}

// Secret is a werf build secret: exactly one of Env, Src, Value gives its content.
type Secret struct {
	ID    string // the file /run/secrets/<ID>
	Env   string // an environment variable of strata build
	Src   string // a host file (~ expanded; relative to the project directory)
	Value string // the value itself (written in the config)
}

// ImageSpec is werf's imageSpec: changes to the final image config, applied registry-side.
type ImageSpec struct {
	Author       string
	ClearHistory bool
	// Config.
	KeepEssentialWerfLabels, ClearWerfLabels              bool
	ClearCmd, ClearEntrypoint, ClearUser, ClearWorkingDir bool
	RemoveLabels, RemoveVolumes, RemoveEnv                []string // names, or /REGEXP/ (labels, env)
	Labels, Env                                           map[string]string
	Volumes, Expose                                       []string
	User, WorkingDir, StopSignal                          string
	Cmd, Entrypoint                                       []string
	Healthcheck                                           *Healthcheck
}

// Defaults of the cleanup policy (see docs/cleanup.md).
const (
	DefaultBranchLast   = 10
	DefaultBranchWithin = 7 * 24 * time.Hour
	DefaultTagLast      = 10
	DefaultRecent       = 2 * time.Hour
)

// Rule keeps the images of some git references' commits.
type Rule struct {
	// Match is an anchored regular expression on the reference's short name (e.g. "main",
	// "v1.2.0"); nil matches every reference.
	Match *regexp.Regexp
	// Last is how many commits are kept: for a branch its last Last commits (newest first, like
	// `git log`), for tags the Last newest tags matching the rule.
	Last int
	// Within limits kept commits to those committed within this long before now; 0 = no limit.
	Within time.Duration
}

// Matches reports whether the rule applies to the reference's short name.
func (r Rule) Matches(name string) bool { return r.Match == nil || r.Match.MatchString(name) }

// Policy says what cleanup keeps besides what bundles and clusters use. The first rule whose
// Match matches a reference applies to it; a reference no rule matches keeps nothing by policy.
type Policy struct {
	Branches []Rule
	Tags     []Rule
	// KeepBuiltWithin always keeps stages built within this long before now.
	KeepBuiltWithin time.Duration
	// Werf lists werf cleanup keys found (keepPolicies, …), each as "KEY (line N)": Strata does
	// not translate them yet, so `strata cleanup` refuses a config with any.
	Werf []string
}

// DefaultPolicy is the policy when the config has no `cleanup:` key: per branch the last 10
// commits within 7 days, the last 10 tags, everything built within 2 hours.
func DefaultPolicy() Policy {
	return Policy{
		Branches:        []Rule{{Last: DefaultBranchLast, Within: DefaultBranchWithin}},
		Tags:            []Rule{{Last: DefaultTagLast}},
		KeepBuiltWithin: DefaultRecent,
	}
}
