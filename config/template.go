package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/Masterminds/sprig/v3"
	"gopkg.in/yaml.v3"

	"strata.dev/strata/internal/git"
)

// TemplatesDir is the directory, inside the project directory, whose *.tmpl (werf) and *.tpl
// files are template partials for include, named by their path inside it.
const TemplatesDir = ".werf"

// maxTemplateRead bounds all the bytes templates read (partials and .Files) together.
const maxTemplateRead = 16 << 20

// render runs the config's text as a Go template with werf's functions; the partials and the
// files it reads come from the commit.
func render(ctx context.Context, repo *git.Repo, r *Rendered, o Options) ([]byte, error) {
	src := string(r.Source)
	if !strings.Contains(src, "{{") {
		return r.Source, nil // no template action: nothing to read or run
	}
	fs := &files{ctx: ctx, repo: repo, commit: r.Commit, dir: r.Dir, limit: o.MaxSize, budget: maxTemplateRead}
	root := template.New(r.File).Option("missingkey=default")
	funcs := templateFuncs(root, o)
	root.Funcs(funcs)
	partials, err := fs.partials()
	if err != nil {
		return nil, err
	}
	for _, p := range partials {
		if _, err := root.New(p.name).Parse(p.text); err != nil {
			return nil, fmt.Errorf("%s: %w", p.file, err)
		}
	}
	if _, err := root.Parse(src); err != nil {
		return nil, templateError(err)
	}
	data := map[string]any{
		"Files":  fs,
		"Env":    o.Env,
		"Commit": &commitInfo{Hash: r.Commit, ctx: ctx, repo: repo},
	}
	out := &limitedBuffer{max: o.MaxRendered}
	done := make(chan error, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				done <- fmt.Errorf("%v", v)
			}
		}()
		done <- root.Execute(out, data)
	}()
	timer := time.NewTimer(o.RenderTimeout)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			return nil, templateError(err)
		}
	case <-timer.C:
		out.stop() // the template goroutine stops at its next write
		return nil, fmt.Errorf("%s: rendering the templates took more than %s", r.File, o.RenderTimeout)
	case <-ctx.Done():
		out.stop()
		return nil, ctx.Err()
	}
	return out.Bytes(), nil
}

// templateError keeps text/template's "template: FILE:LINE:COL: …" text, which names the
// template file (partials by their path inside .werf/) and the line.
func templateError(err error) error {
	var ee template.ExecError
	if errors.As(err, &ee) {
		return fmt.Errorf("render: %w", ee.Err)
	}
	return fmt.Errorf("render: %w", err)
}

func templateFuncs(root *template.Template, o Options) template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "expandenv")     // werf does not offer it: env vars only through env
	delete(f, "getHostByName") // no network lookups while reading a config
	f["env"] = func(name any, def ...string) (string, error) {
		if len(def) > 1 {
			return "", errors.New("env: at most one default")
		}
		n := fmt.Sprint(name)
		v, ok := o.LookupEnv(n)
		if (!ok || v == "") && len(def) == 1 {
			return def[0], nil
		}
		if !ok {
			return "", fmt.Errorf("env: the environment variable %q must be set or a default given ({{ env %q \"default\" }})", n, n)
		}
		return v, nil
	}
	f["required"] = func(msg string, v any) (any, error) {
		if v == nil {
			return nil, errors.New(msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return v, errors.New(msg)
		}
		return v, nil
	}
	depth := 0
	f["include"] = func(name string, data any) (string, error) {
		if depth > 100 {
			return "", fmt.Errorf("include %q: nested more than 100 deep", name)
		}
		depth++
		defer func() { depth-- }()
		var b bytes.Buffer
		if err := root.ExecuteTemplate(&b, name, data); err != nil {
			return "", err
		}
		return b.String(), nil
	}
	f["tpl"] = func(text string, data any) (string, error) {
		if depth > 100 {
			return "", errors.New("tpl: nested more than 100 deep")
		}
		depth++
		defer func() { depth-- }()
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return "", err
		}
		return b.String(), nil
	}
	boundFuncs(f, o.MaxRendered)
	f["fromYaml"] = func(s string) (map[string]any, error) {
		m := map[string]any{}
		err := yaml.Unmarshal([]byte(s), &m)
		return m, err
	}
	f["toYaml"] = func(v any) (string, error) {
		b, err := yaml.Marshal(v)
		return strings.TrimSuffix(string(b), "\n"), err
	}
	return f
}

// maxListLen bounds the lists until, untilStep and seq make.
const maxListLen = 1_000_000

// boundFuncs replaces the functions that can build a huge value from a small template (repeat,
// until, untilStep, seq, and print/printf/println/cat/join/replace whose results can double
// in a loop) with versions that refuse a result over max bytes (or maxListLen items), so a
// hostile config fails with an error instead of exhausting memory.
func boundFuncs(f template.FuncMap, max int64) {
	tooBig := func(name string, n int64) error {
		return fmt.Errorf("the result would be %d bytes, over the limit of %d (the config's rendering limit)", n, max)
	}
	str := func(name string, s string) (string, error) {
		if int64(len(s)) > max {
			return "", tooBig(name, int64(len(s)))
		}
		return s, nil
	}
	f["repeat"] = func(count int, s string) (string, error) {
		if count > 0 && int64(count)*int64(len(s)) > max {
			return "", tooBig("repeat", int64(count)*int64(len(s)))
		}
		return strings.Repeat(s, max0(count)), nil
	}
	list := func(name string, n int) error {
		if n > maxListLen {
			return fmt.Errorf("%d items, over the limit of %d", n, maxListLen)
		}
		return nil
	}
	until, untilStep, seq := f["until"].(func(int) []int), f["untilStep"].(func(int, int, int) []int), f["seq"].(func(...int) string)
	f["until"] = func(n int) ([]int, error) {
		if err := list("until", n); err != nil {
			return nil, err
		}
		return until(n), nil
	}
	f["untilStep"] = func(start, stop, step int) ([]int, error) {
		if step != 0 {
			if n := (stop - start) / step; n > maxListLen {
				return nil, list("untilStep", n)
			}
		}
		return untilStep(start, stop, step), nil
	}
	f["seq"] = func(params ...int) (string, error) {
		if len(params) > 0 {
			lo, hi, step := 1, params[len(params)-1], 1
			if len(params) > 1 {
				lo = params[0]
			}
			if len(params) == 3 {
				step = params[1]
			}
			if step != 0 {
				if n := (hi - lo) / step; n > maxListLen || -n > maxListLen {
					return "", list("seq", max0(n)+max0(-n))
				}
			}
		}
		return str("seq", seq(params...))
	}
	f["print"] = func(a ...any) (string, error) { return str("print", fmt.Sprint(a...)) }
	f["println"] = func(a ...any) (string, error) { return str("println", fmt.Sprintln(a...)) }
	f["printf"] = func(format string, a ...any) (string, error) { return str("printf", fmt.Sprintf(format, a...)) }
	cat, join, replace := f["cat"].(func(...any) string), f["join"].(func(string, any) string), f["replace"].(func(string, string, string) string)
	f["cat"] = func(a ...any) (string, error) { return str("cat", cat(a...)) }
	f["join"] = func(sep string, v any) (string, error) { return str("join", join(sep, v)) }
	f["replace"] = func(old, new, s string) (string, error) {
		if n := strings.Count(s, old); old != "" && int64(len(s)+n*(len(new)-len(old))) > max {
			return "", tooBig("replace", int64(len(s)+n*(len(new)-len(old))))
		}
		return replace(old, new, s), nil
	}
}

func max0(n int) int {
	if n < 0 {
		return 0
	}
	return n
}

// commitInfo is the template's .Commit: .Commit.Hash, .Commit.Date.Human, .Commit.Date.Unix.
type commitInfo struct {
	Hash string
	ctx  context.Context
	repo *git.Repo
}

// CommitDate is .Commit.Date.
type CommitDate struct {
	Human string
	Unix  string
}

// Date reads the commit's committer date (only when a template asks for it).
func (c *commitInfo) Date() (CommitDate, error) {
	s, err := c.repo.CommitTime(c.ctx, c.Hash)
	if err != nil {
		return CommitDate{}, err
	}
	t := time.Unix(s, 0).UTC()
	return CommitDate{Human: t.String(), Unix: strconv.FormatInt(s, 10)}, nil
}

// files is the template's .Files: the committed files of the project directory.
type files struct {
	ctx    context.Context
	repo   *git.Repo
	commit string
	dir    string // project directory in the repository
	limit  int64
	budget int64

	listed []git.Entry
}

type partial struct{ name, file, text string }

// partials reads .werf/**/*.tmpl and *.tpl of the project directory.
func (f *files) partials() ([]partial, error) {
	base := path.Join(f.dir, TemplatesDir)
	es, err := f.repo.Entries(f.ctx, f.commit, true, base)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", base, err)
	}
	var out []partial
	for _, e := range es {
		if !strings.HasSuffix(e.Path, ".tmpl") && !strings.HasSuffix(e.Path, ".tpl") || !strings.HasPrefix(e.Path, base+"/") {
			continue
		}
		data, err := f.read(e)
		if err != nil {
			return nil, err
		}
		out = append(out, partial{name: strings.TrimPrefix(e.Path, base+"/"), file: e.Path, text: string(data)})
	}
	return out, nil
}

func (f *files) read(e git.Entry) ([]byte, error) {
	if e.Size > 0 && e.Size > f.budget {
		return nil, fmt.Errorf("%s: the templates read more than %d bytes in all", e.Path, maxTemplateRead)
	}
	data, err := readEntry(f.ctx, f.repo, e, e.Path, f.limit)
	if err != nil {
		return nil, err
	}
	f.budget -= int64(len(data))
	return data, nil
}

// resolve is a project-relative path as a repository path; it never leaves the project.
func (f *files) resolve(rel string) (string, error) {
	c := path.Clean("/" + rel)
	if strings.Contains("/"+rel+"/", "/../") {
		return "", fmt.Errorf("%q leaves the project directory", rel)
	}
	return path.Join(f.dir, c), nil
}

// Get is .Files.Get: the content of a committed file, relative to the project directory.
func (f *files) Get(rel string) (string, error) {
	p, err := f.resolve(rel)
	if err != nil {
		return "", fmt.Errorf(".Files.Get %q: %w", rel, err)
	}
	es, err := f.repo.Entries(f.ctx, f.commit, false, p)
	if err != nil {
		return "", err
	}
	for _, e := range es {
		if e.Path == p {
			data, err := f.read(e)
			if err != nil {
				return "", fmt.Errorf(".Files.Get %q: %w", rel, err)
			}
			return string(data), nil
		}
	}
	return "", fmt.Errorf(".Files.Get %q: %s is not in commit %s", rel, p, short(f.commit))
}

// Exists is .Files.Exists.
func (f *files) Exists(rel string) (bool, error) {
	p, err := f.resolve(rel)
	if err != nil {
		return false, err
	}
	es, err := f.repo.Entries(f.ctx, f.commit, false, p)
	return len(es) > 0, err
}

// Glob is .Files.Glob: path (relative to the project directory) -> content of every committed
// file matching the pattern (`*` within a path element, `**` across them); no match is an error,
// as in werf.
func (f *files) Glob(pattern string) (map[string]any, error) {
	if f.listed == nil {
		es, err := f.repo.Entries(f.ctx, f.commit, true, f.dir)
		if err != nil {
			return nil, err
		}
		f.listed = es
		if f.listed == nil {
			f.listed = []git.Entry{}
		}
	}
	out := map[string]any{}
	var names []string
	for _, e := range f.listed {
		rel := e.Path
		if f.dir != "." {
			rel = strings.TrimPrefix(e.Path, f.dir+"/")
		}
		if globMatch(pattern, rel) {
			data, err := f.read(e)
			if err != nil {
				return nil, fmt.Errorf(".Files.Glob %q: %w", pattern, err)
			}
			out[rel] = string(data)
			names = append(names, rel)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf(".Files.Glob %q: no committed file matches", pattern)
	}
	sort.Strings(names)
	return out, nil
}

// globMatch matches a slash-separated path against a glob where ** spans path elements.
func globMatch(pattern, name string) bool {
	ps, ns := strings.Split(pattern, "/"), strings.Split(name, "/")
	var m func(i, j int) bool
	m = func(i, j int) bool {
		for i < len(ps) {
			if ps[i] == "**" {
				for k := j; k <= len(ns); k++ {
					if m(i+1, k) {
						return true
					}
				}
				return false
			}
			if j >= len(ns) {
				return false
			}
			if ok, err := path.Match(ps[i], ns[j]); err != nil || !ok {
				return false
			}
			i, j = i+1, j+1
		}
		return j == len(ns)
	}
	return m(0, 0)
}

// limitedBuffer stops a template's output at max bytes, or at once after stop.
type limitedBuffer struct {
	bytes.Buffer
	max     int64
	stopped atomic.Bool
}

func (b *limitedBuffer) stop() { b.stopped.Store(true) }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.stopped.Load() {
		return 0, errors.New("stopped")
	}
	if int64(b.Len()+len(p)) > b.max {
		return 0, fmt.Errorf("the rendered config is over %d bytes", b.max)
	}
	return b.Buffer.Write(p)
}
