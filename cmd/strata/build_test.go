package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"strata.dev/strata/internal/testing/testenv"
)

func TestBuildCommandReportAndQuiet(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "cli")
	dir := t.TempDir()
	cfg := "project: cli\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\ngit:\n- to: /src\n  includePaths: [\"*.txt\"]\ndocker:\n  CMD: [cat, /src/a.txt]\n"
	if err := os.WriteFile(filepath.Join(dir, "strata.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x"}} {
		c := exec.Command("git", args...)
		c.Dir = dir
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	t.Setenv("STRATA_REPO", repo)
	report := filepath.Join(t.TempDir(), "report.json")
	stdout, stderr, err := run(t, "build", "-q", "--dir", dir, "--report", report, "--synchronization", ":local")
	if err != nil {
		t.Fatalf("strata build: %v\n%s", err, stderr)
	}
	if !regexp.MustCompile(`^app ` + regexp.QuoteMeta(repo) + `:[0-9a-f]{56}-[0-9]+@sha256:[0-9a-f]{64}\n$`).MatchString(stdout) {
		t.Errorf("stdout = %q", stdout)
	}
	if stderr != "" {
		t.Errorf("-q printed logs: %q", stderr)
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Project, Repo, Commit string
		Images                []struct {
			Name, Repo, Tag, Ref, ManifestDigest string
			Stages                               []struct {
				Name, Digest, Tag, Status string
				DurationMs                int64
			}
		}
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Project != "cli" || len(rep.Commit) != 40 || len(rep.Images) != 1 || len(rep.Images[0].Stages) != 3 {
		t.Fatalf("report = %s", data)
	}
	im := rep.Images[0]
	if im.Ref != im.Repo+":"+im.Tag || !strings.HasPrefix(im.Tag, im.Stages[2].Digest+"-") || im.Stages[0].Status != "built" {
		t.Errorf("report image = %+v", im)
	}
	// Verbose second run logs every stage as reused.
	_, stderr, err = run(t, "build", "--dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(stderr, "status=reused"); n != 3 {
		t.Errorf("want 3 reused stage lines, got:\n%s", stderr)
	}
	if _, _, err := run(t, "build", "--dir", dir, "--network", "bridge"); err == nil || !strings.Contains(err.Error(), "bridge") {
		t.Errorf("--network bridge: %v", err)
	}
}
