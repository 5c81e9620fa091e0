package config

import (
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"strata.dev/strata/internal/suggest"
)

// The sections of an image document: shell stages, git mappings, imports, docker instructions
// (mounts, secrets, dependencies, imageSpec: parse_werfkeys.go).

var userStages = []string{"beforeInstall", "install", "beforeSetup", "setup"}

func (p parser) shell(n *yaml.Node, s *Shell) error {
	s.StageCacheVersion = map[string]string{}
	h := map[string]func(*yaml.Node) error{
		"cacheVersion": func(v *yaml.Node) (err error) { s.CacheVersion, err = p.str(v, "shell.cacheVersion"); return },
	}
	dst := map[string]*[]string{"beforeInstall": &s.BeforeInstall, "install": &s.Install, "beforeSetup": &s.BeforeSetup, "setup": &s.Setup}
	for _, st := range userStages {
		st := st
		h[st] = func(v *yaml.Node) (err error) { *dst[st], err = p.strList(v, "shell."+st, true); return }
		h[st+"CacheVersion"] = func(v *yaml.Node) error {
			x, err := p.str(v, "shell."+st+"CacheVersion")
			s.StageCacheVersion[st] = x
			return err
		}
	}
	return p.mapping(n, "shell", h)
}

func (p parser) git(n *yaml.Node) ([]GitMapping, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, p.errf(n, "git", "want a list of mappings, got %s", kindName(n))
	}
	var out []GitMapping
	for i, item := range n.Content {
		f := fmt.Sprintf("git[%d]", i)
		var g GitMapping
		str := func(dst *string, field string) func(*yaml.Node) error {
			return func(v *yaml.Node) (err error) { *dst, err = p.str(v, f+"."+field); return }
		}
		list := func(dst *[]string, field string) func(*yaml.Node) error {
			return func(v *yaml.Node) (err error) { *dst, err = p.globList(v, f+"."+field); return }
		}
		err := p.mapping(item, f, map[string]func(*yaml.Node) error{
			"add": str(&g.Add, "add"), "to": str(&g.To, "to"), "owner": str(&g.Owner, "owner"), "group": str(&g.Group, "group"),
			"includePaths": list(&g.IncludePaths, "includePaths"), "excludePaths": list(&g.ExcludePaths, "excludePaths"),
			"stageDependencies": func(v *yaml.Node) error {
				g.StageDependencies = map[string][]string{}
				h := map[string]func(*yaml.Node) error{}
				for _, st := range []string{"install", "beforeSetup", "setup"} {
					st := st
					h[st] = func(v *yaml.Node) (err error) {
						g.StageDependencies[st], err = p.globList(v, f+".stageDependencies."+st)
						return
					}
				}
				return p.mapping(v, f+".stageDependencies", h)
			},
			"url": str(&g.URL, "url"), "branch": str(&g.Branch, "branch"), "tag": str(&g.Tag, "tag"), "commit": str(&g.Commit, "commit"),
			"basicAuth": func(v *yaml.Node) (err error) { g.BasicAuth, err = p.basicAuth(v, f+".basicAuth"); return },
		})
		if err != nil {
			return nil, err
		}
		refs := 0
		for _, r := range []string{g.Branch, g.Tag, g.Commit} {
			if r != "" {
				refs++
			}
		}
		switch {
		case g.URL == "" && g.BasicAuth != nil:
			return nil, p.errf(item, f+".basicAuth", "needs url (credentials of a remote repository)")
		case g.URL == "" && refs > 0:
			return nil, p.errf(item, f, "branch, tag and commit need url (they name a commit of a remote repository)")
		case refs > 1:
			return nil, p.errf(item, f, "specify only one of branch, tag or commit")
		case g.URL != "" && strings.HasPrefix(g.URL, "-"):
			return nil, p.errf(item, f+".url", "not a repository URL: %q", g.URL)
		case g.Commit != "" && !isHex(g.Commit):
			return nil, p.errf(item, f+".commit", "want a commit hash, got %q", g.Commit)
		}
		if g.Add == "" {
			g.Add = "/"
		}
		if g.To == "" {
			return nil, p.errf(item, f+".to", "missing (absolute path in the image)")
		}
		if !path.IsAbs(g.To) || !path.IsAbs(g.Add) {
			return nil, p.errf(item, f, "add and to must be absolute paths")
		}
		g.Add, g.To = path.Clean(g.Add), path.Clean(g.To)
		out = append(out, g)
	}
	return out, nil
}

// basicAuth parses werf's git basicAuth: username and a password from env, src (or file, the
// name werf's reference uses) or value — exactly one.
func (p parser) basicAuth(v *yaml.Node, field string) (*BasicAuth, error) {
	a := &BasicAuth{}
	var pw *yaml.Node
	err := p.mapping(v, field, map[string]func(*yaml.Node) error{
		"username": func(v *yaml.Node) (err error) { a.Username, err = p.str(v, field+".username"); return },
		"password": func(v *yaml.Node) error {
			pw = v
			str := func(dst *string, k string) func(*yaml.Node) error {
				return func(v *yaml.Node) (err error) { *dst, err = p.str(v, field+".password."+k); return }
			}
			return p.mapping(v, field+".password", map[string]func(*yaml.Node) error{
				"env": str(&a.PasswordEnv, "env"), "src": str(&a.PasswordFile, "src"), "file": str(&a.PasswordFile, "file"),
				"value": str(&a.PasswordValue, "value"),
			})
		},
	})
	if err != nil {
		return nil, err
	}
	if pw == nil {
		return nil, p.errf(v, field+".password", "missing (env: NAME, src: FILE or value: PASSWORD)")
	}
	n := len(pw.Content) / 2
	if n != 1 || (a.PasswordEnv == "" && a.PasswordFile == "" && a.PasswordValue == "") {
		return nil, p.errf(pw, field+".password", "want exactly one of env, src (file) or value")
	}
	return a, nil
}

func isHex(s string) bool {
	if len(s) < 4 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}

func (p parser) docker(n *yaml.Node, d *DockerInstructions) error {
	str := func(dst *string, field string) func(*yaml.Node) error {
		return func(v *yaml.Node) (err error) { *dst, err = p.str(v, "docker."+field); return }
	}
	return p.mapping(n, "docker", map[string]func(*yaml.Node) error{
		"WORKDIR":     str(&d.Workdir, "WORKDIR"),
		"USER":        str(&d.User, "USER"),
		"ENV":         func(v *yaml.Node) (err error) { d.Env, err = p.strMap(v, "docker.ENV"); return },
		"LABEL":       func(v *yaml.Node) (err error) { d.Label, err = p.strMap(v, "docker.LABEL"); return },
		"EXPOSE":      func(v *yaml.Node) (err error) { d.Expose, err = p.strList(v, "docker.EXPOSE", true); return },
		"VOLUME":      func(v *yaml.Node) (err error) { d.Volume, err = p.strList(v, "docker.VOLUME", true); return },
		"CMD":         func(v *yaml.Node) (err error) { d.Cmd, err = p.cmdList(v, "docker.CMD"); return },
		"ENTRYPOINT":  func(v *yaml.Node) (err error) { d.Entrypoint, err = p.cmdList(v, "docker.ENTRYPOINT"); return },
		"HEALTHCHECK": func(v *yaml.Node) (err error) { d.Healthcheck, err = p.healthcheck(v); return },
		// werf: values as written, unescaped (its docker-server backend only). Strata always
		// sets them as written, registry-side: accepted, no effect.
		"exactValues": func(v *yaml.Node) error {
			var b bool
			if v.Kind != yaml.ScalarNode || v.Decode(&b) != nil {
				return p.errf(v, "docker.exactValues", "want true or false, got %s", kindName(v))
			}
			return nil
		},
	})
}

// healthcheck parses docker.HEALTHCHECK: a mapping (test, interval, timeout, startPeriod,
// retries) or a string in Dockerfile syntax ("--interval=5s CMD curl -f localhost", "NONE", or a
// bare shell command). Durations and retries are checked here, with their line.
func (p parser) healthcheck(v *yaml.Node) (*Healthcheck, error) {
	const field = "docker.HEALTHCHECK"
	h := &Healthcheck{}
	if v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
		return h, p.healthcheckString(v, h)
	}
	dur := func(dst *string, name string) func(*yaml.Node) error {
		return func(v *yaml.Node) error {
			s, err := p.str(v, field+"."+name)
			if err == nil {
				err = p.checkDuration(v, field+"."+name, s)
			}
			*dst = s
			return err
		}
	}
	err := p.mapping(v, field, map[string]func(*yaml.Node) error{
		"test":        func(v *yaml.Node) (err error) { h.Test, err = p.cmdList(v, field+".test"); return },
		"interval":    dur(&h.Interval, "interval"),
		"timeout":     dur(&h.Timeout, "timeout"),
		"startPeriod": dur(&h.StartPeriod, "startPeriod"),
		"retries": func(v *yaml.Node) error {
			if v.Kind != yaml.ScalarNode || v.Decode(&h.Retries) != nil {
				return p.errf(v, field+".retries", "want an integer, got %s", kindName(v))
			}
			if h.Retries < 0 {
				return p.errf(v, field+".retries", "must not be negative, got %d", h.Retries)
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	return h, nil
}

func (p parser) healthcheckString(v *yaml.Node, h *Healthcheck) error {
	const field = "docker.HEALTHCHECK"
	s := strings.TrimSpace(v.Value)
	opts := false
	for strings.HasPrefix(s, "--") {
		opt, rest, _ := strings.Cut(s, " ")
		s = strings.TrimSpace(rest)
		name, val, ok := strings.Cut(strings.TrimPrefix(opt, "--"), "=")
		f := field + " --" + name
		if !ok {
			return p.errf(v, f, "want --%s=VALUE", name)
		}
		opts = true
		switch name {
		case "interval", "timeout", "start-period":
			if err := p.checkDuration(v, f, val); err != nil {
				return err
			}
			switch name {
			case "interval":
				h.Interval = val
			case "timeout":
				h.Timeout = val
			default:
				h.StartPeriod = val
			}
		case "retries":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return p.errf(v, f, "want a non-negative integer, got %q", val)
			}
			h.Retries = n
		default:
			known := []string{"--interval", "--retries", "--start-period", "--timeout"}
			if near := suggest.Nearest("--"+name, known); near != "" {
				return p.errf(v, f, "unknown option (did you mean %q?)", near)
			}
			return p.errf(v, f, "unknown option (known: %s)", strings.Join(known, ", "))
		}
	}
	upper := strings.ToUpper(s)
	switch {
	case upper == "NONE":
		if opts {
			return p.errf(v, field, "NONE takes no options")
		}
		h.Test = []string{"NONE"}
	case upper == "CMD" || s == "":
		return p.errf(v, field, "missing the command (want [OPTIONS] CMD COMMAND, or NONE)")
	case strings.HasPrefix(upper, "CMD ") || strings.HasPrefix(upper, "CMD["):
		cmd := strings.TrimSpace(s[3:])
		if strings.HasPrefix(cmd, "[") {
			var exec []string
			if err := json.Unmarshal([]byte(cmd), &exec); err != nil || len(exec) == 0 {
				return p.errf(v, field, "CMD %s: want a JSON list of strings", cmd)
			}
			h.Test = append([]string{"CMD"}, exec...)
		} else {
			h.Test = []string{"CMD-SHELL", cmd}
		}
	case opts:
		return p.errf(v, field, "want CMD after the options, got %q", s)
	default:
		h.Test = []string{"CMD-SHELL", s} // a bare shell command
	}
	return nil
}
