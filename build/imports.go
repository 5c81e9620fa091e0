package build

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"strata.dev/strata/config"
	"strata.dev/strata/internal/version"
	"strata.dev/strata/stages"
)

// Import stages (werf's `import:`): the files an image imports from another image are read
// from the source stage's layers and appended to the parent stage as one layer, registry-side,
// without the engine.

// importSteps returns the import stage named stage (one of config.ImportStages) when im has
// imports there.
func (b *builder) importSteps(im *Image, stage string) []stageSpec {
	var xs []config.Import
	for _, x := range im.Import {
		if x.StageName() == stage {
			xs = append(xs, x)
		}
	}
	if len(xs) == 0 {
		return nil
	}
	return []stageSpec{b.importStage(im, stage, xs)}
}

// importSource is the stage an import copies from.
type importSource struct {
	digest string // its stage digest ("external:REF" for an external image)
	st     *state // nil for an external image
}

// importStage copies the files of its imports onto the parent stage. Its digest covers the
// parent's digest and, per import, the source stage's digest (an external image by its
// reference), add, to, owner, group, includePaths and excludePaths.
func (b *builder) importStage(im *Image, name string, xs []config.Import) stageSpec {
	return stageSpec{name: name,
		digest: func(ctx context.Context, p *state) (string, bool, error) {
			d := newDigester("imports")
			if p != nil {
				d.add(p.digest)
			}
			d.add(name, fmt.Sprint(len(xs)))
			for i, x := range xs {
				src, err := b.importSource(x)
				if err != nil {
					return "", false, fmt.Errorf("import[%d]: %w", i, err)
				}
				d.add(src.digest, x.Add, x.To, x.Owner, x.Group)
				d.list("includePaths", x.IncludePaths)
				d.list("excludePaths", x.ExcludePaths)
			}
			return d.sum(), true, nil
		},
		labels: func() map[string]string {
			l := map[string]string{}
			for i, x := range xs {
				if src, err := b.importSource(x); err == nil && src.st != nil {
					l[stages.ImportLabel(i)] = src.st.tag
				}
			}
			return l
		},
		build: func(ctx context.Context, p *state, _ string) (v1.Image, string, error) {
			parent, err := b.parentImage(ctx, p)
			if err != nil {
				return nil, "", err
			}
			out, err := b.spool()
			if err != nil {
				return nil, "", err
			}
			defer out.Close()
			bw := bufio.NewWriterSize(out, 1<<20)
			tw := tar.NewWriter(bw)
			var what []string
			for i, x := range xs {
				src, err := b.importSource(x)
				if err != nil {
					return nil, "", fmt.Errorf("import[%d]: %w", i, err)
				}
				img, err := b.importImage(ctx, x, src)
				if err != nil {
					return nil, "", fmt.Errorf("import[%d]: %w", i, err)
				}
				n, err := copyImport(img, x, tw)
				if err != nil {
					return nil, "", fmt.Errorf("import[%d] from %s: %w", i, importName(x), err)
				}
				if n == 0 {
					b.o.Log.Warn("import copies nothing", "image", im.Name, "stage", name, "from", importName(x), "add", x.Add)
				}
				what = append(what, importName(x)+":"+x.Add+">"+x.To)
			}
			if err := tw.Close(); err != nil {
				return nil, "", err
			}
			if err := bw.Flush(); err != nil {
				return nil, "", fmt.Errorf("write import layer: %w", err)
			}
			file := out.Name()
			layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return os.Open(file) })
			if err != nil {
				return nil, "", err
			}
			img, err := mutate.Append(parent, mutate.Addendum{Layer: layer, History: v1.History{
				CreatedBy: "strata " + name + " " + strings.Join(what, " "), Comment: "strata " + version.String()}})
			if p != nil {
				return img, p.commit, err
			}
			return img, "", err
		}}
}

func importName(x config.Import) string {
	if x.External != "" {
		return x.External
	}
	return x.Source()
}

// importSource finds the stage an import reads: the source image's last stage, or with
// `stage:` its last stage up to that user stage (an image built on another one, with no stage
// of its own up to there, reads the other image's last stage). The source image is built
// already: buildImage waits for the images an image needs.
func (b *builder) importSource(x config.Import) (importSource, error) {
	if x.External != "" {
		return importSource{digest: "external:" + x.External}, nil
	}
	name := x.Source()
	b.mu.Lock()
	r := b.results[name]
	b.mu.Unlock()
	if r == nil || r.final == nil {
		return importSource{}, fmt.Errorf("source image %s was not built", name)
	}
	if x.Stage == "" {
		return importSource{digest: r.final.digest, st: r.final}, nil
	}
	// r.stages are the image's own stages, the last len(r.stages) states of its chain.
	chain := make([]*state, 0, len(r.stages))
	for s := r.final; s != nil && len(chain) < len(r.stages); s = s.parent {
		chain = append(chain, s)
	}
	slices.Reverse(chain)
	limit := slices.Index(StageNames, x.Stage)
	for i := len(r.stages) - 1; i >= 0; i-- {
		if k := slices.Index(StageNames, r.stages[i].Name); k >= 0 && k <= limit && i < len(chain) {
			return importSource{digest: chain[i].digest, st: chain[i]}, nil
		}
	}
	for _, im := range b.cfg.Images {
		if im.Name == name && im.FromImage != "" {
			return b.importSource(config.Import{Image: im.FromImage})
		}
	}
	return importSource{}, fmt.Errorf("image %s has no stage up to %s", name, x.Stage)
}

// importImage opens the source stage (or the external image) as a lazy remote image.
func (b *builder) importImage(ctx context.Context, x config.Import, src importSource) (v1.Image, error) {
	if src.st != nil {
		return b.parentImage(ctx, src.st)
	}
	ref, err := b.o.Registry.ParseReference(x.External)
	if err != nil {
		return nil, err
	}
	img, err := remote.Image(ref, b.st.Remote(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("read image %s: %w", x.External, err)
	}
	return img, nil
}

// importEntry is a file system entry of the source image under add.
type importEntry struct {
	hdr *tar.Header
	rel string // path relative to add ("" = add itself)
	// data is a regular file's content: its place in the spool of the copy.
	data *io.SectionReader
}

// copyImport writes the entries of img's flattened file system (whiteouts honoured) that x
// selects to tw, under x.To: add itself (a file, a symbolic link or a directory) and, for a
// directory, what its includePaths/excludePaths select below it, with the directories leading
// to each selected entry. Modes, symbolic links, hard links inside the selection and times are
// kept; owner/group replace the uid/gid when set. It returns the number of entries written.
func copyImport(img v1.Image, x config.Import, tw *tar.Writer) (int, error) {
	add := strings.TrimPrefix(x.Add, "/")
	// The contents under add wait in a temporary file, not in memory, until the selection is
	// known (an artifact's tree can be large).
	sp, err := os.CreateTemp("", "strata-import-*")
	if err != nil {
		return 0, fmt.Errorf("import spool: %w", err)
	}
	defer os.Remove(sp.Name())
	defer sp.Close()
	var off int64
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var entries []*importEntry
	byRel := map[string]*importEntry{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("read image layers: %w", err)
		}
		name := strings.Trim(path.Clean("/"+h.Name), "/")
		rel, ok := "", name == add
		if !ok {
			rel, ok = relTo(add, name)
			if add == "" {
				rel, ok = name, name != ""
			}
		}
		if !ok {
			continue
		}
		e := &importEntry{hdr: h, rel: rel}
		if h.Typeflag == tar.TypeReg {
			n, err := io.Copy(sp, tr)
			if err != nil {
				return 0, fmt.Errorf("read %s: %w", h.Name, err)
			}
			e.data = io.NewSectionReader(sp, off, n)
			off += n
		}
		entries = append(entries, e)
		byRel[rel] = e
	}
	root := byRel[""]
	if root == nil && len(entries) == 0 {
		return 0, fmt.Errorf("add %s: no such path in the source image", x.Add)
	}
	inc, exc := newMatcher(x.IncludePaths), newMatcher(x.ExcludePaths)
	selected := map[string]bool{}
	for _, e := range entries {
		if e.rel == "" {
			continue
		}
		segs := strings.Split(e.rel, "/")
		if (len(inc) > 0 && !inc.matchSegs(segs)) || (len(exc) > 0 && exc.matchSegs(segs)) {
			continue
		}
		selected[e.rel] = true
		// The directories leading to it come along, with their own modes and owners.
		for d := path.Dir(e.rel); d != "."; d = path.Dir(d) {
			selected[d] = true
		}
	}
	if ((root != nil && root.hdr.Typeflag != tar.TypeDir) || len(selected) > 0 || (len(inc) == 0 && len(exc) == 0)) && (add != "" || x.To != "/") {
		selected[""] = true
	}
	dest := func(rel string) string {
		return strings.TrimPrefix(path.Join(x.To, rel), "/")
	}
	rels := make([]string, 0, len(selected))
	for r := range selected {
		rels = append(rels, r)
	}
	sort.Strings(rels) // a directory before what is in it
	var links []*importEntry
	n := 0
	for _, r := range rels {
		e := byRel[r]
		if e == nil {
			// A directory only implied by the entries below it (a layer without its header).
			e = &importEntry{hdr: &tar.Header{Typeflag: tar.TypeDir, Mode: 0o755}, rel: r}
		}
		if e.hdr.Typeflag == tar.TypeLink {
			links = append(links, e)
			continue
		}
		if err := writeImport(tw, e, dest(r), x, nil); err != nil {
			return n, err
		}
		n++
	}
	// Hard links after their targets: to the copied target, or the content itself when the
	// target was not selected.
	for _, e := range links {
		target := strings.Trim(path.Clean("/"+e.hdr.Linkname), "/")
		trel, inside := relTo(add, target)
		if target == add {
			trel, inside = "", true
		}
		var data *io.SectionReader
		switch t := byRel[trel]; {
		case inside && selected[trel] && t != nil:
			link := *e
			link.hdr = cloneHeader(e.hdr)
			link.hdr.Linkname = dest(trel)
			if err := writeImport(tw, &link, dest(e.rel), x, nil); err != nil {
				return n, err
			}
			n++
			continue
		case inside && t != nil && t.hdr.Typeflag == tar.TypeReg:
			data = t.data
		default:
			return n, fmt.Errorf("%s is a hard link to /%s, outside what is imported", path.Join("/", add, e.rel), target)
		}
		if err := writeImport(tw, e, dest(e.rel), x, data); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func cloneHeader(h *tar.Header) *tar.Header {
	c := *h
	return &c
}

// writeImport writes one entry at name; data turns a hard link into a regular file.
func writeImport(tw *tar.Writer, e *importEntry, name string, x config.Import, data *io.SectionReader) error {
	h := cloneHeader(e.hdr)
	h.Name = name
	if h.Typeflag == tar.TypeDir {
		h.Name += "/"
	}
	h.Format = tar.FormatPAX
	// Only extended attributes carry over from the source's PAX records (the rest describe
	// the name, size and ids written here).
	var pax map[string]string
	for k, v := range h.PAXRecords {
		if strings.HasPrefix(k, "SCHILY.xattr.") {
			if pax == nil {
				pax = map[string]string{}
			}
			pax[k] = v
		}
	}
	h.PAXRecords = pax
	h.Xattrs = nil //nolint:staticcheck // the PAX records above carry them
	if data != nil {
		h.Typeflag, h.Linkname, h.Size = tar.TypeReg, "", data.Size()
	}
	if h.ModTime.IsZero() {
		h.ModTime = time.Unix(0, 0)
	}
	h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
	if x.Owner != "" {
		h.Uid, h.Uname = importID(x.Owner)
	}
	if x.Group != "" {
		h.Gid, h.Gname = importID(x.Group)
	}
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	body := e.data
	if data != nil {
		body = data
	}
	if h.Typeflag == tar.TypeReg && body != nil {
		if _, err := io.Copy(tw, io.NewSectionReader(body, 0, body.Size())); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

// importID is an owner or group as a tar id: a number, root (0), or a name (id 0, as git
// mappings write names: engines unpack by number).
func importID(s string) (int, string) {
	if n, err := strconv.Atoi(s); err == nil {
		return n, ""
	}
	if s == "root" {
		return 0, "root"
	}
	return 0, s
}

// artifactReport describes an image built only to be imported from: its last stage in the
// stages storage, with no final reference work (final repo, extra tags).
func (b *builder) artifactReport(im *Image, r *imageResult) stages.ImageReport {
	ref := b.st.Ref(r.final.tag).String()
	ir := stages.ImageReport{Name: im.Name, Repo: b.st.Repo.String(), Tag: r.final.tag, Ref: ref, StageRef: ref, Stages: r.stages}
	if d, ok := b.st.manifestDigest(r.final.tag); ok {
		ir.ManifestDigest = d.String()
	} else if r.final.img != nil {
		if d, err := r.final.img.Digest(); err == nil {
			ir.ManifestDigest = d.String()
		}
	}
	if ir.Stages == nil {
		ir.Stages = []stages.StageReport{}
	}
	return ir
}

// spool creates a temporary file that lives until the build ends (a layer made registry-side
// is read again when it is pushed).
func (b *builder) spool() (*os.File, error) {
	f, err := os.CreateTemp("", "strata-layer-*.tar")
	if err != nil {
		return nil, fmt.Errorf("layer spool: %w", err)
	}
	b.mu.Lock()
	b.spools = append(b.spools, f.Name())
	b.mu.Unlock()
	return f, nil
}

func (b *builder) removeSpools() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, f := range b.spools {
		os.Remove(f)
	}
	b.spools = nil
}
