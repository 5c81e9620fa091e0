package git_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"strata.dev/strata/internal/git"
	"strata.dev/strata/internal/testing/gitserver"
)

// Against a real git server (git http-backend behind basic auth): fetch, commit, push; a push
// after someone else's commit is rejected (never forced) and succeeds after fetching again; no
// commit when nothing changed; wrong credentials fail.
func TestPushToRealServer(t *testing.T) {
	ctx := context.Background()
	srv, err := gitserver.Start(gitserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	url, err := srv.CreateRepo(ctx, "team/apps", "main", map[string]string{"a.txt": "one\n"})
	if err != nil {
		t.Fatal(err)
	}
	auth := git.Auth{Username: srv.Username, Password: srv.Password}
	r, err := git.Init(ctx, filepath.Join(t.TempDir(), "clone"))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := r.DefaultBranch(ctx, url, auth); err != nil || b != "main" {
		t.Fatalf("DefaultBranch = %q, %v; want main", b, err)
	}
	if _, err := r.FetchBranch(ctx, url, "nope", auth); !errors.Is(err, git.ErrNoBranch) {
		t.Fatalf("FetchBranch of a missing branch: %v, want ErrNoBranch", err)
	}
	if _, err := r.FetchBranch(ctx, url, "main", git.Auth{Username: "strata", Password: "wrong"}); err == nil {
		t.Fatal("fetch with a wrong password succeeded")
	}
	tip, err := r.FetchBranch(ctx, url, "main", auth)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Checkout(ctx, tip); err != nil {
		t.Fatal(err)
	}
	who := git.Signature{Name: "bot", Email: "bot@example.com"}
	if c, err := r.CommitAll(ctx, "nothing", who); err != nil || c != "" {
		t.Fatalf("CommitAll without a change = %q, %v; want no commit", c, err)
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(r.Dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.txt", "two\n")
	mine, err := r.CommitAll(ctx, "bump a", who)
	if err != nil || mine == "" {
		t.Fatalf("CommitAll = %q, %v", mine, err)
	}
	// Someone else pushes first: ours is rejected, not forced over theirs.
	if err := srv.Commit(ctx, "team/apps", "main", "theirs", map[string]string{"b.txt": "theirs\n"}); err != nil {
		t.Fatal(err)
	}
	if err := r.Push(ctx, url, mine, "main", auth); !errors.Is(err, git.ErrPushRejected) {
		t.Fatalf("push over a moved branch: %v, want ErrPushRejected", err)
	}
	tip, err = r.FetchBranch(ctx, url, "main", auth)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Checkout(ctx, tip); err != nil {
		t.Fatal(err)
	}
	write("a.txt", "two\n")
	mine, err = r.CommitAll(ctx, "bump a", who)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Push(ctx, url, mine, "main", auth); err != nil {
		t.Fatal(err)
	}
	if got, _ := srv.File(ctx, "team/apps", "main", "a.txt"); got != "two\n" {
		t.Errorf("a.txt on main = %q", got)
	}
	if got, _ := srv.File(ctx, "team/apps", "main", "b.txt"); got != "theirs\n" {
		t.Errorf("b.txt on main = %q: the other commit was lost", got)
	}
	log, _ := srv.Log(ctx, "team/apps", "main")
	if len(log) != 3 || !strings.Contains(log[0], "bot: bump a") {
		t.Errorf("log %q, want 3 commits, ours on top", log)
	}
	// A new branch is created by a push.
	if err := r.Push(ctx, url, mine, "updates", auth); err != nil {
		t.Fatal(err)
	}
	if got, _ := srv.File(ctx, "team/apps", "updates", "a.txt"); got != "two\n" {
		t.Errorf("a.txt on updates = %q", got)
	}
}
