package bundle

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/cli"
	helmregistry "helm.sh/helm/v3/pkg/registry"
	"oras.land/oras-go/v2/errdef"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// pushImages pushes one random image per name to a fresh stages repository and returns the
// build report a `strata build` would have written.
func pushImages(t testing.TB, names ...string) *stages.Report {
	t.Helper()
	return pushImagesTo(t, testenv.Repo(t, "stages"), names...)
}

// pushImagesTo pushes one random image per name to stagesRepo under a stage tag and returns
// the build report naming them.
func pushImagesTo(t testing.TB, stagesRepo string, names ...string) *stages.Report {
	t.Helper()
	ctx := context.Background()
	var ro registry.Options
	rep := &stages.Report{Project: "app", Repo: stagesRepo, Commit: "0123456789abcdef0123456789abcdef01234567"}
	for i, n := range names {
		img, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		tag := stages.Tag{Digest: fmt.Sprintf("%056x", i+1), Millis: time.Now().UnixMilli()}.String()
		ref, err := ro.ParseReference(stagesRepo + ":" + tag)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, ro.Remote(ctx)...); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		rep.Images = append(rep.Images, stages.ImageReport{Name: n, Repo: stagesRepo, Tag: tag, Ref: stagesRepo + ":" + tag, ManifestDigest: d.String()})
	}
	return rep
}

func publishOpts(t *testing.T, rep *stages.Report, repo, version string) PublishOptions {
	return PublishOptions{
		Repo: repo, Version: version, ChartDir: "testdata/app", Report: rep,
		Commit: Commit{Date: "2026-11-22T10:00:00Z"}, Branch: "main",
		GitURL: "https://token:secret@git.example.com/team/app.git",
		CI:     CI{PipelineURL: "https://ci.example.com/p/1", JobURL: "https://ci.example.com/j/2"},
	}
}

// helmPullAndRender pulls with Helm's own registry client and action.Pull, then renders with
// action.Install in client-only mode: no Strata code involved.
func helmPullAndRender(t *testing.T, repo, version string) string {
	t.Helper()
	rc, err := helmregistry.NewClient(helmregistry.ClientOptPlainHTTP(), helmregistry.ClientOptCredentialsFile(filepath.Join(t.TempDir(), "creds.json")))
	if err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	pull := action.NewPullWithOpts(action.WithConfig(&action.Configuration{RegistryClient: rc}))
	pull.Settings = cli.New()
	pull.Version = version
	pull.DestDir = dest
	pull.Untar = true
	pull.UntarDir = dest
	if _, err := pull.Run("oci://" + repo); err != nil {
		t.Fatalf("helm pull oci://%s --version %s: %v", repo, version, err)
	}
	c, err := loader.Load(filepath.Join(dest, filepath.Base(repo)))
	if err != nil {
		t.Fatal(err)
	}
	inst := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	inst.DryRun, inst.ClientOnly, inst.Replace = true, true, true
	inst.ReleaseName, inst.Namespace = "plain", "default"
	rel, err := inst.Run(c, nil)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	return rel.Manifest
}

func TestPublishHelmCompatible(t *testing.T) {
	ctx := context.Background()
	rep := pushImages(t, "web", "worker")
	repo := testenv.Repo(t, "charts") + "/myapp"
	o := publishOpts(t, rep, repo, "1.2.3+build.7")
	res, err := Publish(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Tag != "1.2.3_build.7" || res.Version != "1.2.3+build.7" || res.Chart != "myapp" || res.Unchanged {
		t.Fatalf("result = %+v", res)
	}

	// plain Helm: the rendered images are exactly the build report's
	manifest := helmPullAndRender(t, repo, "1.2.3+build.7")
	for _, im := range rep.Images {
		want := fmt.Sprintf("image: %q", im.Repo+":"+im.Tag+"@"+im.ManifestDigest)
		if !strings.Contains(manifest, want) {
			t.Errorf("helm template output lacks %s:\n%s", want, manifest)
		}
	}

	// artifact layout: what Helm and Argo CD expect
	ro := registry.Options{}
	r, _ := ro.Repository(repo)
	desc, err := r.Resolve(ctx, res.Tag)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != res.Digest || desc.MediaType != ocispec.MediaTypeImageManifest {
		t.Errorf("manifest %+v, result %s", desc, res.Digest)
	}
	man, err := fetchManifest(ctx, r, desc)
	if err != nil {
		t.Fatal(err)
	}
	if man.Config.MediaType != MediaTypeHelmConfig || len(man.Layers) != 1 || man.Layers[0].MediaType != MediaTypeHelmChart {
		t.Errorf("media types: config %s, layers %+v", man.Config.MediaType, man.Layers)
	}
	a := man.Annotations
	for k, v := range map[string]string{
		ocispec.AnnotationTitle:    "myapp",
		ocispec.AnnotationVersion:  "1.2.3+build.7",
		ocispec.AnnotationRevision: rep.Commit,
		ocispec.AnnotationSource:   "https://git.example.com/team/app.git",
		"dev.strata.branch":        "main",
		"dev.strata.project":       "app",
	} {
		if a[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, a[k], v)
		}
	}
	if _, err := time.Parse(time.RFC3339, a[ocispec.AnnotationCreated]); err != nil {
		t.Errorf("created annotation: %v", err)
	}
	for k, v := range a {
		if strings.Contains(v, "secret") {
			t.Errorf("annotation %s leaks credentials: %s", k, v)
		}
	}

	// pull + render through Strata: values and metadata as published, annotations applied
	dir := filepath.Join(t.TempDir(), "chart")
	p, err := Pull(ctx, PullOptions{Ref: "oci://" + repo + ":" + res.Tag, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if p.Digest != res.Digest || p.Chart != "myapp" || p.Version != "1.2.3+build.7" || p.Metadata == nil || p.Metadata.Commit.Hash != rep.Commit {
		t.Fatalf("pulled %+v", p)
	}
	vals, _ := os.ReadFile(filepath.Join(dir, "values.yaml"))
	for _, w := range []string{"# Chart defaults", "replicas: 1", "global:", "tag:", "digest:", "hash: \"" + rep.Commit, "date: \"2026-11-22T10:00:00Z\"", "repo: \"" + rep.Repo} {
		if !strings.Contains(string(vals), w) {
			t.Errorf("values.yaml lacks %q:\n%s", w, vals)
		}
	}
	out, err := Render(ctx, RenderOptions{ChartDir: dir, BundleRef: p.Ref})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"strata.dev/bundle: " + p.Ref, "link.argocd.argoproj.io/commit: https://git.example.com/team/app/commit/" + rep.Commit, "strata.dev/ci-url: https://ci.example.com/p/1"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("render lacks %q", w)
		}
	}

	// same content again: no-op; different content: refused, then --force
	again, err := Publish(ctx, o)
	if err != nil || !again.Unchanged || again.Digest != res.Digest || again.BytesPushed != 0 {
		t.Fatalf("re-publish of the same content: %+v, %v", again, err)
	}
	o2 := o
	o2.Branch = "other"
	if _, err := Publish(ctx, o2); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("re-publish of different content: %v", err)
	}
	if d, _ := r.Resolve(ctx, res.Tag); d.Digest.String() != res.Digest {
		t.Fatal("refused publish moved the tag")
	}
	o2.Force = true
	forced, err := Publish(ctx, o2)
	if err != nil || forced.Digest == res.Digest {
		t.Fatalf("forced publish: %+v, %v", forced, err)
	}
}

// failManifestPut fails every manifest PUT: the registry "goes down" after the blobs.
type failManifestPut struct {
	next  http.RoundTripper
	blobs atomic.Int32
}

func (f *failManifestPut) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
		if r.Body != nil {
			io.Copy(io.Discard, r.Body)
			r.Body.Close()
		}
		return nil, errors.New("injected failure: registry down")
	}
	if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/") {
		f.blobs.Add(1)
	}
	return f.next.RoundTrip(r)
}

func TestPublishAtomic(t *testing.T) {
	ctx := context.Background()
	rep := pushImages(t, "web", "worker")
	repo := testenv.Repo(t, "charts") + "/app"
	o := publishOpts(t, rep, repo, "0.1.0")
	o.Now = func() time.Time { return time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC) }
	ft := &failManifestPut{next: http.DefaultTransport}
	o.Registry.Transport = ft
	if _, err := Publish(ctx, o); err == nil || !strings.Contains(err.Error(), "registry down") {
		t.Fatalf("publish with a failing manifest PUT: %v", err)
	}
	if ft.blobs.Load() == 0 {
		t.Error("no blob was pushed before the manifest")
	}
	r, _ := registry.Options{}.Repository(repo)
	if _, err := r.Resolve(ctx, "0.1.0"); !errors.Is(err, errdef.ErrNotFound) {
		t.Fatalf("tag exists after a failed publish: %v", err)
	}
	// the retry succeeds and reuses the uploaded blobs
	o.Registry.Transport = nil
	res, err := Publish(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.BlobsSkipped != 2 || res.BlobsPushed != 0 {
		t.Errorf("retry pushed blobs again: %+v", res)
	}
	if d, err := r.Resolve(ctx, "0.1.0"); err != nil || d.Digest.String() != res.Digest {
		t.Errorf("tag after retry: %v %v", d.Digest, err)
	}
}

// refuseImages answers 403 to every manifest request of the stages repository (the images).
type refuseImages struct{ stages string }

func (f refuseImages) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.Contains(r.URL.Path, f.stages+"/manifests/") {
		return &http.Response{StatusCode: http.StatusForbidden, Status: "403 Forbidden", Header: http.Header{}, Body: http.NoBody, Request: r}, nil
	}
	return http.DefaultTransport.RoundTrip(r)
}

// An image check the registry refuses is reported as such, not as a missing image.
func TestPublishImageCheckRefused(t *testing.T) {
	rep := pushImages(t, "web", "worker")
	o := publishOpts(t, rep, testenv.Repo(t, "charts")+"/app", "0.1.0")
	_, path, _ := strings.Cut(rep.Repo, "/")
	o.Registry.Transport = refuseImages{stages: path}
	_, err := Publish(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "image web") || !strings.Contains(err.Error(), "403") || strings.Contains(err.Error(), "not in the registry") {
		t.Fatalf("publish with the image check refused: %v", err)
	}
}

func TestPublishBadInput(t *testing.T) {
	ctx := context.Background()
	rep := pushImages(t, "web", "worker")
	repo := testenv.Repo(t, "charts") + "/app"
	chart := func(edit func(dir string)) string {
		d := copyDir(t, "testdata/app")
		edit(d)
		return d
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name  string
		edit  func(o *PublishOptions)
		wants []string
	}{
		{"no Chart.yaml", func(o *PublishOptions) {
			o.ChartDir = chart(func(d string) { os.Remove(filepath.Join(d, "Chart.yaml")) })
		}, []string{"Chart.yaml is missing"}},
		{"invalid Chart.yaml", func(o *PublishOptions) {
			o.ChartDir = chart(func(d string) { write(filepath.Join(d, "Chart.yaml"), "apiVersion: v2\nname: app\n  version: 1\n") })
		}, []string{"Chart.yaml", "line 3"}},
		{"template error", func(o *PublishOptions) {
			o.ChartDir = chart(func(d string) { write(filepath.Join(d, "templates", "bad.yaml"), "a: b\nc: {{ .Values.x.y }}\n") })
		}, []string{"templates/bad.yaml:2"}},
		{"unknown image", func(o *PublishOptions) {
			o.ChartDir = chart(func(d string) {
				write(filepath.Join(d, "values.yaml"), "strata:\n  image:\n    web: a\n    db: b\n")
			})
		}, []string{"values.yaml:4", "strata.image.db", "web, worker"}},
		{"image not in registry", func(o *PublishOptions) {
			r := *o.Report
			r.Images = append([]stages.ImageReport(nil), r.Images...)
			r.Images[0].ManifestDigest = "sha256:" + hex.EncodeToString(make([]byte, 32))
			o.Report = &r
		}, []string{"image web", "not in the registry"}},
		{"chart too big", func(o *PublishOptions) {
			o.ChartDir = chart(func(d string) { write(filepath.Join(d, "big.txt"), strings.Repeat("x", 2<<20)) })
			o.MaxChartBytes = 1 << 20
		}, []string{"limit of 1048576 bytes"}},
		{"empty version", func(o *PublishOptions) { o.Version = "" }, []string{"version is empty"}},
		{"repo with tag", func(o *PublishOptions) { o.Repo += ":1.0" }, []string{"repository"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := publishOpts(t, rep, repo, "0.1.0")
			c.edit(&o)
			_, err := Publish(ctx, o)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	r, _ := registry.Options{}.Repository(repo)
	if _, err := r.Resolve(ctx, "0.1.0"); !errors.Is(err, errdef.ErrNotFound) {
		t.Fatalf("a tag exists after failed publishes: %v", err)
	}
}

func TestChartVersion(t *testing.T) {
	for in, want := range map[string][2]string{
		"1.2.3":           {"1.2.3", "1.2.3"},
		"v1.2.3":          {"1.2.3", "1.2.3"},
		"1.2.3-rc.1+b.5":  {"1.2.3-rc.1+b.5", "1.2.3-rc.1_b.5"},
		"main":            {"0.0.0-main", "0.0.0-main"},
		"feature/Foo_bar": {"0.0.0-feature-Foo-bar", "0.0.0-feature-Foo-bar"},
		"2024.01.5":       {"0.0.0-2024.x01.5", "0.0.0-2024.x01.5"},
	} {
		v, tag, err := ChartVersion(in)
		if err != nil || v != want[0] || tag != want[1] {
			t.Errorf("ChartVersion(%q) = %q, %q, %v; want %q, %q", in, v, tag, err, want[0], want[1])
		}
	}
	for _, bad := range []string{"", "///", strings.Repeat("a", 200)} {
		if _, _, err := ChartVersion(bad); err == nil {
			t.Errorf("ChartVersion(%q) accepted", bad)
		}
	}
}
