package cleanup

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"strata.dev/strata/internal/testenv"
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

func TestHostCleanupLRUFirstOnlyStrataImagesOfTheProject(t *testing.T) {
	cli := testenv.Docker(t)
	ctx := context.Background()
	project := testenv.UniqueName(t, "p")
	other := testenv.UniqueName(t, "other")
	repo := "strata-test/" + project
	// Stage tags carry their build time: s0 is the least recently built, loaded in another order.
	ids := make([]string, 3)
	for _, i := range []int{2, 0, 1} {
		tag := fmt.Sprintf("%s:%s-%d", repo, randomDigest(t), time.Now().Add(-time.Duration(3-i)*time.Hour).UnixMilli())
		ids[i] = loadImage(t, cli, tag, map[string]string{LabelProject: project})
	}
	otherID := loadImage(t, cli, "strata-test/"+other+":s", map[string]string{LabelProject: other})
	foreignID := loadImage(t, cli, repo+":not-strata", map[string]string{"maintainer": "someone"})
	busyID := loadImage(t, cli, repo+":busy", map[string]string{LabelProject: project})
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: busyID, Cmd: []string{"/nothing"}},
		&container.HostConfig{NetworkMode: "none"}, &network.NetworkingConfig{}, nil, testenv.UniqueName(t, "c"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true}) })

	// Dry run with a threshold the disk is surely above: the order, and nothing removed.
	var out bytes.Buffer
	res, err := HostCleanup(ctx, HostOptions{Docker: cli, Project: project, Threshold: 0, DryRun: true, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, im := range res.Removed {
		order = append(order, im.ID)
	}
	if fmt.Sprint(order) != fmt.Sprint(ids) {
		t.Errorf("dry-run order %v, want least recently used first %v\n%s", order, ids, out.String())
	}
	if _, err := cli.ImageInspect(ctx, ids[0]); err != nil {
		t.Errorf("dry run removed an image: %v", err)
	}

	// A threshold above the current use removes nothing.
	res, err = HostCleanup(ctx, HostOptions{Docker: cli, Project: project, Threshold: 100.01})
	if err != nil || len(res.Removed) != 0 {
		t.Errorf("threshold 100.01: removed %d, err %v", len(res.Removed), err)
	}

	// Threshold 0: every unused Strata image of the project goes; nothing else.
	res, err = HostCleanup(ctx, HostOptions{Docker: cli, Project: project, Threshold: 0, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 3 {
		t.Errorf("removed %d images, want 3\n%s", len(res.Removed), out.String())
	}
	for _, id := range ids {
		if _, err := cli.ImageInspect(ctx, id); err == nil {
			t.Errorf("image %s still present", id)
		}
	}
	for what, id := range map[string]string{"other project": otherID, "not strata-made": foreignID, "used by a container": busyID} {
		if _, err := cli.ImageInspect(ctx, id); err != nil {
			t.Errorf("%s image removed: %v", what, err)
		}
	}
}
