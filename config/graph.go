package config

import "fmt"

// ImageNode is one image of `strata config graph` (werf config graph): its name and the images
// of the config it needs.
type ImageNode struct {
	Image     string    `json:"image" yaml:"image"`
	DependsOn DependsOn `json:"dependsOn,omitempty" yaml:"dependsOn,omitempty"`
}

// DependsOn names the images an image is built from (fromImage), imports files from, and
// takes as dependencies, as werf config graph does.
type DependsOn struct {
	From         string   `json:"from,omitempty" yaml:"from,omitempty"`
	Imports      []string `json:"import,omitempty" yaml:"import,omitempty"`
	Dependencies []string `json:"dependencies,omitempty" yaml:"dependencies,omitempty"`
}

// ImageNames lists the images (werf config list): all, or only the final ones; "~" names the
// nameless image.
func (c *Config) ImageNames(finalOnly bool) []string {
	var out []string
	for _, im := range c.Images {
		if finalOnly && !im.Final {
			continue
		}
		out = append(out, displayName(im.Name))
	}
	return out
}

// Graph returns the images named (all when none; "~" for the nameless one), or only the final
// ones, each with the images it depends on, in config order. An unknown name is an error.
func (c *Config) Graph(names []string, finalOnly bool) ([]ImageNode, error) {
	want := map[string]bool{}
	for _, n := range names {
		found := false
		for _, im := range c.Images {
			found = found || displayName(im.Name) == n
		}
		if !found {
			return nil, fmt.Errorf("no image %q in %s", n, c.File)
		}
		want[n] = true
	}
	var out []ImageNode
	for _, im := range c.Images {
		name := displayName(im.Name)
		if (len(want) > 0 && !want[name]) || (finalOnly && !im.Final) {
			continue
		}
		n := ImageNode{Image: name, DependsOn: DependsOn{From: im.FromImage}}
		for _, x := range im.Import {
			if src := x.Image + x.Artifact; src != "" { // not an image outside the config
				n.DependsOn.Imports = appendNew(n.DependsOn.Imports, src)
			}
		}
		for _, d := range im.Dependencies {
			n.DependsOn.Dependencies = appendNew(n.DependsOn.Dependencies, d.Image)
		}
		out = append(out, n)
	}
	return out, nil
}

func displayName(name string) string {
	if name == "" {
		return "~"
	}
	return name
}

func appendNew(l []string, s string) []string {
	for _, x := range l {
		if x == s {
			return l
		}
	}
	return append(l, s)
}
