package cmp_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"strata.dev/strata/bundle"
	"strata.dev/strata/internal/testing/cmpserver"
	"strata.dev/strata/manifests"
)

// withGenerateFlags is the shipped plugin.yaml with flags added to the generate command, as an
// operator tunes the limits.
func withGenerateFlags(t *testing.T, flags ...string) []byte {
	t.Helper()
	const cmd = "command: [strata, cmp, generate]"
	cfg := string(manifests.PluginConfig())
	if !strings.Contains(cfg, cmd) {
		t.Fatalf("plugin.yaml has no %q", cmd)
	}
	return []byte(strings.Replace(cfg, cmd, "command: [strata, cmp, generate, "+strings.Join(flags, ", ")+"]", 1))
}

// Size limits hold through Argo CD's CMP server: a clear error naming the limit, no manifests.
func TestGenerateLimitsThroughArgoCDServer(t *testing.T) {
	ctx := context.Background()
	dir := writeBundle(t, map[string]string{"web.yaml": deployment})

	// The rendered output (about 1.2 kB here) over --max-output-bytes.
	srv, err := cmpserver.Start(withGenerateFlags(t, "--max-output-bytes", "'600'"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := srv.Generate(ctx, "", dir, appEnv(""))
	srv.Close()
	if err == nil || !strings.Contains(err.Error(), "generate shop 1.2.0: ") || !strings.Contains(err.Error(), "larger than the limit of 600 bytes") || len(out) != 0 {
		t.Errorf("output limit: err = %v, %d manifests; want the limit named and nothing rendered", err, len(out))
	}

	// The bundle over --max-chart-bytes.
	srv, err = cmpserver.Start(withGenerateFlags(t, "--max-chart-bytes", "'1000'"))
	if err != nil {
		t.Fatal(err)
	}
	out, err = srv.Generate(ctx, "", dir, appEnv(""))
	srv.Close()
	if err == nil || !strings.Contains(err.Error(), "larger than the limit of 1000 bytes") || len(out) != 0 {
		t.Errorf("chart limit: err = %v, %d manifests; want the limit named and nothing rendered", err, len(out))
	}

	// The shipped plugin.yaml: the default chart limit refuses a bundle with a 21 MiB file and
	// names the file.
	big := writeBundle(t, map[string]string{"web.yaml": deployment})
	if err := os.MkdirAll(filepath.Join(big, "files"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(big, "files", "blob.bin")) // sparse: no disk used
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(bundle.DefaultMaxChartBytes + 1<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, err = startServer(t).Generate(ctx, "", big, appEnv(""))
	if err == nil || !strings.Contains(err.Error(), "larger than the limit of 20971520 bytes") || !strings.Contains(err.Error(), "blob.bin") || len(out) != 0 {
		t.Errorf("default chart limit: err = %v, %d manifests; want the limit and the file named, nothing rendered", err, len(out))
	}
}
