package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// CosignCLI runs the real cosign CLI (see Cosign) offline, in its own directory (its HOME, where
// generated keys go), with COSIGN_PASSWORD set.
type CosignCLI struct {
	Bin, Dir, Password string
}

// NewCosign returns the cosign CLI for t, skipping t (failing it under CI=true) when missing.
func NewCosign(t testing.TB, password string) *CosignCLI {
	t.Helper()
	return &CosignCLI{Bin: Cosign(t), Dir: t.TempDir(), Password: password}
}

// CosignRegistryFlags reach the plain-HTTP test registry.
var CosignRegistryFlags = []string{"--allow-insecure-registry", "--allow-http-registry"}

// Run runs cosign with args and returns its combined output.
func (c *CosignCLI) Run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Bin, args...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD="+c.Password, "HOME="+c.Dir, "TUF_ROOT="+filepath.Join(c.Dir, "tuf"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// Sign signs ref with key, no transparency log, failing t if cosign fails.
func (c *CosignCLI) Sign(t testing.TB, key, ref string) {
	t.Helper()
	args := append([]string{"sign", "--key", key, "--tlog-upload=false", "--yes"}, CosignRegistryFlags...)
	if out, err := c.Run(append(args, ref)...); err != nil {
		t.Fatalf("cosign sign %s: %v\n%s", ref, err, out)
	}
}

// Verify runs cosign verify --key pub --insecure-ignore-tlog ref.
func (c *CosignCLI) Verify(pub, ref string) (string, error) {
	args := append([]string{"verify", "--key", pub, "--insecure-ignore-tlog"}, CosignRegistryFlags...)
	return c.Run(append(args, ref)...)
}

// GenerateKeyPair runs cosign generate-key-pair in Dir and returns the key files.
func (c *CosignCLI) GenerateKeyPair(t testing.TB) (key, pub string) {
	t.Helper()
	if out, err := c.Run("generate-key-pair"); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	return filepath.Join(c.Dir, "cosign.key"), filepath.Join(c.Dir, "cosign.pub")
}
