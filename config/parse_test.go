package config

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
		{"staged without dockerfile", head + "image: a\nfrom: x\nstaged: true\n", "strata.yaml:4: image a: context, target, args and staged need dockerfile"},
		{"staged not a bool", head + "image: a\ndockerfile: D\nstaged: maybe\n", "strata.yaml:6: staged: want true or false"},
		{"dockerfile with shell", head + "image: a\ndockerfile: Dockerfile\nshell:\n  install: [x]\n", "dockerfile cannot be combined"},
		{"git to missing", head + "image: a\nfrom: x\ngit:\n- add: /src\n", "strata.yaml:7: git[0].to: missing"},
		{"git relative to", head + "image: a\nfrom: x\ngit:\n- add: /src\n  to: app\n", "absolute paths"},
		{"stageDependencies stage", head + "image: a\nfrom: x\ngit:\n- to: /app\n  stageDependencies:\n    instal: [a]\n", "strata.yaml:9: git[0].stageDependencies.instal: unknown key (did you mean \"install\"?)"},
		{"contextAddFiles staged", head + "image: a\ndockerfile: D\nstaged: true\ncontextAddFiles: [.env]\n", "strata.yaml:7: image a.contextAddFiles: not supported with staged: true"},
		{"contextAddFiles stage-built", head + "image: a\nfrom: x\ncontextAddFiles: [.env]\n", "strata.yaml:6: image a.contextAddFiles: a key of Dockerfile images"},
		{"contextAddFiles outside", head + "image: a\ndockerfile: D\ncontextAddFiles: [../x]\n", `strata.yaml:6: contextAddFiles[0]: "../x" is not a path inside context`},
		{"contextAddFile absolute", head + "image: a\ndockerfile: D\ncontextAddFile: [/etc/passwd]\n", `strata.yaml:6: contextAddFile[0]: want a path relative to context, got "/etc/passwd"`},
		{"scalar command list item", head + "image: a\nfrom: x\nshell:\n  install:\n  - {a: b}\n", "strata.yaml:8: shell.install[0]: want a string"},
		{"syntax", head + "image: [\n", "strata.yaml"},
		{"cycle", head + "image: a\nfromImage: b\n---\nimage: b\nfromImage: a\n", "fromImage cycle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("strata.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v\nwant containing %q", err, tc.want)
			}
		})
	}
}

func TestParseConfigFull(t *testing.T) {
	cfg, err := Parse("werf.yaml", []byte(`project: shop
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

// HEALTHCHECK durations and retries, and the globs of git mappings, are checked when the config
// is read: the error names the file, the line of the bad value and the field.
func TestParseConfigHealthcheckAndGlobErrors(t *testing.T) {
	img := head + "image: a\nfrom: x\n" // the image document starts at line 4
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"interval no unit", img + "docker:\n  HEALTHCHECK:\n    test: [CMD, \"true\"]\n    interval: 5\n", `strata.yaml:9: docker.HEALTHCHECK.interval: bad duration "5"`},
		{"timeout garbage", img + "docker:\n  HEALTHCHECK:\n    timeout: soon\n", `strata.yaml:8: docker.HEALTHCHECK.timeout: bad duration "soon"`},
		{"startPeriod negative", img + "docker:\n  HEALTHCHECK:\n    startPeriod: -1s\n", `strata.yaml:8: docker.HEALTHCHECK.startPeriod: duration "-1s": want 0 or at least 1ms`},
		{"interval below 1ms", img + "docker:\n  HEALTHCHECK:\n    interval: 10us\n", `strata.yaml:8: docker.HEALTHCHECK.interval: duration "10us": want 0 or at least 1ms`},
		{"interval not a string", img + "docker:\n  HEALTHCHECK:\n    interval: [5s]\n", `strata.yaml:8: docker.HEALTHCHECK.interval: want a string, got a list`},
		{"retries negative", img + "docker:\n  HEALTHCHECK:\n    retries: -2\n", `strata.yaml:8: docker.HEALTHCHECK.retries: must not be negative`},
		{"retries word", img + "docker:\n  HEALTHCHECK:\n    retries: many\n", `strata.yaml:8: docker.HEALTHCHECK.retries: want an integer`},
		{"unknown healthcheck key", img + "docker:\n  HEALTHCHECK:\n    intervall: 5s\n", `strata.yaml:8: docker.HEALTHCHECK.intervall: unknown key (did you mean "interval"?)`},
		{"string form bad interval", img + "docker:\n  HEALTHCHECK: --interval=5x CMD true\n", `strata.yaml:7: docker.HEALTHCHECK --interval: bad duration "5x"`},
		{"string form bad retries", img + "docker:\n  HEALTHCHECK: --retries=-1 CMD true\n", `strata.yaml:7: docker.HEALTHCHECK --retries: want a non-negative integer`},
		{"string form unknown option", img + "docker:\n  HEALTHCHECK: --intervl=5s CMD true\n", `strata.yaml:7: docker.HEALTHCHECK --intervl: unknown option (did you mean "--interval"?)`},
		{"string form no command", img + "docker:\n  HEALTHCHECK: --timeout=3s\n", `strata.yaml:7: docker.HEALTHCHECK: missing the command`},
		{"string form bad exec", img + "docker:\n  HEALTHCHECK: CMD [curl\n", `strata.yaml:7: docker.HEALTHCHECK: CMD [curl: want a JSON list`},
		{"stageDependencies bad glob", img + "git:\n- to: /app\n  stageDependencies:\n    install:\n    - go.mod\n    - \"[a-\"\n", `strata.yaml:11: git[0].stageDependencies.install[1]: bad glob "[a-"`},
		{"stageDependencies scalar bad glob", img + "git:\n- to: /app\n  stageDependencies:\n    setup: \"src/[\"\n", `strata.yaml:9: git[0].stageDependencies.setup: bad glob "src/["`},
		{"stageDependencies empty glob", img + "git:\n- to: /app\n  stageDependencies:\n    beforeSetup: [\"\"]\n", `strata.yaml:9: git[0].stageDependencies.beforeSetup[0]: empty glob`},
		{"stageDependencies not strings", img + "git:\n- to: /app\n  stageDependencies:\n    install: {a: b}\n", `strata.yaml:9: git[0].stageDependencies.install: want a list of strings, got a mapping`},
		{"includePaths bad glob line", img + "git:\n- to: /app\n  includePaths:\n  - ok\n  - \"a\\\\\"\n", `strata.yaml:10: git[0].includePaths[1]: bad glob`},
		{"excludePaths bad glob", img + "git:\n- to: /app\n  excludePaths: \"x[\"\n", `strata.yaml:8: git[0].excludePaths: bad glob "x["`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("strata.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v\nwant containing %q", err, tc.want)
			}
		})
	}
}

func TestParseConfigHealthcheckForms(t *testing.T) {
	img := head + "image: a\nfrom: x\ndocker:\n  HEALTHCHECK: "
	for _, tc := range []struct {
		name, value                    string
		test                           []string
		interval, timeout, startPeriod string
		retries                        int
	}{
		{"bare shell command", "curl -f http://localhost/ || exit 1", []string{"CMD-SHELL", "curl -f http://localhost/ || exit 1"}, "", "", "", 0},
		{"options and shell CMD", "--interval=5s --timeout=3s --start-period=1m --retries=4 CMD curl -f localhost", []string{"CMD-SHELL", "curl -f localhost"}, "5s", "3s", "1m", 4},
		{"exec CMD", `--interval=1m30s CMD ["/bin/check", "--fast"]`, []string{"CMD", "/bin/check", "--fast"}, "1m30s", "", "", 0},
		{"none", "NONE", []string{"NONE"}, "", "", "", 0},
		{"mapping", "{test: [CMD, \"true\"], interval: 500ms, timeout: \"0\", startPeriod: 2s, retries: 2}", []string{"CMD", "true"}, "500ms", "0", "2s", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			value := tc.value
			if !strings.HasPrefix(value, "{") {
				value = "'" + strings.ReplaceAll(value, "'", "''") + "'"
			}
			cfg, err := Parse("strata.yaml", []byte(img+value+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			h := cfg.Images[0].Docker.Healthcheck
			if h == nil || strings.Join(h.Test, "|") != strings.Join(tc.test, "|") || h.Interval != tc.interval || h.Timeout != tc.timeout || h.StartPeriod != tc.startPeriod || h.Retries != tc.retries {
				t.Errorf("healthcheck = %+v, want test %q interval %q timeout %q startPeriod %q retries %d", h, tc.test, tc.interval, tc.timeout, tc.startPeriod, tc.retries)
			}
		})
	}
}
