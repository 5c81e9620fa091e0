package build

import (
	"context"
	"strings"
	"testing"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// werf's dependencies on the real engine and registry: a stage-built image gets another image's
// name, tag, repository, manifest digest and image ID as env from its dependenciesBeforeInstall
// stage (its install command sees them, and so does the image); a Dockerfile image gets the
// name as a build arg and builds FROM it. Building one image builds its dependency first; a
// second build reuses everything without the engine; a change of the dependency rebuilds the
// dependency stage and what follows, not the stages before it.
func TestWerfDependencies(t *testing.T) {
	host := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "werfdeps")
	reg := registry.Options{}
	config := func(v string) string {
		return `project: deps
configVersion: 1
---
image: base
from: ` + base + `
docker:
  LABEL: {v: "` + v + `"}
---
image: app
from: ` + base + `
dependencies:
- image: base
  before: install
  imports:
  - {type: ImageName, targetEnv: BASE_NAME}
  - {type: ImageTag, targetEnv: BASE_TAG}
  - {type: ImageRepo, targetEnv: BASE_REPO}
  - {type: ImageDigest, targetEnv: BASE_DIGEST}
  - {type: ImageID, targetEnv: BASE_ID}
shell:
  beforeInstall: [echo before > /before]
  install: ["env | grep ^BASE_ | sort > /deps"]
---
image: web
dockerfile: Dockerfile
dependencies:
- image: base
  imports:
  - {type: ImageName, targetBuildArg: BASE}
`
	}
	g := newGitRepo(t)
	g.commit("init", map[string]string{"strata.yaml": config("1"), "Dockerfile": "ARG BASE\nFROM $BASE\nARG BASE\nRUN echo $BASE > /base\n"})
	ctx := context.Background()
	run := func(dockerHost string, images ...string) *stages.Report {
		t.Helper()
		rep, err := Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: dockerHost, Images: images})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	check := func(rep *stages.Report) {
		t.Helper()
		b, app := rep.Image("base"), rep.Image("app")
		img, err := remoteImage(ctx, reg, b.Ref)
		if err != nil {
			t.Fatal(err)
		}
		id, err := img.ConfigName()
		if err != nil {
			t.Fatal(err)
		}
		want := "BASE_DIGEST=" + b.ManifestDigest + "\nBASE_ID=" + id.String() + "\nBASE_NAME=" + b.Ref + "\nBASE_REPO=" + repo + "\nBASE_TAG=" + b.Tag + "\n"
		if got := files(t, app.Ref, reg)["/deps"]; got != want {
			t.Errorf("app /deps:\n%s\nwant:\n%s", got, want)
		}
		env := strings.Join(imageConfig(t, reg, app.Ref).Env, "\n")
		if !strings.Contains(env, "BASE_NAME="+b.Ref) || !strings.Contains(env, "BASE_ID="+id.String()) {
			t.Errorf("app env %s", env)
		}
		web := rep.Image("web")
		if fs := files(t, web.Ref, reg); fs["/base"] != b.Ref+"\n" {
			t.Errorf("web /base %q, want %q", fs["/base"], b.Ref)
		}
	}
	// Only app and web asked for: base is built first.
	first := run(host, "app", "web")
	if first.Image("base") == nil {
		t.Fatalf("base not built: %+v", first.Images)
	}
	names := map[string]bool{}
	for _, st := range first.Image("app").Stages {
		names[st.Name] = true
	}
	if !names["dependenciesBeforeInstall"] {
		t.Errorf("app stages %v", first.Image("app").Stages)
	}
	check(first)

	second := run(noEngine)
	for _, im := range second.Images {
		for _, st := range im.Stages {
			if st.Status != stages.StatusReused {
				t.Errorf("second build: %s %s %s", im.Name, st.Name, st.Status)
			}
		}
	}

	g.commit("base v2", map[string]string{"strata.yaml": config("2")})
	third := run(host)
	for _, st := range third.Image("app").Stages {
		want := stages.StatusBuilt
		if st.Name == "from" || st.Name == "beforeInstall" {
			want = stages.StatusReused
		}
		if st.Status != want {
			t.Errorf("after the dependency changed: app %s %s, want %s", st.Name, st.Status, want)
		}
	}
	if st := third.Image("web").Stages[0]; st.Status != stages.StatusBuilt {
		t.Errorf("after the dependency changed: web %s %s", st.Name, st.Status)
	}
	check(third)
}
