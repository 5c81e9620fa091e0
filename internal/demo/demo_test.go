package demo

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"strata.dev/strata/internal/testenv"
)

// The README's first command, as a test: the whole chain on examples/quickstart.
func TestDemo(t *testing.T) {
	testenv.Docker(t)
	testenv.BaseImage(t)
	testenv.KubeConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var out strings.Builder
	s, err := Run(ctx, Options{
		RepoRoot: testenv.RepoRoot(),
		Env:      testenv.Load(),
		WorkDir:  t.TempDir(),
		Out:      &out,
		Log:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(out.String())
	if len(s.Steps) != 2 {
		t.Fatalf("%d steps, want 2", len(s.Steps))
	}
	first, second := s.Steps[0], s.Steps[1]

	// First publish: everything built, the Application moved from 0.0.0 to the bundle.
	if first.Revision != "0.1.0" || second.Revision != "0.1.1" {
		t.Errorf("Application revisions %q then %q, want 0.1.0 then 0.1.1", first.Revision, second.Revision)
	}
	// After changing one source file, only the git patch stage (and the instruction stage on top
	// of it) is rebuilt; the shell stages and the Dockerfile image are reused.
	if want := []string{"web/gitLatestPatch", "web/dockerInstructions"}; !slices.Equal(second.Built, want) {
		t.Errorf("second build built %v, want %v (reused %v)", second.Built, want, second.Reused)
	}
	for _, stage := range []string{"web/from", "web/gitArchive", "web/install", "worker/dockerfile"} {
		if !slices.Contains(second.Reused, stage) {
			t.Errorf("second build did not reuse %s (reused %v)", stage, second.Reused)
		}
	}
	if first.Images["worker"] != second.Images["worker"] || first.Images["web"] == second.Images["web"] {
		t.Errorf("images: worker %s -> %s (want same), web %s -> %s (want new)",
			first.Images["worker"], second.Images["worker"], first.Images["web"], second.Images["web"])
	}
	// Every rendered object links back to its commit.
	for i, st := range s.Steps {
		if st.Objects < 3 {
			t.Errorf("step %d: %d objects rendered, want 3", i+1, st.Objects)
		}
		if got := st.Annotations["strata.dev/commit"]; got != st.Commit || got == "" {
			t.Errorf("step %d: strata.dev/commit = %q, want %q", i+1, got, st.Commit)
		}
		if got := st.Annotations["link.argocd.argoproj.io/commit"]; !strings.HasSuffix(got, "/commit/"+st.Commit) {
			t.Errorf("step %d: commit link = %q", i+1, got)
		}
		// A Helm-OCI source hands the plugin the chart version, not the digest: the bundle is
		// named by its tag (oci:// sources record REPO@DIGEST, see cmp's tests).
		if got := st.Annotations["strata.dev/bundle"]; got != st.Bundle {
			t.Errorf("step %d: strata.dev/bundle = %q, want %q", i+1, got, st.Bundle)
		}
	}
	if first.Commit == second.Commit {
		t.Error("both steps report the same commit")
	}
}
