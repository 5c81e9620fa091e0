package stages_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// The test is external (package stages_test): the test harness it uses imports stages.

// A storage lists its tags (none for a repository never pushed to) and reads a stage's labels;
// ByDigest keeps the stage tags only.
func TestStorageTagsAndLabels(t *testing.T) {
	ctx := context.Background()
	digest := strings.Repeat("0123456789abcdef", 4)[:stages.DigestLen]
	s, err := stages.Open(testenv.Repo(t, "stages"), registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tags, err := s.Tags(ctx)
	if err != nil || tags != nil {
		t.Fatalf("Tags of an empty storage = %v, %v; want none", tags, err)
	}

	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config.DeepCopy()
	c.Labels = map[string]string{stages.LabelProject: "p", stages.LabelDigest: digest, stages.CommitLabel(0): "c0"}
	if img, err = mutate.Config(img, *c); err != nil {
		t.Fatal(err)
	}
	older, newer := stages.Tag{Digest: digest, Millis: 1700000000000}.String(), stages.Tag{Digest: digest, Millis: 1700000000001}.String()
	for _, tag := range []string{newer, older, "latest"} {
		if err := remote.Write(s.Ref(tag), img, s.Remote(ctx)...); err != nil {
			t.Fatal(err)
		}
	}
	if tags, err = s.Tags(ctx); err != nil || !slices.Equal(tags, []string{older, newer, "latest"}) {
		t.Fatalf("Tags = %v, %v", tags, err)
	}
	if got := stages.ByDigest(tags); len(got) != 1 || !slices.Equal(got[digest], []int64{1700000000000, 1700000000001}) {
		t.Errorf("ByDigest = %v", got)
	}

	desc, err := s.Read(ctx, older)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := img.Digest(); desc.Digest != want {
		t.Errorf("Read: manifest %s, want %s", desc.Digest, want)
	}
	labels, err := s.Labels(older, desc)
	if err != nil {
		t.Fatal(err)
	}
	if labels[stages.LabelProject] != "p" || labels[stages.LabelDigest] != digest || labels[stages.CommitLabel(0)] != "c0" {
		t.Errorf("Labels = %v", labels)
	}

	_, err = s.Read(ctx, stages.Tag{Digest: digest, Millis: 1}.String())
	if !registry.IsNotFound(err) {
		t.Errorf("Read of a missing stage: %v, want not found", err)
	}
}
