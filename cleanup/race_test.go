package cleanup

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// afterUnlockLocker runs a publish once, right after cleanup releases the publish lock of one
// content digest: the moment the manifests of that digest have just been deleted and cleanup
// has not re-listed the storage since. A build that chose the parent earlier publishes its child
// exactly then (builds lock only the child's digest).
type afterUnlockLocker struct {
	lock.Locker
	name    string
	once    sync.Once
	publish func()
}

func (r *afterUnlockLocker) Lock(ctx context.Context, n string) (lock.Lease, error) {
	l, err := r.Locker.Lock(ctx, n)
	if err != nil || n != r.name {
		return l, err
	}
	return &hookLease{Lease: l, after: func() { r.once.Do(r.publish) }}, nil
}

type hookLease struct {
	lock.Lease
	after func()
}

func (h *hookLease) Unlock(ctx context.Context) error {
	err := h.Lease.Unlock(ctx)
	h.after()
	return err
}

func manifestOf(t *testing.T, repoName, tag string) (string, bool) {
	t.Helper()
	ref, err := registry.Options{}.ParseRepository(repoName)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(ref.Tag(tag), registry.Options{}.Remote(context.Background())...)
	if err != nil {
		if registry.IsNotFound(err) {
			return "", false
		}
		t.Fatal(err)
	}
	return d.Digest.String(), true
}

// TestRaceChildOfDeletedParentRestoresParentChain: cleanup deletes an unused chain PP <- P; a
// build that had chosen P publishes a child X on it right after P's deletion. After cleanup P and
// PP are stored again under their tags with the identical manifests, X is stored, and a second
// cleanup keeps the whole chain (X is recent).
func TestRaceChildOfDeletedParentRestoresParentChain(t *testing.T) {
	for _, batch := range []int{1, 32} {
		t.Run(fmt.Sprintf("batch%d", batch), func(t *testing.T) {
			repoName := testenv.Repo(t, "stages")
			ctx := context.Background()
			reg := registry.Options{}
			repo, err := reg.ParseRepository(repoName)
			if err != nil {
				t.Fatal(err)
			}
			project := testenv.UniqueName(t, "p")
			now := time.Now()
			work := t.TempDir()
			g := &gitRepo{t: t, dir: work, now: now}
			g.run(0, "init", "-q", "-b", "main")
			cfg := fmt.Sprintf("project: %s\nconfigVersion: 1\ncleanup:\n  branches:\n    last: 1\n", project)
			if err := os.WriteFile(filepath.Join(work, "strata.yaml"), []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			g.run(10*day, "add", "strata.yaml")
			head := g.commit("head", 1*day)

			// Kept: base <- k (at HEAD). Deleted: pp <- p (at a commit no ref reaches) and d.
			// Their content digests sort pp < p < d, so with batches of one digest pp and p are
			// deleted before X appears and the batch of d restores them; with one batch the last
			// re-list does.
			base, _ := pushStage(t, repo, project, now.Add(-30*day), "", "")
			k, _ := pushStage(t, repo, project, now.Add(-1*day), head, base)
			gone := randomDigest(t)[:40]
			pp, ppManifest := pushStageAs(t, repo, "0"+randomDigest(t)[1:], project, now.Add(-29*day), "", "")
			p, pManifest := pushStageAs(t, repo, "1"+randomDigest(t)[1:], project, now.Add(-20*day), gone, pp)
			d, _ := pushStageAs(t, repo, "2"+randomDigest(t)[1:], project, now.Add(-20*day), gone, base)
			pTag, _ := stages.ParseTag(p)

			var x string
			var out bytes.Buffer
			res, err := Run(ctx, Options{
				Dir: work, Repo: repoName, Registry: reg, Now: now, Out: &out, LockBatch: batch,
				Locker: &afterUnlockLocker{Locker: &lock.File{Dir: t.TempDir()}, name: stages.PublishLock(project, pTag.Digest), publish: func() {
					if _, ok := manifestOf(t, repoName, p); ok {
						t.Error("P is still stored when cleanup releases its lock")
					}
					x, _ = pushStage(t, repo, project, time.Now(), head, p)
				}},
			})
			t.Logf("cleanup:\n%s", out.String())
			if err != nil {
				t.Fatalf("cleanup: %v", err)
			}
			if x == "" {
				t.Fatal("the racing publish did not happen: cleanup took no publish lock for P's digest")
			}
			planned := []string{}
			for _, it := range res.Plan.Delete {
				planned = append(planned, it.Stage.Tag)
			}
			slices.Sort(planned)
			want := []string{d, p, pp}
			slices.Sort(want)
			if !slices.Equal(planned, want) {
				t.Fatalf("planned deletions %v, want d, p, pp %v", planned, want)
			}
			for tag, manifest := range map[string]string{p: pManifest, pp: ppManifest} {
				got, ok := manifestOf(t, repoName, tag)
				if !ok {
					t.Errorf("%s was deleted although stage %s, published meanwhile, is built on it", tag, x)
				} else if got != manifest {
					t.Errorf("%s restored with manifest %s, want the identical %s", tag, got, manifest)
				}
				if !strings.Contains(out.String(), "restored "+tag) {
					t.Errorf("output does not report restoring %s", tag)
				}
			}
			if _, ok := manifestOf(t, repoName, x); !ok {
				t.Errorf("the raced stage %s is gone", x)
			}
			if _, ok := manifestOf(t, repoName, d); ok {
				t.Errorf("unused stage %s was not deleted", d)
			}
			for _, tag := range []string{base, k} {
				if _, ok := manifestOf(t, repoName, tag); !ok {
					t.Errorf("kept stage %s is gone", tag)
				}
			}
			slices.Sort(res.Restored)
			if wantR := sorted(p, pp); !slices.Equal(res.Restored, wantR) {
				t.Errorf("restored %v, want %v", res.Restored, wantR)
			}
			if len(res.Deleted) != 1 {
				t.Errorf("deleted %v, want only d's manifest", res.Deleted)
			}

			// The restored chain is complete: the next cleanup keeps X (recent) and its parents.
			out.Reset()
			res, err = Run(ctx, Options{Dir: work, Repo: repoName, Registry: reg, Now: time.Now(), Out: &out, Locker: &lock.File{Dir: t.TempDir()}})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Plan.Delete) != 0 {
				t.Errorf("second run plans deletions: %v\n%s", res.Plan.Delete, out.String())
			}
		})
	}
}

func sorted(s ...string) []string { slices.Sort(s); return s }
