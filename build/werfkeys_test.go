package build

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// werf's mount:, secrets:, network:, platform:, cacheVersion and disableGitAfterPatch on a
// stage-built image, built on the real engine: the shell stages see the mounts (tmp_dir shared by
// the stages of one build, build_dir kept between builds) and the secrets at /run/secrets/<id>;
// no layer holds a mount point or a secret, and no secret value reaches a layer, an image config,
// the report or the log. A changed secret or a new commit of a mapped file (gitLatestPatch
// disabled) reuses every stage; a new cacheVersion rebuilds them.
func TestWerfMountsSecretsNetwork(t *testing.T) {
	host := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "werfkeys")
	reg := registry.Options{}
	cacheDir := t.TempDir()
	const envSecret, plainSecret = "env-s3cr3t-91f2c", "plain-s3cr3t-77ad0"
	t.Setenv("STRATA_TEST_SECRET", envSecret)
	srcSecret := filepath.Join(t.TempDir(), "token.txt")
	if err := os.WriteFile(srcSecret, []byte("file-s3cr3t-5be31"), 0o600); err != nil {
		t.Fatal(err)
	}
	hostDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(hostDir, "data"), []byte("from the host"), 0o644); err != nil {
		t.Fatal(err)
	}
	config := func(cacheVersion string) string {
		return `project: werfkeys
configVersion: 1
---
image: app
from: ` + base + `
cacheVersion: "` + cacheVersion + `"
platform: linux/` + runtime.GOARCH + `
network: none
disableGitAfterPatch: true
git:
- add: /src
  to: /app
mount:
- from: tmp_dir
  to: /var/cache/tmp
- from: build_dir
  to: /root/.cache/b
- fromPath: ` + hostDir + `
  to: /opt/host
secrets:
- env: STRATA_TEST_SECRET
- src: ` + srcSecret + `
- id: plain
  value: ` + plainSecret + `
shell:
  install:
  - cat /run/secrets/STRATA_TEST_SECRET /run/secrets/token.txt > /var/cache/tmp/s
  - wc -c < /run/secrets/plain | tr -d ' ' > /plain-length
  - echo built >> /root/.cache/b/count
  - wc -l < /root/.cache/b/count | tr -d ' ' > /count
  - ls /sys/class/net | tr '\n' ' ' > /net
  - cat /opt/host/data > /from-host && echo written > /opt/host/out
  setup:
  - test -s /var/cache/tmp/s && echo shared > /tmp-shared
---
image: child
fromImage: app
shell:
  install:
  - wc -l < /root/.cache/b/count | tr -d ' ' > /child-count
  - test ! -e /var/cache/tmp/s && touch /var/cache/tmp/child && echo own > /child-tmp
`
	}
	g := newGitRepo(t)
	g.commit("init", map[string]string{"strata.yaml": config("1"), "src/a.txt": "one"})
	var logs, output bytes.Buffer
	ctx := context.Background()
	run := func() *stages.Report {
		t.Helper()
		rep, err := Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: host,
			CacheDir: cacheDir, Output: &output, Log: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	first := run()
	app := first.Image("app")
	fs := files(t, app.Ref, reg)
	if fs["/count"] != "1\n" || fs["/net"] != "lo " || fs["/tmp-shared"] != "shared\n" || fs["/app/a.txt"] != "one" || fs["/plain-length"] != "18\n" || fs["/from-host"] != "from the host" {
		t.Errorf("files: /count %q /net %q /tmp-shared %q /app/a.txt %q /plain-length %q", fs["/count"], fs["/net"], fs["/tmp-shared"], fs["/app/a.txt"], fs["/plain-length"])
	}
	if out, err := os.ReadFile(filepath.Join(hostDir, "out")); err != nil || string(out) != "written\n" {
		t.Errorf("fromPath on the host: %q %v", out, err)
	}
	for p := range fs {
		for _, hidden := range []string{"/run/secrets", "/var/cache/tmp/", "/root/.cache/b/", "/opt/host"} {
			if strings.HasPrefix(p, hidden) {
				t.Errorf("%s is in the image", p)
			}
		}
	}
	for _, st := range app.Stages {
		if st.Name == "install" || st.Name == "setup" {
			for p := range topLayerHeaders(t, reg, repo+":"+st.Tag) {
				if strings.HasPrefix(p, "/run") || strings.HasPrefix(p, "/var/cache/tmp") || strings.HasPrefix(p, "/root/.cache") || strings.HasPrefix(p, "/opt") {
					t.Errorf("stage %s: layer entry %s (a mount point)", st.Name, p)
				}
			}
		}
	}
	// The child built on app (fromImage) gets app's mounts, as in werf: build_dir is the
	// project's, tmp_dir its own.
	child := first.Image("child")
	cfs := files(t, child.Ref, reg)
	if cfs["/child-count"] != "1\n" || cfs["/child-tmp"] != "own\n" {
		t.Errorf("child: /child-count %q /child-tmp %q", cfs["/child-count"], cfs["/child-tmp"])
	}
	for p := range topLayerHeaders(t, reg, child.Ref) {
		if strings.HasPrefix(p, "/var/cache/tmp") || strings.HasPrefix(p, "/root/.cache") || strings.HasPrefix(p, "/run") {
			t.Errorf("child: layer entry %s (a mount point)", p)
		}
	}
	kept, err := os.ReadFile(filepath.Join(cacheDir, "mounts", "projects", slug("werfkeys"), slug("/root/.cache/b"), "count"))
	if err != nil || string(kept) != "built\n" {
		t.Errorf("build_dir on the host: %q, %v", kept, err)
	}

	// Another secret value and a new commit of a mapped file: every stage is reused (secrets
	// are no digest input; no gitLatestPatch stage).
	t.Setenv("STRATA_TEST_SECRET", "another-value")
	g.commit("change", map[string]string{"src/a.txt": "two"})
	second := run()
	if s := second.Image("child"); s.Tag != child.Tag {
		t.Errorf("second build: child tag %s, want %s", s.Tag, child.Tag)
	}
	if s := second.Image("app"); s.Tag != app.Tag {
		t.Errorf("second build: tag %s, want the first %s; stages %v", s.Tag, app.Tag, statuses(s))
	}
	for _, st := range second.Image("app").Stages {
		if st.Name == "gitLatestPatch" || st.Status != stages.StatusReused {
			t.Errorf("second build: stage %s %s", st.Name, st.Status)
		}
	}

	// A new cacheVersion rebuilds from the first stage on; build_dir kept its content.
	t.Setenv("STRATA_TEST_SECRET", envSecret)
	g.commit("cache version", map[string]string{"strata.yaml": config("2")})
	third := run()
	fs = files(t, third.Image("app").Ref, reg)
	if fs["/count"] != "2\n" || fs["/app/a.txt"] != "two" {
		t.Errorf("third build: /count %q /app/a.txt %q (stages %v)", fs["/count"], fs["/app/a.txt"], statuses(third.Image("app")))
	}

	// No secret value anywhere: layers and configs of every stored stage, the reports, the log.
	var everything bytes.Buffer
	for _, rep := range []*stages.Report{first, second, third} {
		json.NewEncoder(&everything).Encode(rep)
	}
	everything.Write(logs.Bytes())
	everything.Write(output.Bytes())
	r, err := reg.ParseRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := remoteList(ctx, reg, r)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags {
		img, err := remoteImage(ctx, reg, repo+":"+tag)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := img.RawConfigFile()
		man, _ := img.RawManifest()
		everything.Write(cfg)
		everything.Write(man)
		layers, _ := img.Layers()
		for _, l := range layers {
			rc, err := l.Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(&everything, rc)
			rc.Close()
		}
	}
	for _, secret := range []string{envSecret, plainSecret, "file-s3cr3t-5be31"} {
		if bytes.Contains(everything.Bytes(), []byte(secret)) {
			t.Errorf("secret %q found in a layer, a config, a report or the log", secret)
		}
	}
	if len(tags) < 8 {
		t.Errorf("%d stored stages scanned", len(tags))
	}
}

// platform: other than the engine's, or several, is refused with the engine's platform named.
func TestWerfPlatformRefused(t *testing.T) {
	host := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "werfplatform")
	other := "linux/s390x"
	if runtime.GOARCH == "s390x" {
		other = "linux/amd64"
	}
	for _, tc := range []struct{ platform, want string }{
		{other, "base image " + base + " is linux/" + runtime.GOARCH},
		{"[linux/amd64, linux/arm64]", "multi-platform builds are not supported"},
	} {
		g := newGitRepo(t)
		g.commit("init", map[string]string{"strata.yaml": head + "image: app\nfrom: " + base + "\nplatform: " + tc.platform + "\nshell:\n  install: [echo hi]\n"})
		_, err := Run(context.Background(), Options{Dir: g.dir, Repo: repo, Locker: fileLocker(t), DockerHost: host})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("platform %s: %v, want %q", tc.platform, err, tc.want)
		}
	}
}

// A Dockerfile image's network: and addHost: reach its build: RUN sees only the loopback
// interface with network: none, and the extra /etc/hosts entries.
func TestWerfDockerfileNetworkAddHost(t *testing.T) {
	host := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "werfdfnet")
	reg := registry.Options{}
	g := newGitRepo(t)
	g.commit("init", map[string]string{
		"strata.yaml": head + "image: web\ndockerfile: Dockerfile\nnetwork: none\naddHost: [db.internal:127.0.0.9]\n",
		"Dockerfile":  "FROM " + base + "\nRUN ls /sys/class/net | tr '\\n' ' ' > /net && grep db.internal /etc/hosts | tr -s ' \\t' ' ' > /hosts\n",
	})
	rep, err := Run(context.Background(), Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: host})
	if err != nil {
		t.Fatal(err)
	}
	fs := files(t, rep.Image("web").Ref, reg)
	if fs["/net"] != "lo " || fs["/hosts"] != "127.0.0.9 db.internal\n" {
		t.Errorf("/net %q /hosts %q", fs["/net"], fs["/hosts"])
	}
}
