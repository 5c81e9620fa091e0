package build

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"strata.dev/strata/config"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// importsConfig is a werf.yaml with a stapel artifact (a file built in a shell stage, a file
// deleted in a later stage: a whiteout), a Dockerfile image, an unrelated artifact, and an
// image importing from them at each of the four import stages. Its shell stages check in the
// engine which imports are already there.
func importsConfig(base, builderSetup, otherInstall string) string {
	return `project: imp
configVersion: 1
---
artifact: builder
from: ` + base + `
shell:
  install:
  - mkdir -p /out/bin /out/doc
  - echo built > /out/bin/tool && chmod 750 /out/bin/tool
  - ln -s tool /out/bin/alias
  - echo tmp > /out/bin/skip.tmp
  - echo doc > /out/doc/readme
  - echo gone > /out/bin/gone
  setup:
  - rm /out/bin/gone
  - ` + builderSetup + `
---
image: other
final: false
from: ` + base + `
shell:
  install: [` + otherInstall + `]
---
image: site
dockerfile: Dockerfile
---
image: pinned
from: ` + base + `
import:
- image: builder
  add: /out/bin/tool
  to: /tool
  after: install
  stage: install
---
image: app
from: ` + base + `
import:
- artifact: builder
  add: /out
  to: /imp/bi
  before: install
- image: builder
  add: /out/bin
  to: /imp/ai
  after: install
  stage: install
  includePaths: [tool, alias, gone]
- from: builder
  add: /out
  to: /imp/bs
  before: setup
  includePaths: [bin]
  excludePaths: ["**/*.tmp"]
  owner: "1000"
  group: "1001"
- from: site
  add: /www
  to: /imp/as
  after: setup
- image: builder
  add: /out/doc/readme
  to: /imp/as/readme
  after: setup
shell:
  beforeInstall: ["test ! -e /imp"]
  install: ["test -f /imp/bi/bin/tool && test ! -e /imp/ai"]
  beforeSetup: ["test \"$(cat /imp/ai/alias)\" = built && test ! -e /imp/bs"]
  setup: ["test -x /imp/bs/bin/tool && test ! -e /imp/as"]
`
}

// headers flattens an image registry-side: tar headers by absolute path, regular files' data.
func headers(t *testing.T, ref string, o registry.Options) (map[string]*tar.Header, map[string]string) {
	t.Helper()
	img, err := remoteImage(context.Background(), o, ref)
	if err != nil {
		t.Fatal(err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	hs, data := map[string]*tar.Header{}, map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hs, data
		}
		if err != nil {
			t.Fatal(err)
		}
		p := "/" + strings.Trim(h.Name, "/")
		hs[p] = h
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			data[p] = string(b)
		}
	}
}

// Imports at each of the four import stages, from a stapel artifact (its last stage, and its
// install stage), a final: false image and a Dockerfile image, built on the real engine and
// registry; the import stages themselves run registry-side.
func TestImports(t *testing.T) {
	host := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "imports")
	reg := registry.Options{}
	g := newGitRepo(t)
	g.commit("init", map[string]string{
		"werf.yaml":  importsConfig(base, "true", "echo other > /o"),
		"Dockerfile": "FROM " + base + "\nRUN mkdir -p /www && echo '<h1>hi</h1>' > /www/index.html\n",
	})
	ctx := context.Background()
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // the import spools go there and are gone when Run returns
	run := func(dockerHost string) *stages.Report {
		t.Helper()
		rep, err := Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: dockerHost})
		if err != nil {
			t.Fatal(err)
		}
		if left, _ := filepath.Glob(filepath.Join(tmp, "strata-*")); len(left) > 0 {
			t.Errorf("temporary files left: %q", left)
		}
		return rep
	}
	first := run(host)

	// Only app is a final image; the artifacts are reported apart.
	if len(first.Images) != 3 || first.Image("app") == nil || first.Image("site") == nil || first.Image("pinned") == nil {
		t.Fatalf("final images %+v", first.Images)
	}
	if len(first.Artifacts) != 2 || first.Artifacts[0].Name != "builder" || first.Artifacts[1].Name != "other" {
		t.Fatalf("artifacts %+v", first.Artifacts)
	}
	app := first.Image("app")
	var names []string
	for _, s := range app.Stages {
		names = append(names, s.Name)
	}
	for _, s := range app.Stages {
		t.Logf("app/%s %s %d ms", s.Name, s.Status, s.DurationMs)
	}
	want := "from beforeInstall importsBeforeInstall install importsAfterInstall beforeSetup importsBeforeSetup setup importsAfterSetup"
	if strings.Join(names, " ") != want {
		t.Errorf("app stages %q, want %q", names, want)
	}

	// The import stage names the stage it copied from (cleanup keeps that stage with it).
	var installTag, importTag string
	for _, s := range first.Artifacts[0].Stages {
		if s.Name == "install" {
			installTag = s.Tag
		}
	}
	for _, s := range app.Stages {
		if s.Name == "importsAfterInstall" {
			importTag = s.Tag
		}
	}
	img, err := remoteImage(ctx, reg, repo+":"+importTag)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.Config.Labels[stages.ImportLabel(0)]; installTag == "" || got != installTag {
		t.Errorf("importsAfterInstall: %s = %q, want the artifact's install stage %q", stages.ImportLabel(0), got, installTag)
	}

	hs, data := headers(t, app.Ref, reg)
	check := func(p, content string) {
		t.Helper()
		if got, ok := data[p]; !ok || got != content {
			t.Errorf("%s = %q (present %v), want %q", p, got, ok, content)
		}
	}
	absent := func(p string) {
		t.Helper()
		if _, ok := hs[p]; ok {
			t.Errorf("%s is in the image", p)
		}
	}
	// importsBeforeInstall: the artifact's last stage, all of /out; the file deleted in setup is
	// not there (its whiteout honoured).
	check("/imp/bi/bin/tool", "built\n")
	check("/imp/bi/doc/readme", "doc\n")
	absent("/imp/bi/bin/gone")
	if h := hs["/imp/bi/bin/tool"]; h == nil || h.Mode&0o777 != 0o750 || h.Uid != 0 {
		t.Errorf("/imp/bi/bin/tool header %+v, want mode 0750 uid 0", h)
	}
	if h := hs["/imp/bi/bin/alias"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "tool" {
		t.Errorf("/imp/bi/bin/alias header %+v, want a symlink to tool", h)
	}
	// importsAfterInstall: the artifact's install stage, so the file deleted later is there.
	check("/imp/ai/tool", "built\n")
	check("/imp/ai/gone", "gone\n")
	absent("/imp/ai/skip.tmp")
	// importsBeforeSetup: includePaths/excludePaths, owner/group.
	check("/imp/bs/bin/tool", "built\n")
	absent("/imp/bs/bin/skip.tmp")
	absent("/imp/bs/doc")
	for _, p := range []string{"/imp/bs", "/imp/bs/bin", "/imp/bs/bin/tool", "/imp/bs/bin/alias"} {
		if h := hs[p]; h == nil || h.Uid != 1000 || h.Gid != 1001 {
			t.Errorf("%s header %+v, want uid 1000 gid 1001", p, h)
		}
	}
	// importsAfterSetup: from the Dockerfile image, and one file to a file path.
	check("/imp/as/index.html", "<h1>hi</h1>\n")
	check("/imp/as/readme", "doc\n")

	// A second build reuses every stage, without the engine.
	second := run(noEngine)
	for _, im := range append(second.Images, second.Artifacts...) {
		for _, s := range im.Stages {
			if s.Status != stages.StatusReused {
				t.Errorf("second build: %s/%s %s", im.Name, s.Name, s.Status)
			}
		}
	}

	digests := func(r *stages.Report, name string) map[string]string {
		m := map[string]string{}
		for _, s := range r.Image(name).Stages {
			m[s.Name] = s.Digest
		}
		return m
	}
	before, pinned := digests(first, "app"), digests(first, "pinned")

	// An unrelated change (another artifact nothing imports) changes no stage of app.
	g.commit("other", map[string]string{"werf.yaml": importsConfig(base, "true", "echo changed > /o")})
	third := run(host)
	if after := digests(third, "app"); fmtMap(after) != fmtMap(before) {
		t.Errorf("an unrelated artifact changed app's digests:\n%v\n%v", before, after)
	}
	for _, s := range third.Image("app").Stages {
		if s.Status != stages.StatusReused {
			t.Errorf("unrelated change: app/%s %s", s.Name, s.Status)
		}
	}

	// A change of the artifact's setup stage changes the imports of its last stage, not the
	// import of its install stage (nor the stages before).
	g.commit("builder", map[string]string{"werf.yaml": importsConfig(base, "echo v2 > /out/v", "echo changed > /o")})
	fourth := run(host)
	after := digests(fourth, "app")
	for _, st := range []string{"from", "beforeInstall"} {
		if after[st] != before[st] {
			t.Errorf("%s changed with the artifact's setup", st)
		}
	}
	if after["importsBeforeInstall"] == before["importsBeforeInstall"] {
		t.Errorf("importsBeforeInstall did not change with the artifact's last stage")
	}
	if _, data := headers(t, fourth.Image("app").Ref, reg); data["/imp/bi/v"] != "v2\n" {
		t.Errorf("/imp/bi/v = %q after the artifact changed", data["/imp/bi/v"])
	}
	if got := digests(fourth, "pinned"); fmtMap(got) != fmtMap(pinned) {
		t.Errorf("an import of the artifact's install stage changed with its setup:\n%v\n%v", pinned, got)
	}
	if st := statuses(fourth.Image("pinned")); st["importsAfterInstall"] != stages.StatusReused {
		t.Errorf("pinned import %s after the artifact's setup changed", st["importsAfterInstall"])
	}
	st := statuses(fourth.Image("app"))
	if st["importsBeforeInstall"] != stages.StatusBuilt {
		t.Errorf("importsBeforeInstall %s after the artifact changed", st["importsBeforeInstall"])
	}
}

func fmtMap(m map[string]string) string {
	var b strings.Builder
	for _, k := range StageNames {
		b.WriteString(k + "=" + m[k] + " ")
	}
	return b.String()
}

// copyImport on an image made in memory: whiteouts and opaque directories of upper layers, hard
// links (to a selected target, and to one the filters leave out), a symbolic link as add, and
// an add that is not in the image.
func TestCopyImportLayers(t *testing.T) {
	type ent struct {
		name, body, link string
		typ              byte
		mode             int64
	}
	layer := func(es ...ent) v1.Layer {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range es {
			h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body)), Uid: 5, Gid: 6}
			if e.typ != tar.TypeReg {
				h.Size = 0
			}
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			if e.typ == tar.TypeReg {
				tw.Write([]byte(e.body))
			}
		}
		tw.Close()
		l, err := layerFromBytes(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	img, err := mutate.AppendLayers(emptyImage(),
		layer(ent{name: "out/", typ: tar.TypeDir, mode: 0o700},
			ent{name: "out/a", body: "a", typ: tar.TypeReg, mode: 0o644},
			ent{name: "out/old/x", body: "x", typ: tar.TypeReg, mode: 0o644},
			ent{name: "out/gone", body: "g", typ: tar.TypeReg, mode: 0o644},
			ent{name: "out/big.bin", body: "bin", typ: tar.TypeReg, mode: 0o755}),
		layer(ent{name: "out/.wh.gone", typ: tar.TypeReg},
			ent{name: "out/old/.wh..wh..opq", typ: tar.TypeReg},
			ent{name: "out/old/y", body: "y", typ: tar.TypeReg, mode: 0o600},
			ent{name: "out/hard", typ: tar.TypeLink, link: "out/a"},
			ent{name: "out/hardbin", typ: tar.TypeLink, link: "out/big.bin"},
			ent{name: "link", typ: tar.TypeSymlink, link: "out/a"}),
	)
	if err != nil {
		t.Fatal(err)
	}
	run := func(x Import) (map[string]*tar.Header, map[string]string, error) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		if _, err := copyImport(img, x, tw); err != nil {
			return nil, nil, err
		}
		tw.Close()
		hs, data := map[string]*tar.Header{}, map[string]string{}
		tr := tar.NewReader(&buf)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return hs, data, nil
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(tr)
			hs["/"+strings.Trim(h.Name, "/")], data["/"+strings.Trim(h.Name, "/")] = h, string(b)
		}
	}
	hs, data, err := run(Import{Add: "/out", To: "/dst", ExcludePaths: []string{"*.bin"}, Group: "7"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range hs {
		names = append(names, n)
	}
	sort.Strings(names)
	if got := strings.Join(names, " "); got != "/dst /dst/a /dst/hard /dst/hardbin /dst/old /dst/old/y" {
		t.Errorf("entries %s", got)
	}
	if h := hs["/dst"]; h.Mode&0o777 != 0o700 || h.Uid != 5 || h.Gid != 7 {
		t.Errorf("/dst: mode %o uid %d gid %d, want 0700 5 7", h.Mode, h.Uid, h.Gid)
	}
	if h := hs["/dst/hard"]; h.Typeflag != tar.TypeLink || h.Linkname != "dst/a" {
		t.Errorf("/dst/hard: %c -> %s, want a hard link to dst/a", h.Typeflag, h.Linkname)
	}
	if h := hs["/dst/hardbin"]; h.Typeflag != tar.TypeReg || data["/dst/hardbin"] != "bin" {
		t.Errorf("/dst/hardbin: %c %q, want the excluded target's content", h.Typeflag, data["/dst/hardbin"])
	}
	if h := hs["/dst/old/y"]; h.Mode&0o777 != 0o600 || data["/dst/old/y"] != "y" {
		t.Errorf("/dst/old/y: mode %o %q", h.Mode, data["/dst/old/y"])
	}
	hs, _, err = run(Import{Add: "/link", To: "/l"})
	if err != nil || len(hs) != 1 || hs["/l"].Typeflag != tar.TypeSymlink || hs["/l"].Linkname != "out/a" {
		t.Errorf("a symbolic link as add: %v %v", hs, err)
	}
	if _, _, err := run(Import{Add: "/nope", To: "/x"}); err == nil || !strings.Contains(err.Error(), "add /nope: no such path") {
		t.Errorf("missing add: %v", err)
	}
	if hs, _, err := run(Import{Add: "/out/old", To: "/x", IncludePaths: []string{"y"}}); err != nil || len(hs) != 2 || hs["/x"].Mode&0o777 != 0o755 {
		t.Errorf("a directory with no header of its own (below an opaque one): %v %v", hs, err)
	}
	hs, _, err = run(Import{Add: "/", To: "/", IncludePaths: []string{"out/a"}})
	if err != nil || len(hs) != 2 || hs["/out"].Mode&0o777 != 0o700 || hs["/out/a"] == nil {
		t.Errorf("add: / with includePaths: %v %v", hs, err)
	}
}

// Building one image builds the images it imports from (and theirs), not the others.
func TestSelectImagesFollowsImports(t *testing.T) {
	cfg, err := config.Parse("werf.yaml", []byte(head+`artifact: toolchain
from: alpine
---
artifact: builder
fromArtifact: toolchain
---
image: lib
final: false
from: alpine
import:
- artifact: builder
  add: /out
  after: install
---
image: app
from: alpine
import:
- image: lib
  add: /lib
  before: setup
---
image: other
from: alpine
`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := selectImages(cfg, []string{"app"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, im := range got {
		names = append(names, im.Name)
	}
	if strings.Join(names, " ") != "toolchain builder lib app" {
		t.Errorf("selected %q", names)
	}
}

// An import from an external image (werf v2's from: REF with a tag): the base image's /bin/sh
// (a relative symbolic link to busybox) and busybox are copied under another path, and the link
// runs in a later shell stage.
func TestImportFromExternalImage(t *testing.T) {
	host := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "import-ext")
	reg := registry.Options{}
	g := newGitRepo(t)
	g.commit("init", map[string]string{"werf.yaml": head + `image: ext
from: ` + base + `
import:
- from: ` + base + `
  add: /bin
  to: /opt/bb
  includePaths: [sh, busybox]
  before: setup
shell:
  setup: ["/opt/bb/sh -c 'echo ran > /ran'"]
`})
	rep, err := Run(context.Background(), Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: host})
	if err != nil {
		t.Fatal(err)
	}
	hs, data := headers(t, rep.Image("ext").Ref, reg)
	if h := hs["/opt/bb/sh"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" || data["/ran"] != "ran\n" || hs["/opt/bb/ls"] != nil {
		t.Errorf("/opt/bb/sh %+v, /ran %q", h, data["/ran"])
	}
	if st := statuses(rep.Image("ext")); st["importsBeforeSetup"] != stages.StatusBuilt || st["setup"] != stages.StatusBuilt {
		t.Errorf("stages %v", st)
	}
}

// With one build slot, a chain of imports (c imports from b, b from the artifact a, listed
// last) is built in dependency order without the engine and without waiting forever: an image
// waits for its sources before it takes a slot.
func TestImportChainOneSlot(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "import-chain")
	reg := registry.Options{}
	g := newGitRepo(t)
	g.commit("init", map[string]string{"werf.yaml": head + `image: c
from: ` + base + `
import:
- image: b
  add: /bb
  to: /cc
  after: setup
---
image: b
from: ` + base + `
import:
- artifact: a
  add: /bin/busybox
  to: /bb
  before: install
---
artifact: a
from: ` + base + `
`})
	rep, err := Run(context.Background(), Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: noEngine, Parallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, data := headers(t, rep.Image("c").Ref, reg); len(data["/cc"]) == 0 {
		t.Errorf("/cc missing in c")
	}
	if len(rep.Images) != 2 || len(rep.Artifacts) != 1 {
		t.Errorf("images %d artifacts %d", len(rep.Images), len(rep.Artifacts))
	}
}
