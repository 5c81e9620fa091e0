package build

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"

	"strata.dev/strata/internal/git"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/internal/version"
	"strata.dev/strata/stages"
)

// A Dockerfile image builds its target stage with its args; its digest follows the context files
// (minus .dockerignore'd ones), the args and the target.
func TestDockerfileTargetArgsAndContext(t *testing.T) {
	host := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "dockerfile")
	reg := registry.Options{}
	cfg := func(target, v string) string {
		return "project: df\nconfigVersion: 1\n---\nimage: svc\ndockerfile: Dockerfile\ncontext: svc\ntarget: " + target + "\nargs: {V: " + v + "}\n"
	}
	g := newGitRepo(t)
	g.commit("init", map[string]string{
		"strata.yaml": cfg("one", "x"),
		// dockerfile: is relative to context: (werf, Docker, Compose, Bake): with a root
		// Dockerfile too, svc/Dockerfile is the one built ("one-x", never "root").
		"Dockerfile": "FROM " + base + " AS one\nRUN echo root > /which\nFROM " + base + " AS two\nRUN echo root > /which\n",
		"svc/Dockerfile": "FROM " + base + " AS one\nARG V=default\nCOPY data.txt /data.txt\nRUN echo \"one-$V\" > /which\n" +
			"FROM " + base + " AS two\nARG V=default\nRUN echo \"two-$V\" > /which\n",
		"svc/data.txt": "d1", "svc/.dockerignore": "*.md\n", "svc/README.md": "r1", "outside.txt": "o1",
	})
	run := dockerfileRunner(t, g, repo, reg, "svc")
	content := func(s stages.StageReport, which, data string) {
		t.Helper()
		fs := files(t, repo+":"+s.Tag, reg)
		if fs["/which"] != which+"\n" || fs["/data.txt"] != data {
			t.Errorf("image %s: /which %q /data.txt %q, want %q %q", s.Tag, fs["/which"], fs["/data.txt"], which, data)
		}
		if _, ok := fs["/README.md"]; ok {
			t.Errorf("image %s: .dockerignore'd README.md in the image", s.Tag)
		}
	}

	first := run(host)
	if first.Status != stages.StatusBuilt {
		t.Fatalf("first build: %+v", first)
	}
	content(first, "one-x", "d1")
	l := stageConfigLabels(t, reg, repo, first.Tag)
	if l[stages.LabelProject] != "df" || l[stages.LabelDigest] != first.Digest || l[stages.LabelVersion] != version.String() || l[stages.LabelStage] != "dockerfile" {
		t.Errorf("dockerfile stage labels %v", l)
	}

	// Neither an ignored file nor a file outside the context changes the digest: no engine.
	g.commit("ignored", map[string]string{"svc/README.md": "r2", "outside.txt": "o2"})
	if s := run(noEngine); s.Digest != first.Digest || s.Status != stages.StatusReused || s.Tag != first.Tag {
		t.Errorf("ignored/outside change: %+v, want %s reused", s, first.Tag)
	}

	// A context file changes: new digest, rebuilt with the new content.
	g.commit("data", map[string]string{"svc/data.txt": "d2"})
	data := run(host)
	if data.Digest == first.Digest || data.Status != stages.StatusBuilt {
		t.Errorf("context change: %+v", data)
	}
	content(data, "one-x", "d2")

	// The args and the target are inputs too.
	g.commit("args", map[string]string{"strata.yaml": cfg("one", "y")})
	args := run(host)
	if args.Digest == data.Digest || args.Status != stages.StatusBuilt {
		t.Errorf("args change: %+v", args)
	}
	content(args, "one-y", "d2")
	g.commit("target", map[string]string{"strata.yaml": cfg("two", "y")})
	target := run(host)
	if target.Digest == args.Digest || target.Status != stages.StatusBuilt {
		t.Errorf("target change: %+v", target)
	}
	content(target, "two-y", "")

	// Back to an earlier input set: its stored stage is reused without the engine.
	g.commit("back", map[string]string{"strata.yaml": cfg("one", "x"), "svc/data.txt": "d1"})
	if s := run(noEngine); s.Digest != first.Digest || s.Status != stages.StatusReused || s.Tag != first.Tag {
		t.Errorf("back to the first inputs: %+v, want %s reused", s, first.Tag)
	}
}

// Only the stages the target depends on are read: a change to a file outside every COPY/ADD
// source, to an unrelated stage's sources or to a .dockerignore'd file reuses the stage
// without the engine; a change to a source (also one a COPY --from stage reads) rebuilds it.
func TestDockerfileDigestCoversOnlyReadFiles(t *testing.T) {
	host := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "dockerfile-reads")
	reg := registry.Options{}
	g := newGitRepo(t)
	g.commit("init", map[string]string{
		"strata.yaml": "project: dfr\nconfigVersion: 1\n---\nimage: app\ndockerfile: Dockerfile\ncontext: .\ntarget: app\n",
		"Dockerfile": "ARG DIR=src\n" +
			"FROM " + base + " AS tools\nCOPY tools/ /tools/\n" +
			"FROM " + base + " AS unrelated\nCOPY other/ /other/\n" +
			"FROM " + base + " AS app\nARG DIR\nCOPY ${DIR}/*.txt /app/\nCOPY --from=tools /tools /tools\n",
		".dockerignore": "src/ignored*\n",
		"src/a.txt":     "a1", "src/b.md": "b1", "src/ignored.txt": "i1",
		"tools/t.sh": "t1", "other/o.txt": "o1", "README.md": "r1",
	})
	run := dockerfileRunner(t, g, repo, reg, "app")
	// The real peer: `docker build` of the same work tree on the same engine (legacy builder).
	// Its build cache hashes what each instruction reads, so its image ID stays the same exactly
	// when none of the files the target reads changed: Strata's digest must agree with it.
	dockerID := func() string {
		t.Helper()
		c := exec.Command("docker", "-H", host, "build", "-q", "--network", "none", "--target", "app", ".")
		c.Dir = g.dir
		c.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("docker build: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	first := run(host)
	firstDocker := dockerID()
	if first.Status != stages.StatusBuilt {
		t.Fatalf("first build: %+v", first)
	}
	fs := files(t, repo+":"+first.Tag, reg)
	if fs["/app/a.txt"] != "a1" || fs["/tools/t.sh"] != "t1" {
		t.Errorf("image files: /app/a.txt %q /tools/t.sh %q", fs["/app/a.txt"], fs["/tools/t.sh"])
	}
	for _, p := range []string{"/app/ignored.txt", "/app/b.md", "/other/o.txt"} {
		if _, ok := fs[p]; ok {
			t.Errorf("%s in the image", p)
		}
	}

	g.commit("unread", map[string]string{"README.md": "r2", "src/b.md": "b2", "other/o.txt": "o2", "src/ignored.txt": "i2"})
	if s := run(noEngine); s.Status != stages.StatusReused || s.Digest != first.Digest || s.Tag != first.Tag {
		t.Fatalf("change of unread files: %+v, want %s reused without the engine", s, first.Tag)
	}
	if id := dockerID(); id != firstDocker {
		t.Errorf("docker build after a change of files Strata found unread: image %s, was %s (docker read one of them)", id, firstDocker)
	}

	g.commit("tools", map[string]string{"tools/t.sh": "t2"})
	tools := run(host)
	if tools.Status != stages.StatusBuilt || tools.Digest == first.Digest {
		t.Fatalf("change of a COPY --from stage's source: %+v", tools)
	}
	toolsDocker := dockerID()
	if toolsDocker == firstDocker {
		t.Errorf("docker build kept image %s after a change Strata rebuilt for", toolsDocker)
	}
	if fs := files(t, repo+":"+tools.Tag, reg); fs["/tools/t.sh"] != "t2" {
		t.Errorf("/tools/t.sh %q after the change", fs["/tools/t.sh"])
	}

	g.commit("source", map[string]string{"src/a.txt": "a2"})
	src := run(host)
	if src.Status != stages.StatusBuilt || src.Digest == tools.Digest {
		t.Fatalf("change of a COPY source: %+v", src)
	}
	if id := dockerID(); id == toolsDocker {
		t.Errorf("docker build kept image %s after a change Strata rebuilt for", id)
	}
	if fs := files(t, repo+":"+src.Tag, reg); fs["/app/a.txt"] != "a2" {
		t.Errorf("/app/a.txt %q after the change", fs["/app/a.txt"])
	}
	// Same inputs in another run (another process would compute the same): same digest, reused.
	if s := run(noEngine); s.Status != stages.StatusReused || s.Digest != src.Digest || s.Tag != src.Tag {
		t.Errorf("rerun: %+v, want %s reused", s, src.Tag)
	}
}

func TestDockerfileReads(t *testing.T) {
	for _, tc := range []struct {
		name, df, target string
		args             map[string]string
		whole            bool
		sources          []string
		external         []string
		err              string
	}{
		{name: "copy dot", df: "FROM b\nCOPY . /app\n", whole: true, external: []string{"FROM b"}},
		{name: "wildcards and dirs", df: "FROM b\nCOPY go.mod go.sum ./\nCOPY cmd/ /src/cmd/\nADD ./web/*.js /w/\n",
			sources: []string{"cmd", "go.mod", "go.sum", "web/*.js"}, external: []string{"FROM b"}},
		{name: "target ignores unrelated stage", target: "app",
			df:      "FROM b AS deps\nCOPY deps.txt /\nFROM b AS other\nCOPY other/ /o\nFROM deps AS app\nCOPY app/ /a\nFROM b AS last\nCOPY last /l\n",
			sources: []string{"app", "deps.txt"}, external: []string{"FROM b"}},
		{name: "last stage by default",
			df:      "FROM b AS deps\nCOPY deps.txt /\nFROM b\nCOPY --from=0 /deps.txt /\nCOPY --from=img:1 /x /x\n",
			sources: []string{"deps.txt"}, external: []string{"COPY --from img:1", "FROM b"}},
		{name: "urls and git", df: "FROM b\nADD --checksum=sha256:abc https://example.com/x.tgz /x\nADD https://github.com/moby/buildkit.git#v0.10.1 /bk\n",
			external: []string{"ADD https://example.com/x.tgz sha256:abc", "ADD https://github.com/moby/buildkit.git#v0.10.1 ", "FROM b"}},
		{name: "heredoc", df: "FROM b\nCOPY <<EOF /x\nhello\nEOF\nRUN <<EOF\necho hi\nEOF\n", external: []string{"FROM b"}},
		{name: "run mounts", df: "FROM b AS m\nCOPY m.txt /\nFROM b\nRUN --mount=type=bind,source=go.sum,target=/g --mount=type=cache,target=/c --mount=from=m,source=/m.txt,target=/m true\n",
			sources: []string{"go.sum", "m.txt"}, external: []string{"FROM b"}},
		{name: "bind mount of the context", df: "FROM b\nRUN --mount=target=/src make\n", whole: true, external: []string{"FROM b"}},
		{name: "arg default", df: "ARG DIR=src\nARG BASE=b\nFROM ${BASE}\nARG DIR\nCOPY $DIR/x /x\n",
			sources: []string{"src/x"}, external: []string{"FROM b"}},
		{name: "build arg", df: "ARG DIR=src\nFROM b\nARG DIR\nENV SUB=y\nCOPY ${DIR}/${SUB} /x\n", args: map[string]string{"DIR": "lib"},
			sources: []string{"lib/y"}, external: []string{"FROM b"}},
		{name: "unknown variable", df: "FROM b\nCOPY $HOME/x /x\n", whole: true, external: []string{"FROM b"}},
		{name: "official syntax", df: "# syntax=docker/dockerfile:1\nFROM b\nCOPY x /x\n", sources: []string{"x"}, external: []string{"FROM b"}},
		{name: "other frontend", df: "# syntax=example.com/frontend:1\nFROM b\nCOPY x /x\n", whole: true,
			sources: []string{"x"}, external: []string{"FROM b", "syntax example.com/frontend:1"}},
		{name: "onbuild", df: "FROM b\nONBUILD COPY x /x\n", whole: true, external: []string{"FROM b"}},
		{name: "missing target", df: "FROM b AS one\n", target: "two", err: `target stage "two" is not in the Dockerfile`},
		{name: "no from", df: "ARG X=1\n", err: "no FROM"},
		{name: "bad instruction", df: "FROM b\nCOPY\n", err: "line 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := readsOf([]byte(tc.df), tc.target, tc.args)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.whole != tc.whole || !slices.Equal(r.sources, tc.sources) || !slices.Equal(r.external, tc.external) {
				t.Errorf("reads: whole %v sources %q external %q\nwant:  whole %v sources %q external %q", r.whole, r.sources, r.external, tc.whole, tc.sources, tc.external)
			}
		})
	}
}

func TestContextReads(t *testing.T) {
	list := []git.File{
		{Path: "svc/.dockerignore", Mode: "100644", Hash: "1"},
		{Path: "svc/a.log", Mode: "100644", Hash: "2"},
		{Path: "svc/keep.log", Mode: "100644", Hash: "3"},
		{Path: "svc/node_modules/x/y.js", Mode: "100644", Hash: "4"},
		{Path: "svc/lib", Mode: "120000", Hash: "7"},
		{Path: "svc/src/a.go", Mode: "100644", Hash: "5"},
		{Path: "svc/src/b.go", Mode: "100644", Hash: "6"},
		{Path: "svc/sub", Mode: "160000", Hash: "8"},
		{Path: "other/z.go", Mode: "100644", Hash: "9"},
	}
	pm, err := patternmatcher.New([]string{"*.log", "!keep.log", "node_modules"})
	if err != nil {
		t.Fatal(err)
	}
	dests := func(reads dockerfileReads) []string {
		fs, all, err := contextReads(list, "svc", pm, &reads)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 5 {
			t.Errorf("context of %d files, want 5", len(all))
		}
		var out []string
		for _, f := range fs {
			out = append(out, f.dest)
		}
		return out
	}
	whole := []string{"/.dockerignore", "/keep.log", "/lib", "/src/a.go", "/src/b.go"}
	if got := dests(dockerfileReads{whole: true}); !slices.Equal(got, whole) {
		t.Errorf("whole context %q, want %q", got, whole)
	}
	if got := dests(dockerfileReads{sources: []string{"*.log", "src/a.go"}}); !slices.Equal(got, []string{"/keep.log", "/src/a.go"}) {
		t.Errorf("sources %q", got)
	}
	// A source below a symbolic link may read anything: the whole context.
	if got := dests(dockerfileReads{sources: []string{"lib/x.go"}}); !slices.Equal(got, whole) {
		t.Errorf("source below a link %q, want %q", got, whole)
	}
}

// dockerfileRunner returns a function building g's project with an engine at dockerHost and
// returning the one stage of Dockerfile image name.
func dockerfileRunner(t *testing.T, g *gitRepo, repo string, reg registry.Options, name string) func(dockerHost string) stages.StageReport {
	locker := fileLocker(t)
	return func(dockerHost string) stages.StageReport {
		t.Helper()
		rep, err := Run(context.Background(), Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: locker, DockerHost: dockerHost})
		if err != nil {
			t.Fatal(err)
		}
		im := rep.Image(name)
		if len(im.Stages) != 1 || im.Stages[0].Name != "dockerfile" {
			t.Fatalf("stages %+v", im.Stages)
		}
		return im.Stages[0]
	}
}
