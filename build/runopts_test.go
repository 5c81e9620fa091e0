package build

import (
	"archive/tar"
	"bytes"
	"context"
	"reflect"
	"sort"
	"strings"
	"testing"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// hideMounts drops the mount targets, what is below them and the directories made only to hold
// them; a directory above a target that holds other output stays, and so does everything else.
func TestHideMounts(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range []struct {
		name string
		dir  bool
	}{{"run/", true}, {"run/secrets/", true}, {"run/secrets/token", false}, {"var/", true}, {"var/cache/", true},
		{"var/cache/apt/", true}, {"var/cache/apt/x.deb", false}, {"var/cache/keep.txt", false}, {"app/", true}, {"app/bin", false}} {
		h := &tar.Header{Name: e.name, Mode: 0o644, Typeflag: tar.TypeReg}
		if e.dir {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	out, err := hideMounts(buf.Bytes(), []string{"/run/secrets/token", "/var/cache/apt"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	tr := tar.NewReader(bytes.NewReader(out))
	for h, err := tr.Next(); err == nil; h, err = tr.Next() {
		got = append(got, h.Name)
	}
	sort.Strings(got)
	if want := []string{"app/", "app/bin", "var/", "var/cache/", "var/cache/keep.txt"}; !reflect.DeepEqual(got, want) {
		t.Errorf("kept %v, want %v", got, want)
	}
}

// Digest inputs of the werf keys, without an engine (an image with no shell stage): a mount's
// spec and the image's cacheVersion change the first stage; network and secrets change nothing.
func TestWerfKeysDigestInputs(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "werfdigest")
	reg := registry.Options{}
	t.Setenv("STRATA_TEST_DIGEST_SECRET", "one")
	config := func(extra string) string {
		return head + "image: app\nfrom: " + base + "\ndocker:\n  CMD: [x]\n" + extra
	}
	g := newGitRepo(t)
	run := func(extra string) map[string]string {
		t.Helper()
		g.commit("c", map[string]string{"strata.yaml": config(extra)})
		rep, err := Run(context.Background(), Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: noEngine, CacheDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		return statuses(rep.Image("app"))
	}
	mount := "mount:\n- {from: tmp_dir, to: /cache}\n"
	steps := []struct {
		extra, want string
	}{
		{mount, stages.StatusBuilt},
		{mount + "network: none\nsecrets:\n- env: STRATA_TEST_DIGEST_SECRET\n", stages.StatusReused},
		{"mount:\n- {from: build_dir, to: /cache}\n", stages.StatusBuilt},
		{"mount:\n- {from: build_dir, to: /cache2}\n", stages.StatusBuilt},
		{"mount:\n- {from: build_dir, to: /cache2}\ncacheVersion: \"2\"\n", stages.StatusBuilt},
		{"mount:\n- {from: build_dir, to: /cache2}\ncacheVersion: \"2\"\nnetwork: host\n", stages.StatusReused},
	}
	for i, s := range steps {
		if got := run(s.extra)["from"]; got != s.want {
			t.Errorf("step %d (%s): from %s, want %s", i, strings.ReplaceAll(s.extra, "\n", " "), got, s.want)
		}
	}
	t.Setenv("STRATA_TEST_DIGEST_SECRET", "two")
	if got := run(steps[1].extra)["from"]; got != stages.StatusReused {
		t.Errorf("another secret value: from %s, want reused", got)
	}
}
