package git

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func sh(t *testing.T, dir string, args ...string) string {
	t.Helper()
	c := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@t"}, args...)...)
	c.Dir = dir
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestRepo(t *testing.T) {
	dir := t.TempDir()
	sh(t, dir, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a"), 0o644)
	os.MkdirAll(filepath.Join(dir, "d"), 0o755)
	os.WriteFile(filepath.Join(dir, "d", "b.txt"), []byte("b"), 0o755)
	os.Symlink("a.txt", filepath.Join(dir, "link"))
	sh(t, dir, "add", "-A")
	sh(t, dir, "commit", "-q", "-m", "1")
	c1 := sh(t, dir, "rev-parse", "HEAD")
	ctx := context.Background()
	r, head, err := OpenHead(ctx, filepath.Join(dir, "d"))
	if err != nil || head != c1 {
		t.Fatalf("OpenHead = %v %q, want %s", err, head, c1)
	}
	fs, err := r.Files(ctx, c1)
	if err != nil || len(fs) != 3 {
		t.Fatalf("Files = %v %v", fs, err)
	}
	modes := map[string]string{}
	for _, f := range fs {
		modes[f.Path] = f.Mode
	}
	if modes["d/b.txt"] != "100755" || modes["link"] != "120000" || modes["a.txt"] != "100644" {
		t.Errorf("modes = %v", modes)
	}
	var got []string
	if err := r.Blobs(ctx, []string{fs[0].Hash, fs[1].Hash}, func(_ string, d []byte) error { got = append(got, string(d)); return nil }); err != nil || len(got) != 2 {
		t.Fatalf("Blobs = %v %v", got, err)
	}

	os.Remove(filepath.Join(dir, "a.txt"))
	os.WriteFile(filepath.Join(dir, "d", "b.txt"), []byte("b2"), 0o755)
	os.WriteFile(filepath.Join(dir, "new.txt"), []byte("n"), 0o644)
	if st, _ := r.Status(ctx); len(st) != 3 {
		t.Errorf("Status = %q", st)
	}
	if st, _ := r.Status(ctx, "d"); len(st) != 1 {
		t.Errorf("Status(d) = %q", st)
	}
	snap, err := r.Snapshot(ctx, c1)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := r.Status(ctx); len(st) != 3 {
		t.Errorf("Snapshot changed the index: %q", st)
	}
	ch, err := r.Diff(ctx, c1, snap)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]byte{}
	for _, c := range ch {
		kinds[c.Path] = c.Status
	}
	if kinds["a.txt"] != 'D' || kinds["d/b.txt"] != 'M' || kinds["new.txt"] != 'A' || len(kinds) != 3 {
		t.Errorf("Diff = %+v", ch)
	}
	if ok, _ := r.IsAncestor(ctx, c1, snap); !ok {
		t.Errorf("HEAD not an ancestor of its snapshot")
	}
	if ok, _ := r.IsAncestor(ctx, snap, c1); ok {
		t.Errorf("snapshot an ancestor of HEAD")
	}
	if ok, err := r.IsAncestor(ctx, strings.Repeat("ab", 20), c1); ok || err != nil {
		t.Errorf("unknown commit: %v %v", ok, err)
	}
}
