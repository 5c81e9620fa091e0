package build

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/corpus"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// corpusBase is the base image the built corpus cases name: the test environment's.
const corpusBase = "127.0.0.1:5000/library/busybox:latest"

const corpusGolden = "testdata/corpus-digests.golden"

// TestCorpusBuilt builds every corpus case marked "build: yes" (config/testdata/corpus) on the
// real engine and registry, committed at a fixed date by a fixed author, and compares every
// stage digest with testdata/corpus-digests.golden: digests are the same on every run and every
// machine (anything machine-dependent in one is a bug). A clone in another directory with an
// empty git cache then reuses every stage without the engine. Files under remote/ of a case are
// another repository (branch main, tag v1.0.0) whose URL replaces file://REMOTE.
// STRATA_UPDATE_GOLDEN=1 rewrites the golden file.
func TestCorpusBuilt(t *testing.T) {
	host := testenv.DockerHost(t)
	if base := testenv.BaseImage(t); base != corpusBase {
		t.Fatalf("the corpus names the base image %s; this environment's is %s", corpusBase, base)
	}
	cases, err := corpus.All()
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.Options{}
	ctx := context.Background()
	var lines []string
	built, ran := 0, 0
	for _, c := range cases {
		if !c.Build {
			continue
		}
		built++
		t.Run(c.Name, func(t *testing.T) {
			ran++
			for k, v := range c.Env {
				t.Setenv(k, v)
			}
			dir := commitCase(t, c)
			repo := testenv.Repo(t, c.Name)
			run := func(dir, dockerHost string) *stages.Report {
				t.Helper()
				rep, err := Run(ctx, Options{Dir: filepath.Join(dir, c.Dir), Env: c.WerfEnv, Repo: repo, Registry: reg,
					Locker: fileLocker(t), DockerHost: dockerHost, GitCacheDir: t.TempDir()})
				if err != nil {
					t.Fatal(err)
				}
				return rep
			}
			first := run(dir, host)
			if len(first.Images) == 0 {
				t.Fatal("no image built")
			}
			for _, im := range append(append([]stages.ImageReport(nil), first.Images...), first.Artifacts...) {
				name := im.Name
				if name == "" {
					name = "~"
				}
				for _, s := range im.Stages {
					lines = append(lines, strings.Join([]string{c.Name, name, s.Name, s.Digest}, " "))
				}
			}
			for _, ch := range c.Checks {
				im := first.Image(strings.TrimSuffix(ch.Image, "~"))
				if im == nil {
					t.Errorf("file: no image %s built", ch.Image)
					continue
				}
				if got := files(t, im.Ref, reg)[ch.Path]; got != ch.Content {
					t.Errorf("image %s: %s = %q, want %q", ch.Image, ch.Path, got, ch.Content)
				}
			}
			clone := filepath.Join(t.TempDir(), "clone")
			if out, err := exec.Command("git", "clone", "-q", dir, clone).CombinedOutput(); err != nil {
				t.Fatalf("git clone: %v\n%s", err, out)
			}
			again := run(clone, noEngine)
			both := [][2][]stages.ImageReport{{first.Images, again.Images}, {first.Artifacts, again.Artifacts}}
			for _, pair := range both {
				if len(pair[0]) != len(pair[1]) {
					t.Fatalf("a clone built %d images, the first build %d", len(pair[1]), len(pair[0]))
				}
				for i, im := range pair[1] {
					for j, s := range im.Stages {
						if s.Status != stages.StatusReused || s.Digest != pair[0][i].Stages[j].Digest {
							t.Errorf("%s/%s in a clone: %s %s, want reused %s", im.Name, s.Name, s.Status, s.Digest, pair[0][i].Stages[j].Digest)
						}
					}
				}
			}
		})
	}
	if built < 12 {
		t.Errorf("%d corpus cases built, want at least 12", built)
	}
	if t.Failed() {
		return
	}
	if ran < built {
		t.Logf("%d of %d cases ran (-run): the golden file is compared on a full run", ran, built)
		return
	}
	sort.Strings(lines)
	got := strings.Join(lines, "\n") + "\n"
	if os.Getenv("STRATA_UPDATE_GOLDEN") == "1" {
		if err := os.MkdirAll(filepath.Dir(corpusGolden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(corpusGolden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(corpusGolden)
	if err != nil {
		t.Fatalf("%v (STRATA_UPDATE_GOLDEN=1 writes it)", err)
	}
	if got != string(want) {
		wantSet := map[string]bool{}
		for _, l := range strings.Split(string(want), "\n") {
			wantSet[l] = true
		}
		for _, l := range lines {
			if !wantSet[l] {
				t.Errorf("digest not in %s: %s", corpusGolden, l)
			}
		}
		t.Errorf("stage digests differ from %s (%d lines built, golden has %d): a digest input changed, or one depends on the machine", corpusGolden, len(lines), strings.Count(string(want), "\n"))
	}
}

// commitCase commits the files of c (those under remote/ in their own repository, its URL in
// place of file://REMOTE) at a fixed date by a fixed author, so commits are the same everywhere.
func commitCase(t *testing.T, c corpus.Case) string {
	t.Helper()
	project, remote := map[string]string{}, map[string]string{}
	for p, content := range c.Files {
		if rest, ok := strings.CutPrefix(p, "remote/"); ok {
			remote[rest] = content
		} else {
			project[p] = content
		}
	}
	if len(remote) > 0 {
		src := fixedCommit(t, remote)
		gitFixed(t, src, "tag", "v1.0.0")
		bare := filepath.Join(t.TempDir(), "remote.git")
		gitFixed(t, src, "clone", "-q", "--bare", src, bare)
		for p, content := range project {
			project[p] = strings.ReplaceAll(content, "file://REMOTE", "file://"+bare)
		}
	}
	return fixedCommit(t, project)
}

func fixedCommit(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	gitFixed(t, dir, "init", "-q", "-b", "main")
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(content, "#!") {
			mode = 0o755
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	gitFixed(t, dir, "add", "-A")
	gitFixed(t, dir, "commit", "-q", "-m", "corpus")
	return dir
}

func gitFixed(t *testing.T, dir string, args ...string) {
	t.Helper()
	c := exec.Command("git", args...)
	c.Dir = dir
	c.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t",
		"GIT_AUTHOR_DATE=2024-01-02T03:04:05Z", "GIT_COMMITTER_DATE=2024-01-02T03:04:05Z", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}
