package cienv

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestGitLab(t *testing.T) {
	e, err := Detect(GitLab, Options{Getenv: env(map[string]string{
		"GITLAB_CI": "true", "CI_REGISTRY_IMAGE": "registry.gitlab.com/g/app", "CI_REGISTRY": "registry.gitlab.com",
		"CI_COMMIT_SHA": "0123456789abcdef0123456789abcdef01234567", "CI_COMMIT_BRANCH": "main",
		"CI_PROJECT_URL": "https://gitlab.com/g/app", "CI_PIPELINE_URL": "https://gitlab.com/g/app/-/pipelines/7",
		"CI_JOB_URL": "https://gitlab.com/g/app/-/jobs/9", "CI_REGISTRY_USER": "gitlab-ci-token",
		"CI_REGISTRY_PASSWORD": "s3cr3t-token", "STRATA_SYNCHRONIZATION": "kubernetes://ci-locks",
	})})
	if err != nil {
		t.Fatal(err)
	}
	out := e.Exports()
	for _, want := range []string{
		"export STRATA_REPO='registry.gitlab.com/g/app'\n",
		"export STRATA_COMMIT='0123456789abcdef0123456789abcdef01234567'\n",
		"export STRATA_GIT_BRANCH='main'\n",
		"export STRATA_GIT_URL='https://gitlab.com/g/app'\n",
		"export STRATA_CI_PIPELINE_URL='https://gitlab.com/g/app/-/pipelines/7'\n",
		"export STRATA_CI_JOB_URL='https://gitlab.com/g/app/-/jobs/9'\n",
		"export STRATA_SYNCHRONIZATION='kubernetes://ci-locks'\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exports lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "s3cr3t") {
		t.Fatalf("secret printed:\n%s", out)
	}

	dir := t.TempDir()
	if err := e.Login(dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Auths map[string]struct{ Auth string } `json:"auths"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	got, _ := base64.StdEncoding.DecodeString(cfg.Auths["registry.gitlab.com"].Auth)
	if string(got) != "gitlab-ci-token:s3cr3t-token" {
		t.Fatalf("stored auth = %q", got)
	}
}

func TestGitHubTagAndLowercaseRepo(t *testing.T) {
	e, err := Detect(GitHub, Options{Getenv: env(map[string]string{
		"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "Acme/Web-App", "GITHUB_SHA": "abc",
		"GITHUB_REF_TYPE": "tag", "GITHUB_REF_NAME": "v1.2.0", "GITHUB_SERVER_URL": "https://github.com",
		"GITHUB_RUN_ID": "42", "GITHUB_TOKEN": "ghs_secret", "GITHUB_ACTOR": "bot",
	})})
	if err != nil {
		t.Fatal(err)
	}
	out := e.Exports()
	for _, want := range []string{
		"export STRATA_REPO='ghcr.io/acme/web-app'\n",
		"export STRATA_GIT_TAG='v1.2.0'\n",
		"export STRATA_CI_PIPELINE_URL='https://github.com/Acme/Web-App/actions/runs/42'\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exports lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ghs_secret") || strings.Contains(out, "BRANCH") {
		t.Fatalf("unexpected exports:\n%s", out)
	}
	if e.Registry != "ghcr.io" || e.Username != "bot" {
		t.Fatalf("login = %s %s", e.Registry, e.Username)
	}
}

func TestErrors(t *testing.T) {
	if _, err := Detect(GitLab, Options{Getenv: env(nil)}); err == nil || !strings.Contains(err.Error(), "not running in GitLab CI") {
		t.Errorf("gitlab outside CI: %v", err)
	}
	if _, err := Detect("jenkins", Options{Getenv: env(nil)}); err == nil || !strings.Contains(err.Error(), `unknown CI system "jenkins"`) {
		t.Errorf("unknown: %v", err)
	}
	if _, err := Detect(Generic, Options{Getenv: env(nil), Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "set STRATA_REPO") {
		t.Errorf("generic without repo: %v", err)
	}
}

func TestQuoting(t *testing.T) {
	e := &Env{Vars: map[string]string{"STRATA_GIT_BRANCH": "it's; rm -rf /"}}
	if got := e.Exports(); got != `export STRATA_GIT_BRANCH='it'\''s; rm -rf /'`+"\n" {
		t.Fatalf("got %q", got)
	}
}
