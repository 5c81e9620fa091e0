package bundle

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/ignore"
)

// DefaultMaxChartBytes is the default limit on the total size of a chart's files.
const DefaultMaxChartBytes int64 = 20 << 20

// DefaultMaxOutputBytes is the default limit on the size of rendered manifests.
const DefaultMaxOutputBytes int64 = 64 << 20

// ErrLimit is wrapped by every error about a size limit.
var ErrLimit = errors.New("size limit exceeded")

// readChartDir reads the files of the chart in dir the way Helm's loader.LoadDir does
// (.helmignore and Helm's default ignores apply), refusing charts larger than max bytes.
func readChartDir(dir string, max int64) ([]*loader.BufferedFile, error) {
	if max <= 0 {
		max = DefaultMaxChartBytes
	}
	top, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(top)
	if err != nil {
		return nil, fmt.Errorf("chart directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("chart directory %s: not a directory", dir)
	}
	realTop, err := filepath.EvalSymlinks(top)
	if err != nil {
		return nil, fmt.Errorf("chart directory: %w", err)
	}
	rules := ignore.Empty()
	if _, err := os.Stat(filepath.Join(top, ignore.HelmIgnore)); err == nil {
		if rules, err = ignore.ParseFile(filepath.Join(top, ignore.HelmIgnore)); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ignore.HelmIgnore), err)
		}
	}
	rules.AddDefaults()
	var (
		files []*loader.BufferedFile
		total int64
	)
	err = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(top, p)
		if rel == "." {
			return nil
		}
		n := filepath.ToSlash(rel)
		if d.Type()&fs.ModeSymlink != 0 {
			// followed like Helm does, but only inside the chart: a link must not leak
			// files of the machine that renders the chart (e.g. the Argo CD sidecar)
			target, err := filepath.EvalSymlinks(p)
			if err != nil {
				return fmt.Errorf("chart %s: %s: %w", dir, n, err)
			}
			if target != realTop && !strings.HasPrefix(target, realTop+string(filepath.Separator)) {
				return fmt.Errorf("chart %s: %s is a symbolic link to %s, outside the chart", dir, n, target)
			}
		}
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.IsDir() {
			if d.Type()&fs.ModeSymlink != 0 {
				return fmt.Errorf("chart %s: %s: symbolic links to directories are not supported", dir, n)
			}
			if rules.Ignore(n, fi) {
				return filepath.SkipDir
			}
			return nil
		}
		if rules.Ignore(n, fi) {
			return nil
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("chart %s: %s is not a regular file", dir, n)
		}
		total += fi.Size()
		if total > max {
			return fmt.Errorf("chart %s is larger than the limit of %d bytes (at %s): %w", dir, max, n, ErrLimit)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, &loader.BufferedFile{Name: n, Data: bytes.TrimPrefix(data, []byte("\xEF\xBB\xBF"))})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files, nil
}

// loadChart loads files into a chart, with errors that name the chart directory and file.
func loadChart(dir string, files []*loader.BufferedFile) (*chart.Chart, error) {
	hasChartYAML := false
	for _, f := range files {
		if f.Name == "Chart.yaml" {
			hasChartYAML = true
		}
	}
	if !hasChartYAML {
		return nil, fmt.Errorf("chart %s: Chart.yaml is missing", dir)
	}
	c, err := loader.LoadFiles(files)
	if err != nil {
		msg := err.Error()
		if !strings.Contains(msg, "Chart.yaml") && !strings.Contains(msg, "values.yaml") {
			return nil, fmt.Errorf("load chart %s: %w", dir, err)
		}
		return nil, fmt.Errorf("chart %s: %w", dir, err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("chart %s: Chart.yaml: %w", dir, err)
	}
	return c, nil
}
