package bundle

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart/loader"
	helmregistry "helm.sh/helm/v3/pkg/registry"

	"strata.dev/strata/internal/testing/testenv"
)

// countingTransport counts upload requests and the bytes they send.
type countingTransport struct {
	next                 http.RoundTripper
	blobs, manifests     atomic.Int64
	bytesSent, imageHits atomic.Int64
	imagesRepo           string
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut || r.Method == http.MethodPost || r.Method == http.MethodPatch {
		if r.ContentLength > 0 {
			c.bytesSent.Add(r.ContentLength)
		}
		switch {
		case strings.Contains(r.URL.Path, "/manifests/"):
			c.manifests.Add(1)
		case r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/"):
			c.blobs.Add(1)
		}
		if c.imagesRepo != "" && strings.Contains(r.URL.Path, c.imagesRepo) {
			c.imageHits.Add(1)
		}
	}
	return c.next.RoundTrip(r)
}

// BenchmarkPublish10Images publishes a bundle of 10 images that are already in the registry:
// only the chart's two blobs (config and chart archive) and the manifest may be uploaded (the
// benchmark fails otherwise). It reports bytes sent and uploads per publish, and prints the
// time ratio to a plain `helm push` of an equivalent chart through Helm's registry client,
// measured in the same run.
func BenchmarkPublish10Images(b *testing.B) {
	ctx := context.Background()
	names := make([]string, 10)
	for i := range names {
		names[i] = fmt.Sprintf("img%d", i)
	}
	rep := pushImages(b, names...)
	chartDir := benchChart(b, names)
	var strataNs, helmNs float64

	b.Run("strata-publish", func(b *testing.B) {
		repo := testenv.Repo(b, "bench") + "/app"
		ct := &countingTransport{next: http.DefaultTransport, imagesRepo: strings.SplitN(rep.Repo, "/", 2)[1]}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			o := PublishOptions{Repo: repo, Version: fmt.Sprintf("1.0.%d", i), ChartDir: chartDir, Report: rep, SkipRenderCheck: true}
			o.Registry.Transport = ct
			if _, err := Publish(ctx, o); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		n := float64(b.N)
		b.ReportMetric(float64(ct.bytesSent.Load())/n, "B-sent/op")
		b.ReportMetric(float64(ct.blobs.Load())/n, "blob-uploads/op")
		b.ReportMetric(float64(ct.manifests.Load())/n, "manifest-puts/op")
		if ct.blobs.Load() > int64(2*b.N) || ct.manifests.Load() != int64(b.N) || ct.imageHits.Load() != 0 {
			b.Fatalf("uploads beyond the chart: %d blobs, %d manifests, %d image-repo writes for %d publishes", ct.blobs.Load(), ct.manifests.Load(), ct.imageHits.Load(), b.N)
		}
		strataNs = float64(b.Elapsed().Nanoseconds()) / n
	})

	b.Run("helm-push-baseline", func(b *testing.B) {
		rc, err := helmregistry.NewClient(helmregistry.ClientOptPlainHTTP(), helmregistry.ClientOptCredentialsFile(filepath.Join(b.TempDir(), "creds.json")))
		if err != nil {
			b.Fatal(err)
		}
		files, err := readChartDir(chartDir, 0)
		if err != nil {
			b.Fatal(err)
		}
		lock, _ := imagesLock(rep)
		repo := testenv.Repo(b, "bench-helm") + "/app"
		var elapsed int64
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			v := fmt.Sprintf("1.0.%d", i)
			art, err := buildArtifact("app", v, files, &Metadata{Chart: "app", Version: v, Images: lock}, 0)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			start := time.Now()
			if _, err := rc.Push(art.layer, repo+":"+v); err != nil {
				b.Fatal(err)
			}
			elapsed += time.Since(start).Nanoseconds()
		}
		helmNs = float64(elapsed) / float64(b.N)
	})
	if strataNs > 0 && helmNs > 0 {
		fmt.Printf("BenchmarkPublish10Images: strata publish %.2f ms/op, helm push %.2f ms/op, ratio %.2fx\n", strataNs/1e6, helmNs/1e6, strataNs/helmNs)
	}
}

// benchChart is the test chart with one Deployment per image.
func benchChart(b *testing.B, names []string) string {
	b.Helper()
	dir := b.TempDir()
	var tmpl strings.Builder
	for _, n := range names {
		fmt.Fprintf(&tmpl, "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: %s}\nspec:\n  selector: {matchLabels: {app: %s}}\n  template:\n    metadata: {labels: {app: %s}}\n    spec: {containers: [{name: c, image: {{ .Values.strata.image.%s | quote }}}]}\n", n, n, n, n)
	}
	writeFile(b, dir, "Chart.yaml", "apiVersion: v2\nname: app\nversion: 0.1.0\n")
	writeFile(b, dir, "templates/all.yaml", tmpl.String())
	return dir
}

func writeFile(t testing.TB, dir, name, s string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkRender renders the test chart and the large charts of the equivalence corpus with
// Strata's annotations and deterministic ordering, and prints the time ratio to Helm's own
// client-only install (what `helm template` runs) on the same chart, measured in the same run,
// in process (no package init: BenchmarkRenderLargeCharts in bench/ measures the processes).
func BenchmarkRender(b *testing.B) {
	ctx := context.Background()
	for _, dir := range []string{"testdata/app", "testdata/charts/platform", "testdata/charts/monitoring", "testdata/charts/forge"} {
		o := RenderOptions{ChartDir: dir, ReleaseName: "shop", Namespace: "team-a", APIVersions: []string{"monitoring.coreos.com/v1"}}
		var strataNs, helmNs float64
		b.Run(filepath.Base(dir)+"/strata-render", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := Render(ctx, o); err != nil {
					b.Fatal(err)
				}
			}
			strataNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		})
		b.Run(filepath.Base(dir)+"/helm-template-baseline", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				c, err := loader.Load(dir)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := helmInstall(c, nil, o); err != nil {
					b.Fatal(err)
				}
			}
			helmNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		})
		if strataNs > 0 && helmNs > 0 {
			fmt.Printf("BenchmarkRender/%s: strata render %.3f ms/op, helm template %.3f ms/op, ratio %.2fx\n", filepath.Base(dir), strataNs/1e6, helmNs/1e6, strataNs/helmNs)
		}
	}
}
