package build

import (
	"context"
	"testing"

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
	ctx := context.Background()
	locker := fileLocker(t)
	run := func(dockerHost string) stages.StageReport {
		t.Helper()
		rep, err := Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: locker, DockerHost: dockerHost})
		if err != nil {
			t.Fatal(err)
		}
		svc := rep.Image("svc")
		if len(svc.Stages) != 1 || svc.Stages[0].Name != "dockerfile" {
			t.Fatalf("stages %+v", svc.Stages)
		}
		return svc.Stages[0]
	}
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
