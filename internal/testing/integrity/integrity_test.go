package integrity_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/integrity"
	"strata.dev/strata/internal/testing/testenv"
)

// The checker finds a whole repository whole, and names a deleted blob and a stage digest with
// two tags.
func TestCheckFindsBrokenStates(t *testing.T) {
	ctx := context.Background()
	o := registry.Options{}
	repo := testenv.Repo(t, "integrity")
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img})
	digest := strings.Repeat("ab", 28)
	put := func(tag string, w func(ref string) error) {
		t.Helper()
		if err := w(repo + ":" + tag); err != nil {
			t.Fatal(err)
		}
	}
	write := func(ref string) error {
		r, _ := o.ParseReference(ref)
		return remote.Write(r, img, o.Remote(ctx)...)
	}
	put(digest+"-1700000000000", write)
	put("v1", func(ref string) error {
		r, _ := o.ParseReference(ref)
		return remote.WriteIndex(r, idx, o.Remote(ctx)...)
	})
	rep, err := integrity.Check(ctx, repo, integrity.Options{Stages: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Err() != nil || rep.Tags != 2 || rep.Manifests != 2 || rep.Blobs != 3 {
		t.Fatalf("whole repository: %+v, %v", rep, rep.Err())
	}
	if rep, err := integrity.Check(ctx, testenv.Repo(t, "absent"), integrity.Options{}); err != nil || rep.Err() != nil || rep.Tags != 0 {
		t.Fatalf("a repository never written: %+v, %v", rep, err)
	}

	put(digest+"-1700000000001", write)
	layers, _ := img.Layers()
	ld, _ := layers[1].Digest()
	req, _ := http.NewRequest(http.MethodDelete, "http://"+strings.Replace(repo, "/", "/v2/", 1)+"/blobs/"+ld.String(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("delete blob: %v %v", resp, err)
	}
	rep, err = integrity.Check(ctx, repo, integrity.Options{Stages: true})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(rep.Problems, "\n")
	if !strings.Contains(got, "stage digest has 2 tags") || !strings.Contains(got, "names blob "+ld.String()) ||
		!strings.Contains(got, "v1 → ") {
		t.Errorf("problems:\n%s", got)
	}
}
