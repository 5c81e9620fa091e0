package build

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"strata.dev/strata/config"
	"strata.dev/strata/internal/git"
)

// BenchmarkDigests20k computes every stage digest of an image over a 20,000-file repository
// (git mapping with include/exclude globs and stageDependencies for three stages), from a
// cold git reader each time. Target: < 300 ms.
func BenchmarkDigests20k(b *testing.B) {
	dir := repo20k(b)
	parsed, err := config.Load(context.Background(), config.Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		repo, headCommit, err := git.OpenHead(ctx, dir)
		if err != nil {
			b.Fatal(err)
		}
		bl := &builder{cfg: parsed, git: repo, head: headCommit, cfgDir: "."}
		var p *state
		count := 0
		for _, sp := range bl.pipeline(parsed.Images[0], false) {
			d, ok, err := sp.digest(ctx, p)
			if err != nil {
				b.Fatal(err)
			}
			if ok {
				count++
				p = &state{digest: d, commit: headCommit}
			}
		}
		if count != 6 {
			b.Fatalf("%d stages", count)
		}
	}
}

// BenchmarkCleanCheck20k is the uncommitted-changes check (git status) on the same work tree:
// it runs before digests and is dominated by stat(2) of every file.
func BenchmarkCleanCheck20k(b *testing.B) {
	dir := repo20k(b)
	ctx := context.Background()
	repo, _, err := git.OpenHead(ctx, dir)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		if st, err := repo.Status(ctx, "."); err != nil || len(st) != 0 {
			b.Fatalf("status: %v %v", st, err)
		}
	}
}

// repo20k makes a repository with 20,000 files (and a strata.yaml) checked out.
func repo20k(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	// fast-import builds the 20,000-file commit without touching the file system per file.
	var in strings.Builder
	in.WriteString("commit refs/heads/main\ncommitter b <b@b> 1700000000 +0000\ndata 2\nx\n")
	for i := 0; i < 20000; i++ {
		content := fmt.Sprintf("package p%d\n// file %d\n", i/100, i)
		ext := []string{".go", ".txt", ".md", ".json"}[i%4]
		fmt.Fprintf(&in, "M 644 inline src/pkg%03d/sub%d/file%d%s\ndata %d\n%s\n", i/100, i%7, i, ext, len(content), content)
	}
	cfg := "project: p\nconfigVersion: 1\n---\n" + "image: app\nfrom: base\ngit:\n- add: /src\n  to: /app\n  includePaths: [\"**/*.go\", \"**/*.json\", \"pkg00*\"]\n  excludePaths: [\"**/sub3\"]\n  stageDependencies:\n    install: [\"**/*.json\"]\n    beforeSetup: [\"pkg01*/**\"]\n    setup: [\"**/*.go\"]\nshell:\n  install: [x]\n  beforeSetup: [y]\n  setup: [z]\ndocker:\n  WORKDIR: /app\n"
	fmt.Fprintf(&in, "M 644 inline strata.yaml\ndata %d\n%s\n", len(cfg), cfg)
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"fast-import", "--quiet"}, {"reset", "-q", "--hard", "main"}} {
		c := exec.Command("git", args...)
		c.Dir = dir
		if args[0] == "fast-import" {
			c.Stdin = strings.NewReader(in.String())
		}
		if out, err := c.CombinedOutput(); err != nil {
			b.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dir
}
