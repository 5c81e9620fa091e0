package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// CosignCommand is what a developer runs to build the cosign CLI the interop tests use.
const CosignCommand = "scripts/cosign.sh"

// Cosign returns the path of the real cosign CLI: $STRATA_TEST_COSIGN, else `cosign` on PATH,
// else the binary scripts/cosign.sh caches under the test environment's directory
// (.testenv/bin/cosign). Missing, it skips the test naming the command that builds it, or
// fails it under CI=true.
func Cosign(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("STRATA_TEST_COSIGN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			cosignMissing(t, fmt.Errorf("STRATA_TEST_COSIGN=%s: %w", p, err))
		}
		return p
	}
	if p, err := exec.LookPath("cosign"); err == nil {
		return p
	}
	dir := Load().Dir
	if dir == "" {
		if root := RepoRoot(); root != "" {
			dir = filepath.Join(root, ".testenv")
		}
	}
	if dir != "" {
		p := filepath.Join(dir, "bin", "cosign")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	cosignMissing(t, fmt.Errorf("STRATA_TEST_COSIGN is not set, no cosign on PATH nor in .testenv/bin"))
	return ""
}

func cosignMissing(t testing.TB, err error) {
	t.Helper()
	msg := fmt.Sprintf("the cosign CLI is not available (%v); build it with: %s (then export STRATA_TEST_COSIGN as it prints)", err, CosignCommand)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// KeyPolicy is a verification policy (package sign's format) with one rule: repositories
// matching pattern are trusted when signed by the public key pubPEM, inlined as a PEM block.
func KeyPolicy(pattern string, pubPEM []byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rules:\n  - repositories: [%q]\n    keys:\n      - |\n", pattern)
	for _, l := range strings.SplitAfter(string(pubPEM), "\n") {
		if l != "" {
			b.WriteString("        " + l)
		}
	}
	return b.String()
}
