package testenv

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProductDoesNotImportHarnesses checks that the test harnesses under internal/testing are
// imported only by tests and by other harnesses: no product package (what `strata` or the sidecar
// ships) links them.
func TestProductDoesNotImportHarnesses(t *testing.T) {
	const harness = "strata.dev/strata/internal/testing"
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Deps " "}}`, "./...")
	cmd.Dir = RepoRoot()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, deps, _ := strings.Cut(line, " ")
		if strings.HasPrefix(pkg, harness) {
			continue
		}
		checked++
		for _, d := range strings.Fields(deps) {
			if strings.HasPrefix(d, harness) {
				t.Errorf("product package %s depends on test harness %s", pkg, d)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d product packages listed; go list output:\n%s", checked, out)
	}
}
