package bundle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"helm.sh/helm/v3/pkg/chart/loader"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	orasremote "oras.land/oras-go/v2/registry/remote"

	"strata.dev/strata/internal/registry"
)

// PullOptions configure Pull.
type PullOptions struct {
	// Ref is the bundle, REGISTRY/PATH/NAME:TAG or REGISTRY/PATH/NAME@sha256:...; an
	// "oci://" prefix is accepted.
	Ref string
	// Dir receives the chart (Chart.yaml at its root); it must not exist or be empty.
	Dir string
	// Registry says how registries are reached.
	Registry registry.Options
	// MaxChartBytes limits the chart archive, compressed and decompressed (0: DefaultMaxChartBytes).
	MaxChartBytes int64
	// Log receives progress (nil: discarded).
	Log *slog.Logger
}

// Pulled describes a pulled bundle.
type Pulled struct {
	// Repo is REGISTRY/PATH/NAME, Digest the manifest digest, Ref the pinned REPO@DIGEST.
	Repo   string `json:"repo"`
	Digest string `json:"digest"`
	Ref    string `json:"ref"`
	// Chart and Version from the chart's metadata.
	Chart   string `json:"chart"`
	Version string `json:"version"`
	// Metadata is the bundle's metadata file; nil for a plain Helm chart.
	Metadata *Metadata `json:"metadata,omitempty"`
}

// bundleContent is a fetched bundle.
type bundleContent struct {
	manifestDesc ocispec.Descriptor
	manifest     *ocispec.Manifest
	config       []byte
	layer        []byte
	top          string
	files        []*loader.BufferedFile
	meta         *Metadata
}

// Pull downloads a bundle and extracts its chart into Dir.
func Pull(ctx context.Context, o PullOptions) (*Pulled, error) {
	if o.Dir == "" {
		return nil, errors.New("pull: no directory given (--dir)")
	}
	r, err := fetchRef(ctx, "pull", o.Registry, o.Ref, o.MaxChartBytes)
	if err != nil {
		return nil, err
	}
	bc := r.bc
	if err := writeFiles(o.Dir, bc.files); err != nil {
		return nil, fmt.Errorf("pull %s: %w", o.Ref, err)
	}
	p := bc.pulled(r.repoStr)
	if o.Log != nil {
		o.Log.Info("pulled bundle", "ref", p.Ref, "chart", p.Chart, "version", p.Version, "dir", o.Dir)
	}
	return p, nil
}

func (bc *bundleContent) pulled(repo string) *Pulled {
	p := &Pulled{Repo: repo, Digest: bc.manifestDesc.Digest.String(), Ref: repo + "@" + bc.manifestDesc.Digest.String(), Metadata: bc.meta}
	p.Chart = bc.top
	if bc.manifest != nil {
		if v := bc.manifest.Annotations[ocispec.AnnotationVersion]; v != "" {
			p.Version = v
		}
	}
	if bc.meta != nil {
		p.Chart, p.Version = bc.meta.Chart, bc.meta.Version
	}
	return p
}

// fetchedRef is a bundle read from its registry repository.
type fetchedRef struct {
	repo      *orasremote.Repository
	repoStr   string // the repository as ref names it
	reference string // the tag or digest
	bc        *bundleContent
}

// fetchRef reads the bundle ref ([oci://]REPO:TAG or REPO@DIGEST) from its repository; op
// starts the errors ("pull", "copy").
func fetchRef(ctx context.Context, op string, ro registry.Options, ref string, max int64) (*fetchedRef, error) {
	repoStr, reference, err := splitRef(ref)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	repo, err := openRepository(ro, repoStr, "")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	bc, err := fetchBundle(ctx, repo, reference, max)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, ref, err)
	}
	return &fetchedRef{repo: repo, repoStr: repoStr, reference: reference, bc: bc}, nil
}

// splitRef splits [oci://]REPO:TAG or REPO@DIGEST into the repository and the tag or digest.
func splitRef(ref string) (string, string, error) {
	r := strings.TrimPrefix(ref, "oci://")
	if repo, dg, ok := strings.Cut(r, "@"); ok {
		if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
			repo = repo[:i] // REPO:TAG@DIGEST: the digest wins
		}
		return repo, dg, nil
	}
	i := strings.LastIndex(r, ":")
	if i <= strings.LastIndex(r, "/") {
		return "", "", fmt.Errorf("bundle reference %q has no tag or digest (REPO:TAG or REPO@sha256:...)", ref)
	}
	return r[:i], r[i+1:], nil
}

// fetchBundle resolves reference in src and reads the bundle's manifest, config and chart.
func fetchBundle(ctx context.Context, src oras.ReadOnlyTarget, reference string, max int64) (*bundleContent, error) {
	if max <= 0 {
		max = DefaultMaxChartBytes
	}
	desc, err := src.Resolve(ctx, reference)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", reference, err)
	}
	if desc.MediaType != ocispec.MediaTypeImageManifest {
		return nil, fmt.Errorf("%s is a %s, not an OCI image manifest: not a Helm chart", reference, desc.MediaType)
	}
	man, err := fetchManifest(ctx, src, desc)
	if err != nil {
		return nil, err
	}
	if man.Config.MediaType != MediaTypeHelmConfig {
		return nil, fmt.Errorf("%s has config media type %q, not %s: not a Helm chart", reference, man.Config.MediaType, MediaTypeHelmConfig)
	}
	var layerDesc *ocispec.Descriptor
	for i, l := range man.Layers {
		if l.MediaType == MediaTypeHelmChart {
			if layerDesc != nil {
				return nil, fmt.Errorf("%s has more than one chart layer", reference)
			}
			layerDesc = &man.Layers[i]
		}
	}
	if layerDesc == nil {
		return nil, fmt.Errorf("%s has no %s layer", reference, MediaTypeHelmChart)
	}
	if layerDesc.Size > max {
		return nil, fmt.Errorf("%s: chart layer is %d bytes, more than the limit of %d: %w", reference, layerDesc.Size, max, ErrLimit)
	}
	if man.Config.Size > maxManifestBytes {
		return nil, fmt.Errorf("%s: config is %d bytes: %w", reference, man.Config.Size, ErrLimit)
	}
	config, err := content.FetchAll(ctx, src, man.Config)
	if err != nil {
		return nil, fmt.Errorf("fetch config %s: %w", man.Config.Digest, err)
	}
	layer, err := content.FetchAll(ctx, src, *layerDesc)
	if err != nil {
		return nil, fmt.Errorf("fetch chart %s: %w", layerDesc.Digest, err)
	}
	top, files, err := readChartArchive(layer, max)
	if err != nil {
		return nil, err
	}
	bc := &bundleContent{manifestDesc: desc, manifest: man, config: config, layer: layer, top: top, files: files}
	for _, f := range files {
		if f.Name == MetadataFile {
			if bc.meta, err = ParseMetadata(f.Data); err != nil {
				return nil, fmt.Errorf("%s/%s: %w", top, MetadataFile, err)
			}
		}
	}
	if _, err := loader.LoadFiles(files); err != nil {
		return nil, fmt.Errorf("chart %s: %w", path.Join(reference, top), err)
	}
	return bc, nil
}

// RenderRefOptions configure RenderRef: the bundle to pull and how to render it.
type RenderRefOptions struct {
	// Ref is the bundle, as in PullOptions.
	Ref string
	// Registry says how registries are reached.
	Registry registry.Options
	// Log receives progress (nil: discarded).
	Log *slog.Logger
	// RenderOptions configure the render. ChartDir is the pulled chart's; an empty BundleRef
	// is the pulled REPO@DIGEST; MaxChartBytes also limits the pull.
	RenderOptions
}

// RenderRef pulls the bundle Ref into a temporary directory and renders it as Render does.
func RenderRef(ctx context.Context, o RenderRefOptions) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "strata-render-")
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", o.Ref, err)
	}
	defer os.RemoveAll(tmp)
	ro := o.RenderOptions
	ro.ChartDir = filepath.Join(tmp, "chart")
	p, err := Pull(ctx, PullOptions{Ref: o.Ref, Dir: ro.ChartDir, Registry: o.Registry, MaxChartBytes: ro.MaxChartBytes, Log: o.Log})
	if err != nil {
		return nil, err
	}
	if ro.BundleRef == "" {
		ro.BundleRef = p.Ref
	}
	return Render(ctx, ro)
}
