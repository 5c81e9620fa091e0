package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"strata.dev/strata/internal/suggest"
)

// Parse parses the multi-document YAML of a rendered config; file names it in errors. The first
// document describes the project (project, configVersion, build, cleanup), each later one an
// image (or, with `image: [a, b]`, several).
func Parse(file string, data []byte) (*Config, error) {
	p := parser{file: file}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	cfg := &Config{File: file, Dir: ".", Cleanup: DefaultPolicy()}
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
		root, err = p.expand(root)
		if err != nil {
			return nil, err
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
		ims, err := p.image(root)
		if err != nil {
			return nil, err
		}
		cfg.Images = append(cfg.Images, ims...)
	}
	if first {
		return nil, fmt.Errorf("%s:1: empty config: want a first document with project and configVersion", file)
	}
	return cfg, p.validate(cfg)
}

type parser struct {
	file string
	// notes collects werf keys found that Strata cannot build yet (see werfOnly).
	notes *[]string
}

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

// maxNodes bounds the tree after aliases are expanded (a "billion laughs" document stops here).
const maxNodes = 200_000

// expand returns n with aliases replaced by copies of their anchors and merge keys (<<) applied,
// so the rest of the parser sees plain YAML.
func (p parser) expand(n *yaml.Node) (*yaml.Node, error) {
	count := 0
	var walk func(n *yaml.Node, depth int) (*yaml.Node, error)
	walk = func(n *yaml.Node, depth int) (*yaml.Node, error) {
		count++
		if count > maxNodes || depth > 200 {
			return nil, p.errf(n, "", "document too large or too deep after expanding aliases")
		}
		if n.Kind == yaml.AliasNode {
			return walk(n.Alias, depth+1)
		}
		if len(n.Content) == 0 {
			return n, nil
		}
		c := *n
		c.Content = make([]*yaml.Node, 0, len(n.Content))
		var merged []*yaml.Node
		for i := 0; i < len(n.Content); i++ {
			if n.Kind == yaml.MappingNode && i%2 == 0 && n.Content[i].Value == "<<" && n.Content[i].Tag == "!!merge" && i+1 < len(n.Content) {
				v, err := walk(n.Content[i+1], depth+1)
				if err != nil {
					return nil, err
				}
				srcs := []*yaml.Node{v}
				if v.Kind == yaml.SequenceNode {
					srcs = v.Content
				}
				for _, s := range srcs {
					if s.Kind != yaml.MappingNode {
						return nil, p.errf(n.Content[i], "<<", "want a mapping (or a list of mappings) to merge, got %s", kindName(s))
					}
					merged = append(merged, s.Content...)
				}
				i++
				continue
			}
			x, err := walk(n.Content[i], depth+1)
			if err != nil {
				return nil, err
			}
			c.Content = append(c.Content, x)
		}
		// Merged keys come after the explicit ones and never override them.
		for i := 0; i+1 < len(merged); i += 2 {
			dup := false
			for j := 0; j+1 < len(c.Content); j += 2 {
				if c.Content[j].Value == merged[i].Value {
					dup = true
					break
				}
			}
			if !dup {
				c.Content = append(c.Content, merged[i], merged[i+1])
			}
		}
		return &c, nil
	}
	return walk(n, 0)
}

// metaKeysIgnored are werf keys of the project document that do not change what Strata builds.
var metaKeysIgnored = []string{"deploy", "gitWorktree", "meta"}

func (p parser) meta(n *yaml.Node, cfg *Config) error {
	p.notes = &cfg.Unsupported
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			return p.errf(k, k.Value, "duplicate key")
		}
		seen[k.Value] = true
		switch k.Value {
		case "project":
			s, err := p.str(v, "project")
			if err != nil {
				return err
			}
			if s == "" {
				return p.errf(v, "project", "want a non-empty name")
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
				"platform":     p.werfOnly("build.platform"),
				"staged":       p.werfOnly("build.staged"),
				"imageSpec":    p.werfOnly("build.imageSpec"),
			}); err != nil {
				return err
			}
		case "cleanup":
			pol, err := p.policy(v)
			if err != nil {
				return err
			}
			cfg.Cleanup = pol
		case "deploy", "gitWorktree", "meta":
			// werf keys that do not change what Strata builds.
		case "image", "artifact", "from", "dockerfile":
			return p.errf(k, k.Value, "the first document describes the project; put images in later documents (after ---)")
		default:
			return p.unknown(k, "", append([]string{"project", "configVersion", "build", "cleanup"}, metaKeysIgnored...))
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

// werfOnly accepts a werf key Strata does not build yet where it changes the build: it is noted
// ("FILE:LINE: werf key X is not supported yet") and build refuses the config, never silently.
func (p parser) werfOnly(field string) func(*yaml.Node) error {
	return func(v *yaml.Node) error {
		*p.notes = append(*p.notes, fmt.Sprintf("%s:%d: werf key %s is not supported yet", p.file, v.Line, field))
		return nil
	}
}

// unsupportedImageKeys are werf image keys Strata parses but does not build yet, with the reason.
var unsupportedImageKeys = map[string]string{
	"import":               "werf key import is not supported yet (copy the files in a shell stage, or build the source as a Dockerfile stage)",
	"mount":                "werf key mount is not supported yet",
	"dependencies":         "werf key dependencies is not supported yet",
	"fromLatest":           "werf key fromLatest is not supported yet (Strata pins from: by its reference)",
	"fromArtifact":         "werf key fromArtifact is not supported yet (use fromImage)",
	"disableGitAfterPatch": "werf key disableGitAfterPatch is not supported yet",
	"platform":             "werf key platform is not supported yet (Strata builds for the engine's platform)",
	"imageSpec":            "werf key imageSpec is not supported yet (use docker: instructions)",
	"network":              "werf key network is not supported yet (use strata build --network)",
	"secrets":              "werf key secrets is not supported yet",
	"contextAddFiles":      "werf key contextAddFiles is not supported yet (Strata builds from committed files only)",
	"staged":               "werf key staged is not supported yet (a Dockerfile image is one stage)",
	"addHost":              "werf key addHost is not supported yet",
	"ssh":                  "werf key ssh is not supported yet",
	"cacheVersion":         "werf key cacheVersion on an image is not supported yet (use fromCacheVersion or shell.cacheVersion)",
	"ansible":              "ansible is not supported: Strata runs stapel stages with shell: — rewrite the tasks as shell commands (shell: beforeInstall/install/beforeSetup/setup)",
}

// image parses one image document; `image: [a, b]` gives one Image per name.
func (p parser) image(n *yaml.Node) ([]*Image, error) {
	im := &Image{Line: n.Line, Final: true}
	var notes []string
	p.notes = &notes
	var names []string
	named, nameless, artifact := false, false, false
	var gitNode *yaml.Node
	str := func(dst *string, field string) func(*yaml.Node) error {
		return func(v *yaml.Node) (err error) { *dst, err = p.str(v, field); return }
	}
	h := map[string]func(*yaml.Node) error{
		"image": func(v *yaml.Node) error {
			named = true
			switch {
			case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
				nameless = true
				return nil
			case v.Kind == yaml.SequenceNode:
				l, err := p.strList(v, "image", false)
				if err != nil {
					return err
				}
				if len(l) == 0 {
					return p.errf(v, "image", "empty list of names")
				}
				names = l
				return nil
			}
			s, err := p.str(v, "image")
			names = []string{s}
			return err
		},
		"artifact": func(v *yaml.Node) error {
			s, err := p.str(v, "artifact")
			names, artifact, im.Final = []string{s}, true, false
			return err
		},
		"final": func(v *yaml.Node) error {
			var b bool
			if v.Kind != yaml.ScalarNode || v.Decode(&b) != nil {
				return p.errf(v, "final", "want true or false, got %s", kindName(v))
			}
			im.Final = b
			return nil
		},
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
		"import":           func(v *yaml.Node) (err error) { im.Import, err = p.imports(v); return },
		"mount":            func(v *yaml.Node) (err error) { im.Mount, err = p.mounts(v); return },
		"dependencies":     func(v *yaml.Node) (err error) { im.Dependencies, err = p.dependencies(v); return },
	}
	for k := range unsupportedImageKeys {
		if _, ok := h[k]; !ok {
			h[k] = func(*yaml.Node) error { return nil }
		}
	}
	if err := p.mapping(n, "", h); err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if why, ok := unsupportedImageKeys[k.Value]; ok {
			im.Unsupported = append(im.Unsupported, fmt.Sprintf("%s:%d: %s", p.file, k.Line, why))
		}
	}
	im.Unsupported = append(im.Unsupported, notes...)
	if named && artifact {
		return nil, p.errf(n, "artifact", "image and artifact are exclusive (an artifact is an image with final: false)")
	}
	if !named && !artifact {
		return nil, p.errf(n, "image", "missing (each image document needs image: NAME)")
	}
	if nameless {
		names = []string{""}
	}
	for _, nm := range names {
		if nm == "" && !nameless {
			return nil, p.errf(n, "image", "empty name (use image: ~ for the single nameless image)")
		}
	}
	field := "image " + strings.Join(names, ",")
	if nameless {
		field = "image ~"
	}
	if im.Dockerfile != "" {
		if im.From != "" || im.FromImage != "" || gitNode != nil || !im.Docker.Empty() || im.Shell.Any() {
			return nil, p.errf(n, field, "dockerfile cannot be combined with from, fromImage, git, shell or docker")
		}
		if path.IsAbs(im.Dockerfile) {
			return nil, p.errf(n, field+".dockerfile", "want a path relative to context, got %q", im.Dockerfile)
		}
		if path.IsAbs(im.Context) {
			return nil, p.errf(n, field+".context", "want a path relative to the project directory, got %q", im.Context)
		}
		if c := path.Clean(im.Context); c == ".." || strings.HasPrefix(c, "../") {
			return nil, p.errf(n, field+".context", "%q is outside the project directory (werf: context must stay inside it)", im.Context)
		}
	} else {
		if im.Context != "" || im.Target != "" || im.Args != nil {
			return nil, p.errf(n, field, "context, target and args need dockerfile")
		}
		switch {
		case im.From == "" && im.FromImage == "" && !hasKey(n, "fromArtifact"):
			return nil, p.errf(n, field+".from", "missing: set from: REF, fromImage: IMAGE or dockerfile: PATH")
		case im.From != "" && im.FromImage != "":
			return nil, p.errf(n, field+".from", "from and fromImage are exclusive")
		}
	}
	out := make([]*Image, len(names))
	for i, nm := range names {
		c := *im
		c.Name = nm
		out[i] = &c
	}
	return out, nil
}

func hasKey(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
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
		remote := false
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
			"url": func(v *yaml.Node) error {
				remote = true
				return p.werfOnly(f + ".url (remote repositories)")(v)
			},
			"branch": p.werfOnly(f + ".branch"),
			"tag":    p.werfOnly(f + ".tag"),
			"commit": p.werfOnly(f + ".commit"),
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
		if !remote {
			out = append(out, g)
		}
	}
	return out, nil
}

func (p parser) imports(n *yaml.Node) ([]Import, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, p.errf(n, "import", "want a list of mappings, got %s", kindName(n))
	}
	var out []Import
	for i, item := range n.Content {
		f := fmt.Sprintf("import[%d]", i)
		var im Import
		str := func(dst *string, field string) func(*yaml.Node) error {
			return func(v *yaml.Node) (err error) { *dst, err = p.str(v, f+"."+field); return }
		}
		stage := func(dst *string, field string) func(*yaml.Node) error {
			return func(v *yaml.Node) error {
				s, err := p.str(v, f+"."+field)
				if err == nil && s != "install" && s != "setup" {
					err = p.errf(v, f+"."+field, "want install or setup, got %q", s)
				}
				*dst = s
				return err
			}
		}
		err := p.mapping(item, f, map[string]func(*yaml.Node) error{
			"image": str(&im.Image, "image"), "artifact": str(&im.Artifact, "artifact"), "stage": str(&im.Stage, "stage"),
			"add": str(&im.Add, "add"), "to": str(&im.To, "to"), "owner": str(&im.Owner, "owner"), "group": str(&im.Group, "group"),
			"after": stage(&im.After, "after"), "before": stage(&im.Before, "before"),
			"includePaths": func(v *yaml.Node) (err error) { im.IncludePaths, err = p.globList(v, f+".includePaths"); return },
			"excludePaths": func(v *yaml.Node) (err error) { im.ExcludePaths, err = p.globList(v, f+".excludePaths"); return },
		})
		if err != nil {
			return nil, err
		}
		switch {
		case im.Image == "" && im.Artifact == "":
			return nil, p.errf(item, f, "missing the source: image: NAME or artifact: NAME")
		case im.Image != "" && im.Artifact != "":
			return nil, p.errf(item, f, "image and artifact are exclusive")
		case im.Add == "" || !path.IsAbs(im.Add):
			return nil, p.errf(item, f+".add", "want an absolute path in the source image")
		case im.After != "" && im.Before != "":
			return nil, p.errf(item, f, "after and before are exclusive")
		}
		if im.To == "" {
			im.To = im.Add
		}
		out = append(out, im)
	}
	return out, nil
}

func (p parser) mounts(n *yaml.Node) ([]Mount, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, p.errf(n, "mount", "want a list of mappings, got %s", kindName(n))
	}
	var out []Mount
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
		out = append(out, m)
	}
	return out, nil
}

func (p parser) dependencies(n *yaml.Node) ([]Dependency, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, p.errf(n, "dependencies", "want a list of mappings, got %s", kindName(n))
	}
	var out []Dependency
	for i, item := range n.Content {
		f := fmt.Sprintf("dependencies[%d]", i)
		d := Dependency{Imports: map[string]string{}}
		err := p.mapping(item, f, map[string]func(*yaml.Node) error{
			"image":  func(v *yaml.Node) (err error) { d.Image, err = p.str(v, f+".image"); return },
			"before": func(v *yaml.Node) (err error) { d.Before, err = p.str(v, f+".before"); return },
			"after":  func(v *yaml.Node) (err error) { d.After, err = p.str(v, f+".after"); return },
			"imports": func(v *yaml.Node) error {
				if v.Kind != yaml.SequenceNode {
					return p.errf(v, f+".imports", "want a list of mappings, got %s", kindName(v))
				}
				for j, it := range v.Content {
					g := fmt.Sprintf("%s.imports[%d]", f, j)
					var typ, target string
					set := func(v *yaml.Node) (err error) { target, err = p.str(v, g); return }
					if err := p.mapping(it, g, map[string]func(*yaml.Node) error{
						"type":           func(v *yaml.Node) (err error) { typ, err = p.str(v, g+".type"); return },
						"targetEnv":      set,
						"targetBuildArg": set,
					}); err != nil {
						return err
					}
					d.Imports[typ] = target
				}
				return nil
			},
		})
		if err != nil {
			return nil, err
		}
		if d.Image == "" {
			return nil, p.errf(item, f+".image", "missing")
		}
		out = append(out, d)
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
		if im.Name == "" && len(cfg.Images) > 1 {
			return fmt.Errorf("%s:%d: image ~: a nameless image must be the only image of the config", p.file, im.Line)
		}
		if prev, ok := byName[im.Name]; ok {
			return fmt.Errorf("%s:%d: image %s: duplicate (first at line %d)", p.file, im.Line, im.Name, prev.Line)
		}
		byName[im.Name] = im
	}
	for _, im := range cfg.Images {
		for _, x := range im.Import {
			src := x.Image + x.Artifact
			if _, ok := byName[src]; !ok {
				return fmt.Errorf("%s:%d: image %s: import: no image or artifact %q in the config", p.file, im.Line, im.Name, src)
			}
		}
		for _, d := range im.Dependencies {
			if _, ok := byName[d.Image]; !ok {
				return fmt.Errorf("%s:%d: image %s: dependencies: no image %q in the config", p.file, im.Line, im.Name, d.Image)
			}
		}
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
