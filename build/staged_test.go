package build

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// stagedCorpus are Dockerfiles a staged build must turn into the image `docker build` makes:
// the same files (type, mode, owner, content) and the same config.
var stagedCorpus = []struct {
	name, df, target string
	args             map[string]string
	files            map[string]string
}{
	{name: "config instructions", df: `FROM {{BASE}}
ARG GREETING=hello
ENV APP_HOME=/srv/app PATH=/srv/app/bin:$PATH
ENV MSG="$GREETING world"
LABEL org.example.name="demo app" version=1
WORKDIR $APP_HOME
WORKDIR sub
USER 1000:1000
EXPOSE 8080 9000-9001/udp
VOLUME /data
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --timeout=2s --retries=3 CMD cat /etc/passwd
SHELL ["/bin/sh", "-ec"]
CMD echo "$MSG"
ONBUILD RUN echo triggered
MAINTAINER someone
`},
	{name: "entrypoint resets an inherited cmd", df: "FROM {{BASE}}\nENTRYPOINT [\"/bin/echo\"]\n"},
	{name: "entrypoint keeps the stage's cmd", df: "FROM {{BASE}}\nCMD [\"a\"]\nENTRYPOINT /bin/echo x\n"},
	{name: "copy semantics", files: map[string]string{
		"a.txt": "a", "b.txt": "b", "c.md": "c", "dir/x.txt": "x", "dir/sub/y.txt": "y", "tool.sh": "#!/bin/sh\n",
		"ignored.log": "no", ".dockerignore": "*.log\n.git\n",
	}, df: `FROM {{BASE}}
RUN echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1001:' >> /etc/group
COPY a.txt /etc/conf.txt
COPY a.txt /new/parents/
COPY *.txt /data/
COPY a.txt c.md /multi/
COPY dir /opt/dir
COPY --chown=app:app dir/ /owned/deep/dir/
COPY --chown=1234 a.txt /chowned/file.txt
COPY --chown=app tool.sh /usr/local/bin/
COPY dir/sub tmp
WORKDIR /w
COPY . ctx/
COPY a.txt .
RUN stat -c '%a %u %g %n' /w /owned /owned/deep /chowned /new /data > /listing
`},
	{name: "multi-stage", target: "final", args: map[string]string{"V": "2"}, files: map[string]string{"src/main.txt": "main"}, df: `ARG BASE_REF={{BASE}}
FROM ${BASE_REF} AS builder
ARG V=1
COPY src /src
RUN mkdir -p /out/bin && echo "built $V" > /out/bin/app && chmod 0750 /out/bin/app && chown 123:456 /out/bin/app && cat /src/main.txt >> /out/bin/app
FROM builder AS tested
RUN cat /out/bin/app > /tested
FROM {{BASE}} AS unused
RUN echo unused > /unused
FROM {{BASE}} AS final
ENV V=env
COPY --from=builder /out/bin /app/bin
COPY --from=tested /tested /tested
COPY --from=0 /out/bin/app /single
CMD ["/app/bin/app"]
`},
	{name: "workdir of a user", df: `FROM {{BASE}}
RUN mkdir -p /home/u && chown 1000:1000 /home/u && chmod 0700 /home/u
WORKDIR /home/u
WORKDIR /tmp
WORKDIR /var/lib/new/dir
RUN pwd > /where
`},
}

func TestStagedDockerfileEqualsDockerBuild(t *testing.T) {
	host := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	reg := registry.Options{}
	for _, tc := range stagedCorpus {
		t.Run(tc.name, func(t *testing.T) {
			repo := testenv.Repo(t, "staged")
			g := newGitRepo(t)
			// docker build reads the work tree: .git stays out of its context as of Strata's.
			files := map[string]string{"Dockerfile": strings.ReplaceAll(tc.df, "{{BASE}}", base), ".dockerignore": ".git\n"}
			for k, v := range tc.files {
				files[k] = v
			}
			cfg := "project: staged\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\nstaged: true\n"
			if tc.target != "" {
				cfg += "target: " + tc.target + "\n"
			}
			if len(tc.args) > 0 {
				cfg += "args:\n"
				for k, v := range tc.args {
					cfg += "  " + k + ": " + v + "\n"
				}
			}
			files["strata.yaml"] = cfg
			g.write(files)
			if err := os.Chmod(filepath.Join(g.dir, "tool.sh"), 0o755); err != nil && tc.files["tool.sh"] != "" {
				t.Fatal(err)
			}
			g.git("add", "-A")
			g.git("commit", "-q", "-m", "init")

			rep, err := Run(context.Background(), Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: host, Network: "none"})
			if err != nil {
				t.Fatal(err)
			}
			im := rep.Image("app")
			for _, s := range im.Stages {
				if s.Name == "dockerfile" {
					t.Fatalf("built as one stage: %+v", im.Stages)
				}
			}
			got, err := remoteImage(context.Background(), reg, im.Ref)
			if err != nil {
				t.Fatal(err)
			}
			want := dockerBuilt(t, host, g.dir, tc.target, tc.args)
			compareImages(t, got, want)
		})
	}
}

// dockerBuilt builds dir with `docker build` (the engine's builder, no BuildKit) and reads the image.
func dockerBuilt(t *testing.T, host, dir, target string, args map[string]string) v1.Image {
	t.Helper()
	argv := []string{"-H", host, "build", "-q", "--network", "none"}
	if target != "" {
		argv = append(argv, "--target", target)
	}
	for k, v := range args {
		argv = append(argv, "--build-arg", k+"="+v)
	}
	c := exec.Command("docker", append(argv, ".")...)
	c.Dir = dir
	c.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	var stderr strings.Builder
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("docker build: %v\n%s%s", err, out, stderr.String())
	}
	lines := strings.Fields(string(out))
	id := lines[len(lines)-1]
	t.Cleanup(func() { exec.Command("docker", "-H", host, "rmi", "-f", id).Run() })
	f := filepath.Join(t.TempDir(), "image.tar")
	if out, err := exec.Command("docker", "-H", host, "save", "-o", f, id).CombinedOutput(); err != nil {
		t.Fatalf("docker save: %v\n%s", err, out)
	}
	img, err := tarball.ImageFromPath(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// compareImages compares the flattened file systems (type, mode, owner, content; not times) and
// the config fields a Dockerfile sets; Strata's own labels are left out.
func compareImages(t *testing.T, got, want v1.Image) {
	t.Helper()
	g, w := fsSummary(t, got), fsSummary(t, want)
	var diffs []string
	for p, x := range w {
		if g[p] != x {
			diffs = append(diffs, fmt.Sprintf("%s: strata %q, docker %q", p, g[p], x))
		}
	}
	for p, x := range g {
		if _, ok := w[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: strata %q, docker has none", p, x))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("file systems differ:\n%s", strings.Join(diffs, "\n"))
	}
	gc, err := got.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	wc, err := want.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	for k := range gc.Config.Labels {
		if strings.HasPrefix(k, stages.LabelPrefix) {
			delete(gc.Config.Labels, k)
		}
	}
	if len(gc.Config.Labels) == 0 {
		gc.Config.Labels = nil
	}
	if len(wc.Config.Labels) == 0 {
		wc.Config.Labels = nil
	}
	pick := func(c v1.Config) map[string]any {
		return map[string]any{"Env": c.Env, "Cmd": c.Cmd, "Entrypoint": c.Entrypoint, "WorkingDir": c.WorkingDir, "User": c.User,
			"Labels": c.Labels, "ExposedPorts": c.ExposedPorts, "Volumes": c.Volumes, "Shell": c.Shell, "StopSignal": c.StopSignal,
			"Healthcheck": c.Healthcheck, "OnBuild": c.OnBuild}
	}
	gp, wp := pick(gc.Config), pick(wc.Config)
	for k := range wp {
		if !reflect.DeepEqual(gp[k], wp[k]) {
			t.Errorf("config %s: strata %#v, docker %#v", k, gp[k], wp[k])
		}
	}
	if gc.Author != wc.Author {
		t.Errorf("author: strata %q, docker %q", gc.Author, wc.Author)
	}
}

// fsSummary flattens an image: path -> type, mode, owner and content digest or link target.
func fsSummary(t *testing.T, img v1.Image) map[string]string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	out := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		p := "/" + strings.Trim(filepath.Clean("/"+h.Name), "/")
		s := fmt.Sprintf("%c %o %d:%d", h.Typeflag, h.Mode&0o7777, h.Uid, h.Gid)
		switch h.Typeflag {
		case tar.TypeReg:
			sum := sha256.New()
			io.Copy(sum, tr)
			s += " " + hex.EncodeToString(sum.Sum(nil))[:12]
		case tar.TypeSymlink, tar.TypeLink:
			s += " -> " + h.Linkname
		}
		out[p] = s
	}
}

// A staged Dockerfile with the usual layout (dependencies installed by a RUN, the sources
// copied late): a commit changing only a source file rebuilds the COPY stage and those after it
// registry-side, with no engine reachable; a change of the dependency list runs the RUN again.
func TestStagedSourceChangeNeedsNoEngine(t *testing.T) {
	host := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "staged-src")
	reg := registry.Options{}
	g := newGitRepo(t)
	g.commit("init", map[string]string{
		"strata.yaml":   "project: stagedsrc\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\nstaged: true\n",
		".dockerignore": ".git\nREADME.md\n",
		"Dockerfile": "FROM " + base + "\nWORKDIR /app\nCOPY deps.txt .\nRUN cat deps.txt > /installed && echo ran >> /installed\n" +
			"COPY . .\nENV MODE=prod\nCMD [\"cat\", \"/app/main.txt\"]\n",
		"deps.txt": "dep-a\n", "main.txt": "v1",
	})
	locker := fileLocker(t)
	run := func(dockerHost string) *stages.ImageReport {
		t.Helper()
		rep, err := Run(context.Background(), Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: locker, DockerHost: dockerHost, Network: "none"})
		if err != nil {
			t.Fatal(err)
		}
		return rep.Image("app")
	}
	first := run(host)
	if len(first.Stages) != 7 {
		t.Fatalf("stages: %s", stageLine(first))
	}
	for _, st := range first.Stages {
		if st.Status != stages.StatusBuilt {
			t.Fatalf("first build: %s", stageLine(first))
		}
	}

	g.commit("source", map[string]string{"main.txt": "v2"})
	src := run(noEngine)
	want := "Dockerfile:1 FROM=reused Dockerfile:2 WORKDIR=reused Dockerfile:3 COPY=reused Dockerfile:4 RUN=reused " +
		"Dockerfile:5 COPY=built Dockerfile:6 ENV=built Dockerfile:7 CMD=built"
	if got := stageLine(src); got != want {
		t.Fatalf("source change:\n got %s\nwant %s", got, want)
	}
	fs := files(t, src.Ref, reg)
	if fs["/app/main.txt"] != "v2" || fs["/installed"] != "dep-a\nran\n" {
		t.Errorf("after the source change: main.txt %q, installed %q", fs["/app/main.txt"], fs["/installed"])
	}

	// Only an ignored file changed: every stage reused, no engine.
	g.commit("readme", map[string]string{"README.md": "r"})
	if got := run(noEngine); got.Ref != src.Ref {
		t.Errorf("idle rebuild: %s, want %s", stageLine(got), src.Ref)
	}

	g.commit("deps", map[string]string{"deps.txt": "dep-b\n"})
	if _, err := Run(context.Background(), Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: locker, DockerHost: noEngine, Network: "none"}); err == nil || !strings.Contains(err.Error(), "RUN") {
		t.Fatalf("deps change without an engine: %v, want the RUN stage to need it", err)
	}
	deps := run(host)
	if fs := files(t, deps.Ref, reg); fs["/installed"] != "dep-b\nran\n" || fs["/app/main.txt"] != "v2" {
		t.Errorf("after the deps change: %q %q", fs["/installed"], fs["/app/main.txt"])
	}
}

// Constructs a staged build does not do fall back to one engine-built stage, with the reason
// (file:line); the rest are parsed into a plan.
func TestPlanStaged(t *testing.T) {
	for _, tc := range []struct{ name, df, why string }{
		{"run mount", "FROM b\nRUN --mount=type=cache,target=/c true\n", "Dockerfile:2: RUN --mount"},
		{"add url", "FROM b\nADD https://example.com/x /x\n", "Dockerfile:2: ADD of a URL"},
		{"add archive", "FROM b\nADD x.tar.gz /x\n", "Dockerfile:2: ADD of a local archive"},
		{"chmod", "FROM b\nCOPY --chmod=600 a /a\n", "Dockerfile:2: COPY --chmod"},
		{"heredoc", "FROM b\nRUN <<EOF\necho hi\nEOF\n", "Dockerfile:2: RUN with a here-document"},
		{"base env in source", "FROM b\nCOPY $HOME/x /x\n", "Dockerfile:2: source $HOME/x uses a variable of the base image"},
		{"unused stage is not checked", "FROM b AS other\nRUN --mount=type=cache,target=/c true\nFROM b\nCOPY a /a\n", ""},
		{"onbuild base stage", "FROM b AS base\nONBUILD RUN true\nFROM base\n", "Dockerfile:3: FROM base, a stage with ONBUILD"},
		{"other frontend", "# syntax=example.com/fe\nFROM b\n", "Dockerfile:1: # syntax=example.com/fe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, why, err := planStaged([]byte(tc.df), "Dockerfile", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(why, tc.why) || (tc.why == "") != (why == "") {
				t.Errorf("why %q, want %q", why, tc.why)
			}
			if why == "" && p == nil {
				t.Error("no plan")
			}
		})
	}
	if _, _, err := planStaged([]byte("FROM b\nCOPY\n"), "svc/Dockerfile", "", nil); err == nil || !strings.Contains(err.Error(), "svc/Dockerfile") || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("parse error %v, want the file and line", err)
	}
}

// An idle rebuild makes one request to the stages storage: the tags listing. What else it needs per stage (the commit
// labels of git stages for the ancestor check, the final manifest digests) never changes for a
// tag, and comes from the tag cache the first build filled.
func TestIdleRebuildListsTagsOnly(t *testing.T) {
	host := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "idle")
	cnt := &counter{}
	reg := registry.Options{Transport: cnt}
	g := newGitRepo(t)
	g.commit("init", map[string]string{
		"strata.yaml": "project: idle\nconfigVersion: 1\n---\nimage: api\nfrom: " + base + "\ngit:\n- add: /api\n  to: /app\n  stageDependencies:\n    install: [deps.txt]\n" +
			"shell:\n  install: [cat /app/deps.txt > /installed]\ndocker:\n  CMD: [cat, /app/main.txt]\n" +
			"---\nimage: web\ndockerfile: web/Dockerfile\nstaged: true\n",
		"api/deps.txt": "d", "api/main.txt": "m",
		"web/Dockerfile": "FROM " + base + "\nWORKDIR /web\nCOPY web/ .\nRUN cat index.html > /built\nCMD [\"cat\", \"/built\"]\n",
		"web/index.html": "<p>hi</p>",
	})
	o := Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: host, CacheDir: t.TempDir()}
	first, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	g.commit("api source", map[string]string{"api/main.txt": "m2"})
	o.DockerHost = noEngine
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	cnt.reset()
	idle, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	lists, _ := cnt.listings()
	var other []string
	for _, p := range cnt.paths {
		// The registry ping (GET /v2/: go-containerregistry learns the auth scheme once, trying
		// https and http at once for a plain-HTTP registry) is per registry, not per stage.
		if p != "GET /v2/" && !strings.HasSuffix(p, "/tags/list") {
			other = append(other, p)
		}
	}
	if len(other) > 0 || len(lists) != 1 || lists[strings.TrimPrefix(repo, testenv.Registry(t)+"/")] != 1 {
		t.Errorf("idle rebuild: %d requests, listings %v, requests %q; want the one tags listing", cnt.all, lists, cnt.paths)
	}
	if w := idle.Image("web"); w.Ref != first.Image("web").Ref {
		t.Errorf("web: %s, first %s", w.Ref, first.Image("web").Ref)
	}
	for _, im := range idle.Images {
		if im.ManifestDigest == "" {
			t.Errorf("%s: no manifest digest", im.Name)
		}
		for _, s := range im.Stages {
			if s.Status != stages.StatusReused {
				t.Errorf("%s/%s: %s", im.Name, s.Name, s.Status)
			}
		}
	}

	// The idle rebuild's git processes: the dirty check and HEAD, and for api's git stages
	// (stored at the first commit) the ancestry check and the diff from there to HEAD. HEAD's
	// file listing (which also says where the config is) and the config and Dockerfile contents
	// come from the object cache the builds before filled: no ls-tree, no cat-file.
	gitLog := filepath.Join(t.TempDir(), "git.log")
	realGit, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	shim := t.TempDir()
	if err := os.WriteFile(filepath.Join(shim, "git"), []byte("#!/bin/sh\necho \"$*\" >> "+gitLog+"\nexec "+realGit+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := os.Getenv("PATH")
	t.Setenv("PATH", shim+string(os.PathListSeparator)+path)
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", path)
	calls, err := os.ReadFile(gitLog)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(calls)), "\n")
	if len(lines) > 4 || strings.Contains(string(calls), "ls-tree") || strings.Contains(string(calls), "cat-file") {
		t.Errorf("idle rebuild ran %d git processes, want at most 4 (status, rev-parse, merge-base, diff-tree), no ls-tree or cat-file:\n%s", len(lines), calls)
	}

	// Without the cache (another runner), the same answers come from the registry.
	warm := len(cnt.paths)
	cnt.reset()
	o.CacheDir = t.TempDir() // an empty cache
	cold, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range cold.Images {
		if d := idle.Image(im.Name).ManifestDigest; im.ManifestDigest != d {
			t.Errorf("%s: manifest digest %s without the cache, %s with it", im.Name, im.ManifestDigest, d)
		}
	}
	t.Logf("idle rebuild: %d requests with the tag cache, %d without", warm, cnt.all)
}

// A staged image takes cacheVersion (into its FROM stage's digest, so every stage is rebuilt
// when it changes) and dependencies (as build args: the stages using the ARG are rebuilt when
// the dependency changes, the ones before it are not).
func TestStagedCacheVersionAndDependencies(t *testing.T) {
	host := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "staged-deps")
	reg := registry.Options{}
	g := newGitRepo(t)
	cfg := func(cacheVersion string) string {
		return "project: stageddeps\nconfigVersion: 1\n---\nimage: lib\ndockerfile: lib.Dockerfile\nstaged: true\n---\n" +
			"image: app\ndockerfile: Dockerfile\nstaged: true\ncacheVersion: \"" + cacheVersion + "\"\n" +
			"dependencies:\n- image: lib\n  imports:\n  - {type: ImageName, targetBuildArg: LIB_IMAGE}\n"
	}
	g.commit("init", map[string]string{
		"strata.yaml":    cfg("1"),
		"lib.Dockerfile": "FROM " + base + "\nCOPY lib.txt /lib.txt\n",
		"lib.txt":        "lib v1",
		"Dockerfile":     "FROM " + base + "\nCOPY main.txt /main.txt\nARG LIB_IMAGE\nRUN echo \"$LIB_IMAGE\" > /lib-image\n",
		"main.txt":       "main",
	})
	locker := fileLocker(t)
	run := func() *stages.Report {
		t.Helper()
		rep, err := Run(context.Background(), Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: locker, DockerHost: host, Network: "none"})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	first := run()
	lib, app := first.Image("lib"), first.Image("app")
	if fs := files(t, app.Ref, reg); strings.TrimSpace(fs["/lib-image"]) != lib.Ref {
		t.Fatalf("/lib-image = %q, want the dependency's reference %s", fs["/lib-image"], lib.Ref)
	}

	g.commit("lib", map[string]string{"lib.txt": "lib v2"})
	second := run()
	lib2, app2 := second.Image("lib"), second.Image("app")
	if lib2.Ref == lib.Ref {
		t.Fatalf("lib not rebuilt: %s", stageLine(lib2))
	}
	want := "Dockerfile:1 FROM=reused Dockerfile:2 COPY=reused Dockerfile:4 RUN=built"
	if got := stageLine(app2); got != want {
		t.Errorf("after the dependency changed:\n got %s\nwant %s", got, want)
	}
	if fs := files(t, app2.Ref, reg); strings.TrimSpace(fs["/lib-image"]) != lib2.Ref {
		t.Errorf("/lib-image = %q, want %s", fs["/lib-image"], lib2.Ref)
	}

	g.commit("cacheVersion", map[string]string{"strata.yaml": cfg("2")})
	third := run()
	if got := third.Image("lib"); got.Ref != lib2.Ref {
		t.Errorf("lib rebuilt by app's cacheVersion: %s", stageLine(got))
	}
	for _, st := range third.Image("app").Stages {
		if st.Status != stages.StatusBuilt {
			t.Errorf("after cacheVersion changed: %s", stageLine(third.Image("app")))
			break
		}
	}
}

// stageLine is "NAME=STATUS ..." of the stages of im, in order.
func stageLine(im *stages.ImageReport) string {
	var s []string
	for _, st := range im.Stages {
		s = append(s, st.Name+"="+st.Status)
	}
	return strings.Join(s, " ")
}
