package build

import (
	"context"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// werf's imageSpec (merged with build.imageSpec) is the last stage, applied to the image config
// registry-side: no engine for a stage-built image. Label templates give each image of an
// `image: [a, b]` document its own imageSpec stage on shared stages; changing only the spec
// rebuilds only that stage. A Dockerfile image gets the stage after its build.
func TestWerfImageSpec(t *testing.T) {
	host := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "imagespec")
	reg := registry.Options{}
	config := func(author string) string {
		return `project: spec
configVersion: 1
build:
  imageSpec:
    author: ` + author + `
    config:
      labels: {team: core}
---
image: [a, b]
from: ` + base + `
docker:
  ENV: {KEEP: "1", DEBUG_X: "1", PATHX: /x}
  LABEL: {maintainer: me, org.opencontainers.image.title: t, werf-stage: x, other: kept}
  VOLUME: [/data]
  CMD: [old]
  USER: "1000"
imageSpec:
  clearHistory: true
  config:
    clearWerfLabels: true
    removeLabels: [maintainer, "/^org\\.opencontainers\\./", "/^dev\\.strata\\./"]
    removeVolumes: [/data]
    removeEnv: ["/^DEBUG_/"]
    volumes: [/cache]
    expose: ["8080"]
    entrypoint: [/bin/sh, -c]
    labels: {built-for: "%image%-%project%"}
    env: {MODE: prod, P2: "${PATHX}/bin"}
    workingDir: /srv
    stopSignal: SIGTERM
    clearUser: true
    healthcheck: {test: [CMD, "true"], interval: 30, retries: 2}
---
image: df
dockerfile: Dockerfile
imageSpec:
  config:
    removeLabels: [drop]
    cmd: [echo, hi]
`
	}
	g := newGitRepo(t)
	g.commit("init", map[string]string{"strata.yaml": config("Platform Team"), "Dockerfile": "FROM " + base + "\nLABEL drop=1 keep=1\n"})
	ctx := context.Background()
	run := func(dockerHost string) *stages.Report {
		t.Helper()
		rep, err := Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: dockerHost})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	first := run(host)
	for _, name := range []string{"a", "b"} {
		im := first.Image(name)
		if st := im.Stages[len(im.Stages)-1]; st.Name != "imageSpec" {
			t.Fatalf("%s: last stage %s", name, st.Name)
		}
		img, err := remoteImage(ctx, reg, im.Ref)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		c := cf.Config
		if cf.Author != "Platform Team" || len(cf.History) != 0 {
			t.Errorf("%s: author %q, %d history entries", name, cf.Author, len(cf.History))
		}
		if c.Labels["team"] != "core" || c.Labels["built-for"] != name+"-spec" || c.Labels["other"] != "kept" ||
			c.Labels["maintainer"] != "" || c.Labels["org.opencontainers.image.title"] != "" || c.Labels["werf-stage"] != "" ||
			c.Labels[stages.LabelDigest] != im.Stages[len(im.Stages)-1].Digest {
			t.Errorf("%s: labels %v", name, c.Labels)
		}
		env := append([]string(nil), c.Env...)
		sort.Strings(env)
		for _, want := range []string{"KEEP=1", "MODE=prod", "P2=/x/bin", "PATHX=/x"} {
			if !strings.Contains(strings.Join(env, "\n")+"\n", want+"\n") {
				t.Errorf("%s: env %v, want %s", name, env, want)
			}
		}
		if strings.Contains(strings.Join(env, " "), "DEBUG_X") {
			t.Errorf("%s: env %v keeps DEBUG_X", name, env)
		}
		if !reflect.DeepEqual(c.Volumes, map[string]struct{}{"/cache": {}}) || !reflect.DeepEqual(c.ExposedPorts, map[string]struct{}{"8080/tcp": {}}) {
			t.Errorf("%s: volumes %v ports %v", name, c.Volumes, c.ExposedPorts)
		}
		if !reflect.DeepEqual([]string(c.Entrypoint), []string{"/bin/sh", "-c"}) || c.Cmd != nil || c.WorkingDir != "/srv" || c.StopSignal != "SIGTERM" || c.User != "" {
			t.Errorf("%s: entrypoint %q cmd %q workdir %q stop %q user %q", name, c.Entrypoint, c.Cmd, c.WorkingDir, c.StopSignal, c.User)
		}
		if h := c.Healthcheck; h == nil || h.Interval != 30*time.Second || h.Retries != 2 || !reflect.DeepEqual(h.Test, []string{"CMD", "true"}) {
			t.Errorf("%s: healthcheck %+v", name, h)
		}
	}
	a, b := first.Image("a"), first.Image("b")
	if a.Stages[0].Digest != b.Stages[0].Digest || a.Tag == b.Tag {
		t.Errorf("a and b: first stages %s %s, final tags %s %s (want shared stages, own imageSpec)", a.Stages[0].Digest, b.Stages[0].Digest, a.Tag, b.Tag)
	}
	df := first.Image("df")
	if names := []string{df.Stages[0].Name, df.Stages[len(df.Stages)-1].Name}; names[0] != "dockerfile" || names[1] != "imageSpec" {
		t.Errorf("df stages %v", df.Stages)
	}
	if c := imageConfig(t, reg, df.Ref); c.Labels["drop"] != "" || c.Labels["keep"] != "1" || !reflect.DeepEqual([]string(c.Cmd), []string{"echo", "hi"}) {
		t.Errorf("df: labels %v cmd %q", c.Labels, c.Cmd)
	}

	// Only build.imageSpec's author changes: the imageSpec stages are rebuilt registry-side, every
	// other stage (the Dockerfile's too) is reused, without an engine.
	g.commit("author", map[string]string{"strata.yaml": config("Another Team")})
	second := run(noEngine)
	for _, name := range []string{"a", "b", "df"} {
		for _, st := range second.Image(name).Stages {
			want := stages.StatusReused
			if st.Name == "imageSpec" {
				want = stages.StatusBuilt
			}
			if st.Status != want {
				t.Errorf("%s: stage %s %s, want %s", name, st.Name, st.Status, want)
			}
		}
	}
	if cf, err := mustConfigFile(ctx, reg, second.Image("df").Ref); err != nil || cf.Author != "Another Team" {
		t.Errorf("df author after the change: %v %v", cf, err)
	}
}

func mustConfigFile(ctx context.Context, reg registry.Options, ref string) (*v1.ConfigFile, error) {
	img, err := remoteImage(ctx, reg, ref)
	if err != nil {
		return nil, err
	}
	return img.ConfigFile()
}
