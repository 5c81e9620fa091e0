package build

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// --parallel bounds how many images build at once: with --parallel 1, three independent images
// whose install stage sleeps 1 s take at least 3 s (a lower bound, robust on a loaded machine),
// and every stage is still built once.
func TestParallelCapsImagesBuilding(t *testing.T) {
	host := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "parallel")
	var cfg strings.Builder
	cfg.WriteString("project: parallel\nconfigVersion: 1\n")
	for i := range 3 {
		fmt.Fprintf(&cfg, "---\nimage: img%d\nfrom: %s\nshell:\n  install:\n  - sleep 1\n  - echo %d > /which\n", i, base, i)
	}
	g := newGitRepo(t)
	g.commit("init", map[string]string{"strata.yaml": cfg.String()})
	start := time.Now()
	rep, err := Run(context.Background(), Options{Dir: g.dir, Repo: repo, Locker: fileLocker(t), DockerHost: host, Parallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if took < 3*time.Second {
		t.Errorf("3 images with a 1 s install stage built in %v with --parallel 1: not one at a time", took)
	}
	for i := range 3 {
		im := rep.Image(fmt.Sprintf("img%d", i))
		if im == nil || statuses(im)["install"] != stages.StatusBuilt {
			t.Errorf("img%d: %+v", i, im)
		}
	}
	t.Logf("--parallel 1: 3 images in %v", took.Round(time.Millisecond))
}
