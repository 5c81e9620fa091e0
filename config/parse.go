package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
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
	if err := p.validate(cfg); err != nil {
		return nil, err
	}
	for _, im := range cfg.Images {
		im.ImageSpec = mergeImageSpec(cfg.ImageSpec, im.ImageSpec)
		if len(im.Platform) == 0 {
			im.Platform = cfg.Platform
		}
	}
	return cfg, checkDependencies(file, cfg)
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
				"platform":     func(v *yaml.Node) (err error) { cfg.Platform, err = p.platforms(v, "build.platform"); return },
				"staged":       p.werfOnly("build.staged"),
				"imageSpec":    func(v *yaml.Node) (err error) { cfg.ImageSpec, err = p.imageSpec(v, "build.imageSpec", true); return },
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
	"ssh":     "werf key ssh is not supported: SSH agent forwarding needs BuildKit, and Strata builds Dockerfiles with the engine's classic builder (fetch private sources in a shell stage with secrets: instead)",
	"ansible": "ansible is not supported: Strata runs stapel stages with shell: — rewrite the tasks as shell commands (shell: beforeInstall/install/beforeSetup/setup)",
}

// contextAdd parses contextAddFiles (or werf's legacy contextAddFile): a list of paths relative
// to context (a single string is accepted too), each clean and inside it; appended to dst.
func (p parser) contextAdd(v *yaml.Node, field string, dst *[]string) error {
	l, err := p.strList(v, field, true)
	if err != nil {
		return err
	}
	for i, s := range l {
		c := path.Clean(s)
		switch {
		case s == "" || path.IsAbs(s):
			return p.errf(v, fmt.Sprintf("%s[%d]", field, i), "want a path relative to context, got %q", s)
		case c == "." || c == ".." || strings.HasPrefix(c, "../"):
			return p.errf(v, fmt.Sprintf("%s[%d]", field, i), "%q is not a path inside context", s)
		}
		if !slices.Contains(*dst, c) {
			*dst = append(*dst, c)
		}
	}
	return nil
}

// image parses one image document; `image: [a, b]` gives one Image per name.
func (p parser) image(n *yaml.Node) ([]*Image, error) {
	im := &Image{Line: n.Line, Final: true}
	var notes []string
	p.notes = &notes
	var names []string
	named, nameless, artifact := false, false, false
	var gitNode, stagedNode, mountNode, depNode, addHostNode, disableNode, addNode *yaml.Node
	var fromArtifact string // werf's older fromImage for artifacts
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
		"fromArtifact":     str(&fromArtifact, "fromArtifact"),
		"fromCacheVersion": str(&im.FromCacheVersion, "fromCacheVersion"),
		"fromLatest": func(v *yaml.Node) error {
			if v.Kind != yaml.ScalarNode || v.Decode(&im.FromLatest) != nil {
				return p.errf(v, "fromLatest", "want true or false, got %s", kindName(v))
			}
			return nil
		},
		"git":             func(v *yaml.Node) (err error) { gitNode = v; im.Git, err = p.git(v); return },
		"shell":           func(v *yaml.Node) error { return p.shell(v, &im.Shell) },
		"docker":          func(v *yaml.Node) error { return p.docker(v, &im.Docker) },
		"import":          func(v *yaml.Node) (err error) { im.Import, err = p.imports(v); return },
		"mount":           func(v *yaml.Node) (err error) { mountNode = v; im.Mount, err = p.mounts(v); return },
		"dependencies":    func(v *yaml.Node) error { depNode = v; return nil },
		"secrets":         func(v *yaml.Node) (err error) { im.Secrets, err = p.secrets(v); return },
		"network":         func(v *yaml.Node) (err error) { im.Network, err = p.network(v); return },
		"addHost":         func(v *yaml.Node) (err error) { addHostNode = v; im.AddHost, err = p.addHosts(v); return },
		"platform":        func(v *yaml.Node) (err error) { im.Platform, err = p.platforms(v, "platform"); return },
		"cacheVersion":    str(&im.CacheVersion, "cacheVersion"),
		"imageSpec":       func(v *yaml.Node) (err error) { im.ImageSpec, err = p.imageSpec(v, "imageSpec", false); return },
		"contextAddFiles": func(v *yaml.Node) error { addNode = v; return p.contextAdd(v, "contextAddFiles", &im.ContextAddFiles) },
		"contextAddFile":  func(v *yaml.Node) error { addNode = v; return p.contextAdd(v, "contextAddFile", &im.ContextAddFiles) },
		"disableGitAfterPatch": func(v *yaml.Node) (err error) {
			disableNode = v
			im.DisableGitAfterPatch, err = p.boolean(v, "disableGitAfterPatch")
			return
		},
	}
	h["staged"] = func(v *yaml.Node) error {
		if v.Kind != yaml.ScalarNode || v.Decode(&im.Staged) != nil {
			return p.errf(v, "staged", "want true or false, got %s", kindName(v))
		}
		stagedNode = v
		return nil
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
	if fromArtifact != "" {
		if im.FromImage != "" {
			return nil, p.errf(n, "fromArtifact", "fromImage and fromArtifact are exclusive")
		}
		im.FromImage = fromArtifact
	}
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
	if depNode != nil {
		var err error
		if im.Dependencies, err = p.dependencies(depNode, im.Dockerfile != ""); err != nil {
			return nil, err
		}
		for _, d := range im.Dependencies {
			for _, x := range d.Imports {
				if _, ok := im.Args[x.Target]; ok {
					return nil, p.errf(depNode, "dependencies", "build arg %s is also set in args", x.Target)
				}
			}
		}
	}
	if im.Dockerfile != "" {
		if im.From != "" || im.FromImage != "" || gitNode != nil || !im.Docker.Empty() || im.Shell.Any() {
			return nil, p.errf(n, field, "dockerfile cannot be combined with from, fromImage, git, shell or docker")
		}
		if im.FromLatest {
			return nil, p.errf(n, field+".fromLatest", "needs from: REF (a Dockerfile image's base is its FROM)")
		}
		if addNode != nil && im.Staged {
			return nil, p.errf(addNode, field+".contextAddFiles", "not supported with staged: true (a staged build reads committed files only; build the image unstaged)")
		}
		for _, k := range []*yaml.Node{mountNode, disableNode} {
			if k != nil {
				return nil, p.errf(k, field, "mount and disableGitAfterPatch are keys of stage-built images (werf: stapel), not of Dockerfile images")
			}
		}
		if len(im.Secrets) > 0 {
			im.Unsupported = append(im.Unsupported, fmt.Sprintf("%s:%d: werf key secrets is not supported on a Dockerfile image: RUN --mount=type=secret needs BuildKit, and Strata builds Dockerfiles with the engine's classic builder (use a stage-built image: its shell stages get /run/secrets/ID)", p.file, keyLine(n, "secrets")))
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
		if im.Context != "" || im.Target != "" || im.Args != nil || stagedNode != nil {
			return nil, p.errf(n, field, "context, target, args and staged need dockerfile")
		}
		if addNode != nil {
			return nil, p.errf(addNode, field+".contextAddFiles", "a key of Dockerfile images (werf); a stage-built image reads committed files only")
		}
		if addHostNode != nil {
			return nil, p.errf(addHostNode, field+".addHost", "a key of Dockerfile images (werf); a shell stage runs with the host's or no network (network:)")
		}
		switch {
		case im.From == "" && im.FromImage == "" && !hasKey(n, "fromArtifact"):
			return nil, p.errf(n, field+".from", "missing: set from: REF, fromImage: IMAGE or dockerfile: PATH")
		case im.From != "" && im.FromImage != "":
			return nil, p.errf(n, field+".from", "from and fromImage are exclusive")
		case im.FromLatest && im.From == "":
			return nil, p.errf(n, field+".fromLatest", "needs from: REF (it looks the base image up in its registry)")
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

func keyLine(n *yaml.Node, key string) int {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i].Line
		}
	}
	return n.Line
}

func hasKey(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
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
	return p.validateImports(cfg, byName)
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
