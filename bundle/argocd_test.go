package bundle

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/argoproj/argo-cd/v3/util/io"
	argooci "github.com/argoproj/argo-cd/v3/util/oci"

	"strata.dev/strata/internal/testing/testenv"
)

// Argo CD's own native OCI client (the one behind `oci://` Application sources) lists the
// bundle's semver tags, resolves a constraint, extracts the chart, and the chart renders with
// Strata's annotations: the artifact layout is what Argo CD accepts.
func TestArgoCDOCIClientAcceptsBundles(t *testing.T) {
	ctx := context.Background()
	rep := pushImages(t, "web", "worker")
	repo := testenv.Repo(t, "argo") + "/myapp"
	for _, v := range []string{"1.0.0", "1.1.0"} {
		if _, err := Publish(ctx, publishOpts(t, rep, repo, v)); err != nil {
			t.Fatal(err)
		}
	}
	c, err := argooci.NewClient("oci://"+repo, argooci.Creds{InsecureHTTPOnly: true}, "", "",
		[]string{MediaTypeHelmChart}, argooci.WithImagePaths(io.NewRandomizedTempPaths(t.TempDir())),
		argooci.WithManifestMaxExtractedSize(DefaultMaxChartBytes), argooci.WithIndexCache(&tagsCache{}),
		argooci.WithEventHandlers(argooci.EventHandlers{
			OnExtract: noop, OnResolveRevision: noop, OnDigestMetadata: noop, OnTestRepo: noop, OnGetTags: noop,
			OnExtractFail: noopRev, OnResolveRevisionFail: noopRev, OnDigestMetadataFail: noopRev,
			OnTestRepoFail: noop, OnGetTagsFail: noop,
		}))
	if err != nil {
		t.Fatal(err)
	}
	tags, err := c.GetTags(ctx, true)
	if err != nil || len(tags) != 2 || !slices.Contains(tags, "1.0.0") || !slices.Contains(tags, "1.1.0") {
		t.Fatalf("tags %v, %v", tags, err)
	}
	digest, err := c.ResolveRevision(ctx, "1.*", true)
	if err != nil {
		t.Fatal(err)
	}
	man, err := c.DigestMetadata(ctx, digest)
	if err != nil || man.Annotations["org.opencontainers.image.version"] != "1.1.0" {
		t.Fatalf("resolved %s: %v, %v", digest, man, err)
	}
	dir, closer, err := c.Extract(ctx, digest)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	chartDir := dir
	if _, err := os.Stat(filepath.Join(dir, "Chart.yaml")); err != nil {
		chartDir = filepath.Join(dir, "myapp")
	}
	out, err := Render(ctx, RenderOptions{ChartDir: chartDir, BundleRef: repo + "@" + digest})
	if err != nil {
		t.Fatalf("render what Argo CD extracted (%s): %v", dir, err)
	}
	if !strings.Contains(string(out), "strata.dev/bundle: "+repo+"@"+digest) || !strings.Contains(string(out), rep.Images[0].ManifestDigest) {
		t.Errorf("render:\n%s", out)
	}
}

func noop(string) func()          { return func() {} }
func noopRev(string) func(string) { return func(string) {} }

// tagsCache is the in-memory tags cache Argo CD's client wants.
type tagsCache struct{ data map[string][]byte }

func (c *tagsCache) SetOCITags(repo string, b []byte) error {
	if c.data == nil {
		c.data = map[string][]byte{}
	}
	c.data[repo] = b
	return nil
}

func (c *tagsCache) GetOCITags(repo string, b *[]byte) error {
	*b = c.data[repo]
	return nil
}
