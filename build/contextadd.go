package build

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"strata.dev/strata/internal/git"
)

// addedFile is a working-tree file of contextAddFiles, added to a Dockerfile image's context.
type addedFile struct {
	rel  string // path inside the context
	mode string // git-style: 100644, 100755 or 120000 (symbolic link, data is its target)
	data []byte
	sum  string // sha256 of data, hex
}

// contextAddFiles reads the contextAddFiles of an image from the working tree below ctxDir (the
// context directory on this host): files, directories (recursively) and symbolic links that stay
// inside the context. The result is sorted by path; a path listed twice (also through a
// directory) appears once.
func contextAddFiles(ctxDir string, paths []string) ([]addedFile, error) {
	root, err := filepath.EvalSymlinks(ctxDir)
	if err != nil {
		return nil, fmt.Errorf("contextAddFiles: context directory %s: %w", ctxDir, err)
	}
	byRel := map[string]addedFile{}
	var add func(rel string, listed string) error
	add = func(rel, listed string) error {
		full := filepath.Join(root, filepath.FromSlash(rel))
		fi, err := os.Lstat(full)
		if err != nil {
			if os.IsNotExist(err) {
				return fmt.Errorf("contextAddFiles: %s: no such file or directory in the working tree (%s)", listed, full)
			}
			return fmt.Errorf("contextAddFiles: %s: %w", listed, err)
		}
		// Every directory on the way must be a real directory inside the context.
		if dir, err := filepath.EvalSymlinks(filepath.Dir(full)); err != nil || !inside(root, dir) {
			return fmt.Errorf("contextAddFiles: %s: %s leaves the context through a symbolic link", listed, rel)
		}
		f := addedFile{rel: rel}
		switch m := fi.Mode(); {
		case m&fs.ModeSymlink != 0:
			target, err := os.Readlink(full)
			if err != nil {
				return fmt.Errorf("contextAddFiles: %s: %w", listed, err)
			}
			resolved, err := filepath.EvalSymlinks(full)
			if err != nil || !inside(root, resolved) {
				return fmt.Errorf("contextAddFiles: %s: symbolic link %s -> %s points outside the context", listed, rel, target)
			}
			f.mode, f.data = "120000", []byte(target)
		case m.IsDir():
			entries, err := os.ReadDir(full)
			if err != nil {
				return fmt.Errorf("contextAddFiles: %s: %w", listed, err)
			}
			for _, e := range entries {
				if err := add(path.Join(rel, e.Name()), listed); err != nil {
					return err
				}
			}
			return nil
		case m.IsRegular():
			if f.data, err = os.ReadFile(full); err != nil {
				return fmt.Errorf("contextAddFiles: %s: %w", listed, err)
			}
			f.mode = "100644"
			if m&0o111 != 0 {
				f.mode = "100755"
			}
		default:
			return fmt.Errorf("contextAddFiles: %s: %s is not a regular file, directory or symbolic link", listed, rel)
		}
		s := sha256.Sum256(f.data)
		f.sum = hex.EncodeToString(s[:])
		byRel[rel] = f
		return nil
	}
	for _, p := range paths {
		c := path.Clean(p)
		if path.IsAbs(c) || c == "." || c == ".." || strings.HasPrefix(c, "../") {
			return nil, fmt.Errorf("contextAddFiles: %s is not a path inside the context", p)
		}
		if err := add(c, p); err != nil {
			return nil, err
		}
	}
	out := make([]addedFile, 0, len(byRel))
	for _, f := range byRel {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
	return out, nil
}

// inside reports whether p is root or below it (both absolute, symbolic links resolved).
func inside(root, p string) bool {
	r, err := filepath.Rel(root, p)
	return err == nil && r != ".." && !strings.HasPrefix(r, ".."+string(filepath.Separator)) && !filepath.IsAbs(r)
}

// withAdded replaces the committed context files at the paths of added (a file, or everything
// below a directory now a file) and appends the added files, carrying their contents.
func withAdded(files []mappingFile, added []addedFile) []mappingFile {
	if len(added) == 0 {
		return files
	}
	at := map[string]bool{}
	for _, a := range added {
		at["/"+a.rel] = true
	}
	out := make([]mappingFile, 0, len(files)+len(added))
	for _, f := range files {
		shadowed := false
		for d := f.dest; d != "/" && d != "."; d = path.Dir(d) {
			if at[d] {
				shadowed = true
				break
			}
		}
		if !shadowed {
			out = append(out, f)
		}
	}
	for _, a := range added {
		out = append(out, mappingFile{File: git.File{Path: a.rel, Mode: a.mode}, dest: "/" + a.rel, data: a.data})
	}
	return out
}

// withoutContextAdded drops the git status lines (porcelain, paths from the work tree's top) of
// files some Dockerfile image reads from the working tree through contextAddFiles: they are
// inputs of the build as they are, not uncommitted changes to refuse.
func withoutContextAdded(cfg *Config, status []string) []string {
	var roots []string
	for _, im := range cfg.Images {
		for _, p := range im.ContextAddFiles {
			roots = append(roots, path.Join(cfg.Dir, im.Context, p))
		}
	}
	if len(roots) == 0 {
		return status
	}
	var out []string
	for _, l := range status {
		p := l
		if len(l) > 3 {
			p = l[3:]
		}
		if i := strings.Index(p, " -> "); i >= 0 {
			p = p[i+4:]
		}
		p = strings.Trim(p, `"`)
		covered := false
		for _, r := range roots {
			if p == r || strings.HasPrefix(p, r+"/") || r == "." {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, l)
		}
	}
	return out
}
