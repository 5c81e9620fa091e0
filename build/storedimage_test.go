package build

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
)

// requestLog records the requests of a registry transport.
type requestLog struct {
	mu    sync.Mutex
	paths []string
}

func (l *requestLog) RoundTrip(r *http.Request) (*http.Response, error) {
	l.mu.Lock()
	l.paths = append(l.paths, r.Method+" "+r.URL.Path)
	l.mu.Unlock()
	return remote.DefaultTransport.RoundTrip(r)
}

// A stored stage read from the caches of this host (its manifest by tag, its config by digest)
// is the stage the registry holds: same manifest, config and layers, and an image built on it
// is the image built on the registry's copy. Reading it makes no request; its layers' content
// is fetched from the storage only when read.
func TestCachedStageIsTheStoredStage(t *testing.T) {
	ctx := context.Background()
	repo := testenv.Repo(t, "cachedstage")
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	log := &requestLog{}
	o := Options{Repo: repo, CacheDir: t.TempDir(), Locker: fileLocker(t), Registry: registry.Options{Transport: log}}
	o.defaults()
	st, err := openStorage(o)
	if err != nil {
		t.Fatal(err)
	}
	const tag = "0123456789abcdef0123456789abcdef0123456789abcdef01234567-1700000000000"
	if err := remote.Write(st.Ref(tag), img, st.repoRemote(ctx)...); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := st.cachedStage(ctx, tag); ok {
		t.Fatal("a stage this host never read is cached")
	}
	desc, err := st.read(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	st.keep(tag, desc)
	if _, _, ok := st.cachedStage(ctx, tag); ok {
		t.Fatal("cached without its config")
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	st.tagCache.putBlob(cfg)

	log.paths = nil
	cached, cdesc, ok := st.cachedStage(ctx, tag)
	if !ok {
		t.Fatal("not cached after its manifest and config were kept")
	}
	if cdesc.Digest != desc.Digest {
		t.Errorf("cached manifest %s, stored %s", cdesc.Digest, desc.Digest)
	}
	layer, err := random.Layer(256, "application/vnd.docker.image.rootfs.diff.tar.gzip")
	if err != nil {
		t.Fatal(err)
	}
	// describe lists the digests of im and of a child on it: manifest, config, layers, diff IDs.
	describe := func(im v1.Image) string {
		child, err := mutate.Append(im, mutate.Addendum{Layer: layer})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, x := range []v1.Image{im, child} {
			d, err := x.Digest()
			if err != nil {
				t.Fatal(err)
			}
			c, err := x.ConfigName()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, d.String(), c.String())
			ls, err := x.Layers()
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range ls {
				ld, _ := l.Digest()
				diff, err := l.DiffID()
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, ld.String(), diff.String())
			}
		}
		return strings.Join(out, "\n")
	}
	fromCache := describe(cached)
	if len(log.paths) > 0 {
		t.Errorf("the cached stage and a child on it asked the registry: %v", log.paths)
	}
	stored, err := desc.Image()
	if err != nil {
		t.Fatal(err)
	}
	if fromStorage := describe(stored); fromCache != fromStorage {
		t.Errorf("cached stage and a child on it:\n%s\nstored stage:\n%s", fromCache, fromStorage)
	}
	// The content of a layer comes from the storage.
	ls, err := cached.Layers()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ls[0].Digest()
	rc, err := ls[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := v1.SHA256(strings.NewReader(string(data))); got != want {
		t.Errorf("layer content from the storage: digest %s, want %s", got, want)
	}
}
