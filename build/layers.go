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
	dest  string // absolute path in the image
	owner string
	group string
	del   bool // deleted (patch only)
}

type compiledMapping struct {
	GitMapping
	inc, exc matcher
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

// mappingFiles selects the files of a commit that the mappings add.
func mappingFiles(ctx context.Context, repo *git.Repo, ms []compiledMapping, commit string) ([]mappingFile, error) {
	files, err := repo.Files(ctx, commit)
	if err != nil {
		return nil, err
	}
	var out []mappingFile
	for _, m := range ms {
		for _, f := range files {
			if f.Mode == "160000" {
				continue // submodule
			}
			if rel, ok := mappingSelects(m.GitMapping, m.inc, m.exc, f.Path); ok {
				out = append(out, mappingFile{File: f, dest: path.Join(m.To, rel), owner: m.Owner, group: m.Group})
			}
		}
	}
	return out, nil
}

// mappingChanges lists what changed in the mappings' files from one commit to another.
func mappingChanges(ctx context.Context, repo *git.Repo, ms []compiledMapping, from, to string) ([]mappingFile, error) {
	changes, err := repo.Diff(ctx, from, to)
	if err != nil {
		return nil, err
	}
	var out []mappingFile
	for _, m := range ms {
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
	var hashes []string
	byHash := map[string][]mappingFile{}
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
		if _, ok := byHash[f.Hash]; !ok {
			hashes = append(hashes, f.Hash)
		}
		byHash[f.Hash] = append(byHash[f.Hash], f)
	}
	// Contents come in hash order from one cat-file process; write entries as they arrive.
	err := repo.Blobs(ctx, hashes, func(h string, data []byte) error {
		for _, f := range byHash[h] {
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
	})
	if err != nil {
		return nil, fmt.Errorf("read git blobs: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func layerFromBytes(data []byte) (v1.Layer, error) {
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}

func emptyImage() v1.Image { return empty.Image }
