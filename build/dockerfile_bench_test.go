package build

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"strata.dev/strata/config"
	"strata.dev/strata/internal/git"
)

// BenchmarkDockerfileDigest20k computes the digest of a multi-stage Dockerfile image whose
// context is a 20,000-file directory (parse, stage graph, .dockerignore and source matching over
// every context file), from a cold git reader each time. Issue 20's target for stage digests
// of a 20,000-file repository: < 300 ms.
func BenchmarkDockerfileDigest20k(b *testing.B) {
	dir := repo20k(b)
	df := "ARG PKG=pkg01\nFROM base AS deps\nCOPY pkg000/ /deps/\n" +
		"FROM base AS unused\nCOPY . /all/\n" +
		"FROM base\nARG PKG\nCOPY --from=deps /deps /deps\nCOPY ${PKG}*/sub1/ /app/\nCOPY pkg19?/*/file*.json /json/\n"
	for name, content := range map[string]string{"src/Dockerfile": df, "src/.dockerignore": "**/*.md\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for _, args := range [][]string{{"add", "-A"}, {"-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "dockerfile"}} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			b.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	parsed, err := config.Load(context.Background(), config.Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	im := &Image{Name: "web", Dockerfile: "Dockerfile", Context: "src"}
	ctx := context.Background()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		repo, head, err := git.OpenHead(ctx, dir)
		if err != nil {
			b.Fatal(err)
		}
		bl := &builder{cfg: parsed, git: repo, head: head, cfgDir: "."}
		stage := bl.dockerfileStage(im)
		if _, ok, err := stage.digest(ctx, nil); err != nil || !ok {
			b.Fatal(err)
		}
		if n == 0 {
			in, err := bl.dockerfileInputs(ctx, im)
			if err != nil {
				b.Fatal(err)
			}
			// a few hundred of the 20,000 files: pkg000/, pkg01*/sub1/, pkg19?/*/*.json, no .md
			if len(in.files) < 300 || len(in.files) > 500 || len(in.sent) < 14000 {
				b.Fatalf("%d files read, %d sent", len(in.files), len(in.sent))
			}
			b.ReportMetric(float64(len(in.files)), "files-read")
		}
	}
}
