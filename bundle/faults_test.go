package bundle

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/faultproxy"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// viaProxy is rep with its images reached through the proxy p.
func viaProxy(p *faultproxy.Proxy, rep *stages.Report) *stages.Report {
	out := *rep
	out.Repo = p.Via(rep.Repo)
	out.Images = nil
	for _, im := range rep.Images {
		im.Repo, im.Ref = p.Via(im.Repo), p.Via(im.Ref)
		out.Images = append(out.Images, im)
	}
	return &out
}

// A registry that rate-limits the image check (429 on every try) fails the publish with the
// status, the request and the image named; it never says the image is not in the registry.
func TestPublishRateLimitedIsNotNotFound(t *testing.T) {
	ctx := context.Background()
	p := faultproxy.Start(t, testenv.Registry(t))
	rep := viaProxy(p, pushImages(t, "web", "worker"))
	p.Add(&faultproxy.Rule{Method: http.MethodHead, Path: strings.TrimPrefix(rep.Repo, p.Host()) + "/manifests/", Status: http.StatusTooManyRequests, RetryAfter: "0", Always: true})
	_, err := Publish(ctx, publishOpts(t, rep, testenv.Repo(t, "bundle")+"/app", "1.0.0"))
	if err == nil {
		t.Fatal("publish succeeded though every image check got 429")
	}
	msg := err.Error()
	if strings.Contains(msg, "is not in the registry") || !strings.Contains(msg, "429 Too Many Requests after 5 attempts") ||
		!strings.Contains(msg, rep.Images[0].Repo) || !strings.Contains(strings.ToUpper(msg), "HEAD ") {
		t.Errorf("error = %v, want the 429, the request and the image, not 'is not in the registry'", err)
	}
}

// A source blob whose body keeps breaking off is blamed on the source, with its digest; the
// destination is not named as the culprit.
func TestCopyBlamesTruncatedSource(t *testing.T) {
	ctx := context.Background()
	p := faultproxy.Start(t, testenv.Registry(t))
	var ro registry.Options
	stagesRepo := testenv.Repo(t, "stages")
	rep := &stages.Report{Project: "app", Repo: stagesRepo, Commit: strings.Repeat("01", 20)}
	// a layer larger than what the transport reads whole: its body is streamed to the destination
	img, err := random.Image(5<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	layer, _ := layers[0].Digest()
	for i, n := range []string{"web", "worker"} {
		tag := stages.Tag{Digest: fmt.Sprintf("%056x", i+1), Millis: time.Now().UnixMilli()}.String()
		ref, _ := ro.ParseReference(stagesRepo + ":" + tag)
		if err := remote.Write(ref, img, ro.Remote(ctx)...); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		rep.Images = append(rep.Images, stages.ImageReport{Name: n, Repo: stagesRepo, Tag: tag, Ref: stagesRepo + ":" + tag, ManifestDigest: d.String()})
	}
	src := testenv.Repo(t, "src") + "/app"
	if _, err := Publish(ctx, publishOpts(t, viaProxy(p, rep), p.Via(src), "1.0.0")); err != nil {
		t.Fatal(err)
	}
	p.Add(&faultproxy.Rule{Method: http.MethodGet, Path: "/blobs/" + layer.String(), Truncate: true, Always: true})
	dst := testenv.Repo(t, "dst") + "/app"
	_, err = Copy(ctx, CopyOptions{From: p.Via(src) + ":1.0.0", To: dst})
	if err == nil {
		t.Fatal("copy succeeded though the source blob is always cut short")
	}
	msg := err.Error()
	if !strings.Contains(msg, "read "+layer.String()+" from "+p.Via(stagesRepo)) || strings.Contains(msg, "copy to "+dst) {
		t.Errorf("error = %v\nwant the source blob %s blamed, not the destination", err, layer)
	}
	t.Log(msg)
}
