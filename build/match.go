package build

import (
	"path"
	"regexp"
	"strings"
)

// globRE turns a glob with ** into a regexp on slash-separated relative paths.
func globRE(glob string) *regexp.Regexp {
	g := strings.Trim(path.Clean("/"+glob), "/")
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(g); i++ {
		c := g[i]
		switch {
		case c == '*' && i+1 < len(g) && g[i+1] == '*':
			i++
			if i+1 < len(g) && g[i+1] == '/' {
				i++
				b.WriteString("(?:.*/)?")
			} else {
				b.WriteString(".*")
			}
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		case c == '[':
			j := strings.IndexByte(g[i:], ']')
			if j < 0 {
				b.WriteString(`\[`)
				continue
			}
			cls := g[i+1 : i+j]
			if strings.HasPrefix(cls, "!") {
				cls = "^" + cls[1:]
			}
			b.WriteString("[" + cls + "]")
			i += j
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// matcher matches relative paths against globs; a glob matching a directory matches everything
// below it.
type matcher []*regexp.Regexp

func newMatcher(globs []string) matcher {
	m := make(matcher, 0, len(globs))
	for _, g := range globs {
		m = append(m, globRE(g))
	}
	return m
}

func (m matcher) match(rel string) bool {
	for _, re := range m {
		p := rel
		for {
			if re.MatchString(p) {
				return true
			}
			i := strings.LastIndexByte(p, '/')
			if i < 0 {
				break
			}
			p = p[:i]
		}
	}
	return false
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
	rel, ok := relTo(g.Add, p)
	if !ok {
		return "", false
	}
	if len(inc) > 0 && !inc.match(rel) {
		return "", false
	}
	if exc.match(rel) {
		return "", false
	}
	return rel, true
}

// dockerignore is a parsed .dockerignore: the last matching pattern wins, "!" re-includes.
type dockerignore struct {
	res []*regexp.Regexp
	neg []bool
}

func parseDockerignore(data string) dockerignore {
	var d dockerignore
	for _, l := range strings.Split(data, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		neg := strings.HasPrefix(l, "!")
		l = strings.TrimPrefix(l, "!")
		d.res = append(d.res, globRE(l))
		d.neg = append(d.neg, neg)
	}
	return d
}

func (d dockerignore) ignored(rel string) bool {
	ign := false
	for i, re := range d.res {
		if (matcher{re}).match(rel) {
			ign = !d.neg[i]
		}
	}
	return ign
}
