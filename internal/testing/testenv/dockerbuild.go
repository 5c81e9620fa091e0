package testenv

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
)

// ContextFile is one file of a build context.
type ContextFile struct {
	Data []byte
	Mode int64
}

// BuildImage builds target of dockerfile (a name in files) on the test engine with the local
// base image as build arg BASE_IMAGE and no network, and returns the image's tag (removed when
// the test ends). The build's log is in the failure message.
func BuildImage(ctx context.Context, t testing.TB, dockerfile, target string, files map[string]ContextFile) string {
	t.Helper()
	return BuildImageFrom(ctx, t, BaseImage(t), dockerfile, target, files)
}

// BuildImageFrom is BuildImage with base (an image present in the engine) as BASE_IMAGE.
func BuildImageFrom(ctx context.Context, t testing.TB, base, dockerfile, target string, files map[string]ContextFile) string {
	t.Helper()
	cli := Docker(t)
	var buildCtx bytes.Buffer
	tw := tar.NewWriter(&buildCtx)
	for name, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: f.Mode, Size: int64(len(f.Data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	tag := "strata-test/" + UniqueName(t, target) + ":test"
	resp, err := cli.ImageBuild(ctx, &buildCtx, build.ImageBuildOptions{
		Dockerfile: dockerfile, Target: target, Tags: []string{tag},
		BuildArgs: map[string]*string{"BASE_IMAGE": &base}, NetworkMode: "none", Remove: true, ForceRemove: true,
	})
	if err != nil {
		t.Fatalf("build %s: %v", dockerfile, err)
	}
	defer resp.Body.Close()
	var log bytes.Buffer
	for dec := json.NewDecoder(resp.Body); ; {
		var msg struct{ Stream, Error string }
		if err := dec.Decode(&msg); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		log.WriteString(msg.Stream)
		if msg.Error != "" {
			t.Fatalf("build %s failed: %s\n%s", dockerfile, msg.Error, log.String())
		}
	}
	t.Cleanup(func() {
		_, _ = cli.ImageRemove(context.Background(), tag, image.RemoveOptions{Force: true, PruneChildren: true})
	})
	return tag
}
