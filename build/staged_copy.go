package build

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/internal/version"
)

// srcEntry is a file, directory or symbolic link a COPY can read: from the build context (git
// objects) or from another stage or image.
type srcEntry struct {
	path string // relative to the source root, "" for the root
	typ  byte   // tar.TypeReg, tar.TypeDir, tar.TypeSymlink
	mode int64  // permission bits
	link string // symbolic link target (image sources)
	hash string // git blob (context sources)
	uid  int    // owner (image sources)
	gid  int
}

// srcTree is a COPY source: its entries by path, and the paths in order.
type srcTree struct {
	entries map[string]*srcEntry
	paths   []string
	data    map[string][]byte // contents of image sources, by path
}

// newContextTree is the build context (after .dockerignore) as a source tree; directories are
// those of the files, mode 0755 as a checkout has them.
func newContextTree(files []mappingFile) *srcTree {
	t := &srcTree{entries: map[string]*srcEntry{"": {typ: tar.TypeDir, mode: 0o755}}}
	for _, f := range files {
		rel := strings.TrimPrefix(f.dest, "/")
		e := &srcEntry{path: rel, hash: f.Hash, typ: tar.TypeReg, mode: 0o644}
		switch f.Mode {
		case "100755":
			e.mode = 0o755
		case "120000":
			e.typ, e.mode = tar.TypeSymlink, 0o777
		}
		t.entries[rel] = e
		for d := path.Dir(rel); d != "."; d = path.Dir(d) {
			if _, ok := t.entries[d]; ok {
				break
			}
			t.entries[d] = &srcEntry{path: d, typ: tar.TypeDir, mode: 0o755}
		}
	}
	t.sort()
	return t
}

func (t *srcTree) sort() {
	t.paths = t.paths[:0]
	for p := range t.entries {
		t.paths = append(t.paths, p)
	}
	sort.Strings(t.paths)
}

// match returns the entries a COPY source names: one path, or every path a wildcard matches.
func (t *srcTree) match(src string) []*srcEntry {
	p := strings.Trim(path.Clean("/"+src), "/")
	if !strings.ContainsAny(p, "*?[\\") {
		if e, ok := t.entries[p]; ok {
			return []*srcEntry{e}
		}
		return nil
	}
	var out []*srcEntry
	for _, q := range t.paths {
		if ok, _ := path.Match(p, q); ok && q != "" {
			out = append(out, t.entries[q])
		}
	}
	return out
}

// below returns the entries under directory e, in path order.
func (t *srcTree) below(e *srcEntry) []*srcEntry {
	prefix := e.path + "/"
	if e.path == "" {
		prefix = ""
	}
	i := sort.SearchStrings(t.paths, prefix)
	var out []*srcEntry
	for ; i < len(t.paths) && strings.HasPrefix(t.paths[i], prefix); i++ {
		if t.paths[i] != "" {
			out = append(out, t.entries[t.paths[i]])
		}
	}
	return out
}

// copyInputs are what a COPY or ADD reads: context entries (their digest inputs), or another
// stage or image, read when the stage is built.
type copyInputs struct {
	srcs    []string
	context []*srcEntry // the context entries matched, with what is below the directories
	stage   *state      // COPY --from=<stage>
	image   string      // COPY --from=<image>
}

func (ci *copyInputs) addTo(d *digester) {
	d.list("sources", ci.srcs)
	switch {
	case ci.stage != nil:
		d.add("from-stage", ci.stage.digest)
	case ci.image != "":
		d.add("from-image", ci.image)
	default:
		d.add("context", fmt.Sprint(len(ci.context)))
		for _, e := range ci.context {
			d.add(e.path, string(e.typ), strconv.FormatInt(e.mode, 8), e.hash)
		}
	}
}

// copyInputs expands the sources of a COPY/ADD of Dockerfile stage i and selects what they read.
func (s *stagedBuild) copyInputs(ctx context.Context, from string, srcs []string, env dfEnv, i int) (*copyInputs, error) {
	ci := &copyInputs{}
	for _, src := range srcs {
		v, ok := env.expand(s.plan.lex, src)
		if !ok {
			return nil, fmt.Errorf("source %s uses a variable without a value", src)
		}
		ci.srcs = append(ci.srcs, v)
	}
	if from != "" {
		if j, ok := s.plan.fromStage(from, i); ok {
			ci.stage = s.done[j]
		} else {
			ci.image = from
		}
		return ci, nil
	}
	seen := map[string]bool{}
	for _, src := range ci.srcs {
		ms := s.ctx.match(src)
		if len(ms) == 0 {
			return nil, fmt.Errorf("%s: not in the build context (or excluded by .dockerignore)", src)
		}
		for _, e := range ms {
			if e.typ == tar.TypeSymlink {
				return nil, fmt.Errorf("source %s is a symbolic link, which a staged build does not follow (set staged: false)", e.path)
			}
			all := []*srcEntry{e}
			if e.typ == tar.TypeDir {
				all = append(all, s.ctx.below(e)...)
			}
			for _, x := range all {
				if !seen[x.path] {
					seen[x.path] = true
					ci.context = append(ci.context, x)
				}
			}
		}
	}
	sort.Slice(ci.context, func(a, b int) bool { return ci.context[a].path < ci.context[b].path })
	return ci, nil
}

// imageFS is the flattened file system of an image: every entry's header, and the contents of
// the files asked for.
type imageFS struct {
	hdr  map[string]*tar.Header // by absolute path
	data map[string][]byte
}

// readFS flattens img (registry-side, layer by layer) and keeps the contents of the regular
// files keep selects (and of /etc/passwd and /etc/group).
func readFS(img v1.Image, keep func(p string) bool) (*imageFS, error) {
	f := &imageFS{hdr: map[string]*tar.Header{"/": {Name: "/", Typeflag: tar.TypeDir, Mode: 0o755}}, data: map[string][]byte{}}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read image file system: %w", err)
		}
		p := path.Clean("/" + h.Name)
		f.hdr[p] = h
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if _, ok := f.hdr[d]; ok {
				break
			}
			f.hdr[d] = &tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755}
		}
		if h.Typeflag == tar.TypeReg && (p == "/etc/passwd" || p == "/etc/group" || (keep != nil && keep(p))) {
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, fmt.Errorf("read image file system: %w", err)
			}
			f.data[p] = b
		}
	}
	return f, nil
}

// layerFiles is the file list of one layer: every entry's header, whiteouts included, and the
// contents of /etc/passwd and /etc/group when the layer has them. Layers are content-addressed,
// so it is kept on disk by layer digest.
type layerFiles struct {
	Entries []layerEntry      `json:"entries"`
	Data    map[string][]byte `json:"data,omitempty"`
}

type layerEntry struct {
	Path string `json:"p"`
	Type byte   `json:"t"`
	Mode int64  `json:"m"`
	UID  int    `json:"u,omitempty"`
	GID  int    `json:"g,omitempty"`
	Link string `json:"l,omitempty"`
}

// indexFS returns the file system of img (headers, /etc/passwd and /etc/group) from the file
// lists of its layers: read from the cache when known, else from the layer once.
func (s *stagedBuild) indexFS(img v1.Image) (*imageFS, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	f := &imageFS{hdr: map[string]*tar.Header{"/": {Name: "/", Typeflag: tar.TypeDir, Mode: 0o755}}, data: map[string][]byte{}}
	for _, l := range layers {
		lf, err := s.layerFiles(l)
		if err != nil {
			return nil, err
		}
		f.apply(lf)
	}
	return f, nil
}

// apply lays a layer's entries over the file system, with OCI whiteouts.
func (f *imageFS) apply(lf *layerFiles) {
	added := map[string]bool{}
	removeBelow := func(dir string, keepAdded bool) {
		prefix := strings.TrimSuffix(dir, "/") + "/"
		for p := range f.hdr {
			if strings.HasPrefix(p, prefix) && !(keepAdded && added[p]) {
				delete(f.hdr, p)
				delete(f.data, p)
			}
		}
	}
	for _, e := range lf.Entries {
		p := path.Clean("/" + e.Path)
		dir, base := path.Split(p)
		switch {
		case base == ".wh..wh..opq":
			removeBelow(dir, true)
			continue
		case strings.HasPrefix(base, ".wh."):
			victim := path.Join(dir, strings.TrimPrefix(base, ".wh."))
			delete(f.hdr, victim)
			delete(f.data, victim)
			removeBelow(victim, false)
			continue
		}
		if old, ok := f.hdr[p]; ok && old.Typeflag == tar.TypeDir && e.Type != tar.TypeDir {
			removeBelow(p, false)
		}
		f.hdr[p] = &tar.Header{Name: p, Typeflag: e.Type, Mode: e.Mode, Uid: e.UID, Gid: e.GID, Linkname: e.Link}
		added[p] = true
		delete(f.data, p)
		if d, ok := lf.Data[p]; ok {
			f.data[p] = d
		}
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if _, ok := f.hdr[d]; ok {
				break
			}
			f.hdr[d] = &tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755}
		}
	}
}

// layerFiles returns the file list of layer l: from memory, the disk cache, or read once.
func (s *stagedBuild) layerFiles(l v1.Layer) (*layerFiles, error) {
	h, err := l.Digest()
	if err != nil {
		return nil, err
	}
	if lf, ok := s.layers[h]; ok {
		return lf, nil
	}
	var file string
	if dir := s.b.o.CacheDir; dir != "" {
		file = filepath.Join(dir, "layers", h.Algorithm+"-"+h.Hex+".json")
		if raw, err := os.ReadFile(file); err == nil {
			lf := &layerFiles{}
			if json.Unmarshal(raw, lf) == nil {
				s.layers[h] = lf
				return lf, nil
			}
		}
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, fmt.Errorf("read layer %s: %w", h, err)
	}
	defer rc.Close()
	lf := &layerFiles{Data: map[string][]byte{}}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read layer %s: %w", h, err)
		}
		p := path.Clean("/" + hdr.Name)
		lf.Entries = append(lf.Entries, layerEntry{Path: p, Type: hdr.Typeflag, Mode: hdr.Mode & 0o7777, UID: hdr.Uid, GID: hdr.Gid, Link: hdr.Linkname})
		if hdr.Typeflag == tar.TypeReg && (p == "/etc/passwd" || p == "/etc/group") {
			if lf.Data[p], err = io.ReadAll(tr); err != nil {
				return nil, fmt.Errorf("read layer %s: %w", h, err)
			}
		}
	}
	s.layers[h] = lf
	if file != "" {
		if raw, err := json.Marshal(lf); err == nil && os.MkdirAll(filepath.Dir(file), 0o755) == nil {
			tmp := fmt.Sprintf("%s.%d.tmp", file, os.Getpid())
			if os.WriteFile(tmp, raw, 0o644) == nil && os.Rename(tmp, file) != nil {
				os.Remove(tmp)
			}
		}
	}
	return lf, nil
}

// resolve follows the symbolic links of p inside the image's root, as the Docker builder does
// for a destination.
func (f *imageFS) resolve(p string) string {
	parts := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	cur := "/"
	for n := 0; len(parts) > 0 && n < 255; n++ {
		part := parts[0]
		parts = parts[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, part)
		if h, ok := f.hdr[next]; ok && h.Typeflag == tar.TypeSymlink {
			if path.IsAbs(h.Linkname) {
				cur = "/"
			}
			parts = append(strings.Split(h.Linkname, "/"), parts...)
			continue
		}
		cur = next
	}
	return cur
}

func (f *imageFS) isDir(p string) bool {
	h, ok := f.hdr[p]
	return ok && h.Typeflag == tar.TypeDir
}

// tree returns the file system as a COPY source.
func (f *imageFS) tree() *srcTree {
	t := &srcTree{entries: map[string]*srcEntry{}, data: f.data}
	for p, h := range f.hdr {
		rel := strings.TrimPrefix(p, "/")
		t.entries[rel] = &srcEntry{path: rel, typ: h.Typeflag, mode: h.Mode & 0o7777, link: h.Linkname, uid: h.Uid, gid: h.Gid}
	}
	t.sort()
	return t
}

// lookupID resolves a --chown user or group: a number, or a name of the image's /etc/passwd or
// /etc/group (the id is the third field of both).
func (f *imageFS) lookupID(name, file string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(f.data[file]))
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 3 && fields[0] == name {
			return strconv.Atoi(fields[2])
		}
	}
	what := "user"
	if file == "/etc/group" {
		what = "group"
	}
	return 0, fmt.Errorf("no such %s: %s (not in the image's %s)", what, name, file)
}

// chownIDs parses --chown as the Docker builder does: USER[:GROUP], the group defaulting to the
// user string.
func (f *imageFS) chownIDs(chown string) (uid, gid int, err error) {
	if chown == "" {
		return 0, 0, nil
	}
	parts := strings.Split(chown, ":")
	if len(parts) > 2 {
		return 0, 0, fmt.Errorf("invalid chown string format: %s", chown)
	}
	u, g := parts[0], parts[0]
	if len(parts) == 2 {
		g = parts[1]
	}
	if uid, err = f.lookupID(u, "/etc/passwd"); err != nil {
		return 0, 0, err
	}
	gid, err = f.lookupID(g, "/etc/group")
	return uid, gid, err
}

// layerWriter collects the entries of a new layer on top of an image file system.
type layerWriter struct {
	fs       *imageFS
	uid, gid int
	preserve bool // entries keep their source owner (COPY --from without --chown)
	entries  map[string]*tar.Header
	from     map[string]*srcEntry // the source entry of a file, by destination
}

// mkdirAll creates the missing directories of p (mode 0755) owned by uid:gid.
func (w *layerWriter) mkdirAll(p string, uid, gid int) {
	if p == "/" || w.fs.isDir(p) {
		return
	}
	w.mkdirAll(path.Dir(p), uid, gid)
	h := &tar.Header{Name: p, Typeflag: tar.TypeDir, Mode: 0o755, Uid: uid, Gid: gid}
	w.fs.hdr[p], w.entries[p] = h, h
}

// put writes source entry e at p, owned by the COPY's owner.
func (w *layerWriter) put(p string, e *srcEntry) {
	h := &tar.Header{Name: p, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Uid: w.uid, Gid: w.gid}
	if w.preserve {
		h.Uid, h.Gid = e.uid, e.gid
	}
	w.fs.hdr[p], w.entries[p] = h, h
	if e.typ != tar.TypeDir {
		w.from[p] = e
	}
}

// copy applies a COPY or ADD registry-side, as the Docker builder (without BuildKit) does: a
// file goes to dest, or into it when dest ends with / or is a directory; a directory's contents
// go into dest; every entry copied, the directories a file copy creates and a created
// destination directory are owned by --chown (root without it); the parents of a copied
// directory's destination are root's. COPY --from without --chown keeps the source's owners
// (the directories it creates are root's).
func (s *stagedBuild) copy(ctx context.Context, parent v1.Image, cf *v1.ConfigFile, ci *copyInputs, dest, chown, name string) (v1.Image, error) {
	pfs, err := s.indexFS(parent)
	if err != nil {
		return nil, err
	}
	uid, gid, err := pfs.chownIDs(chown)
	if err != nil {
		return nil, err
	}
	tree := s.ctx
	if ci.stage != nil || ci.image != "" {
		if tree, err = s.sourceTree(ctx, ci); err != nil {
			return nil, err
		}
	}
	endsInSlash := strings.HasSuffix(dest, "/")
	if !path.IsAbs(dest) {
		wd := cf.Config.WorkingDir
		dest = path.Join("/", wd, dest)
		if endsInSlash {
			dest += "/"
		}
	}
	var matches []*srcEntry
	for _, src := range ci.srcs {
		ms := tree.match(src)
		if len(ms) == 0 {
			return nil, fmt.Errorf("%s: no such file or directory", src)
		}
		matches = append(matches, ms...)
	}
	if len(matches) > 1 && !endsInSlash {
		return nil, fmt.Errorf("when using COPY with more than one source file, the destination must be a directory and end with a /")
	}
	w := &layerWriter{fs: pfs, uid: uid, gid: gid, entries: map[string]*tar.Header{}, from: map[string]*srcEntry{}}
	w.preserve = (ci.stage != nil || ci.image != "") && chown == ""
	for _, e := range matches {
		if e.typ == tar.TypeSymlink {
			return nil, fmt.Errorf("source %s is a symbolic link, which a staged build does not follow (set staged: false)", e.path)
		}
		if e.typ == tar.TypeDir {
			d := pfs.resolve(dest)
			if !pfs.isDir(d) {
				w.mkdirAll(path.Dir(d), 0, 0)
				w.mkdirAll(d, uid, gid)
			}
			for _, x := range tree.below(e) {
				rel := strings.TrimPrefix(x.path, e.path+"/")
				if e.path == "" {
					rel = x.path
				}
				w.put(path.Join(d, rel), x)
			}
			continue
		}
		target := pfs.resolve(dest)
		if endsInSlash || pfs.isDir(target) {
			target = path.Join(target, path.Base(e.path))
		}
		w.mkdirAll(path.Dir(target), uid, gid)
		w.put(target, e)
	}
	return s.appendLayer(ctx, parent, w, tree, name)
}

// sourceTree reads the file system of a COPY --from stage or image.
func (s *stagedBuild) sourceTree(ctx context.Context, ci *copyInputs) (*srcTree, error) {
	var img v1.Image
	var err error
	if ci.stage != nil {
		img, err = s.b.parentImage(ctx, ci.stage)
	} else {
		ref, perr := s.b.o.Registry.ParseReference(ci.image)
		if perr != nil {
			return nil, perr
		}
		img, err = remote.Image(ref, s.b.st.Remote(ctx)...)
	}
	if err != nil {
		return nil, err
	}
	idx, err := readFS(img, nil)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	t := idx.tree()
	for _, src := range ci.srcs {
		for _, e := range t.match(src) {
			want["/"+e.path] = true
			for _, x := range t.below(e) {
				want["/"+x.path] = true
			}
		}
	}
	full, err := readFS(img, func(p string) bool { return want[p] })
	if err != nil {
		return nil, err
	}
	return full.tree(), nil
}

// appendLayer appends the entries of w to parent as one layer.
func (s *stagedBuild) appendLayer(ctx context.Context, parent v1.Image, w *layerWriter, tree *srcTree, name string) (v1.Image, error) {
	data, err := s.layerTar(ctx, w, tree)
	if err != nil {
		return nil, err
	}
	layer, err := layerFromBytes(data)
	if err != nil {
		return nil, err
	}
	return mutate.Append(parent, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: name, Comment: "strata " + version.String()}})
}

// layerTar writes the entries of w as a layer, in path order, with contents from the git
// objects (context) or the source image.
func (s *stagedBuild) layerTar(ctx context.Context, w *layerWriter, tree *srcTree) ([]byte, error) {
	paths := make([]string, 0, len(w.entries))
	for p := range w.entries {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	blobs := map[string][]byte{}
	var hashes []string
	for _, p := range paths {
		if e := w.from[p]; e != nil && e.hash != "" && blobs[e.hash] == nil {
			blobs[e.hash] = []byte{}
			hashes = append(hashes, e.hash)
		}
	}
	if len(hashes) > 0 {
		if err := s.b.git.Blobs(ctx, hashes, func(h string, d []byte) error { blobs[h] = d; return nil }); err != nil {
			return nil, fmt.Errorf("read git blobs: %w", err)
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	for _, p := range paths {
		h := *w.entries[p]
		h.Name = strings.TrimPrefix(p, "/")
		h.ModTime, h.Format = epoch, tar.FormatPAX
		var data []byte
		if e := w.from[p]; e != nil {
			if e.hash != "" {
				data = blobs[e.hash]
			} else {
				data = tree.data["/"+e.path]
			}
		}
		switch h.Typeflag {
		case tar.TypeDir:
			h.Name += "/"
		case tar.TypeSymlink:
			if h.Linkname == "" {
				h.Linkname = string(data)
			}
			data = nil
		case tar.TypeReg:
			h.Size = int64(len(data))
		default:
			data = nil
		}
		if err := tw.WriteHeader(&h); err != nil {
			return nil, err
		}
		if len(data) > 0 {
			if _, err := tw.Write(data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// workdir applies WORKDIR: the working directory, relative to the current one, is created
// (root's, 0755) when missing, as the Docker builder does.
func (s *stagedBuild) workdir(ctx context.Context, parent v1.Image, cf *v1.ConfigFile, p, name string) (v1.Image, error) {
	if p == "" {
		return nil, fmt.Errorf("WORKDIR: empty path")
	}
	wd := p
	if !path.IsAbs(p) {
		wd = path.Join("/", cf.Config.WorkingDir, p)
	}
	cfg := cf.Config.DeepCopy()
	cfg.WorkingDir = wd
	pfs, err := s.indexFS(parent)
	if err != nil {
		return nil, err
	}
	img := parent
	if d := pfs.resolve(wd); !pfs.isDir(d) {
		if _, ok := pfs.hdr[d]; ok {
			return nil, fmt.Errorf("WORKDIR %s: not a directory in the image", wd)
		}
		w := &layerWriter{fs: pfs, entries: map[string]*tar.Header{}, from: map[string]*srcEntry{}}
		w.mkdirAll(d, 0, 0)
		if img, err = s.appendLayer(ctx, parent, w, nil, name); err != nil {
			return nil, err
		}
	}
	return mutate.Config(img, *cfg)
}
