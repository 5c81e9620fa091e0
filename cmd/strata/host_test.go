package main

import (
	"strings"
	"testing"

	"strata.dev/strata/internal/testing/testenv"
)

func TestHostCleanupCommand(t *testing.T) {
	for _, th := range []string{"0", "-5", "100.5", "NaN"} {
		_, _, err := run(t, "host", "cleanup", "--threshold", th)
		if err == nil || !strings.Contains(err.Error(), "--threshold "+strings.TrimPrefix(th, "+")) || !strings.Contains(err.Error(), "above 0 and at most 100") {
			t.Errorf("--threshold %s: %v", th, err)
		}
	}
	if _, _, err := run(t, "host", "cleanup", "--threshold", "many"); err == nil || !strings.Contains(err.Error(), `invalid argument "many" for "--threshold"`) {
		t.Errorf("--threshold many: %v", err)
	}

	// A dry run on the real engine, for a project with no images there.
	t.Setenv("DOCKER_HOST", testenv.DockerHost(t))
	out, _, err := run(t, "host", "cleanup", "--dry-run", "--threshold", "100", "--project", testenv.UniqueName(t, "none"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "(threshold 100%), removed 0 of 0 Strata images [dry run: simulated]") {
		t.Errorf("dry run output %q", out)
	}
}
