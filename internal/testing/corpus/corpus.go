package corpus

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
)

// Case is one corpus file. The header (lines before the first "-- FILE --") says:
//
//	dir: svc            the project directory (default: the root)
//	env: NAME=VALUE     an environment variable for env (repeatable)
//	werfenv: staging    the template's .Env
//	want: LINE          the expected summary, one line per want: (see config's corpus test)
//	error: TEXT         the error must contain TEXT (repeatable)
//	unsupported: KEY    build refuses the image because of werf key KEY (repeatable)
//	build: yes          build's corpus test builds it (golden digests in build/testdata)
//	file: IMAGE PATH "CONTENT"   a built image has the file PATH with CONTENT (a Go string;
//	                    IMAGE ~ for the nameless image; repeatable)
//
// Other lines (comments) are ignored.
type Case struct {
	Name                      string // the file name without .txt
	Dir, WerfEnv              string
	Env                       map[string]string
	Want, Errors, Unsupported []string
	Build                     bool
	Checks                    []FileCheck
	Files                     map[string]string // path in the repository -> content
}

// FileCheck is a file a built image must hold.
type FileCheck struct {
	Image, Path, Content string
}

// Dir is the corpus directory, config/testdata/corpus of this module.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "config", "testdata", "corpus")
}

// All reads every case of the corpus, in name order.
func All() ([]Case, error) {
	paths, err := filepath.Glob(filepath.Join(Dir(), "*.txt"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	out := make([]Case, 0, len(paths))
	for _, p := range paths {
		c, err := Read(p)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Read reads one case.
func Read(path string) (Case, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Case{}, err
	}
	c := Case{Name: strings.TrimSuffix(filepath.Base(path), ".txt"), Env: map[string]string{}, Files: map[string]string{}}
	cur := ""
	for _, line := range strings.SplitAfter(string(b), "\n") {
		trimmed := strings.TrimRight(line, "\n")
		if strings.HasPrefix(trimmed, "-- ") && strings.HasSuffix(trimmed, " --") {
			cur = strings.TrimSuffix(strings.TrimPrefix(trimmed, "-- "), " --")
			c.Files[cur] = ""
			continue
		}
		if cur != "" {
			c.Files[cur] += line
			continue
		}
		k, v, ok := strings.Cut(trimmed, ": ")
		switch {
		case !ok:
		case k == "dir":
			c.Dir = v
		case k == "werfenv":
			c.WerfEnv = v
		case k == "env":
			n, val, _ := strings.Cut(v, "=")
			c.Env[n] = val
		case k == "want":
			c.Want = append(c.Want, v)
		case k == "error":
			c.Errors = append(c.Errors, v)
		case k == "unsupported":
			c.Unsupported = append(c.Unsupported, v)
		case k == "build":
			c.Build = v == "yes"
		case k == "file":
			f := strings.SplitN(v, " ", 3)
			if len(f) != 3 {
				return c, fmt.Errorf("%s: file: want IMAGE PATH \"CONTENT\", got %q", path, v)
			}
			content, err := strconv.Unquote(f[2])
			if err != nil {
				return c, fmt.Errorf("%s: file: %s: %v", path, f[2], err)
			}
			c.Checks = append(c.Checks, FileCheck{Image: f[0], Path: f[1], Content: content})
		}
	}
	if len(c.Files) == 0 || (len(c.Want) == 0) == (len(c.Errors) == 0) {
		return c, fmt.Errorf("%s: want files and exactly one of want:/error:", path)
	}
	if len(c.Checks) > 0 && !c.Build {
		return c, fmt.Errorf("%s: file: checks need build: yes", path)
	}
	if c.Build && len(c.Errors) > 0 {
		return c, fmt.Errorf("%s: build: yes on a case that must fail to load", path)
	}
	return c, nil
}
