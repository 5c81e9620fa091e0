package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
)

func TestCleanupCommands(t *testing.T) {
	if _, _, err := run(t, "cleanup", "--dir", t.TempDir()); err == nil || !strings.Contains(err.Error(), "--repo") {
		t.Errorf("cleanup without --repo: %v", err)
	}
	if _, _, err := run(t, "stages", "sync", "--from", "127.0.0.1:5000/a"); err == nil || !strings.Contains(err.Error(), "--from and --to are required") {
		t.Errorf("stages sync without --to: %v", err)
	}
	if _, _, err := run(t, "cleanup", "--synchronization", "nfs://x", "--repo", "127.0.0.1:5000/a"); err == nil || !strings.Contains(err.Error(), "synchronization") {
		t.Errorf("bad --synchronization: %v", err)
	}

	// A dry run on an empty storage, with the repository from the environment.
	repo := testenv.Repo(t, "stages")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "strata.yaml"), []byte("project: p\nconfigVersion: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "strata.yaml"}, {"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "init"}} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	t.Setenv("STRATA_REPO", repo)
	t.Setenv("STRATA_HOME", t.TempDir())
	out, _, err := run(t, "cleanup", "--dir", dir, "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "0 stages: keep 0, delete 0 (0 manifests) [dry run]" {
		t.Errorf("dry run output %q", out)
	}
}

func TestStagesSyncCommand(t *testing.T) {
	from, to := testenv.Repo(t, "from"), testenv.Repo(t, "to")
	reg := registry.Options{}
	src, err := reg.ParseRepository(from)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag := strings.Repeat("ab", 28) + "-1700000000000"
	if err := remote.Write(src.Tag(tag), img, reg.Remote(context.Background())...); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"copied 1 stages, 0 already present", "copied 0 stages, 1 already present"} {
		out, _, err := run(t, "stages", "sync", "--from", from, "--to", to)
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("stages sync: %q, %v; want %q", out, err, want)
		}
	}
}
