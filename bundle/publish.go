package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"sort"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"helm.sh/helm/v3/pkg/chart/loader"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	orasregistry "oras.land/oras-go/v2/registry"

	"strata.dev/strata/internal/git"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/stages"
)

// Helm's OCI media types.
const (
	MediaTypeHelmConfig = "application/vnd.cncf.helm.config.v1+json"
	MediaTypeHelmChart  = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
)

// Manifest annotations Strata adds besides org.opencontainers.image.*.
const (
	AnnotationContentDigest = "dev.strata.content-digest"
	annotationPrefix        = "dev.strata."
)

// imagesLock turns the report's images into an images lock.
func imagesLock(r *stages.Report) (map[string]Image, error) {
	out := map[string]Image{}
	for i, im := range r.Images {
		where := fmt.Sprintf("build report: images[%d]", i)
		if im.Name == "" {
			return nil, fmt.Errorf("%s: no name", where)
		}
		if _, dup := out[im.Name]; dup {
			return nil, fmt.Errorf("%s: image %q appears twice", where, im.Name)
		}
		if _, err := digest.Parse(im.ManifestDigest); err != nil {
			return nil, fmt.Errorf("%s (%s): manifestDigest %q: %w", where, im.Name, im.ManifestDigest, err)
		}
		repo, tag := im.Repo, im.Tag
		if repo == "" {
			repo = r.Repo
		}
		if repo == "" {
			return nil, fmt.Errorf("%s (%s): no repo", where, im.Name)
		}
		ref := repo + "@" + im.ManifestDigest
		if tag != "" {
			ref = repo + ":" + tag + "@" + im.ManifestDigest
		}
		out[im.Name] = Image{Repo: repo, Tag: tag, Ref: ref, Digest: im.ManifestDigest}
	}
	return out, nil
}

// PublishOptions configure Publish.
type PublishOptions struct {
	// Repo is the bundle repository REGISTRY/PATH/NAME; NAME becomes the chart name.
	Repo string
	// Version is the bundle version (see ChartVersion for non-semver values).
	Version string
	// ChartDir is the chart to publish (usually PROJECT/.helm).
	ChartDir string
	// Report lists the built images; required.
	Report *stages.Report
	// ProjectDir is the project's git work tree, used for the defaults of Commit and GitURL.
	ProjectDir string
	// Commit, Branch, Tag, GitURL and CI are the bundle's metadata. An empty Commit.Hash comes
	// from the report, else `git rev-parse HEAD` in ProjectDir; an empty Commit.Date from git.
	Commit Commit
	Branch string
	Tag    string
	GitURL string
	CI     CI
	// WerfValues also writes werf's service values (werf.image.<name>, werf.tag.<name>,
	// werf.repo, werf.commit, werf.env, the same under global.werf) into values.yaml, for charts
	// written for werf; WerfEnv is their env. ship sets it for werf.yaml projects.
	WerfValues bool
	WerfEnv    string
	// Force replaces an existing tag whose content differs.
	Force bool
	// SkipRenderCheck skips rendering the chart before publishing it.
	SkipRenderCheck bool
	// Registry says how registries are reached.
	Registry registry.Options
	// MaxChartBytes limits the chart's size (0: DefaultMaxChartBytes).
	MaxChartBytes int64
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Log receives progress (nil: discarded).
	Log *slog.Logger
}

// PublishResult is what Publish did.
type PublishResult struct {
	// Ref is REPO:TAG and Digest the manifest digest.
	Ref    string `json:"ref"`
	Digest string `json:"digest"`
	// Chart, Version and Tag of the bundle.
	Chart   string `json:"chart"`
	Version string `json:"version"`
	Tag     string `json:"tag"`
	// Unchanged is true when the tag already held the same content: nothing was pushed.
	Unchanged bool `json:"unchanged"`
	// BlobsPushed / BlobsSkipped count blobs uploaded and found present; BytesPushed counts
	// bytes uploaded (blobs and manifest).
	BlobsPushed  int   `json:"blobsPushed"`
	BlobsSkipped int   `json:"blobsSkipped"`
	BytesPushed  int64 `json:"bytesPushed"`
}

// artifact is a bundle ready to push.
type artifact struct {
	chart       string
	version     string
	files       []*loader.BufferedFile
	meta        *Metadata
	config      []byte
	layer       []byte
	annotations map[string]string
}

// Publish turns a chart and a build's images into a bundle and pushes it to Repo:Tag atomically:
// blobs first, the manifest last, so a failure leaves no tag. An existing tag with the same
// content is left alone (success); with different content it is refused unless Force.
func Publish(ctx context.Context, o PublishOptions) (*PublishResult, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Report == nil {
		return nil, errors.New("publish: no build report (images) given")
	}
	if o.Repo == "" {
		return nil, errors.New("publish: no bundle repository given (--repo REGISTRY/PATH/NAME)")
	}
	repoName, err := o.Registry.ParseRepository(o.Repo)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	chartName := path.Base(repoName.RepositoryStr())
	version, tag, err := ChartVersion(o.Version)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	images, err := imagesLock(o.Report)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	meta := &Metadata{
		SchemaVersion: MetadataSchemaVersion,
		Project:       o.Report.Project,
		Chart:         chartName,
		Version:       version,
		Bundle:        repoName.Name() + ":" + tag,
		Commit:        o.Commit,
		Branch:        o.Branch,
		Tag:           o.Tag,
		GitURL:        CleanGitURL(o.GitURL),
		CI:            o.CI,
		Repo:          o.Report.Repo,
		Images:        images,
		Created:       now().UTC().Truncate(time.Second),
	}
	if o.WerfValues {
		meta.Werf = &Werf{Env: o.WerfEnv}
	}
	if meta.Commit.Hash == "" {
		meta.Commit.Hash = o.Report.Commit
	}
	if meta.Commit.Hash == "" && o.ProjectDir != "" {
		meta.Commit.Hash = git.Lookup(o.ProjectDir, "rev-parse", "HEAD")
	}
	if meta.Commit.Date == "" && meta.Commit.Hash != "" && o.ProjectDir != "" {
		meta.Commit.Date = git.Lookup(o.ProjectDir, "log", "-1", "--format=%cI", meta.Commit.Hash)
	}
	if meta.GitURL == "" && o.ProjectDir != "" {
		meta.GitURL = CleanGitURL(git.Lookup(o.ProjectDir, "remote", "get-url", "origin"))
	}

	files, err := readChartDir(o.ChartDir, o.MaxChartBytes)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	if _, err := loadChart(o.ChartDir, files); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	art, err := buildArtifact(chartName, version, files, meta, o.MaxChartBytes)
	if err != nil {
		return nil, fmt.Errorf("publish: chart %s: %w", o.ChartDir, err)
	}
	if !o.SkipRenderCheck {
		if err := renderCheck(ctx, o.ChartDir, art, o.MaxChartBytes); err != nil {
			return nil, fmt.Errorf("publish: %w", err)
		}
	}

	repo, err := o.Registry.Repository(repoName.Name())
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	// the images are checked while the chart's blobs upload; the manifest waits for both
	checked := make(chan error, 1)
	go func() { checked <- checkImages(ctx, o.Registry, meta) }()
	res, err := pushArtifact(ctx, repo, tag, art, o.Force, log, func() error { return <-checked })
	if err != nil {
		return nil, fmt.Errorf("publish %s:%s: %w", repoName.Name(), tag, err)
	}
	res.Ref = repoName.Name() + ":" + tag
	log.Info("published bundle", "ref", res.Ref, "digest", res.Digest, "unchanged", res.Unchanged,
		"blobsPushed", res.BlobsPushed, "blobsSkipped", res.BlobsSkipped, "bytesPushed", res.BytesPushed)
	return res, nil
}

// checkImages verifies, concurrently, that every image of the lock is in its repository.
func checkImages(ctx context.Context, ro registry.Options, meta *Metadata) error {
	return meta.EachImage(func(_ string, im Image) error {
		ir, err := ro.Repository(im.Repo)
		if err != nil {
			return err
		}
		_, err = ir.Resolve(ctx, im.Digest)
		switch {
		case errors.Is(err, errdef.ErrNotFound):
			return fmt.Errorf("%s is not in the registry: %w", im.Ref, err)
		case err != nil: // e.g. refused or rate-limited: the image may well be there
			return fmt.Errorf("%s: check it is in the registry: %w", im.Ref, err)
		}
		return nil
	})
}

// buildArtifact rewrites Chart.yaml (name, version) and values.yaml (strata.*), adds the
// metadata file and packs the chart.
func buildArtifact(chartName, version string, files []*loader.BufferedFile, meta *Metadata, max int64) (*artifact, error) {
	var out []*loader.BufferedFile
	var values []byte
	for _, f := range files {
		switch f.Name {
		case "Chart.yaml":
			b, err := setChartFields(f.Data, map[string]string{"name": chartName, "version": version})
			if err != nil {
				return nil, err
			}
			out = append(out, &loader.BufferedFile{Name: f.Name, Data: b})
		case "values.yaml":
			values = f.Data
		case MetadataFile:
			// replaced below
		default:
			out = append(out, f)
		}
	}
	vb, err := injectValues(values, meta)
	if err != nil {
		return nil, err
	}
	mb, err := meta.Marshal()
	if err != nil {
		return nil, err
	}
	out = append(out, &loader.BufferedFile{Name: "values.yaml", Data: vb}, &loader.BufferedFile{Name: MetadataFile, Data: mb})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	c, err := loader.LoadFiles(out)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("Chart.yaml: %w", err)
	}
	config, err := json.Marshal(c.Metadata)
	if err != nil {
		return nil, err
	}
	layer, err := chartArchive(chartName, out)
	if err != nil {
		return nil, err
	}
	if max <= 0 {
		max = DefaultMaxChartBytes
	}
	if int64(len(layer)) > max {
		return nil, fmt.Errorf("chart archive is %d bytes, larger than the limit of %d: %w", len(layer), max, ErrLimit)
	}
	return &artifact{
		chart: chartName, version: version, files: out, meta: meta, config: config, layer: layer,
		annotations: manifestAnnotations(meta, c.Metadata.Description, contentDigest(out, meta)),
	}, nil
}

// contentDigest identifies a bundle's content regardless of when it was published: the chart's
// files with the metadata's created time left out.
func contentDigest(files []*loader.BufferedFile, meta *Metadata) string {
	h := sha256.New()
	for _, f := range files {
		data := f.Data
		if f.Name == MetadataFile {
			m := *meta
			m.Created = time.Time{}
			data, _ = m.Marshal()
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(h, "%s\x00%s\n", f.Name, hex.EncodeToString(sum[:]))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

func manifestAnnotations(m *Metadata, description, contentDigest string) map[string]string {
	a := map[string]string{
		ocispec.AnnotationTitle:   m.Chart,
		ocispec.AnnotationVersion: m.Version,
		ocispec.AnnotationCreated: m.Created.Format(time.RFC3339),
		AnnotationContentDigest:   contentDigest,
	}
	set := func(k, v string) {
		if v != "" {
			a[k] = v
		}
	}
	set(ocispec.AnnotationDescription, description)
	set(ocispec.AnnotationSource, m.GitURL)
	set(ocispec.AnnotationRevision, m.Commit.Hash)
	set(ocispec.AnnotationURL, WebURL(m.GitURL))
	set(annotationPrefix+"project", m.Project)
	set(annotationPrefix+"commit.date", m.Commit.Date)
	set(annotationPrefix+"branch", m.Branch)
	set(annotationPrefix+"tag", m.Tag)
	set(annotationPrefix+"repo", m.Repo)
	set(annotationPrefix+"ci.pipeline-url", m.CI.PipelineURL)
	set(annotationPrefix+"ci.job-url", m.CI.JobURL)
	for n, im := range m.Images {
		set(annotationPrefix+"image."+n, im.Ref)
	}
	return a
}

// renderCheck renders the packed chart once so that template errors surface at publish time.
func renderCheck(ctx context.Context, chartDir string, art *artifact, max int64) error {
	_, err := renderFiles(ctx, RenderOptions{ChartDir: chartDir, MaxChartBytes: max}, art.files)
	if err != nil {
		return fmt.Errorf("the chart does not render with its injected values (use --skip-render-check for charts that need deploy-time values): %w", err)
	}
	return nil
}

// pushArtifact pushes config and layer (skipping blobs already present), then the manifest
// under tag in one request.
//
// beforeManifest, when not nil, runs before the manifest is pushed; its error stops the push
// (it is also waited for when nothing is pushed).
func pushArtifact(ctx context.Context, target oras.Target, tag string, art *artifact, force bool, log *slog.Logger, beforeManifest func() error) (*PublishResult, error) {
	if beforeManifest == nil {
		beforeManifest = func() error { return nil }
	}
	res := &PublishResult{Chart: art.chart, Version: art.version, Tag: tag}
	configDesc := content.NewDescriptorFromBytes(MediaTypeHelmConfig, art.config)
	layerDesc := content.NewDescriptorFromBytes(MediaTypeHelmChart, art.layer)
	man := ocispec.Manifest{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   ocispec.MediaTypeImageManifest,
		Config:      configDesc,
		Layers:      []ocispec.Descriptor{layerDesc},
		Annotations: art.annotations,
	}
	manBytes, err := json.Marshal(man)
	if err != nil {
		return nil, err
	}
	manDesc := content.NewDescriptorFromBytes(ocispec.MediaTypeImageManifest, manBytes)

	// an existing tag: same content is a no-op, different content needs force
	if old, err := target.Resolve(ctx, tag); err == nil {
		oldMan, err := fetchManifest(ctx, target, old)
		if err != nil {
			return nil, fmt.Errorf("read the existing tag %s: %w", tag, err)
		}
		if oldMan.Annotations[AnnotationContentDigest] == art.annotations[AnnotationContentDigest] {
			if err := beforeManifest(); err != nil {
				return nil, err
			}
			res.Digest, res.Unchanged = old.Digest.String(), true
			log.Info("bundle tag already holds this content: nothing to push", "tag", tag, "digest", old.Digest)
			return res, nil
		}
		if !force {
			return nil, fmt.Errorf("tag %s already exists with different content (digest %s, commit %q); use --force to replace it", tag, old.Digest, oldMan.Annotations[ocispec.AnnotationRevision])
		}
		log.Warn("replacing an existing bundle tag (--force)", "tag", tag, "old", old.Digest)
	} else if !errors.Is(err, errdef.ErrNotFound) {
		return nil, fmt.Errorf("check tag %s: %w", tag, err)
	}

	// config and chart archive concurrently, each skipped when present
	blobs := []struct {
		desc ocispec.Descriptor
		data []byte
	}{{configDesc, art.config}, {layerDesc, art.layer}}
	pushed := make([]bool, len(blobs))
	errs := make([]error, len(blobs))
	var wg sync.WaitGroup
	for i, b := range blobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := target.Exists(ctx, b.desc)
			if err != nil {
				errs[i] = fmt.Errorf("check blob %s: %w", b.desc.Digest, err)
				return
			}
			if ok {
				return
			}
			if err := target.Push(ctx, b.desc, bytes.NewReader(b.data)); err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
				errs[i] = fmt.Errorf("push blob %s (%s): %w", b.desc.Digest, b.desc.MediaType, err)
				return
			}
			pushed[i] = true
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i, p := range pushed {
		if p {
			res.BlobsPushed++
			res.BytesPushed += blobs[i].desc.Size
		} else {
			res.BlobsSkipped++
		}
	}
	if err := beforeManifest(); err != nil {
		return nil, err
	}
	if err := pushManifest(ctx, target, manDesc, manBytes, tag); err != nil {
		return nil, err
	}
	res.BytesPushed += manDesc.Size
	res.Digest = manDesc.Digest.String()
	return res, nil
}

// pushManifest pushes a manifest under tag: one PUT by tag where the target supports it.
func pushManifest(ctx context.Context, target oras.Target, desc ocispec.Descriptor, b []byte, tag string) error {
	if rp, ok := target.(orasregistry.ReferencePusher); ok {
		if err := rp.PushReference(ctx, desc, bytes.NewReader(b), tag); err != nil {
			return fmt.Errorf("push manifest %s as %s: %w", desc.Digest, tag, err)
		}
		return nil
	}
	if err := target.Push(ctx, desc, bytes.NewReader(b)); err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
		return fmt.Errorf("push manifest %s: %w", desc.Digest, err)
	}
	if err := target.Tag(ctx, desc, tag); err != nil {
		return fmt.Errorf("tag manifest %s as %s: %w", desc.Digest, tag, err)
	}
	return nil
}

const maxManifestBytes = 4 << 20

func fetchManifest(ctx context.Context, f content.Fetcher, desc ocispec.Descriptor) (*ocispec.Manifest, error) {
	if desc.Size > maxManifestBytes {
		return nil, fmt.Errorf("manifest %s is %d bytes, more than %d: %w", desc.Digest, desc.Size, maxManifestBytes, ErrLimit)
	}
	b, err := content.FetchAll(ctx, f, desc)
	if err != nil {
		return nil, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	return &m, nil
}
