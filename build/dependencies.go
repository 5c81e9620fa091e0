package build

import (
	"context"
	"fmt"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/config"
)

// werf's dependencies: another image's name, tag, repository, manifest digest or image ID
// exposed to a stage-built image as env (a stage of its own at before/after install|setup) or
// to a Dockerfile image as build args. The dependency's final stage reference is a digest input.

// dependencyStageNames maps a dependency position to its stage.
var dependencyStageNames = map[string]string{
	"before install": "dependenciesBeforeInstall", "after install": "dependenciesAfterInstall",
	"before setup": "dependenciesBeforeSetup", "after setup": "dependenciesAfterSetup",
}

// dependencySteps returns the dependencies stage named stage when im has dependencies there.
func (b *builder) dependencySteps(im *Image, stage string) []stageSpec {
	var ds []config.Dependency
	for _, d := range im.Dependencies {
		pos := "before " + d.Before
		if d.After != "" {
			pos = "after " + d.After
		}
		if dependencyStageNames[pos] == stage {
			ds = append(ds, d)
		}
	}
	if len(ds) == 0 {
		return nil
	}
	return []stageSpec{b.dependenciesStage(stage, ds)}
}

// dependenciesStage sets the dependencies' values as env in the image config, registry-side
// (no layer): the following stages and the image see them. Its digest covers the parent and,
// per dependency, its final stage reference and the imports (type, variable).
func (b *builder) dependenciesStage(stage string, ds []config.Dependency) stageSpec {
	return stageSpec{name: stage,
		digest: func(ctx context.Context, p *state) (string, bool, error) {
			d := newDigester(stage)
			if p != nil {
				d.add(p.digest)
			}
			if err := b.dependencyFields(d, ds); err != nil {
				return "", false, err
			}
			return d.sum(), true, nil
		},
		build: func(ctx context.Context, p *state, _ string) (v1.Image, string, error) {
			img, err := b.parentImage(ctx, p)
			if err != nil {
				return nil, "", err
			}
			vals, err := b.dependencyValues(ctx, ds)
			if err != nil {
				return nil, "", err
			}
			cf, err := img.ConfigFile()
			if err != nil {
				return nil, "", fmt.Errorf("read image config: %w", err)
			}
			c := cf.Config.DeepCopy()
			c.Env = setEnv(c.Env, vals)
			img, err = mutate.Config(img, *c)
			return img, p.commit, err
		}}
}

// dependencyFields adds each dependency's final stage reference and imports to a digest.
func (b *builder) dependencyFields(d *digester, ds []config.Dependency) error {
	for _, dep := range ds {
		f, err := b.dependencyFinal(dep.Image)
		if err != nil {
			return err
		}
		d.add("dependency", dep.Image, b.st.Ref(f.tag).String())
		for _, x := range dep.Imports {
			d.add(x.Type, x.Target)
		}
	}
	return nil
}

func (b *builder) dependencyFinal(name string) (*state, error) {
	b.mu.Lock()
	r := b.results[name]
	b.mu.Unlock()
	if r == nil || r.final == nil {
		return nil, fmt.Errorf("dependency %s was not built", name)
	}
	return r.final, nil
}

// dependencyValues returns the variables the dependencies set: target -> value.
func (b *builder) dependencyValues(ctx context.Context, ds []config.Dependency) (map[string]string, error) {
	out := map[string]string{}
	for _, dep := range ds {
		f, err := b.dependencyFinal(dep.Image)
		if err != nil {
			return nil, err
		}
		ref := b.st.Ref(f.tag)
		var img v1.Image
		for _, x := range dep.Imports {
			var v string
			switch x.Type {
			case "ImageName":
				v = ref.String()
			case "ImageRepo":
				v = ref.Context().String()
			case "ImageTag":
				v = f.tag
			case "ImageDigest", "ImageID":
				if img == nil {
					if img = f.img; img == nil {
						if img, err = remote.Image(ref, b.st.Remote(ctx)...); err != nil {
							return nil, fmt.Errorf("dependency %s: read %s: %w", dep.Image, ref, err)
						}
					}
				}
				var h v1.Hash
				if x.Type == "ImageDigest" {
					h, err = img.Digest()
				} else {
					h, err = img.ConfigName()
				}
				if err != nil {
					return nil, fmt.Errorf("dependency %s: %w", dep.Image, err)
				}
				v = h.String()
			default:
				return nil, fmt.Errorf("dependency %s: unknown import type %q", dep.Image, x.Type)
			}
			out[x.Target] = v
		}
	}
	return out, nil
}

// setEnv sets vals (sorted by name) in an env list, replacing existing entries.
func setEnv(env []string, vals map[string]string) []string {
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := append([]string(nil), env...)
	for _, k := range keys {
		found := false
		for i, e := range out {
			if strings.HasPrefix(e, k+"=") {
				out[i], found = k+"="+vals[k], true
			}
		}
		if !found {
			out = append(out, k+"="+vals[k])
		}
	}
	return out
}

// withDependencyArgs returns im with its dependencies' values added to its build args (a
// Dockerfile image); im itself when it has none.
func (b *builder) withDependencyArgs(ctx context.Context, im *Image) (*Image, error) {
	if len(im.Dependencies) == 0 {
		return im, nil
	}
	vals, err := b.dependencyValues(ctx, im.Dependencies)
	if err != nil {
		return nil, err
	}
	c := *im
	c.Args = map[string]string{}
	for k, v := range im.Args {
		c.Args[k] = v
	}
	for k, v := range vals {
		c.Args[k] = v
	}
	return &c, nil
}
