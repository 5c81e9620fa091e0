package buildtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"strata.dev/strata/build"
	"strata.dev/strata/cleanup"
	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// TestAcceptanceStrictestCleanupKeepsHeadOfEveryImageKind builds a stapel image with git, one
// without git importing from a Dockerfile image, the Dockerfile image, an artifact and a
// stapel image with git importing from the artifact, runs cleanup with the strictest policy (only the branch
// tip, nothing kept for being recent), and builds HEAD again: every stage of every image is reused. The Dockerfile stage and
// the stages of the image without git have no git content; they are kept because every stage
// records the commit it was built for.
func TestAcceptanceStrictestCleanupKeepsHeadOfEveryImageKind(t *testing.T) {
	dockerHost := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "stages")
	ctx := context.Background()
	reg := registry.Options{}
	locker := &lock.File{Dir: t.TempDir()}
	now := time.Now().Add(3 * time.Hour)
	g := &gitRepo{t: t, dir: t.TempDir(), now: now}
	g.run(0, "init", "-q", "-b", "main")
	writeFile(t, g.dir, "strata.yaml", fmt.Sprintf(`project: %[1]s
configVersion: 1
cleanup:
  keepBuiltWithin: "0"
  branches: {last: 1}
  tags: {last: 0}
---
image: app
from: %[2]s
git:
- add: /src
  to: /app
shell:
  install:
  - cat /app/main.txt > /installed
---
image: svc
dockerfile: Dockerfile
context: svc
---
image: plain
from: %[2]s
import:
- image: svc
  add: /copied
  to: /svc-copied
  before: install
shell:
  install:
  - echo plain > /plain
---
artifact: tool
from: %[2]s
shell:
  install:
  - echo tool > /tool
---
image: imports
from: %[2]s
git:
- add: /src
  to: /app
import:
- artifact: tool
  add: /tool
  to: /usr/bin/tool
  after: install
shell:
  install:
  - cat /app/main.txt > /installed
`, testenv.UniqueName(t, "p"), base))
	writeFile(t, g.dir, "src/main.txt", "v1")
	writeFile(t, g.dir, "svc/Dockerfile", "FROM "+base+"\nCOPY data.txt /data.txt\nRUN cat /data.txt > /copied\n")
	writeFile(t, g.dir, "svc/data.txt", "d1")
	// An older commit, so the policy has something to drop.
	g.run(2*day, "add", "-A")
	g.run(2*day, "commit", "-q", "-m", "c1")
	buildHere := func(what string) *stages.Report {
		t.Helper()
		rep, err := build.Run(ctx, build.Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: locker, DockerHost: dockerHost})
		if err != nil {
			t.Fatalf("build %s: %v", what, err)
		}
		return rep
	}
	buildHere("c1")
	writeFile(t, g.dir, "src/main.txt", "v2")
	writeFile(t, g.dir, "svc/data.txt", "d2")
	g.run(day, "add", "-A")
	g.run(day, "commit", "-q", "-m", "c2")
	first := buildHere("c2")
	t.Logf("first build of HEAD: %v", statuses(first))

	res, err := cleanup.Run(ctx, cleanup.Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: locker, Now: now, Out: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Deleted) == 0 {
		t.Fatal("cleanup deleted nothing: the policy did not drop the older commit's stages")
	}

	again := buildHere("c2 after cleanup")
	kinds := map[string]bool{}
	for _, im := range append(again.Images, again.Artifacts...) {
		for _, s := range im.Stages {
			kinds[s.Name] = true
			if s.Status != stages.StatusReused {
				t.Errorf("rebuild of HEAD after cleanup: image %s stage %s is %s, want reused", im.Name, s.Name, s.Status)
			}
		}
	}
	if !kinds["dockerfile"] || !kinds["gitArchive"] || !kinds["importsBeforeInstall"] || !kinds["importsAfterInstall"] || len(again.Artifacts) != 1 {
		t.Errorf("stages %v: want a Dockerfile stage, a git stage, both import stages and an artifact", statuses(again))
	}
}
