package config

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// The werf image keys around the stages: mount, secrets, network, addHost, platform,
// dependencies, imageSpec.

// mounts parses mount: (stage-built images only).
func (p parser) mounts(n *yaml.Node) ([]Mount, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, p.errf(n, "mount", "want a list of mappings, got %s", kindName(n))
	}
	var out []Mount
	seen := map[string]int{}
	for i, item := range n.Content {
		f := fmt.Sprintf("mount[%d]", i)
		var m Mount
		err := p.mapping(item, f, map[string]func(*yaml.Node) error{
			"from": func(v *yaml.Node) (err error) {
				if m.From, err = p.str(v, f+".from"); err == nil && m.From != "tmp_dir" && m.From != "build_dir" {
					err = p.errf(v, f+".from", "want tmp_dir or build_dir, got %q", m.From)
				}
				return
			},
			"fromPath": func(v *yaml.Node) (err error) { m.FromPath, err = p.str(v, f+".fromPath"); return },
			"to":       func(v *yaml.Node) (err error) { m.To, err = p.str(v, f+".to"); return },
		})
		if err != nil {
			return nil, err
		}
		if (m.From == "") == (m.FromPath == "") {
			return nil, p.errf(item, f, "want one of from: tmp_dir|build_dir or fromPath: PATH")
		}
		if !path.IsAbs(m.To) {
			return nil, p.errf(item, f+".to", "want an absolute path in the image")
		}
		m.To = path.Clean(m.To)
		if m.To == "/" {
			return nil, p.errf(item, f+".to", "cannot mount over /")
		}
		if j, ok := seen[m.To]; ok {
			return nil, p.errf(item, f+".to", "%s is already mounted by mount[%d]", m.To, j)
		}
		seen[m.To] = i
		out = append(out, m)
	}
	return out, nil
}

var secretID = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// secrets parses secrets: (werf: each of env, src or value, with an optional id).
func (p parser) secrets(n *yaml.Node) ([]Secret, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, p.errf(n, "secrets", "want a list of mappings, got %s", kindName(n))
	}
	var out []Secret
	ids := map[string]int{}
	for i, item := range n.Content {
		f := fmt.Sprintf("secrets[%d]", i)
		var s Secret
		str := func(dst *string, field string) func(*yaml.Node) error {
			return func(v *yaml.Node) (err error) {
				if *dst, err = p.str(v, f+"."+field); err == nil && *dst == "" {
					err = p.errf(v, f+"."+field, "empty")
				}
				return
			}
		}
		if err := p.mapping(item, f, map[string]func(*yaml.Node) error{
			"id": str(&s.ID, "id"), "env": str(&s.Env, "env"), "src": str(&s.Src, "src"), "value": str(&s.Value, "value"),
		}); err != nil {
			return nil, err
		}
		kinds := 0
		for _, x := range []string{s.Env, s.Src, s.Value} {
			if x != "" {
				kinds++
			}
		}
		if kinds != 1 {
			return nil, p.errf(item, f, "want exactly one of env, src or value")
		}
		switch {
		case s.ID != "":
		case s.Env != "":
			s.ID = s.Env
		case s.Src != "":
			s.ID = path.Base(s.Src)
		default:
			return nil, p.errf(item, f+".id", "missing (a value: secret needs id)")
		}
		if !secretID.MatchString(s.ID) || s.ID == "." || s.ID == ".." {
			return nil, p.errf(item, f+".id", "%q: want letters, digits, '_', '.' or '-' (it names the file /run/secrets/ID)", s.ID)
		}
		if j, ok := ids[s.ID]; ok {
			return nil, p.errf(item, f+".id", "duplicate secret %q (first in secrets[%d])", s.ID, j)
		}
		ids[s.ID] = i
		out = append(out, s)
	}
	return out, nil
}

// network parses network: only what Strata runs containers with.
func (p parser) network(v *yaml.Node) (string, error) {
	s, err := p.str(v, "network")
	if err != nil {
		return "", err
	}
	switch s {
	case "host", "none":
		return s, nil
	case "default", "bridge":
		return "", p.errf(v, "network", "%q: Strata never uses Docker's default bridge network; want host or none", s)
	}
	return "", p.errf(v, "network", "%q: not supported (want host or none; named networks and container:ID are not)", s)
}

// addHosts parses addHost: "host:ip" entries, a string (comma-separated, as werf) or a list.
func (p parser) addHosts(v *yaml.Node) ([]string, error) {
	var l []string
	if v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
		for _, x := range strings.Split(v.Value, ",") {
			l = append(l, strings.TrimSpace(x))
		}
	} else {
		var err error
		if l, err = p.strList(v, "addHost", false); err != nil {
			return nil, err
		}
	}
	for _, h := range l {
		host, ip, ok := strings.Cut(h, ":")
		if !ok || host == "" || ip == "" {
			return nil, p.errf(v, "addHost", "%q: want HOST:IP", h)
		}
	}
	return l, nil
}

var platformRe = regexp.MustCompile(`^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$`)

// platforms parses platform: os/arch[/variant] (a list, or one).
func (p parser) platforms(v *yaml.Node, field string) ([]string, error) {
	l, err := p.strList(v, field, true)
	if err != nil {
		return nil, err
	}
	for _, x := range l {
		if !platformRe.MatchString(x) {
			return nil, p.errf(v, field, "%q: want OS/ARCH[/VARIANT] (e.g. linux/amd64)", x)
		}
	}
	return l, nil
}

func (p parser) boolean(v *yaml.Node, field string) (bool, error) {
	var b bool
	if v.Kind != yaml.ScalarNode || v.Decode(&b) != nil {
		return false, p.errf(v, field, "want true or false, got %s", kindName(v))
	}
	return b, nil
}

// dependencies parses dependencies: of a stage-built image (before/after, targetEnv) or of a
// Dockerfile image (targetBuildArg), with werf's checks.
func (p parser) dependencies(n *yaml.Node, dockerfile bool) ([]Dependency, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, p.errf(n, "dependencies", "want a list of mappings, got %s", kindName(n))
	}
	targetKey, otherKey := "targetEnv", "targetBuildArg"
	if dockerfile {
		targetKey, otherKey = otherKey, targetKey
	}
	var out []Dependency
	targets := map[string]string{}
	for i, item := range n.Content {
		f := fmt.Sprintf("dependencies[%d]", i)
		var d Dependency
		stage := func(dst *string, field string) func(*yaml.Node) error {
			return func(v *yaml.Node) error {
				if dockerfile {
					return p.errf(v, f+"."+field, "not for Dockerfile images (werf: build args are set before the build)")
				}
				s, err := p.str(v, f+"."+field)
				if err == nil && s != "install" && s != "setup" {
					err = p.errf(v, f+"."+field, "want install or setup, got %q", s)
				}
				*dst = s
				return err
			}
		}
		err := p.mapping(item, f, map[string]func(*yaml.Node) error{
			"image":  func(v *yaml.Node) (err error) { d.Image, err = p.str(v, f+".image"); return },
			"before": stage(&d.Before, "before"),
			"after":  stage(&d.After, "after"),
			"imports": func(v *yaml.Node) error {
				if v.Kind != yaml.SequenceNode {
					return p.errf(v, f+".imports", "want a list of mappings, got %s", kindName(v))
				}
				for j, it := range v.Content {
					g := fmt.Sprintf("%s.imports[%d]", f, j)
					var imp DependencyImport
					if err := p.mapping(it, g, map[string]func(*yaml.Node) error{
						"type": func(v *yaml.Node) (err error) {
							if imp.Type, err = p.str(v, g+".type"); err != nil {
								return err
							}
							for _, t := range DependencyTypes() {
								if t == imp.Type {
									return nil
								}
							}
							return p.errf(v, g+".type", "%q: want one of %s", imp.Type, strings.Join(DependencyTypes(), ", "))
						},
						targetKey: func(v *yaml.Node) (err error) { imp.Target, err = p.str(v, g+"."+targetKey); return },
						otherKey: func(v *yaml.Node) error {
							kind := "a stage-built (stapel) image"
							if dockerfile {
								kind = "a Dockerfile image"
							}
							return p.errf(v, g+"."+otherKey, "not for %s: use %s", kind, targetKey)
						},
					}); err != nil {
						return err
					}
					switch {
					case imp.Type == "":
						return p.errf(it, g+".type", "missing (want one of %s)", strings.Join(DependencyTypes(), ", "))
					case imp.Target == "":
						return p.errf(it, g+"."+targetKey, "missing")
					}
					if prev, ok := targets[imp.Target]; ok {
						return p.errf(it, g+"."+targetKey, "%s is already set by %s", imp.Target, prev)
					}
					targets[imp.Target] = g
					d.Imports = append(d.Imports, imp)
				}
				return nil
			},
		})
		if err != nil {
			return nil, err
		}
		switch {
		case d.Image == "":
			return nil, p.errf(item, f+".image", "missing")
		case !dockerfile && d.Before == "" && d.After == "":
			return nil, p.errf(item, f, "missing the stage: before: install|setup or after: install|setup")
		case d.Before != "" && d.After != "":
			return nil, p.errf(item, f, "before and after are exclusive")
		}
		out = append(out, d)
	}
	return out, nil
}

// imageSpec parses imageSpec: of an image, or build.imageSpec (global: only author,
// clearHistory and config.{labels, removeLabels, keepEssentialWerfLabels, clearWerfLabels}).
func (p parser) imageSpec(n *yaml.Node, field string, global bool) (*ImageSpec, error) {
	s := &ImageSpec{}
	str := func(dst *string, f string) func(*yaml.Node) error {
		return func(v *yaml.Node) (err error) { *dst, err = p.str(v, f); return }
	}
	flag := func(dst *bool, f string) func(*yaml.Node) error {
		return func(v *yaml.Node) (err error) { *dst, err = p.boolean(v, f); return }
	}
	patterns := func(dst *[]string, f string) func(*yaml.Node) error {
		return func(v *yaml.Node) error {
			l, err := p.strList(v, f, false)
			for _, x := range l {
				if len(x) > 1 && strings.HasPrefix(x, "/") && strings.HasSuffix(x, "/") {
					if _, rerr := regexp.Compile(x[1 : len(x)-1]); rerr != nil {
						return p.errf(v, f, "bad regular expression %s: %v", x, rerr)
					}
				}
			}
			*dst = l
			return err
		}
	}
	cf := field + ".config"
	config := map[string]func(*yaml.Node) error{
		"keepEssentialWerfLabels": flag(&s.KeepEssentialWerfLabels, cf+".keepEssentialWerfLabels"),
		"clearWerfLabels":         flag(&s.ClearWerfLabels, cf+".clearWerfLabels"),
		"removeLabels":            patterns(&s.RemoveLabels, cf+".removeLabels"),
		"labels":                  func(v *yaml.Node) (err error) { s.Labels, err = p.strMap(v, cf+".labels"); return },
	}
	if !global {
		for k, h := range map[string]func(*yaml.Node) error{
			"clearCmd":        flag(&s.ClearCmd, cf+".clearCmd"),
			"clearEntrypoint": flag(&s.ClearEntrypoint, cf+".clearEntrypoint"),
			"clearUser":       flag(&s.ClearUser, cf+".clearUser"),
			"clearWorkingDir": flag(&s.ClearWorkingDir, cf+".clearWorkingDir"),
			"removeVolumes": func(v *yaml.Node) (err error) {
				s.RemoveVolumes, err = p.strList(v, cf+".removeVolumes", false)
				return
			},
			"removeEnv":   patterns(&s.RemoveEnv, cf+".removeEnv"),
			"volumes":     func(v *yaml.Node) (err error) { s.Volumes, err = p.strList(v, cf+".volumes", false); return },
			"expose":      func(v *yaml.Node) (err error) { s.Expose, err = p.strList(v, cf+".expose", false); return },
			"env":         func(v *yaml.Node) (err error) { s.Env, err = p.strMap(v, cf+".env"); return },
			"user":        str(&s.User, cf+".user"),
			"workingDir":  str(&s.WorkingDir, cf+".workingDir"),
			"stopSignal":  str(&s.StopSignal, cf+".stopSignal"),
			"cmd":         func(v *yaml.Node) (err error) { s.Cmd, err = p.strList(v, cf+".cmd", false); return },
			"entrypoint":  func(v *yaml.Node) (err error) { s.Entrypoint, err = p.strList(v, cf+".entrypoint", false); return },
			"healthcheck": func(v *yaml.Node) (err error) { s.Healthcheck, err = p.specHealthcheck(v, cf+".healthcheck"); return },
		} {
			config[k] = h
		}
	}
	if err := p.mapping(n, field, map[string]func(*yaml.Node) error{
		"author":       str(&s.Author, field+".author"),
		"clearHistory": flag(&s.ClearHistory, field+".clearHistory"),
		"config":       func(v *yaml.Node) error { return p.mapping(v, cf, config) },
	}); err != nil {
		return nil, err
	}
	return s, nil
}

// specHealthcheck parses imageSpec.config.healthcheck: test, and durations as werf writes them
// (integer seconds) or Go durations ("30s").
func (p parser) specHealthcheck(v *yaml.Node, field string) (*Healthcheck, error) {
	h := &Healthcheck{}
	dur := func(dst *string, name string) func(*yaml.Node) error {
		return func(v *yaml.Node) error {
			s, err := p.str(v, field+"."+name)
			if err != nil {
				return err
			}
			if n, aerr := strconv.Atoi(s); aerr == nil {
				if n < 0 {
					return p.errf(v, field+"."+name, "must not be negative, got %d", n)
				}
				s = strconv.Itoa(n) + "s"
			}
			*dst = s
			return p.checkDuration(v, field+"."+name, s)
		}
	}
	err := p.mapping(v, field, map[string]func(*yaml.Node) error{
		"test":        func(v *yaml.Node) (err error) { h.Test, err = p.strList(v, field+".test", false); return },
		"interval":    dur(&h.Interval, "interval"),
		"timeout":     dur(&h.Timeout, "timeout"),
		"startPeriod": dur(&h.StartPeriod, "startPeriod"),
		"retries": func(v *yaml.Node) error {
			if v.Kind != yaml.ScalarNode || v.Decode(&h.Retries) != nil || h.Retries < 0 {
				return p.errf(v, field+".retries", "want a non-negative integer, got %s", kindName(v))
			}
			return nil
		},
	})
	if err == nil && len(h.Test) == 0 {
		err = p.errf(v, field+".test", "missing (e.g. [CMD, app, health], or [NONE])")
	}
	return h, err
}

// mergeImageSpec merges build.imageSpec into an image's (werf: the global author wins, flags
// are or-ed, labels added, removeLabels joined).
func mergeImageSpec(global, im *ImageSpec) *ImageSpec {
	if global == nil {
		return im
	}
	out := ImageSpec{}
	if im != nil {
		out = *im
	}
	if global.Author != "" {
		out.Author = global.Author
	}
	out.ClearHistory = out.ClearHistory || global.ClearHistory
	out.KeepEssentialWerfLabels = out.KeepEssentialWerfLabels || global.KeepEssentialWerfLabels
	out.ClearWerfLabels = out.ClearWerfLabels || global.ClearWerfLabels
	if len(global.Labels) > 0 {
		labels := map[string]string{}
		for k, v := range out.Labels {
			labels[k] = v
		}
		for k, v := range global.Labels {
			labels[k] = v
		}
		out.Labels = labels
	}
	for _, r := range global.RemoveLabels {
		dup := false
		for _, x := range out.RemoveLabels {
			dup = dup || x == r
		}
		if !dup {
			out.RemoveLabels = append(out.RemoveLabels, r)
		}
	}
	return &out
}

// checkDependencies checks that dependencies name other images of the config (cycles through
// them are found with fromImage and imports: Image.Needs).
func checkDependencies(file string, cfg *Config) error {
	byName := map[string]*Image{}
	for _, im := range cfg.Images {
		byName[im.Name] = im
	}
	for _, im := range cfg.Images {
		for _, d := range im.Dependencies {
			if _, ok := byName[d.Image]; !ok {
				return fmt.Errorf("%s:%d: image %s: dependencies: no image %q in the config", file, im.Line, im.Name, d.Image)
			}
			if d.Image == im.Name {
				return fmt.Errorf("%s:%d: image %s: dependencies: an image cannot depend on itself", file, im.Line, im.Name)
			}
		}
	}
	return nil
}
