package helmcli

import (
	"os"
	"os/exec"
	"testing"

	"strata.dev/strata/internal/testing/testenv"
)

// How is the way to get the helm CLI, for skip and failure messages.
const How = "run scripts/testenv.sh up (it builds helm v3.19.5 and exports STRATA_TEST_HELM), or build it in a tools module outside the repository (`go build -o BIN/helm helm.sh/helm/v3/cmd/helm`) and set STRATA_TEST_HELM=BIN/helm"

// Path is STRATA_TEST_HELM (from the environment, else from the env file scripts/testenv.sh
// writes), else helm on PATH. Without one the test fails under CI=true and is
// skipped otherwise, saying how to get it.
func Path(tb testing.TB) string {
	tb.Helper()
	if p := testenv.Load().Helm; p != "" {
		if _, err := os.Stat(p); err != nil {
			tb.Fatalf("STRATA_TEST_HELM: %v", err)
		}
		return p
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		tb.Fatalf("no helm CLI: %s", How)
	}
	tb.Skipf("no helm CLI: %s", How)
	return ""
}
