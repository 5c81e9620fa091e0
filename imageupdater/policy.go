package imageupdater

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
)

// Annotations read on Applications. The argocd-image-updater.argoproj.io/ keys are compatible with
// upstream argocd-image-updater and its chart-version patch; strata.dev/ keys are Strata's own.
const (
	upstreamPrefix = "argocd-image-updater.argoproj.io/"

	AnnotationChartVersion     = upstreamPrefix + "chart-version"
	AnnotationBundleConstraint = "strata.dev/bundle-constraint"
	AnnotationBundleSource     = "strata.dev/bundle-source"
	AnnotationUpdateStrategy   = upstreamPrefix + "update-strategy"
	AnnotationAllowTags        = upstreamPrefix + "allow-tags"
	AnnotationIgnoreTags       = upstreamPrefix + "ignore-tags"
	AnnotationForceUpdate      = upstreamPrefix + "force-update"
	AnnotationPullSecret       = upstreamPrefix + "pull-secret"
	AnnotationWriteBackMethod  = upstreamPrefix + "write-back-method"
)

// Strategy names how the best tag is chosen.
type Strategy string

// Update strategies (upstream names; aliases are accepted when parsing).
const (
	StrategySemver       Strategy = "semver"
	StrategyNewestBuild  Strategy = "newest-build"
	StrategyDigest       Strategy = "digest"
	StrategyAlphabetical Strategy = "alphabetical"
)

// policy is what an Application's annotations ask for.
type policy struct {
	constraint string // raw constraint annotation value
	semver     *semver.Constraints
	strategy   Strategy
	allow      *regexp.Regexp // nil: every tag
	ignore     []string       // globs
	force      bool
	pullSecret string
	source     string // strata.dev/bundle-source: which source of a multi-source Application
}

// optedIn reports whether the Application carries one of the opt-in annotations.
func optedIn(ann map[string]string) bool {
	_, a := ann[AnnotationChartVersion]
	_, b := ann[AnnotationBundleConstraint]
	return a || b
}

// Limits on what one Application can ask of the updater. Every tag of a repository is matched
// against an Application's allow-tags expression in each cycle, so its size bounds the time one
// Application can take from the others (the check deadline bounds the rest).
const (
	// MaxAnnotationBytes bounds every annotation value the updater parses.
	MaxAnnotationBytes = 1024
	// MaxTagPatternInsts bounds the compiled size of an allow-tags expression (RE2 program
	// instructions; matching time is linear in it).
	MaxTagPatternInsts = 4096
)

// compileTagPattern compiles an allow-tags expression within the limits.
func compileTagPattern(expr string) (*regexp.Regexp, error) {
	if len(expr) > MaxAnnotationBytes {
		return nil, fmt.Errorf("regular expression of %d bytes: at most %d are allowed", len(expr), MaxAnnotationBytes)
	}
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, err
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, err
	}
	if n := len(prog.Inst); n > MaxTagPatternInsts {
		return nil, fmt.Errorf("regular expression compiles to %d instructions: at most %d are allowed", n, MaxTagPatternInsts)
	}
	return regexp.Compile(expr)
}

// parsePolicy reads the annotations. Errors name the annotation and the bad value.
func parsePolicy(ann map[string]string) (*policy, error) {
	for _, k := range []string{AnnotationChartVersion, AnnotationBundleConstraint, AnnotationBundleSource, AnnotationUpdateStrategy,
		AnnotationAllowTags, AnnotationIgnoreTags, AnnotationForceUpdate, AnnotationPullSecret, AnnotationWriteBackMethod} {
		if v, ok := ann[k]; ok && len(v) > MaxAnnotationBytes {
			return nil, fmt.Errorf("annotation %s: value of %d bytes: at most %d are allowed", k, len(v), MaxAnnotationBytes)
		}
	}
	p := &policy{strategy: StrategySemver}
	key := AnnotationBundleConstraint
	c, ok := ann[key]
	if !ok {
		key = AnnotationChartVersion
		c = ann[key]
	}
	p.constraint = strings.TrimSpace(c)
	if s, ok := ann[AnnotationUpdateStrategy]; ok {
		switch strings.TrimSpace(s) {
		case "semver", "":
			p.strategy = StrategySemver
		case "newest-build", "latest":
			p.strategy = StrategyNewestBuild
		case "digest":
			p.strategy = StrategyDigest
		case "alphabetical", "name":
			p.strategy = StrategyAlphabetical
		default:
			return nil, fmt.Errorf("annotation %s: unknown strategy %q (want semver, newest-build, digest or alphabetical)", AnnotationUpdateStrategy, s)
		}
	}
	switch p.strategy {
	case StrategySemver:
		cs := p.constraint
		if cs == "" || cs == "latest" {
			cs = "*"
		}
		sc, err := semver.NewConstraint(cs)
		if err != nil {
			return nil, fmt.Errorf("annotation %s: semver constraint %q: %w", key, p.constraint, err)
		}
		p.semver = sc
	case StrategyDigest:
		if p.constraint == "" {
			return nil, fmt.Errorf("annotation %s: the digest strategy needs the tag to track (e.g. %q)", key, "latest")
		}
		if strings.ContainsAny(p.constraint, " <>=~^*,|") {
			return nil, fmt.Errorf("annotation %s: the digest strategy tracks one tag, got the constraint %q", key, p.constraint)
		}
	}
	if a, ok := ann[AnnotationAllowTags]; ok {
		a = strings.TrimSpace(a)
		switch {
		case a == "any" || a == "":
		case strings.HasPrefix(a, "regexp:"):
			re, err := compileTagPattern(strings.TrimPrefix(a, "regexp:"))
			if err != nil {
				return nil, fmt.Errorf("annotation %s: %w", AnnotationAllowTags, err)
			}
			p.allow = re
		default:
			return nil, fmt.Errorf("annotation %s: %q is neither \"any\" nor \"regexp:<expression>\"", AnnotationAllowTags, a)
		}
	}
	if v, ok := ann[AnnotationIgnoreTags]; ok {
		for _, g := range strings.Split(v, ",") {
			if g = strings.TrimSpace(g); g == "" {
				continue
			}
			if _, err := path.Match(g, ""); err != nil {
				return nil, fmt.Errorf("annotation %s: glob %q: %w", AnnotationIgnoreTags, g, err)
			}
			p.ignore = append(p.ignore, g)
		}
	}
	if v, ok := ann[AnnotationForceUpdate]; ok {
		switch strings.TrimSpace(strings.ToLower(v)) {
		case "true":
			p.force = true
		case "false", "":
		default:
			return nil, fmt.Errorf("annotation %s: %q is neither true nor false", AnnotationForceUpdate, v)
		}
	}
	if v, ok := ann[AnnotationWriteBackMethod]; ok && strings.TrimSpace(v) != "argocd" && strings.TrimSpace(v) != "" {
		return nil, fmt.Errorf("annotation %s: only \"argocd\" is supported, got %q", AnnotationWriteBackMethod, v)
	}
	p.pullSecret = strings.TrimSpace(ann[AnnotationPullSecret])
	if p.pullSecret != "" {
		if _, err := parseCredentialSource(p.pullSecret); err != nil {
			return nil, fmt.Errorf("annotation %s: %w", AnnotationPullSecret, err)
		}
	}
	p.source = strings.TrimSpace(ann[AnnotationBundleSource])
	return p, nil
}

// allowedTags applies allow-tags and ignore-tags, and gives up when ctx ends.
func (p *policy) allowedTags(ctx context.Context, tags []string) ([]string, error) {
	out := make([]string, 0, len(tags))
	for i, t := range tags {
		if i%64 == 0 && ctx.Err() != nil {
			return nil, fail(reasonTimeout, fmt.Errorf("matching %d tags against allow-tags/ignore-tags: %w", len(tags), ctx.Err()))
		}
		if p.tagAllowed(t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// tagAllowed applies allow-tags and ignore-tags.
func (p *policy) tagAllowed(tag string) bool {
	if p.allow != nil && !p.allow.MatchString(tag) {
		return false
	}
	for _, g := range p.ignore {
		if ok, _ := path.Match(g, tag); ok {
			return false
		}
	}
	return true
}

// versionOf turns an OCI tag into a chart version ('_' stands for '+').
func versionOf(tag string) (*semver.Version, error) {
	return semver.StrictNewVersion(strings.ReplaceAll(tag, "_", "+"))
}

// candidate is a tag with what the strategies need to compare it.
type candidate struct {
	tag     string
	version *semver.Version // semver
	created time.Time       // newest-build
}

// pickSemver returns the highest of the (allowed) tags satisfying the constraint.
func (p *policy) pickSemver(tags []string) (candidate, bool) {
	var best candidate
	found := false
	for _, t := range tags {
		v, err := versionOf(t)
		if err != nil {
			// Loose forms such as "v1.2" are accepted too.
			if v, err = semver.NewVersion(strings.ReplaceAll(t, "_", "+")); err != nil {
				continue
			}
		}
		if !p.semver.Check(v) {
			continue
		}
		if !found || v.GreaterThan(best.version) || (v.Equal(best.version) && t > best.tag) {
			best, found = candidate{tag: t, version: v}, true
		}
	}
	return best, found
}

// pickAlphabetical returns the lexically last of the (allowed) tags.
func pickAlphabetical(tags []string) (candidate, bool) {
	if len(tags) == 0 {
		return candidate{}, false
	}
	return candidate{tag: slices.Max(tags)}, true
}

// pickNewest returns the candidate with the latest creation time (ties: lexically last tag).
func pickNewest(cands []candidate) (candidate, bool) {
	var best candidate
	found := false
	for _, c := range cands {
		if c.created.IsZero() {
			continue
		}
		if !found || c.created.After(best.created) || (c.created.Equal(best.created) && c.tag > best.tag) {
			best, found = c, true
		}
	}
	return best, found
}
