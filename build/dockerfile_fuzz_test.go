package build

import (
	"bytes"
	"path"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"strata.dev/strata/internal/git"
	"strata.dev/strata/internal/testing/fuzztest"
)

// fuzzContext is the repository the Dockerfile fuzz target reads: context svc/, with files the
// Dockerfile may or may not name, an ignored one, a symbolic link, a submodule, and files
// outside the context that no Dockerfile may read.
var fuzzContext = []git.File{
	{Path: "outside.txt", Mode: "100644", Hash: "h-outside"},
	{Path: "other/secret.txt", Mode: "100644", Hash: "h-secret"},
	{Path: "svc-sibling/x", Mode: "100644", Hash: "h-sibling"},
	{Path: "svc/.dockerignore", Mode: "100644", Hash: "h-ignore"},
	{Path: "svc/Dockerfile", Mode: "100644", Hash: "h-df"},
	{Path: "svc/README.md", Mode: "100644", Hash: "h-readme"},
	{Path: "svc/a b/c.txt", Mode: "100644", Hash: "h-space"},
	{Path: "svc/app/main.go", Mode: "100644", Hash: "h-main"},
	{Path: "svc/app/sub/x.txt", Mode: "100755", Hash: "h-x"},
	{Path: "svc/data.txt", Mode: "100644", Hash: "h-data"},
	{Path: "svc/link", Mode: "120000", Hash: "h-link"},
	{Path: "svc/mod", Mode: "160000", Hash: "h-mod"},
	{Path: "svc/[x]*?.txt", Mode: "100644", Hash: "h-glob"},
}

// FuzzDockerfile: any Dockerfile, target, build arg and .dockerignore. The parser never panics
// or hangs; what a Dockerfile reads is the same every time, its sources are clean paths inside
// the context, the files read are context files (never outside it, never a submodule), and the
// stage digest is deterministic, follows every file read and no file outside the context.
func FuzzDockerfile(f *testing.F) {
	for _, s := range []struct{ df, target, ignore string }{
		{"FROM base AS one\nARG V=default\nCOPY data.txt /data.txt\nRUN echo \"one-$V\" > /which\nFROM base AS two\nRUN true\n", "one", "*.md\n"},
		{"# syntax=docker/dockerfile:1\nFROM base AS build\nWORKDIR /src\nCOPY app/ ./app/\nRUN --mount=type=bind,source=app/sub,target=/x go build ./...\nFROM scratch\nCOPY --from=build /src/app /app\n", "", ""},
		{"FROM base\nCOPY . /src\n", "", "README.md\n!app\n"},
		{"ARG BASE=base\nFROM $BASE\nENV D=app\nCOPY ${D}/main.go $D/../data.txt /\nADD https://example.com/x.tgz /x\nADD --checksum=sha256:00 git@github.com:a/b.git /b\n", "", ""},
		{"FROM base AS a\nONBUILD COPY . /\nFROM a\n", "", ""},
		{"# syntax=example.com/other:1\nFROM base\nCOPY data.txt /\n", "", ""},
		{"FROM base\nCOPY ../outside.txt /\nCOPY /../../other/secret.txt /\nCOPY link/x /\n", "", ""},
		{"FROM base\nCOPY --from=0 / /\nCOPY --from=image:tag /etc /etc\nRUN --mount=from=$UNKNOWN,target=/m true\n", "", ""},
		{"FROM base\nCOPY [\"a b/c.txt\", \"[x]*?.txt\", \"/dst/\"]\nCOPY app/**/x.txt /\n", "", "**/*.go\n"},
		{"`\nFROM base\nRUN echo `\n  hi\n", "", ""},
		{"FROM base\nRUN echo ${X:?required}\n", "", ""},
		{"FROM a AS a\nFROM b AS b\nCOPY --from=a / /\nFROM c\nCOPY --from=b / /\n", "B", ""},
	} {
		f.Add([]byte(s.df), s.target, "V", "x", []byte(s.ignore))
	}
	bounds := fuzztest.Bounds{Time: 20 * time.Second, Heap: 256 << 20}
	f.Fuzz(func(t *testing.T, df []byte, target, argKey, argVal string, ignore []byte) {
		args := map[string]string{argKey: argVal}
		var r1, r2 *dockerfileReads
		var err1, err2 error
		fuzztest.Bounded(t, bounds, "readsOf", func() {
			r1, err1 = readsOf(df, target, args)
			r2, err2 = readsOf(df, target, args)
		})
		if (err1 == nil) != (err2 == nil) || !reflect.DeepEqual(r1, r2) {
			t.Fatalf("readsOf differs between two calls: %+v %v / %+v %v", r1, err1, r2, err2)
		}
		if err1 != nil {
			return
		}
		for _, s := range r1.sources {
			if s == "" || s == "." || strings.HasPrefix(s, "/") || path.Clean(s) != s || s == ".." || strings.HasPrefix(s, "../") {
				t.Errorf("source %q is not a clean path inside the context", s)
			}
		}
		if !slices.IsSorted(r1.sources) || !slices.IsSorted(r1.external) {
			t.Errorf("reads not sorted: %+v", r1)
		}
		var ign *patternmatcher.PatternMatcher
		if patterns, err := ignorefile.ReadAll(bytes.NewReader(ignore)); err == nil {
			if pm, err := patternmatcher.New(patterns); err == nil {
				ign = pm
			}
		}
		in := &dockerfileInputs{contextDir: "svc", dockerfile: df, dfPath: "svc/Dockerfile", dfRel: "Dockerfile", reads: r1}
		digest := func(files []git.File) string {
			t.Helper()
			read, all, err := contextReads(files, in.contextDir, ign, in.reads)
			if err != nil {
				return "error: " + err.Error()
			}
			for _, f := range all {
				if !strings.HasPrefix(f.Path, "svc/") || f.Mode == "160000" || f.dest != "/"+strings.TrimPrefix(f.Path, "svc/") {
					t.Fatalf("context file %+v: outside svc/, a submodule or a wrong destination", f)
				}
			}
			for _, f := range read {
				if !slices.ContainsFunc(all, func(a mappingFile) bool { return a.Path == f.Path }) {
					t.Fatalf("read %s, which is not sent as context", f.Path)
				}
			}
			c := *in
			c.files = read
			return dockerfileDigest("1", &Image{Name: "svc", Dockerfile: "Dockerfile", Context: "svc", Target: target, Args: args}, &c)
		}
		base := digest(fuzzContext)
		if again := digest(fuzzContext); again != base {
			t.Fatalf("digest not deterministic: %s / %s", base, again)
		}
		if strings.HasPrefix(base, "error: ") {
			return
		}
		read, _, _ := contextReads(fuzzContext, in.contextDir, ign, in.reads)
		for i, f := range fuzzContext {
			changed := slices.Clone(fuzzContext)
			changed[i].Hash += "'"
			isRead := slices.ContainsFunc(read, func(m mappingFile) bool { return m.Path == f.Path })
			switch d := digest(changed); {
			case isRead && d == base:
				t.Errorf("%s is read, but a change to it keeps the digest", f.Path)
			case !isRead && d != base:
				t.Errorf("%s is not read, but a change to it changes the digest", f.Path)
			}
		}
	})
}
