package build

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"strata.dev/strata/internal/git"
)

// mappingFile is a file of a git mapping: its repository path and its path in the image.
type mappingFile struct {
	git.File
	repo  *git.Repo // the remote repository holding the blob; nil: the project's
	dest  string    // absolute path in the image
	owner string
	group string
	del   bool // deleted (patch only)
	// data is the content of a file not in git (contextAddFiles); nil: the blob File.Hash.
	data []byte
}

type compiledMapping struct {
	GitMapping
	inc, exc matcher
	// remote is the cached repository of a remote mapping (URL set) and commit the commit its
	// branch, tag or commit resolved to at this build; nil for the project's own repository.
	remote *git.Repo
	commit string
}

func compile(ms []GitMapping) []compiledMapping {
	out := make([]compiledMapping, len(ms))
	for i, m := range ms {
		out[i] = compiledMapping{GitMapping: m, inc: newMatcher(m.IncludePaths), exc: newMatcher(m.ExcludePaths)}
	}
	return out
}

// checkAdds fails when a mapping's add path is not in the commit: werf's add is a path from the
// repository root, and a path that is not there would silently add nothing.
func (b *builder) checkAdds(ctx context.Context, ms []compiledMapping) error {
	files, err := b.git.Files(ctx, b.head)
	if err != nil {
		return err
	}
	for i, m := range ms {
		if m.remote != nil {
			if err := checkRemoteAdd(ctx, i, m); err != nil {
				return err
			}
			continue
		}
		found := m.Add == "/"
		for _, f := range files {
			if found {
				break
			}
			_, found = relTo(m.Add, f.Path)
			found = found || f.Path == strings.Trim(m.Add, "/")
		}
		if !found {
			hint := ""
			if b.cfgDir != "." && b.cfgDir != "" {
				hint = fmt.Sprintf("; the config is in %s/: did you mean /%s%s?", b.cfgDir, b.cfgDir, m.Add)
			}
			return fmt.Errorf("git[%d].add %s: no such path in commit %s (add is a path from the repository root)%s", i, m.Add, shortDigest(b.head), hint)
		}
	}
	return nil
}

// checkRemoteAdd fails when a remote mapping's add path is not in its resolved commit.
func checkRemoteAdd(ctx context.Context, i int, m compiledMapping) error {
	if m.Add == "/" {
		return nil
	}
	ents, err := m.remote.Entries(ctx, m.commit, false, strings.Trim(m.Add, "/"))
	if err != nil {
		return err
	}
	if len(ents) == 0 {
		return fmt.Errorf("git[%d].add %s: no such path in %s at commit %s (add is a path from that repository's root)", i, m.Add, m.URL, shortDigest(m.commit))
	}
	return nil
}

// mappingFiles selects the files of a commit that the mappings add; a remote mapping's files
// come from its own repository at its resolved commit.
func mappingFiles(ctx context.Context, repo *git.Repo, ms []compiledMapping, commit string) ([]mappingFile, error) {
	var out []mappingFile
	for _, m := range ms {
		r, c := repo, commit
		if m.remote != nil {
			r, c = m.remote, m.commit
		}
		files, err := r.Files(ctx, c)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if f.Mode == "160000" {
				continue // submodule
			}
			if rel, ok := mappingSelects(m.GitMapping, m.inc, m.exc, f.Path); ok {
				out = append(out, mappingFile{File: f, repo: m.remote, dest: path.Join(m.To, rel), owner: m.Owner, group: m.Group})
			}
		}
	}
	return out, nil
}

// mappingChanges lists what changed in the mappings' files from one commit to another of the
// project's repository. Remote mappings have none: their commit is in the gitArchive digest, so
// a stage holding their files holds them at the current commit.
func mappingChanges(ctx context.Context, repo *git.Repo, ms []compiledMapping, from, to string) ([]mappingFile, error) {
	changes, err := repo.Diff(ctx, from, to)
	if err != nil {
		return nil, err
	}
	var out []mappingFile
	for _, m := range ms {
		if m.remote != nil {
			continue
		}
		for _, c := range changes {
			if c.NewMode == "160000" {
				continue
			}
			rel, ok := mappingSelects(m.GitMapping, m.inc, m.exc, c.Path)
			if !ok {
				continue
			}
			out = append(out, mappingFile{File: git.File{Path: c.Path, Mode: c.NewMode, Hash: c.NewHash},
				dest: path.Join(m.To, rel), owner: m.Owner, group: m.Group, del: c.Status == 'D'})
		}
	}
	return out, nil
}

func ids(owner, group string) (uid, gid int, uname, gname string) {
	if n, err := strconv.Atoi(owner); err == nil {
		uid = n
	} else if owner != "" && owner != "root" {
		uname = owner
	}
	if n, err := strconv.Atoi(group); err == nil {
		gid = n
	} else if group != "" && group != "root" {
		gname = group
	} else if group == "" && uname == "" {
		gid = uid
	}
	return
}

// gitTar writes the files (and whiteouts for deletions when whiteouts is set) as a tar archive
// with paths relative to the image root.
func gitTar(ctx context.Context, repo *git.Repo, files []mappingFile, whiteouts bool) ([]byte, error) {
	sort.Slice(files, func(i, j int) bool { return files[i].dest < files[j].dest })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	dirs := map[string]bool{}
	var mkdirs func(d string, f mappingFile) error
	mkdirs = func(d string, f mappingFile) error {
		if d == "/" || d == "." || dirs[d] {
			return nil
		}
		if err := mkdirs(path.Dir(d), f); err != nil {
			return err
		}
		dirs[d] = true
		uid, gid, un, gn := ids(f.owner, f.group)
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755,
			Uid: uid, Gid: gid, Uname: un, Gname: gn, ModTime: epoch, Format: tar.FormatPAX})
	}
	type source struct {
		repo   *git.Repo
		hashes []string
		byHash map[string][]mappingFile
	}
	// The project's blobs first, then each remote repository's, in the order files name them.
	srcs := []*source{{repo: repo, byHash: map[string][]mappingFile{}}}
	bySrc := map[*git.Repo]*source{nil: srcs[0]}
	for _, f := range files {
		if err := mkdirs(path.Dir(f.dest), f); err != nil {
			return nil, err
		}
		if f.del {
			if whiteouts {
				wh := path.Join(path.Dir(f.dest), ".wh."+path.Base(f.dest))
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(wh, "/"), Mode: 0o644, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
					return nil, err
				}
			}
			continue
		}
		if f.data != nil {
			if err := writeEntries(tw, []mappingFile{f}, f.data, epoch); err != nil {
				return nil, err
			}
			continue
		}
		src := bySrc[f.repo]
		if src == nil {
			src = &source{repo: f.repo, byHash: map[string][]mappingFile{}}
			srcs, bySrc[f.repo] = append(srcs, src), src
		}
		if _, ok := src.byHash[f.Hash]; !ok {
			src.hashes = append(src.hashes, f.Hash)
		}
		src.byHash[f.Hash] = append(src.byHash[f.Hash], f)
	}
	// Contents come in hash order from one cat-file process per repository; write entries as
	// they arrive.
	for _, src := range srcs {
		if err := src.repo.Blobs(ctx, src.hashes, func(h string, data []byte) error { return writeEntries(tw, src.byHash[h], data, epoch) }); err != nil {
			return nil, fmt.Errorf("read git blobs: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeEntries writes the tar entries of the files that share one blob.
func writeEntries(tw *tar.Writer, files []mappingFile, data []byte, epoch time.Time) error {
	for _, f := range files {
		uid, gid, un, gn := ids(f.owner, f.group)
		hdr := &tar.Header{Name: strings.TrimPrefix(f.dest, "/"), Uid: uid, Gid: gid, Uname: un, Gname: gn, ModTime: epoch, Format: tar.FormatPAX}
		switch f.Mode {
		case "120000":
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, string(data), 0o777
		case "100755":
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, 0o755, int64(len(data))
		default:
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, 0o644, int64(len(data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(data); err != nil {
				return err
			}
		}
	}
	return nil
}

func layerFromBytes(data []byte) (v1.Layer, error) {
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}

func emptyImage() v1.Image { return empty.Image }
