package build

import (
	"path"
	"strings"
)

// matcher matches relative paths against globs, segment by segment ("**" spans any number of
// segments, other segments follow path.Match); a glob matching a directory matches everything
// below it.
type matcher [][]string

func newMatcher(globs []string) matcher {
	m := make(matcher, 0, len(globs))
	for _, g := range globs {
		g = strings.Trim(path.Clean("/"+g), "/")
		segs := strings.Split(g, "/")
		for i, s := range segs {
			if s != "**" && strings.Contains(s, "**") {
				segs[i] = strings.ReplaceAll(s, "**", "*")
			}
		}
		m = append(m, segs)
	}
	return m
}

func (m matcher) match(rel string) bool {
	if len(m) == 0 {
		return false
	}
	return m.matchSegs(strings.Split(rel, "/"))
}

func (m matcher) matchSegs(p []string) bool {
	for _, g := range m {
		if segMatch(g, p) {
			return true
		}
	}
	return false
}

// segMatch reports whether glob g matches path p or one of its parent directories.
func segMatch(g, p []string) bool {
	for len(g) > 0 {
		if g[0] == "**" {
			if len(g) == 1 {
				return true
			}
			for i := 0; i <= len(p); i++ {
				if segMatch(g[1:], p[i:]) {
					return true
				}
			}
			return false
		}
		if len(p) == 0 {
			return false
		}
		if g[0] != p[0] {
			if ok, _ := path.Match(g[0], p[0]); !ok {
				return false
			}
		}
		g, p = g[1:], p[1:]
	}
	return true // glob consumed: p is the matched path or below it
}

// relTo returns p relative to dir ("" dir or "." = root) and whether p is inside it.
func relTo(dir, p string) (string, bool) {
	dir = strings.Trim(dir, "/")
	if dir == "" || dir == "." {
		return p, true
	}
	if strings.HasPrefix(p, dir+"/") {
		return p[len(dir)+1:], true
	}
	return "", false
}

// mappingSelects reports whether repository path p belongs to mapping g, and its path relative
// to g.Add.
func mappingSelects(g GitMapping, inc, exc matcher, p string) (string, bool) {
	if add := strings.Trim(g.Add, "/"); add != "" && p == add {
		// add names a file or a symbolic link, not a directory: it is mapped itself, at to —
		// werf's semantics, and git's for a link (stored as a link, never followed; a link to a
		// directory adds the link, not the directory's files)
		return "", len(inc) == 0
	}
	rel, ok := relTo(g.Add, p)
	if !ok {
		return "", false
	}
	if len(inc) == 0 && len(exc) == 0 {
		return rel, true
	}
	segs := strings.Split(rel, "/")
	if len(inc) > 0 && !inc.matchSegs(segs) {
		return "", false
	}
	if len(exc) > 0 && exc.matchSegs(segs) {
		return "", false
	}
	return rel, true
}
