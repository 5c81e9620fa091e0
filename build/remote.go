package build

import (
	"context"
	"fmt"
	"time"

	"strata.dev/strata/internal/git"
)

// remoteCommit is a remote repository of git mappings resolved for this build.
type remoteCommit struct {
	repo   *git.Repo
	commit string
}

func remoteRef(m GitMapping) git.RemoteRef {
	return git.RemoteRef{URL: m.URL, Branch: m.Branch, Tag: m.Tag, Commit: m.Commit}
}

// fetchRemotes resolves every remote git mapping of images (werf's `git: - url:`) once per
// URL and reference, fetching into the git cache: a branch or tag becomes the commit it points
// at now, and that commit is what the stage digests see.
func (b *builder) fetchRemotes(ctx context.Context, images []*Image) error {
	b.remotes = map[git.RemoteRef]remoteCommit{}
	for _, im := range images {
		for i, m := range im.Git {
			ref := remoteRef(m)
			if m.URL == "" {
				continue
			}
			if _, ok := b.remotes[ref]; ok {
				continue
			}
			start := time.Now()
			repo, commit, err := git.FetchRemote(ctx, b.o.GitCacheDir, ref)
			if err != nil {
				return fmt.Errorf("image %s: git[%d]: %w", im.Name, i, err)
			}
			b.o.Log.Info("git remote", "image", im.Name, "url", m.URL, "ref", ref.String(), "commit", commit, "duration", time.Since(start).Round(time.Millisecond))
			b.remotes[ref] = remoteCommit{repo: repo, commit: commit}
		}
	}
	return nil
}
