package build

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"strata.dev/strata/internal/suggest"
)

// Config is a parsed strata.yaml (or werf.yaml).
type Config struct {
	File          string
	Project       string
	ConfigVersion int
	CacheVersion  string // build.cacheVersion
	Images        []*Image
}

// Image is one image document.
type Image struct {
	Name string
	Line int

	// Dockerfile images.
	Dockerfile string
	Context    string
	Target     string
	Args       map[string]string

	// Stage-built images.
	From             string
	FromImage        string
	FromCacheVersion string
	Git              []GitMapping
	Shell            Shell
	Docker           DockerInstructions
}

// GitMapping adds files of the project's git repository to an image.
type GitMapping struct {
	Add               string // path in the repository ("/" = root)
	To                string // absolute path in the image
	IncludePaths      []string
	ExcludePaths      []string
	Owner, Group      string
	StageDependencies map[string][]string // install, beforeSetup, setup -> globs
}

// Shell holds the commands of the user stages.
type Shell struct {
	BeforeInstall, Install, BeforeSetup, Setup []string
	CacheVersion                               string
	StageCacheVersion                          map[string]string // stage name -> cacheVersion
}

// DockerInstructions change the image config in the last stage.
type DockerInstructions struct {
	Workdir     string
	Env         map[string]string
	Expose      []string
	User        string
	Cmd         []string
	Entrypoint  []string
	Label       map[string]string
	Volume      []string
	Healthcheck *Healthcheck
}

// Healthcheck is the docker HEALTHCHECK instruction.
type Healthcheck struct {
	Test                           []string
	Interval, Timeout, StartPeriod string
	Retries                        int
}

func (d DockerInstructions) empty() bool {
	return d.Workdir == "" && len(d.Env) == 0 && len(d.Expose) == 0 && d.User == "" && d.Cmd == nil &&
		d.Entrypoint == nil && len(d.Label) == 0 && len(d.Volume) == 0 && d.Healthcheck == nil
}

// ConfigFiles are the names looked up in a project directory, in order.
var ConfigFiles = []string{"strata.yaml", "strata.yml", "werf.yaml", "werf.yml"}

// FindConfig returns the config file of dir.
func FindConfig(dir string) (string, error) {
	for _, n := range ConfigFiles {
		p := filepath.Join(dir, n)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no %s in %s", strings.Join(ConfigFiles, ", "), dir)
}

// ReadConfig reads and parses a config file.
func ReadConfig(file string) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseConfig(file, data)
}

type parser struct{ file string }

func (p parser) errf(n *yaml.Node, field, format string, a ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	msg := fmt.Sprintf(format, a...)
	if field != "" {
		msg = field + ": " + msg
	}
	return fmt.Errorf("%s:%d: %s", p.file, line, msg)
}

// ParseConfig parses the multi-document YAML of a config file; file names it in errors.
func ParseConfig(file string, data []byte) (*Config, error) {
	p := parser{file: file}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	cfg := &Config{File: file}
	first := true
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		root := &doc
		if root.Kind == yaml.DocumentNode {
			if len(root.Content) == 0 {
				continue
			}
			root = root.Content[0]
		}
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			continue
		}
		if root.Kind != yaml.MappingNode {
			return nil, p.errf(root, "", "want a mapping, got %s", kindName(root))
		}
		if first {
			first = false
			if err := p.meta(root, cfg); err != nil {
				return nil, err
			}
			continue
		}
		im, err := p.image(root)
		if err != nil {
			return nil, err
		}
		cfg.Images = append(cfg.Images, im)
	}
	if first {
		return nil, fmt.Errorf("%s:1: empty config: want a first document with project and configVersion", file)
	}
	return cfg, p.validate(cfg)
}

func (p parser) meta(n *yaml.Node, cfg *Config) error {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		seen[k.Value] = true
		switch k.Value {
		case "project":
			s, err := p.str(v, "project")
			if err != nil {
				return err
			}
			cfg.Project = s
		case "configVersion":
			var x int
			if v.Kind != yaml.ScalarNode || v.Decode(&x) != nil {
				return p.errf(v, "configVersion", "want an integer, got %s", kindName(v))
			}
			if x != 1 {
				return p.errf(v, "configVersion", "unsupported version %d (want 1)", x)
			}
			cfg.ConfigVersion = x
		case "build":
			if err := p.mapping(v, "build", map[string]func(*yaml.Node) error{
				"cacheVersion": func(v *yaml.Node) (err error) { cfg.CacheVersion, err = p.str(v, "build.cacheVersion"); return },
			}); err != nil {
				return err
			}
		case "cleanup", "deploy", "gitWorktree", "meta":
			// Read by other commands (cleanup) or ignored werf keys.
		case "image", "from", "dockerfile":
			return p.errf(k, k.Value, "the first document describes the project; put images in later documents (after ---)")
		default:
			return p.unknown(k, "", []string{"project", "configVersion", "build", "cleanup"})
		}
	}
	if cfg.Project == "" {
		return p.errf(n, "project", "missing (the first document needs project: NAME)")
	}
	if !seen["configVersion"] {
		return p.errf(n, "configVersion", "missing (want configVersion: 1)")
	}
	return nil
}

func (p parser) image(n *yaml.Node) (*Image, error) {
	im := &Image{Line: n.Line}
	var gitNode *yaml.Node
	str := func(dst *string, field string) func(*yaml.Node) error {
		return func(v *yaml.Node) (err error) { *dst, err = p.str(v, field); return }
	}
	err := p.mapping(n, "", map[string]func(*yaml.Node) error{
		"image":            str(&im.Name, "image"),
		"dockerfile":       str(&im.Dockerfile, "dockerfile"),
		"context":          str(&im.Context, "context"),
		"target":           str(&im.Target, "target"),
		"args":             func(v *yaml.Node) (err error) { im.Args, err = p.strMap(v, "args"); return },
		"from":             str(&im.From, "from"),
		"fromImage":        str(&im.FromImage, "fromImage"),
		"fromCacheVersion": str(&im.FromCacheVersion, "fromCacheVersion"),
		"git":              func(v *yaml.Node) (err error) { gitNode = v; im.Git, err = p.git(v); return },
		"shell":            func(v *yaml.Node) error { return p.shell(v, &im.Shell) },
		"docker":           func(v *yaml.Node) error { return p.docker(v, &im.Docker) },
	})
	if err != nil {
		return nil, err
	}
	if im.Name == "" {
		return nil, p.errf(n, "image", "missing (each image document needs image: NAME)")
	}
	field := "image " + im.Name
	if im.Dockerfile != "" {
		if im.From != "" || im.FromImage != "" || gitNode != nil || !im.Docker.empty() || im.Shell.any() {
			return nil, p.errf(n, field, "dockerfile cannot be combined with from, fromImage, git, shell or docker")
		}
		return im, nil
	}
	if im.Context != "" || im.Target != "" || im.Args != nil {
		return nil, p.errf(n, field, "context, target and args need dockerfile")
	}
	switch {
	case im.From == "" && im.FromImage == "":
		return nil, p.errf(n, field+".from", "missing: set from: REF, fromImage: IMAGE or dockerfile: PATH")
	case im.From != "" && im.FromImage != "":
		return nil, p.errf(n, field+".from", "from and fromImage are exclusive")
	}
	return im, nil
}

func (s Shell) any() bool {
	return len(s.BeforeInstall)+len(s.Install)+len(s.BeforeSetup)+len(s.Setup) > 0
}

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
		})
		if err != nil {
			return nil, err
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

// checkDuration accepts what docker accepts for HEALTHCHECK durations: 0 or at least 1ms.
func (p parser) checkDuration(v *yaml.Node, field, s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return p.errf(v, field, "bad duration %q (want e.g. 30s, 1m30s, 500ms)", s)
	}
	if d < 0 || (d > 0 && d < time.Millisecond) {
		return p.errf(v, field, "duration %q: want 0 or at least 1ms", s)
	}
	return nil
}

// globList is a list of globs (or one), each checked for syntax with its own line.
func (p parser) globList(v *yaml.Node, field string) ([]string, error) {
	out, err := p.strList(v, field, true)
	if err != nil {
		return nil, err
	}
	for i, gl := range out {
		n, f := v, field
		if v.Kind == yaml.SequenceNode {
			n, f = v.Content[i], fmt.Sprintf("%s[%d]", field, i)
		}
		if strings.TrimSpace(gl) == "" {
			return nil, p.errf(n, f, "empty glob")
		}
		if _, err := path.Match(strings.ReplaceAll(gl, "**", "*"), ""); err != nil {
			return nil, p.errf(n, f, "bad glob %q: %v", gl, err)
		}
	}
	return out, nil
}

// mapping walks a mapping node, calling the handler of each key; unknown keys are errors.
func (p parser) mapping(n *yaml.Node, field string, h map[string]func(*yaml.Node) error) error {
	if n.Kind != yaml.MappingNode {
		return p.errf(n, field, "want a mapping, got %s", kindName(n))
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, ok := h[k.Value]
		if !ok {
			known := make([]string, 0, len(h))
			for x := range h {
				known = append(known, x)
			}
			return p.unknown(k, field, known)
		}
		if seen[k.Value] {
			return p.errf(k, join(field, k.Value), "duplicate key")
		}
		seen[k.Value] = true
		if err := f(v); err != nil {
			return err
		}
	}
	return nil
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

func (p parser) unknown(k *yaml.Node, field string, known []string) error {
	sort.Strings(known)
	msg := "unknown key"
	if near := suggest.Nearest(k.Value, known); near != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", near)
	} else {
		msg += " (known: " + strings.Join(known, ", ") + ")"
	}
	return p.errf(k, join(field, k.Value), "%s", msg)
}

func (p parser) str(v *yaml.Node, field string) (string, error) {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		return "", p.errf(v, field, "want a string, got %s", kindName(v))
	}
	return v.Value, nil
}

func (p parser) strList(v *yaml.Node, field string, scalarOK bool) ([]string, error) {
	if scalarOK && v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
		return []string{v.Value}, nil
	}
	if v.Kind != yaml.SequenceNode {
		return nil, p.errf(v, field, "want a list of strings, got %s", kindName(v))
	}
	out := make([]string, 0, len(v.Content))
	for i, c := range v.Content {
		s, err := p.str(c, fmt.Sprintf("%s[%d]", field, i))
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// cmdList accepts a list (exec form) or a string (shell form, kept as ["/bin/sh", "-c", s]).
func (p parser) cmdList(v *yaml.Node, field string) ([]string, error) {
	if v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
		return []string{"/bin/sh", "-c", v.Value}, nil
	}
	return p.strList(v, field, false)
}

func (p parser) strMap(v *yaml.Node, field string) (map[string]string, error) {
	if v.Kind != yaml.MappingNode {
		return nil, p.errf(v, field, "want a mapping of strings, got %s", kindName(v))
	}
	out := map[string]string{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		s, err := p.str(val, field+"."+k.Value)
		if err != nil {
			return nil, err
		}
		out[k.Value] = s
	}
	return out, nil
}

func (p parser) validate(cfg *Config) error {
	byName := map[string]*Image{}
	for _, im := range cfg.Images {
		if prev, ok := byName[im.Name]; ok {
			return fmt.Errorf("%s:%d: image %s: duplicate (first at line %d)", p.file, im.Line, im.Name, prev.Line)
		}
		byName[im.Name] = im
	}
	for _, im := range cfg.Images {
		if im.FromImage == "" {
			continue
		}
		if _, ok := byName[im.FromImage]; !ok {
			return fmt.Errorf("%s:%d: image %s: fromImage: no image %q in the config", p.file, im.Line, im.Name, im.FromImage)
		}
		// Cycle check.
		seen := map[string]bool{im.Name: true}
		for cur := byName[im.FromImage]; cur != nil; cur = byName[cur.FromImage] {
			if seen[cur.Name] {
				return fmt.Errorf("%s:%d: image %s: fromImage cycle through %s", p.file, im.Line, im.Name, cur.Name)
			}
			seen[cur.Name] = true
			if cur.FromImage == "" {
				break
			}
		}
	}
	return nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.Tag == "!!null" {
		return "nothing"
	}
	return fmt.Sprintf("%s %q", strings.TrimPrefix(n.Tag, "!!"), n.Value)
}
