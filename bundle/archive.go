package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/chart/loader"
)

// archiveTime is the modification time of every entry of a chart archive Strata writes, so that
// equal files give equal archives.
var archiveTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// chartArchive writes files as a Helm chart archive (.tgz, every entry under name/), Chart.yaml
// first, then in name order, with fixed times and modes.
func chartArchive(name string, files []*loader.BufferedFile) ([]byte, error) {
	sorted := append([]*loader.BufferedFile(nil), files...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if (sorted[i].Name == "Chart.yaml") != (sorted[j].Name == "Chart.yaml") {
			return sorted[i].Name == "Chart.yaml"
		}
		return sorted[i].Name < sorted[j].Name
	})
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	tw := tar.NewWriter(zw)
	for _, f := range sorted {
		hdr := &tar.Header{
			Name:     path.Join(name, f.Name),
			Mode:     0o644,
			Size:     int64(len(f.Data)),
			ModTime:  archiveTime,
			Typeflag: tar.TypeReg,
			Format:   tar.FormatPAX,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// readChartArchive reads a chart .tgz safely: every entry must be a regular file or directory
// under one top directory, with no absolute path, no "..", no links; the decompressed size is
// limited to max bytes (a decompression bomb is refused). It returns the top directory name and
// the files relative to it.
func readChartArchive(tgz []byte, max int64) (string, []*loader.BufferedFile, error) {
	if max <= 0 {
		max = DefaultMaxChartBytes
	}
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		return "", nil, fmt.Errorf("chart archive: %w", err)
	}
	lr := &limitReader{r: zr, left: max}
	tr := tar.NewReader(lr)
	var (
		top   string
		files []*loader.BufferedFile
		seen  = map[string]bool{}
	)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if lr.exceeded {
				return "", nil, fmt.Errorf("chart archive decompresses to more than %d bytes: %w", max, ErrLimit)
			}
			return "", nil, fmt.Errorf("chart archive: %w", err)
		}
		name := hdr.Name
		if strings.Contains(name, "\\") || path.IsAbs(name) || hasDotDot(name) {
			return "", nil, fmt.Errorf("chart archive: entry %q escapes the chart directory", name)
		}
		clean := path.Clean(name)
		first, rest, _ := strings.Cut(clean, "/")
		if top == "" {
			top = first
		} else if first != top {
			return "", nil, fmt.Errorf("chart archive: entry %q is outside the chart directory %q", name, top)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg:
		default:
			return "", nil, fmt.Errorf("chart archive: entry %q is not a regular file (type %q)", name, hdr.Typeflag)
		}
		if rest == "" {
			return "", nil, fmt.Errorf("chart archive: file %q is not inside a chart directory", name)
		}
		if hdr.Size > max {
			return "", nil, fmt.Errorf("chart archive: %s is %d bytes, more than the limit of %d: %w", name, hdr.Size, max, ErrLimit)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			if lr.exceeded {
				return "", nil, fmt.Errorf("chart archive decompresses to more than %d bytes: %w", max, ErrLimit)
			}
			return "", nil, fmt.Errorf("chart archive: %s: %w", name, err)
		}
		if seen[rest] {
			return "", nil, fmt.Errorf("chart archive: %s appears twice", name)
		}
		seen[rest] = true
		files = append(files, &loader.BufferedFile{Name: rest, Data: data})
	}
	if top == "" {
		return "", nil, fmt.Errorf("chart archive is empty")
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return top, files, nil
}

func hasDotDot(name string) bool {
	for _, p := range strings.Split(name, "/") {
		if p == ".." {
			return true
		}
	}
	return false
}

type limitReader struct {
	r        io.Reader
	left     int64
	exceeded bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		l.exceeded = true
		return 0, fmt.Errorf("more than the limit: %w", ErrLimit)
	}
	if int64(len(p)) > l.left {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		l.exceeded = true
		return n, fmt.Errorf("more than the limit: %w", ErrLimit)
	}
	return n, err
}

// writeFiles writes files into the new directory dir atomically: into a sibling temporary
// directory first, renamed into place at the end. dir must not exist or be empty.
func writeFiles(dir string, files []*loader.BufferedFile) error {
	dir = filepath.Clean(dir)
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("directory %s is not empty", dir)
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, f := range files {
		p := filepath.Join(tmp, filepath.FromSlash(f.Name))
		if !strings.HasPrefix(p, tmp+string(filepath.Separator)) {
			return fmt.Errorf("file %q escapes %s", f.Name, dir)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			return err
		}
	}
	os.Remove(dir) // empty or absent
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("move chart into %s: %w", dir, err)
	}
	return nil
}
