package testenv_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/versions"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"strata.dev/strata/internal/testing/testenv"
)

// A container from the busybox base image runs through the Docker Go client (negotiated API).
func TestDockerRunsBaseImage(t *testing.T) {
	cli := testenv.Docker(t)
	img := testenv.BaseImage(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Negotiation: the client speaks the server's API version, capped at its own maximum.
	sv, err := cli.ServerVersion(ctx)
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	want := sv.APIVersion
	if versions.LessThan(api.DefaultVersion, want) {
		want = api.DefaultVersion
	}
	if got := cli.ClientVersion(); got != want || versions.GreaterThan(got, api.DefaultVersion) {
		t.Fatalf("client API version %q, want %q (server %s, client max %s)", got, want, sv.APIVersion, api.DefaultVersion)
	}
	if versions.LessThan(cli.ClientVersion(), sv.MinAPIVersion) {
		t.Fatalf("client API version %s below the server's minimum %s", cli.ClientVersion(), sv.MinAPIVersion)
	}
	t.Logf("negotiated API %s (server %s, min %s; client max %s)", cli.ClientVersion(), sv.APIVersion, sv.MinAPIVersion, api.DefaultVersion)
	created, err := cli.ContainerCreate(ctx, &container.Config{
		Image: img,
		Cmd:   []string{"sh", "-ec", "echo hello-from-$(uname -s); id -u"},
	}, &container.HostConfig{NetworkMode: "none"}, nil, nil, "")
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	defer cli.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start: %v", err)
	}
	waitC, errC := cli.ContainerWait(ctx, created.ID, container.WaitConditionNotRunning)
	select {
	case w := <-waitC:
		if w.StatusCode != 0 {
			t.Fatalf("exit code %d", w.StatusCode)
		}
	case err := <-errC:
		t.Fatalf("wait: %v", err)
	}
	logs, err := cli.ContainerLogs(ctx, created.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatalf("logs: %v", err)
	}
	defer logs.Close()
	var out, errOut bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &errOut, logs); err != nil {
		t.Fatalf("read logs: %v", err)
	}
	if got, want := out.String(), "hello-from-Linux\n0\n"; got != want {
		t.Fatalf("stdout = %q, want %q (stderr %q)", got, want, errOut.String())
	}
}

// An image pushed with go-containerregistry pulls back with the same digest and layers.
func TestRegistryPushPull(t *testing.T) {
	repo := testenv.Repo(t, "smoke")
	ref, err := name.ParseReference(repo+":v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.Annotations(img, map[string]string{"dev.strata.test": t.Name()}).(v1.Image)
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push: %v", err)
	}
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	wantDigest, _ := img.Digest()
	gotDigest, err := got.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if gotDigest != wantDigest {
		t.Fatalf("digest %s, want %s", gotDigest, wantDigest)
	}
	layers, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 2 {
		t.Fatalf("%d layers, want 2", len(layers))
	}
	m, err := got.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Annotations["dev.strata.test"] != t.Name() {
		t.Fatalf("annotations = %v", m.Annotations)
	}
}

// An update carrying a stale resourceVersion is refused with 409 Conflict.
func TestKubeStaleUpdateConflicts(t *testing.T) {
	cs := testenv.Kube(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := "default"
	cm, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: testenv.UniqueName(t, "cm")},
		Data:       map[string]string{"v": "1"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	defer cs.CoreV1().ConfigMaps(ns).Delete(context.Background(), cm.Name, metav1.DeleteOptions{})

	first := cm.DeepCopy()
	first.Data["v"] = "2"
	if _, err := cs.CoreV1().ConfigMaps(ns).Update(ctx, first, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("first update: %v", err)
	}
	stale := cm.DeepCopy() // still carries the old resourceVersion
	stale.Data["v"] = "3"
	_, err = cs.CoreV1().ConfigMaps(ns).Update(ctx, stale, metav1.UpdateOptions{})
	var status apierrors.APIStatus
	if !apierrors.IsConflict(err) || !errors.As(err, &status) || status.Status().Code != 409 {
		t.Fatalf("stale update: err = %v, want 409 Conflict", err)
	}
	now, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, cm.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if now.Data["v"] != "2" {
		t.Fatalf("value after conflict = %q, want 2", now.Data["v"])
	}
	if !strings.Contains(fmt.Sprint(err), "modified") {
		t.Logf("conflict message: %v", err)
	}
}
