package cienv

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/types"

	"strata.dev/strata/internal/git"
)

// Providers strata knows.
const (
	GitLab  = "gitlab"
	GitHub  = "github"
	Generic = "generic"
)

// Env is what a CI job needs exported for strata, plus the registry login it can perform.
type Env struct {
	Provider string
	// Vars are the STRATA_* variables to export, by name.
	Vars map[string]string
	// Registry, Username and password are the login to perform; empty Registry = none.
	Registry string
	Username string
	password string
}

// Options configure Detect.
type Options struct {
	// Getenv reads the CI environment; required.
	Getenv func(string) string
	// Dir is the project's git work tree, used by the generic provider.
	Dir string
}

// Detect reads the CI environment of provider.
func Detect(provider string, o Options) (*Env, error) {
	get := o.Getenv
	e := &Env{Provider: provider, Vars: map[string]string{}}
	set := func(k, v string) {
		if v != "" {
			e.Vars[k] = v
		}
	}
	switch provider {
	case GitLab:
		if get("GITLAB_CI") == "" && get("CI_PROJECT_URL") == "" {
			return nil, fmt.Errorf("ci-env gitlab: GITLAB_CI and CI_PROJECT_URL are unset: not running in GitLab CI")
		}
		set("STRATA_REPO", firstNonEmpty(get("STRATA_REPO"), get("CI_REGISTRY_IMAGE")))
		set("STRATA_COMMIT", get("CI_COMMIT_SHA"))
		set("STRATA_GIT_BRANCH", get("CI_COMMIT_BRANCH"))
		set("STRATA_GIT_TAG", get("CI_COMMIT_TAG"))
		set("STRATA_GIT_URL", get("CI_PROJECT_URL"))
		set("STRATA_CI_PIPELINE_URL", get("CI_PIPELINE_URL"))
		set("STRATA_CI_JOB_URL", get("CI_JOB_URL"))
		e.Registry = get("CI_REGISTRY")
		switch {
		case get("CI_REGISTRY_PASSWORD") != "":
			e.Username, e.password = get("CI_REGISTRY_USER"), get("CI_REGISTRY_PASSWORD")
		case get("CI_JOB_TOKEN") != "":
			e.Username, e.password = "gitlab-ci-token", get("CI_JOB_TOKEN")
		default:
			e.Registry = ""
		}
	case GitHub:
		if get("GITHUB_ACTIONS") == "" && get("GITHUB_REPOSITORY") == "" {
			return nil, fmt.Errorf("ci-env github: GITHUB_ACTIONS and GITHUB_REPOSITORY are unset: not running in GitHub Actions")
		}
		repo := strings.ToLower(get("GITHUB_REPOSITORY")) // ghcr.io names are lower case
		server := firstNonEmpty(get("GITHUB_SERVER_URL"), "https://github.com")
		set("STRATA_REPO", firstNonEmpty(get("STRATA_REPO"), "ghcr.io/"+repo))
		set("STRATA_COMMIT", get("GITHUB_SHA"))
		if get("GITHUB_REF_TYPE") == "tag" {
			set("STRATA_GIT_TAG", get("GITHUB_REF_NAME"))
		} else {
			set("STRATA_GIT_BRANCH", firstNonEmpty(get("GITHUB_HEAD_REF"), get("GITHUB_REF_NAME")))
		}
		set("STRATA_GIT_URL", server+"/"+get("GITHUB_REPOSITORY"))
		if id := get("GITHUB_RUN_ID"); id != "" {
			set("STRATA_CI_PIPELINE_URL", server+"/"+get("GITHUB_REPOSITORY")+"/actions/runs/"+id)
		}
		if tok := get("GITHUB_TOKEN"); tok != "" && strings.HasPrefix(e.Vars["STRATA_REPO"], "ghcr.io/") {
			e.Registry, e.Username, e.password = "ghcr.io", firstNonEmpty(get("GITHUB_ACTOR"), "github-actions"), tok
		}
	case Generic:
		set("STRATA_REPO", get("STRATA_REPO"))
		set("STRATA_COMMIT", firstNonEmpty(get("STRATA_COMMIT"), git.Lookup(o.Dir, "rev-parse", "HEAD")))
		branch := firstNonEmpty(get("STRATA_GIT_BRANCH"), git.Lookup(o.Dir, "symbolic-ref", "--short", "-q", "HEAD"))
		set("STRATA_GIT_BRANCH", branch)
		set("STRATA_GIT_TAG", firstNonEmpty(get("STRATA_GIT_TAG"), git.Lookup(o.Dir, "describe", "--tags", "--exact-match")))
		set("STRATA_GIT_URL", firstNonEmpty(get("STRATA_GIT_URL"), git.Lookup(o.Dir, "remote", "get-url", "origin")))
		set("STRATA_CI_PIPELINE_URL", get("STRATA_CI_PIPELINE_URL"))
		set("STRATA_CI_JOB_URL", get("STRATA_CI_JOB_URL"))
		if reg, user, pass := get("STRATA_REGISTRY"), get("STRATA_REGISTRY_USER"), get("STRATA_REGISTRY_PASSWORD"); reg != "" && pass != "" {
			e.Registry, e.Username, e.password = reg, user, pass
		}
	default:
		return nil, fmt.Errorf("ci-env: unknown CI system %q (want gitlab, github or generic)", provider)
	}
	set("STRATA_SYNCHRONIZATION", get("STRATA_SYNCHRONIZATION"))
	if e.Vars["STRATA_REPO"] == "" {
		return nil, fmt.Errorf("ci-env %s: cannot derive the stages repository: set STRATA_REPO", provider)
	}
	return e, nil
}

// Exports returns `export NAME='value'` lines, sorted by name. No secret is among them.
func (e *Env) Exports() string {
	names := make([]string, 0, len(e.Vars))
	for k := range e.Vars {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(e.Vars[k]))
	}
	return b.String()
}

// Login stores the registry credentials in the docker config in dir (empty: $DOCKER_CONFIG or
// ~/.docker), through its credential store or helper. It does nothing when there is no login.
func (e *Env) Login(dir string) error {
	if e.Registry == "" {
		return nil
	}
	cf, err := config.Load(dir)
	if err != nil {
		return fmt.Errorf("ci-env: read docker config: %w", err)
	}
	if err := cf.GetCredentialsStore(e.Registry).Store(types.AuthConfig{
		ServerAddress: e.Registry, Username: e.Username, Password: e.password,
	}); err != nil {
		return fmt.Errorf("ci-env: store credentials for %s in %s: %w", e.Registry, cf.Filename, err)
	}
	if err := cf.Save(); err != nil {
		return fmt.Errorf("ci-env: write docker config %s: %w", cf.Filename, err)
	}
	return nil
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// RunOptions configure Run: Detect's options plus what to do with the result.
type RunOptions struct {
	Options
	// NoLogin skips the registry login; DockerConfig is the docker config directory it writes
	// (empty: $DOCKER_CONFIG or ~/.docker).
	NoLogin      bool
	DockerConfig string
	// File receives the export lines (mode 0600) instead of Out.
	File string
	Out  io.Writer
	// Log receives progress (nil: discarded).
	Log *slog.Logger
}

// Run is `strata ci-env PROVIDER`: it detects the CI environment, logs in to its registry and
// writes the export lines to File or Out.
func Run(provider string, o RunOptions) error {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e, err := Detect(provider, o.Options)
	if err != nil {
		return err
	}
	if !o.NoLogin {
		if err := e.Login(o.DockerConfig); err != nil {
			return err
		}
		if e.Registry != "" {
			log.Info("logged in to registry", "registry", e.Registry, "user", e.Username)
		}
	}
	if o.File != "" {
		if err := os.WriteFile(o.File, []byte(e.Exports()), 0o600); err != nil {
			return fmt.Errorf("ci-env: %w", err)
		}
		log.Info("wrote CI environment", "file", o.File)
		return nil
	}
	_, err = fmt.Fprint(o.Out, e.Exports())
	return err
}
