package cleanup

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// loadImage loads a small random image with the given labels into the engine as ref.
func loadImage(t *testing.T, cli *client.Client, ref string, labels map[string]string) string {
	t.Helper()
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	img = withLabels(t, img, labels)
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tarball.Write(tag, img, &buf); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.ImageLoad(context.Background(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if bytes.Contains(msg, []byte(`"error`)) {
		t.Fatalf("load %s: %s", ref, msg)
	}
	insp, err := cli.ImageInspect(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = cli.ImageRemove(context.Background(), insp.ID, image.RemoveOptions{Force: true, PruneChildren: true})
	})
	return insp.ID
}

// stageImage loads a stage image as Strata pulls one: tagged with its stage tag, labelled with
// its project and content digest.
func stageImage(t *testing.T, cli *client.Client, repo, project string, built time.Time) (id, ref string) {
	t.Helper()
	d := randomDigest(t)
	ref = fmt.Sprintf("%s:%s-%d", repo, d, built.UnixMilli())
	return loadImage(t, cli, ref, map[string]string{stages.LabelProject: project, stages.LabelDigest: d}), ref
}

// buildFrom builds an image FROM base with the engine (only a LABEL: nothing runs), as a user's
// Dockerfile on top of a Strata image would: it inherits the dev.strata.* labels.
func buildFrom(t *testing.T, cli *client.Client, base, tag string) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	df := []byte("FROM " + base + "\nLABEL role=derived\n")
	if err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(df))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(df); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.ImageBuild(context.Background(), &buf, build.ImageBuildOptions{Tags: []string{tag}, Remove: true, NetworkMode: "none"})
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if bytes.Contains(msg, []byte(`"error`)) {
		t.Fatalf("build FROM %s: %s", base, msg)
	}
	insp, err := cli.ImageInspect(context.Background(), tag)
	if err != nil {
		t.Fatalf("build FROM %s: %v\n%s", base, err, msg)
	}
	t.Cleanup(func() {
		_, _ = cli.ImageRemove(context.Background(), insp.ID, image.RemoveOptions{Force: true, PruneChildren: true})
	})
	return insp.ID
}

func present(t *testing.T, cli *client.Client, id string) bool {
	t.Helper()
	_, err := cli.ImageInspect(context.Background(), id)
	if err != nil && !client.IsErrNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

// TestHostCleanupRemovesLRUOnlyUntilUnderThreshold: four unused stage images s0..s3 (s0 least
// recently used), an older one used by a container, an image built FROM s3 and one of another
// project. The disk use is a function of the images present, set so that removing s0 and s1 gets
// it under 50%: exactly those two are removed, oldest first; the dry run lists exactly those two
// from the sizes alone.
func TestHostCleanupRemovesLRUOnlyUntilUnderThreshold(t *testing.T) {
	cli := testenv.Docker(t)
	ctx := context.Background()
	project := testenv.UniqueName(t, "p")
	repo := "strata-test/" + project
	now := time.Now()
	ids := make([]string, 4)
	refs := make([]string, 4)
	for _, i := range []int{2, 0, 3, 1} { // loaded in another order than their stage times
		ids[i], refs[i] = stageImage(t, cli, repo, project, now.Add(-time.Duration(4-i)*time.Hour))
	}
	busyID, _ := stageImage(t, cli, repo, project, now.Add(-10*time.Hour))
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: busyID, Cmd: []string{"/nothing"}},
		&container.HostConfig{NetworkMode: "none"}, &network.NetworkingConfig{}, nil, testenv.UniqueName(t, "c"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true}) })
	derivedID := buildFrom(t, cli, refs[3], repo+"-derived:latest")
	otherID, _ := stageImage(t, cli, "strata-test/"+testenv.UniqueName(t, "o"), "other-"+project, now.Add(-20*time.Hour))

	imgs, err := HostImages(ctx, cli, project)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	size := map[string]uint64{}
	for _, im := range imgs {
		order = append(order, im.ID)
		size[im.ID] = uint64(im.Size)
	}
	if want := append([]string{busyID}, ids...); fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("candidates %v, want the busy image then s0..s3 %v (not the image built FROM s3 %s)", order, want, derivedID)
	}
	// used = base + the sizes of s0..s3 still present; under 50% once s0 and s1 are gone.
	var total uint64
	for _, id := range ids {
		total += 10 * size[id]
	}
	base := total/2 - size[ids[2]] - size[ids[3]] - 1
	measured := 0
	diskUse := func(context.Context) (uint64, uint64, error) {
		measured++
		used := base
		for _, id := range ids {
			if present(t, cli, id) {
				used += size[id]
			}
		}
		return used, total, nil
	}

	var out bytes.Buffer
	res, err := HostCleanup(ctx, HostOptions{Docker: cli, Project: project, Threshold: 50, DiskUse: diskUse, DryRun: true, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if got := removedIDs(res); fmt.Sprint(got) != fmt.Sprint(ids[:2]) {
		t.Errorf("dry run would remove %v, want s0, s1 %v\n%s", got, ids[:2], out.String())
	}
	if measured != 1 || res.UseAfter >= 50 || res.UseBefore < 50 {
		t.Errorf("dry run measured %d times, use %.3f%% -> %.3f%%; want 1 measure and a simulated drop under 50%%", measured, res.UseBefore, res.UseAfter)
	}
	for _, id := range ids {
		if !present(t, cli, id) {
			t.Errorf("dry run removed %s", id)
		}
	}

	out.Reset()
	res, err = HostCleanup(ctx, HostOptions{Docker: cli, Project: project, Threshold: 50, DiskUse: diskUse, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("host cleanup:\n%s", out.String())
	if got := removedIDs(res); fmt.Sprint(got) != fmt.Sprint(ids[:2]) {
		t.Errorf("removed %v, want s0, s1 %v", got, ids[:2])
	}
	for i, id := range ids {
		if present(t, cli, id) != (i >= 2) {
			t.Errorf("s%d present: %v", i, present(t, cli, id))
		}
	}
	if res.UseAfter >= 50 {
		t.Errorf("use after %.3f%%, want under 50%%", res.UseAfter)
	}

	// Threshold 0: every remaining unused stage image of the project goes; nothing else.
	if res, err = HostCleanup(ctx, HostOptions{Docker: cli, Project: project, Threshold: 0, DiskUse: diskUse, Out: &out}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for what, id := range map[string]string{"built FROM a stage": derivedID, "used by a container": busyID, "of another project": otherID} {
		if !present(t, cli, id) {
			t.Errorf("image %s removed", what)
		}
	}
	if present(t, cli, ids[2]) {
		t.Errorf("s2 still present after threshold 0")
	}
	// s3 goes too, unless the engine keeps it for the image built FROM it (classic image store).
	if present(t, cli, ids[3]) && !strings.Contains(out.String(), "kept "+short(ids[3])) {
		t.Errorf("s3 neither removed nor reported kept:\n%s", out.String())
	}
}

func removedIDs(res *HostResult) []string {
	var out []string
	for _, im := range res.Removed {
		out = append(out, im.ID)
	}
	return out
}

// An image only inheriting Strata labels (built FROM a stage, re-tagged) is not Strata-made.
func TestStrataMade(t *testing.T) {
	d := strings.Repeat("ab", 28)
	for _, c := range []struct {
		labels map[string]string
		tags   []string
		want   bool
	}{
		{map[string]string{stages.LabelDigest: d}, []string{"r/app:" + d + "-1700000000000"}, true},
		{map[string]string{stages.LabelDigest: d}, []string{"mine:latest", "r/app:" + d + "-1700000000000"}, true},
		{map[string]string{stages.LabelDigest: d}, []string{"mine:latest"}, false},
		{map[string]string{stages.LabelDigest: d}, []string{"r/app:" + strings.Repeat("cd", 28) + "-1700000000000"}, false},
		{map[string]string{stages.LabelDigest: d}, nil, false},
		{map[string]string{stages.LabelProject: "p"}, []string{"r/app:" + d + "-1700000000000"}, true},
		{map[string]string{"maintainer": "x"}, []string{"r/app:" + d + "-1700000000000"}, false},
		{map[string]string{stages.LabelDigest: d}, []string{"127.0.0.1:5000/r:" + d + "-1700000000000"}, true},
	} {
		if got := strataMade(c.labels, c.tags); got != c.want {
			t.Errorf("strataMade(%v, %v) = %v, want %v", c.labels, c.tags, got, c.want)
		}
	}
}

func TestHostCleanupThresholdRange(t *testing.T) {
	for _, th := range []float64{-1, 100.5, math.NaN()} {
		_, err := HostCleanup(context.Background(), HostOptions{Threshold: th})
		if err == nil || !strings.Contains(err.Error(), "threshold") || !strings.Contains(err.Error(), "from 0 to 100") {
			t.Errorf("threshold %v: %v", th, err)
		}
	}
}
