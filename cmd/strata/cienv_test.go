package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// dockerAuth reads the base64 user:password stored for registry in the docker config in dir.
func dockerAuth(t *testing.T, dir, registry string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatalf("docker config: %v", err)
	}
	var cfg struct {
		Auths map[string]struct {
			Auth string `json:"auth"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	dec, err := base64.StdEncoding.DecodeString(cfg.Auths[registry].Auth)
	if err != nil {
		t.Fatal(err)
	}
	return string(dec)
}

func gitRepo(t *testing.T) (dir, head string) {
	t.Helper()
	dir = t.TempDir()
	for _, args := range [][]string{
		{"init", "-q", "-b", "release"},
		{"remote", "add", "origin", "https://git.example.com/acme/shop.git"},
		{"-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "one"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	out, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return dir, strings.TrimSpace(string(out))
}

// generic: commit, branch and git URL from the repository, login into the docker config given,
// the password in neither stdout nor stderr.
func TestCIEnvGenericLogsInWithoutPrintingSecrets(t *testing.T) {
	dir, head := gitRepo(t)
	cfgDir := t.TempDir()
	const secret = "s3cr3t-p4ss"
	t.Setenv("STRATA_REPO", "registry.example.com/shop")
	t.Setenv("STRATA_REGISTRY", "registry.example.com")
	t.Setenv("STRATA_REGISTRY_USER", "ci")
	t.Setenv("STRATA_REGISTRY_PASSWORD", secret)
	t.Setenv("STRATA_CI_PIPELINE_URL", "https://ci.example.com/p/1")
	out, errOut, err := run(t, "ci-env", "generic", "--dir", dir, "--docker-config", cfgDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"export STRATA_REPO='registry.example.com/shop'\n",
		"export STRATA_COMMIT='" + head + "'\n",
		"export STRATA_GIT_BRANCH='release'\n",
		"export STRATA_GIT_URL='https://git.example.com/acme/shop.git'\n",
		"export STRATA_CI_PIPELINE_URL='https://ci.example.com/p/1'\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+errOut, secret) || strings.Contains(out, "PASSWORD") {
		t.Errorf("secret printed:\nstdout:\n%s\nstderr:\n%s", out, errOut)
	}
	if got := dockerAuth(t, cfgDir, "registry.example.com"); got != "ci:"+secret {
		t.Errorf("docker config auth = %q", got)
	}
}

// --as-file writes the lines to a private file and nothing to stdout; GitLab without
// CI_REGISTRY_PASSWORD logs in with the job token; --no-login writes no config.
func TestCIEnvGitLabAsFileAndJobToken(t *testing.T) {
	cfgDir := t.TempDir()
	for k, v := range map[string]string{
		"GITLAB_CI": "true", "CI_REGISTRY_IMAGE": "registry.gitlab.example.com/acme/shop",
		"CI_REGISTRY": "registry.gitlab.example.com", "CI_REGISTRY_USER": "", "CI_REGISTRY_PASSWORD": "",
		"CI_JOB_TOKEN": "job-token-123", "CI_COMMIT_SHA": strings.Repeat("ab", 20), "CI_COMMIT_BRANCH": "main",
		"CI_PROJECT_URL": "https://gitlab.example.com/acme/shop", "CI_PIPELINE_URL": "https://gitlab.example.com/acme/shop/-/pipelines/9",
		"STRATA_REPO": "",
	} {
		t.Setenv(k, v)
	}
	file := filepath.Join(t.TempDir(), "strata.env")
	out, errOut, err := run(t, "ci-env", "gitlab", "--as-file", file, "--docker-config", cfgDir)
	if err != nil {
		t.Fatal(err)
	}
	if out != "" {
		t.Errorf("stdout = %q, want nothing with --as-file", out)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if !strings.Contains(string(b), "export STRATA_REPO='registry.gitlab.example.com/acme/shop'\n") ||
		!strings.Contains(string(b), "export STRATA_CI_PIPELINE_URL='https://gitlab.example.com/acme/shop/-/pipelines/9'\n") {
		t.Errorf("file:\n%s", b)
	}
	if strings.Contains(string(b)+errOut, "job-token-123") {
		t.Errorf("job token printed")
	}
	if got := dockerAuth(t, cfgDir, "registry.gitlab.example.com"); got != "gitlab-ci-token:job-token-123" {
		t.Errorf("docker config auth = %q", got)
	}

	noLogin := t.TempDir()
	if _, _, err := run(t, "ci-env", "gitlab", "--no-login", "--docker-config", noLogin); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(noLogin, "config.json")); !os.IsNotExist(err) {
		t.Errorf("--no-login wrote a docker config (%v)", err)
	}
}

// Every variable ci-env exports is read by a flag of the commands that follow it in CI, so
// `eval "$(strata ci-env ...)"` really wires strata build and strata bundle publish.
func TestCIEnvVariablesAreFlags(t *testing.T) {
	dir, _ := gitRepo(t)
	t.Setenv("STRATA_REPO", "registry.example.com/shop")
	t.Setenv("STRATA_GIT_TAG", "v1.0.0")
	t.Setenv("STRATA_CI_JOB_URL", "https://ci.example.com/j/1")
	t.Setenv("STRATA_SYNCHRONIZATION", "kubernetes://strata-synchronization")
	out, _, err := run(t, "ci-env", "generic", "--dir", dir, "--no-login")
	if err != nil {
		t.Fatal(err)
	}
	root := newRootCmd(nil, nil)
	flagsOf := func(path ...string) map[string]bool {
		cmd, _, err := root.Find(path)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		cmd.Flags().VisitAll(func(f *pflag.Flag) { m[envName(f.Name)] = true })
		return m
	}
	build, publish := flagsOf("build"), flagsOf("bundle", "publish")
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		n++
		if !build[name] && !publish[name] {
			t.Errorf("%s is exported but no flag of strata build or strata bundle publish reads it", name)
		}
	}
	if n < 7 {
		t.Errorf("only %d variables exported:\n%s", n, out)
	}
}
