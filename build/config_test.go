package build

import (
	"strings"
	"testing"
)

const head = "project: p\nconfigVersion: 1\n---\n"

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown key suggests", head + "image: a\nfrom: x\nshel:\n  install: [x]\n", "strata.yaml:6: shel: unknown key (did you mean \"shell\"?)"},
		{"unknown nested key", head + "image: a\nfrom: x\nshell:\n  instal: [x]\n", "strata.yaml:7: shell.instal: unknown key (did you mean \"install\"?)"},
		{"unknown git key", head + "image: a\nfrom: x\ngit:\n- add: /\n  to: /app\n  includePath: [a]\n", "strata.yaml:9: git[0].includePath: unknown key (did you mean \"includePaths\"?)"},
		{"wrong type", head + "image: a\nfrom: x\nshell:\n  install: {a: b}\n", "strata.yaml:7: shell.install: want a list of strings, got a mapping"},
		{"wrong type docker", head + "image: a\nfrom: x\ndocker:\n  ENV: [a]\n", "strata.yaml:7: docker.ENV: want a mapping of strings, got a list"},
		{"missing from", head + "image: a\nshell:\n  install: [x]\n", "strata.yaml:4: image a.from: missing"},
		{"from and fromImage", head + "image: a\nfrom: x\nfromImage: b\n", "from and fromImage are exclusive"},
		{"missing image name", head + "from: x\n", "strata.yaml:4: image: missing"},
		{"missing project", "configVersion: 1\n", "strata.yaml:1: project: missing"},
		{"missing configVersion", "project: p\n", "configVersion: missing"},
		{"bad configVersion", "project: p\nconfigVersion: 2\n", "strata.yaml:2: configVersion: unsupported version 2"},
		{"unknown top key", "project: p\nconfigVersion: 1\nbuidl: {}\n", "strata.yaml:3: buidl: unknown key (did you mean \"build\"?)"},
		{"unknown fromImage", head + "image: a\nfromImage: zz\n", "fromImage: no image \"zz\""},
		{"duplicate image", head + "image: a\nfrom: x\n---\nimage: a\nfrom: y\n", "strata.yaml:7: image a: duplicate (first at line 4)"},
		{"dockerfile with shell", head + "image: a\ndockerfile: Dockerfile\nshell:\n  install: [x]\n", "dockerfile cannot be combined"},
		{"git to missing", head + "image: a\nfrom: x\ngit:\n- add: /src\n", "strata.yaml:7: git[0].to: missing"},
		{"git relative to", head + "image: a\nfrom: x\ngit:\n- add: /src\n  to: app\n", "absolute paths"},
		{"stageDependencies stage", head + "image: a\nfrom: x\ngit:\n- to: /app\n  stageDependencies:\n    instal: [a]\n", "strata.yaml:9: git[0].stageDependencies.instal: unknown key (did you mean \"install\"?)"},
		{"scalar command list item", head + "image: a\nfrom: x\nshell:\n  install:\n  - {a: b}\n", "strata.yaml:8: shell.install[0]: want a string"},
		{"syntax", head + "image: [\n", "strata.yaml"},
		{"cycle", head + "image: a\nfromImage: b\n---\nimage: b\nfromImage: a\n", "fromImage cycle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("strata.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v\nwant containing %q", err, tc.want)
			}
		})
	}
}

func TestParseConfigFull(t *testing.T) {
	cfg, err := ParseConfig("werf.yaml", []byte(`project: shop
configVersion: 1
build:
  cacheVersion: "2"
cleanup:
  keepPolicies: []
---
image: base
from: alpine:3
fromCacheVersion: x
git:
- add: /src
  to: /app
  includePaths: ["**/*.go", go.mod]
  excludePaths: [vendor]
  owner: "1000"
  group: "1000"
  stageDependencies:
    install: [go.mod]
    setup: ["**/*.go"]
shell:
  beforeInstall: apk add git
  install: [go mod download]
  setup: [go build ./...]
  cacheVersion: "1"
  installCacheVersion: "3"
docker:
  WORKDIR: /app
  ENV: {A: "1"}
  EXPOSE: ["80", 443/udp]
  USER: app
  CMD: ./app
  ENTRYPOINT: [/bin/tini, --]
  LABEL: {team: x}
  VOLUME: [/data]
  HEALTHCHECK: {test: [CMD, true], interval: 5s, retries: 3}
---
image: web
dockerfile: web/Dockerfile
context: web
target: prod
args: {V: "1"}
---
image: child
fromImage: base
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Project != "shop" || cfg.CacheVersion != "2" || len(cfg.Images) != 3 {
		t.Fatalf("cfg = %+v", cfg)
	}
	b := cfg.Images[0]
	if b.Git[0].Add != "/src" || b.Git[0].StageDependencies["setup"][0] != "**/*.go" || b.Git[0].Owner != "1000" {
		t.Errorf("git = %+v", b.Git[0])
	}
	if b.Shell.BeforeInstall[0] != "apk add git" || b.Shell.StageCacheVersion["install"] != "3" {
		t.Errorf("shell = %+v", b.Shell)
	}
	if b.Docker.Cmd[2] != "./app" || b.Docker.Entrypoint[0] != "/bin/tini" || b.Docker.Healthcheck.Retries != 3 || b.Docker.Expose[1] != "443/udp" {
		t.Errorf("docker = %+v", b.Docker)
	}
	if w := cfg.Images[1]; w.Dockerfile != "web/Dockerfile" || w.Args["V"] != "1" || w.Target != "prod" {
		t.Errorf("web = %+v", w)
	}
}

func TestDigestsStableAndSensitive(t *testing.T) {
	d := func(f ...string) string { x := newDigester("k"); x.add(f...); return x.sum() }
	if d("a", "b") != d("a", "b") || len(d("a")) != 56 {
		t.Errorf("digest not stable or not 56 hex")
	}
	if d("ab", "c") == d("a", "bc") {
		t.Errorf("field boundaries not part of the digest")
	}
}
