package build

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
			auth, err := b.remoteAuth(m.BasicAuth)
			if err != nil {
				return fmt.Errorf("image %s: git[%d].basicAuth: %w", im.Name, i, err)
			}
			start := time.Now()
			repo, commit, err := git.FetchRemote(ctx, b.o.GitCacheDir, ref, auth)
			if err != nil {
				return fmt.Errorf("image %s: git[%d]: %w", im.Name, i, err)
			}
			b.o.Log.Info("git remote", "image", im.Name, "url", m.URL, "ref", ref.String(), "commit", commit, "duration", time.Since(start).Round(time.Millisecond))
			b.remotes[ref] = remoteCommit{repo: repo, commit: commit}
		}
	}
	return nil
}

// remoteAuth reads the password of a remote mapping's basicAuth from its source. Messages name
// the source, never the value.
func (b *builder) remoteAuth(a *BasicAuth) (git.Auth, error) {
	if a == nil {
		return git.Auth{}, nil
	}
	pw := a.PasswordValue
	switch {
	case a.PasswordEnv != "":
		v, ok := os.LookupEnv(a.PasswordEnv)
		if !ok || v == "" {
			return git.Auth{}, fmt.Errorf("password: environment variable %s is not set", a.PasswordEnv)
		}
		pw = v
	case a.PasswordFile != "":
		p := a.PasswordFile
		if rest, ok := strings.CutPrefix(p, "~/"); ok {
			home, err := os.UserHomeDir()
			if err != nil {
				return git.Auth{}, fmt.Errorf("password file %s: %w", p, err)
			}
			p = filepath.Join(home, rest)
		} else if !filepath.IsAbs(p) {
			p = filepath.Join(b.projectDir, p)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return git.Auth{}, fmt.Errorf("password file: %w", err)
		}
		pw = strings.TrimRight(string(data), "\r\n")
	}
	return git.Auth{Username: a.Username, Password: pw}, nil
}
