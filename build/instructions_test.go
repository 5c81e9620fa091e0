package build

import (
	"archive/tar"
	"context"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

func imageConfig(t *testing.T, reg registry.Options, ref string) v1.Config {
	t.Helper()
	img, err := remoteImage(context.Background(), reg, ref)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf.Config
}

// topLayerHeaders returns the tar headers of the last layer of an image, by path.
func topLayerHeaders(t *testing.T, reg registry.Options, ref string) map[string]*tar.Header {
	t.Helper()
	img, err := remoteImage(context.Background(), reg, ref)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil || len(ls) == 0 {
		t.Fatalf("layers of %s: %v", ref, err)
	}
	rc, err := ls[len(ls)-1].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out["/"+strings.TrimSuffix(strings.TrimPrefix(h.Name, "/"), "/")] = h
	}
}

// The docker instructions end up in the final image config, applied registry-side (no engine);
// the owner and group of git mappings end up in the layers' tar headers.
func TestDockerInstructionsAndOwnersRegistrySide(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "instr")
	reg := registry.Options{}
	baseCfg := imageConfig(t, reg, base)
	g := newGitRepo(t)
	g.commit("init", map[string]string{
		"strata.yaml": `project: instr
configVersion: 1
---
image: app
from: ` + base + `
git:
- add: /src
  to: /app
  owner: "1001"
  group: "1002"
- add: /conf
  to: /etc/app
  owner: app
  group: staff
docker:
  WORKDIR: /app
  ENV: {MODE: prod, PATH: "/app/bin:/bin"}
  USER: "1001:1002"
  ENTRYPOINT: [/bin/sh, -c]
  CMD: ["echo hi"]
  EXPOSE: ["8080", 53/udp]
  VOLUME: [/data, /cache/]
  LABEL: {team: core}
  HEALTHCHECK: {test: [CMD, /bin/true], interval: 5s, timeout: 2s, startPeriod: 1s, retries: 3}
---
image: ep
fromImage: app
docker:
  ENTRYPOINT: [/bin/true]
  LABEL: {role: ep}
`,
		"src/bin/run": "run", "conf/app.conf": "conf",
	})
	ctx := context.Background()
	o := Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: noEngine}
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	c := imageConfig(t, reg, rep.Image("app").Ref)
	if c.WorkingDir != "/app" || c.User != "1001:1002" {
		t.Errorf("WORKDIR %q USER %q", c.WorkingDir, c.User)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		k, v, _ := strings.Cut(e, "=")
		if _, dup := env[k]; dup {
			t.Errorf("ENV %s twice: %v", k, c.Env)
		}
		env[k] = v
	}
	if env["MODE"] != "prod" || env["PATH"] != "/app/bin:/bin" {
		t.Errorf("ENV = %v", c.Env)
	}
	for _, e := range baseCfg.Env {
		if k, v, _ := strings.Cut(e, "="); k != "PATH" && k != "MODE" && env[k] != v {
			t.Errorf("base ENV %s lost: %v", e, c.Env)
		}
	}
	if !reflect.DeepEqual(c.Entrypoint, []string{"/bin/sh", "-c"}) || !reflect.DeepEqual(c.Cmd, []string{"echo hi"}) {
		t.Errorf("ENTRYPOINT %q CMD %q", c.Entrypoint, c.Cmd)
	}
	if _, tcp := c.ExposedPorts["8080/tcp"]; !tcp || len(c.ExposedPorts) != len(baseCfg.ExposedPorts)+2 {
		t.Errorf("EXPOSE = %v", c.ExposedPorts)
	}
	if _, udp := c.ExposedPorts["53/udp"]; !udp {
		t.Errorf("EXPOSE = %v", c.ExposedPorts)
	}
	if _, d := c.Volumes["/data"]; !d {
		t.Errorf("VOLUME = %v", c.Volumes)
	}
	if _, d := c.Volumes["/cache"]; !d || len(c.Volumes) != len(baseCfg.Volumes)+2 {
		t.Errorf("VOLUME = %v", c.Volumes)
	}
	if c.Labels["team"] != "core" || c.Labels[stages.LabelProject] != "instr" {
		t.Errorf("LABEL = %v", c.Labels)
	}
	want := &v1.HealthConfig{Test: []string{"CMD", "/bin/true"}, Interval: 5 * time.Second, Timeout: 2 * time.Second, StartPeriod: time.Second, Retries: 3}
	if !reflect.DeepEqual(c.Healthcheck, want) {
		t.Errorf("HEALTHCHECK = %+v, want %+v", c.Healthcheck, want)
	}
	// A new ENTRYPOINT without CMD resets CMD, as docker does; the rest is inherited.
	ep := imageConfig(t, reg, rep.Image("ep").Ref)
	if !reflect.DeepEqual(ep.Entrypoint, []string{"/bin/true"}) || len(ep.Cmd) != 0 {
		t.Errorf("ep: ENTRYPOINT %q CMD %q", ep.Entrypoint, ep.Cmd)
	}
	if ep.Labels["team"] != "core" || ep.Labels["role"] != "ep" || ep.User != "1001:1002" || !reflect.DeepEqual(ep.Healthcheck, want) {
		t.Errorf("ep config did not inherit app's: labels %v user %q healthcheck %+v", ep.Labels, ep.User, ep.Healthcheck)
	}

	owners := func(what, ref string, paths map[string][4]any) {
		t.Helper()
		hs := topLayerHeaders(t, reg, ref)
		for p, w := range paths {
			h := hs[p]
			if h == nil {
				t.Errorf("%s: no %s in the layer (%d entries)", what, p, len(hs))
				continue
			}
			if got := [4]any{h.Uid, h.Gid, h.Uname, h.Gname}; got != w {
				t.Errorf("%s: %s uid/gid/uname/gname = %v, want %v", what, p, got, w)
			}
		}
	}
	num, named := [4]any{1001, 1002, "", ""}, [4]any{0, 0, "app", "staff"}
	arch := stageOf(t, rep.Image("app"), "gitArchive")
	owners("gitArchive", repo+":"+arch.Tag, map[string][4]any{"/app": num, "/app/bin": num, "/app/bin/run": num, "/etc/app": named, "/etc/app/app.conf": named})

	// The patch layer carries them too.
	g.commit("more", map[string]string{"src/bin/run": "run2", "conf/app.conf": "conf2"})
	rep2, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	patch := stageOf(t, rep2.Image("app"), "gitLatestPatch")
	owners("gitLatestPatch", repo+":"+patch.Tag, map[string][4]any{"/app/bin/run": num, "/etc/app/app.conf": named})
	if fs := files(t, rep2.Image("app").Ref, reg); fs["/app/bin/run"] != "run2" || fs["/etc/app/app.conf"] != "conf2" {
		t.Errorf("patched files: %q %q", fs["/app/bin/run"], fs["/etc/app/app.conf"])
	}
}
