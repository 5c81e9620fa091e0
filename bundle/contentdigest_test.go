package bundle

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"strata.dev/strata/stages"
)

// The content digest recomputed from an extracted bundle is the one Publish annotates; a
// changed file changes it.
func TestDirContentDigestOfPublishedArtifact(t *testing.T) {
	files, err := readChartDir("testdata/app", 0)
	if err != nil {
		t.Fatal(err)
	}
	rep := &stages.Report{Project: "app", Repo: "reg.example/stages", Commit: strings.Repeat("ab", 20),
		Images: []stages.ImageReport{
			{Name: "web", Repo: "reg.example/stages", Tag: "t1", ManifestDigest: "sha256:" + strings.Repeat("1", 64)},
			{Name: "worker", Repo: "reg.example/stages", Tag: "t2", ManifestDigest: "sha256:" + strings.Repeat("2", 64)},
		}}
	images, err := imagesLock(rep)
	if err != nil {
		t.Fatal(err)
	}
	meta := &Metadata{SchemaVersion: MetadataSchemaVersion, Project: "app", Chart: "app", Version: "1.0.0",
		Bundle: "reg.example/b/app:1.0.0", Commit: Commit{Hash: rep.Commit, Date: "2026-11-22T10:00:00Z"},
		GitURL: "https://git.example.com/a/b.git", CI: CI{JobURL: "https://ci.example.com/1"}, Images: images}
	art, err := buildArtifact("app", "1.0.0", files, meta, 0)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, extracted, err := readChartArchive(art.layer, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFiles(dir, extracted); err != nil {
		t.Fatal(err)
	}
	got, err := DirContentDigest(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := art.annotations[AnnotationContentDigest]; got != want {
		t.Fatalf("content digest of the extracted chart %s, annotated %s", got, want)
	}
	if err := os.WriteFile(filepath.Join(dir, "values.yaml"), []byte("tampered: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if again, _ := DirContentDigest(dir, 0); again == got {
		t.Fatal("a changed values.yaml kept the content digest")
	}
}
