package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	root := newRootCmd(&o, &e)
	root.SetArgs(args)
	err = root.ExecuteContext(context.Background())
	return o.String(), e.String(), err
}

func TestNotYetBuiltCommandsFail(t *testing.T) {
	for _, args := range [][]string{{"image-updater", "run"}} {
		_, _, err := run(t, args...)
		if err == nil || !strings.Contains(err.Error(), "not implemented yet") {
			t.Errorf("strata %s: err = %v, want 'not implemented yet'", strings.Join(args, " "), err)
		}
	}
}

func TestVersionPrintsToStdout(t *testing.T) {
	out, errOut, err := run(t, "version")
	if err != nil || strings.TrimSpace(out) == "" || errOut != "" {
		t.Fatalf("version: out=%q err=%v stderr=%q", out, err, errOut)
	}
}

func TestFlagsFromEnvironment(t *testing.T) {
	t.Setenv("STRATA_LOG_LEVEL", "nonsense")
	_, _, err := run(t, "version")
	if err == nil || !strings.Contains(err.Error(), `unknown log level "nonsense"`) {
		t.Fatalf("err = %v, want the env value rejected", err)
	}
	// The command line wins over the environment.
	if _, _, err := run(t, "--log-level", "debug", "version"); err != nil {
		t.Fatalf("flag should override env: %v", err)
	}
	t.Setenv("STRATA_LOG_FORMAT", "xml")
	t.Setenv("STRATA_LOG_LEVEL", "info")
	if _, _, err := run(t, "version"); err == nil || !strings.Contains(err.Error(), "STRATA_LOG_FORMAT") && !strings.Contains(err.Error(), "xml") {
		t.Fatalf("err = %v, want the bad format named", err)
	}
}

func TestEnvName(t *testing.T) {
	if got := envName("insecure-registry"); got != "STRATA_INSECURE_REGISTRY" {
		t.Fatalf("envName = %q", got)
	}
}
