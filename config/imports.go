package config

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// werf's stapel imports: an image copies files from another image of the config (an artifact,
// a `final: false` image, any image) or from an external image, in one of four import stages.

// ImportStages are the import stages of a stapel image in pipeline order, as werf places them:
// importsBeforeInstall after beforeInstall (before gitArchive), importsAfterInstall after
// install, importsBeforeSetup after beforeSetup, importsAfterSetup after setup.
func ImportStages() []string {
	return []string{"importsBeforeInstall", "importsAfterInstall", "importsBeforeSetup", "importsAfterSetup"}
}

// SourceStages are the values of an import's `stage:`: user stages of a stapel source image.
func SourceStages() []string { return append([]string(nil), userStages...) }

// Source is the name of the config image the import copies from ("" for an external image).
func (x Import) Source() string {
	if x.Artifact != "" {
		return x.Artifact
	}
	return x.Image
}

// StageName is the import stage the import belongs to (one of ImportStages).
func (x Import) StageName() string {
	if x.Before != "" {
		return "importsBefore" + strings.ToUpper(x.Before[:1]) + x.Before[1:]
	}
	return "importsAfter" + strings.ToUpper(x.After[:1]) + x.After[1:]
}

// imports parses an image's `import:` list with werf's rules: one source (image, artifact, or
// from: a config image or an external reference with a tag or digest), add and to absolute
// paths (to defaults to add), exactly one of before/after (install or setup), stage one of the
// source's user stages, includePaths/excludePaths relative, add: / only with includePaths.
func (p parser) imports(n *yaml.Node) ([]Import, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, p.errf(n, "import", "want a list of mappings, got %s", kindName(n))
	}
	var out []Import
	for i, item := range n.Content {
		f := fmt.Sprintf("import[%d]", i)
		x := Import{Line: item.Line}
		var from string
		addNode, toNode := item, item
		at := func(dst **yaml.Node, h func(*yaml.Node) error) func(*yaml.Node) error {
			return func(v *yaml.Node) error { *dst = v; return h(v) }
		}
		str := func(dst *string, field string) func(*yaml.Node) error {
			return func(v *yaml.Node) (err error) { *dst, err = p.str(v, f+"."+field); return }
		}
		oneOf := func(dst *string, field string, want []string) func(*yaml.Node) error {
			return func(v *yaml.Node) error {
				s, err := p.str(v, f+"."+field)
				if err != nil {
					return err
				}
				for _, w := range want {
					if s == w {
						*dst = s
						return nil
					}
				}
				return p.errf(v, f+"."+field, "want %s, got %q", strings.Join(want, " or "), s)
			}
		}
		rel := func(dst *[]string, field string) func(*yaml.Node) error {
			return func(v *yaml.Node) error {
				l, err := p.globList(v, f+"."+field)
				for j, g := range l {
					if path.IsAbs(g) {
						return p.errf(v, f+"."+field, "want paths relative to add, got %q", g)
					}
					l[j] = path.Clean(g)
				}
				*dst = l
				return err
			}
		}
		rels := []string{"install", "setup"}
		err := p.mapping(item, f, map[string]func(*yaml.Node) error{
			"image": str(&x.Image, "image"), "artifact": str(&x.Artifact, "artifact"), "from": str(&from, "from"),
			"stage": oneOf(&x.Stage, "stage", userStages),
			"add":   at(&addNode, str(&x.Add, "add")), "to": at(&toNode, str(&x.To, "to")), "owner": str(&x.Owner, "owner"), "group": str(&x.Group, "group"),
			"after": oneOf(&x.After, "after", rels), "before": oneOf(&x.Before, "before", rels),
			"includePaths": rel(&x.IncludePaths, "includePaths"), "excludePaths": rel(&x.ExcludePaths, "excludePaths"),
		})
		if err != nil {
			return nil, err
		}
		if from != "" {
			if x.Image != "" {
				return nil, p.errf(item, f, "image and from are exclusive (from: is werf v2's name for image:)")
			}
			if external(from) {
				x.External = from
			} else {
				x.Image = from
			}
		}
		switch {
		case x.Image == "" && x.Artifact == "" && x.External == "":
			return nil, p.errf(item, f, "missing the source: image: NAME, artifact: NAME or from: NAME|REF")
		case x.Image != "" && x.Artifact != "":
			return nil, p.errf(item, f, "image and artifact are exclusive")
		case x.External != "" && x.Artifact != "":
			return nil, p.errf(item, f, "from and artifact are exclusive")
		case x.External != "" && x.Stage != "":
			return nil, p.errf(item, f+".stage", "an external image (%s) has no stages", x.External)
		case x.Add == "" || !path.IsAbs(x.Add):
			return nil, p.errf(addNode, f+".add", "want an absolute path in the source image, got %q", x.Add)
		case x.To != "" && !path.IsAbs(x.To):
			return nil, p.errf(toNode, f+".to", "want an absolute path in the image, got %q", x.To)
		case x.After != "" && x.Before != "":
			return nil, p.errf(item, f, "after and before are exclusive")
		case x.After == "" && x.Before == "":
			return nil, p.errf(item, f, "missing the import stage: before: install|setup or after: install|setup")
		}
		x.Add = path.Clean(x.Add)
		if x.To == "" {
			x.To = x.Add
		}
		x.To = path.Clean(x.To)
		if x.Add == "/" && len(x.IncludePaths) == 0 {
			return nil, p.errf(addNode, f+".add", "add: / needs includePaths (as in werf: what to copy from the root must be named)")
		}
		out = append(out, x)
	}
	return out, nil
}

// external reports whether a werf `from:` names an image outside the config: a reference with a
// tag or a digest (werf's rule).
func external(ref string) bool {
	if strings.Contains(ref, "@") {
		return true
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	return strings.Contains(last, ":")
}

// validateImports checks what an import needs from the rest of the config: its source image
// exists, is not the image itself, has the named stage (a Dockerfile image has one stage), the
// image importing is a stapel image; and no chain of fromImage and imports comes back to an
// image (each image is built after the images it is built on or imports from).
func (p parser) validateImports(cfg *Config, byName map[string]*Image) error {
	for _, im := range cfg.Images {
		for i, x := range im.Import {
			at := fmt.Sprintf("%s:%d: image %s: import[%d]", p.file, x.Line, im.Name, i)
			if im.Dockerfile != "" {
				return fmt.Errorf("%s: a dockerfile: image cannot import (werf imports into stapel images: from: or fromImage:)", at)
			}
			if x.External != "" {
				continue
			}
			src, ok := byName[x.Source()]
			if !ok {
				return fmt.Errorf("%s: no image or artifact %q in the config", at, x.Source())
			}
			if src == im {
				return fmt.Errorf("%s: an image cannot import from itself", at)
			}
			if x.Stage != "" && src.Dockerfile != "" {
				return fmt.Errorf("%s: stage: %s: %q is a dockerfile: image, built as one stage (drop stage:)", at, x.Stage, src.Name)
			}
		}
	}
	return p.cycles(cfg, byName)
}

// Needs lists the config images im must be built after: the one it is built on (fromImage,
// fromArtifact), those it imports from and its dependencies.
func (im *Image) Needs() []string {
	var out []string
	if im.FromImage != "" {
		out = append(out, im.FromImage)
	}
	for _, x := range im.Import {
		if s := x.Source(); s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, d := range im.Dependencies {
		if !slices.Contains(out, d.Image) {
			out = append(out, d.Image)
		}
	}
	return out
}

// cycles fails on a chain of fromImage/imports that comes back to an image, naming the chain.
func (p parser) cycles(cfg *Config, byName map[string]*Image) error {
	const (
		unseen = iota
		active
		done
	)
	state := map[string]int{}
	var stack []string
	var visit func(im *Image) error
	visit = func(im *Image) error {
		switch state[im.Name] {
		case done:
			return nil
		case active:
			i := 0
			for stack[i] != im.Name {
				i++
			}
			chain := append(append([]string(nil), stack[i:]...), im.Name)
			return fmt.Errorf("%s:%d: image %s: cycle of fromImage/import/dependencies: %s", p.file, im.Line, im.Name, strings.Join(chain, " -> "))
		}
		state[im.Name] = active
		stack = append(stack, im.Name)
		for _, n := range im.Needs() {
			if dep := byName[n]; dep != nil {
				if err := visit(dep); err != nil {
					return err
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[im.Name] = done
		return nil
	}
	for _, im := range cfg.Images {
		if err := visit(im); err != nil {
			return err
		}
	}
	return nil
}
