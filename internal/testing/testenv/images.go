package testenv

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/stages"
)

// BuildReport pushes one small random image per name to a fresh stages repository of the test
// registry, under stage-like tags, and returns the build report naming them (commit: 40 x c).
func BuildReport(t testing.TB, project string, names ...string) *stages.Report {
	t.Helper()
	ctx := context.Background()
	var ro registry.Options
	repo := Repo(t, "stages")
	rep := &stages.Report{Project: project, Repo: repo, Commit: strings.Repeat("c", 40)}
	for i, n := range names {
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		tag := fmt.Sprintf("%056x-%d", i+1, time.Now().UnixMilli())
		ref, err := ro.ParseReference(repo + ":" + tag)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, ro.Remote(ctx)...); err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		rep.Images = append(rep.Images, stages.ImageReport{Name: n, Repo: repo, Tag: tag, Ref: repo + ":" + tag, ManifestDigest: d.String()})
	}
	return rep
}
