package cleanup

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Git is what cleanup reads from the project's git repository.
type Git struct {
	Refs    []GitRef
	Commits map[string]Commit
	// Source says where branches came from: "remote origin" or "local branches".
	Source string
	// Warnings are things the caller should log: a remote that could not be asked, branches
	// deleted on the remote but still fetched here.
	Warnings []string
}

// ReadGit reads the branches and tags of the repository at dir and the history reachable from
// them. Branches are the remote-tracking branches of remote (default "origin", else the only
// remote); when the repository has no remote, its local branches. Tags are the local tags
// (fetched from the remote in CI). A shallow clone is an error: cleanup needs the history.
func ReadGit(ctx context.Context, dir, remote string) (*Git, error) {
	git := func(stdin string, args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		cmd.Env = append(cmd.Environ(), "GIT_TERMINAL_PROMPT=0", "LC_ALL=C")
		if stdin != "" {
			cmd.Stdin = strings.NewReader(stdin)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("git %s in %s: %w: %s", strings.Join(args, " "), dir, err, strings.TrimSpace(stderr.String()))
		}
		return out, nil
	}
	out, err := git("", "rev-parse", "--is-shallow-repository")
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(string(out)) == "true" {
		return nil, fmt.Errorf("git repository %s is a shallow clone: cleanup needs the full history (git fetch --unshallow --tags --prune)", dir)
	}
	out, err = git("", "remote")
	if err != nil {
		return nil, err
	}
	remotes := strings.Fields(string(out))
	if remote == "" {
		switch {
		case contains(remotes, "origin"):
			remote = "origin"
		case len(remotes) == 1:
			remote = remotes[0]
		case len(remotes) > 1:
			return nil, fmt.Errorf("git repository %s has remotes %s: say which one holds the branches (--git-remote)", dir, strings.Join(remotes, ", "))
		}
	} else if !contains(remotes, remote) {
		return nil, fmt.Errorf("git repository %s has no remote %q (remotes: %s)", dir, remote, strings.Join(remotes, ", "))
	}
	g := &Git{Commits: map[string]Commit{}}
	branchPrefix := "refs/heads/"
	g.Source = "local branches"
	if remote != "" {
		branchPrefix = "refs/remotes/" + remote + "/"
		g.Source = "branches of remote " + remote
	}
	out, err = git("", "for-each-ref", "--format=%(objecttype) %(refname) %(objectname) %(*objectname)", branchPrefix, "refs/tags/")
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	var tips []string
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			continue
		}
		typ, ref, obj := f[0], f[1], f[2]
		if len(f) == 4 {
			obj = f[3] // annotated tag: the object it points at
		}
		switch {
		case strings.HasPrefix(ref, "refs/tags/"):
			if typ == "tag" && len(f) == 4 || typ == "commit" {
				g.Refs = append(g.Refs, GitRef{Name: strings.TrimPrefix(ref, "refs/tags/"), Tag: true, Commit: obj})
				tips = append(tips, obj)
			}
		case strings.HasPrefix(ref, branchPrefix):
			n := strings.TrimPrefix(ref, branchPrefix)
			if n == "HEAD" || typ != "commit" {
				continue
			}
			g.Refs = append(g.Refs, GitRef{Name: n, Commit: obj})
			tips = append(tips, obj)
		}
	}
	branches := 0
	for _, r := range g.Refs {
		if !r.Tag {
			branches++
		}
	}
	if branches == 0 {
		return nil, fmt.Errorf("git repository %s: no %s found: refusing to clean up without branches (fetch them first)", dir, g.Source)
	}
	if remote != "" {
		if err := g.checkRemote(ctx, git, remote); err != nil {
			return nil, err
		}
	}
	// Tags may point at tags of tags or at trees; only commits enter the history.
	out, err = git(strings.Join(uniq(tips), "\n")+"\n", "log", "--stdin", "--format=%H %ct %P")
	if err != nil {
		return nil, err
	}
	sc = bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		sec, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("git log in %s: bad commit time in %q", dir, sc.Text())
		}
		g.Commits[f[0]] = Commit{Time: time.Unix(sec, 0), Parents: f[2:]}
	}
	sort.Slice(g.Refs, func(i, j int) bool {
		if g.Refs[i].Tag != g.Refs[j].Tag {
			return !g.Refs[i].Tag
		}
		return g.Refs[i].Name < g.Refs[j].Name
	})
	return g, nil
}

// checkRemote compares the fetched refs with the remote's own (git ls-remote): a branch or tag
// the remote has but this clone lacks, or a branch behind the remote, would let cleanup delete
// images still needed, so it is an error. A remote that cannot be reached is a warning.
func (g *Git) checkRemote(ctx context.Context, git func(string, ...string) ([]byte, error), remote string) error {
	out, err := git("", "ls-remote", "--heads", "--tags", remote)
	if err != nil {
		g.Warnings = append(g.Warnings, fmt.Sprintf("could not compare with remote %s, using the fetched refs as they are: %v", remote, err))
		return nil
	}
	local := map[string]string{}
	for _, r := range g.Refs {
		if r.Tag {
			local["refs/tags/"+r.Name] = "tag"
		} else {
			local["refs/heads/"+r.Name] = r.Commit
		}
	}
	remoteRefs := map[string]bool{}
	var problems []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || strings.HasSuffix(f[1], "^{}") {
			continue
		}
		obj, ref := f[0], f[1]
		remoteRefs[ref] = true
		have, ok := local[ref]
		switch {
		case !ok:
			problems = append(problems, ref+" is missing")
		case strings.HasPrefix(ref, "refs/heads/") && have != obj:
			problems = append(problems, fmt.Sprintf("%s is at %s here but %s on the remote", ref, short(have), short(obj)))
		}
	}
	for ref := range local {
		if strings.HasPrefix(ref, "refs/heads/") && !remoteRefs[ref] {
			g.Warnings = append(g.Warnings, fmt.Sprintf("branch %s was deleted on remote %s but is still fetched here: its images are kept (git fetch --prune)", strings.TrimPrefix(ref, "refs/heads/"), remote))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		if len(problems) > 5 {
			problems = append(problems[:5], fmt.Sprintf("and %d more", len(problems)-5))
		}
		return fmt.Errorf("git: not up to date with remote %s (%s): fetch everything first: git fetch --prune --tags %s '+refs/heads/*:refs/remotes/%s/*'", remote, strings.Join(problems, "; "), remote, remote)
	}
	return nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
