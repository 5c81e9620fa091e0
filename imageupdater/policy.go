package imageupdater

import (
	"context"
	"fmt"
	"maps"
	"path"
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
)

// Annotations read on Applications. The argocd-image-updater.argoproj.io/ keys are compatible with
// upstream argocd-image-updater and its chart-version patch; strata.dev/ keys are Strata's own.
const (
	upstreamPrefix = "argocd-image-updater.argoproj.io/"

	AnnotationImageList        = upstreamPrefix + "image-list"
	AnnotationChartVersion     = upstreamPrefix + "chart-version"
	AnnotationBundleConstraint = "strata.dev/bundle-constraint"
	AnnotationBundleSource     = "strata.dev/bundle-source"
	AnnotationAllowDowngrade   = "strata.dev/allow-downgrade"
	AnnotationUpdateStrategy   = upstreamPrefix + "update-strategy"
	AnnotationAllowTags        = upstreamPrefix + "allow-tags"
	AnnotationIgnoreTags       = upstreamPrefix + "ignore-tags"
	AnnotationForceUpdate      = upstreamPrefix + "force-update"
	AnnotationPullSecret       = upstreamPrefix + "pull-secret"
	AnnotationWriteBackMethod  = upstreamPrefix + "write-back-method"
)

// aliasOptions are the options an image-list alias may scope (<alias>.<option>); the alias-scoped
// key wins over the app-wide one.
var aliasOptions = []string{"update-strategy", "allow-tags", "ignore-tags", "pull-secret", "force-update"}

// topLevelOptions are the argocd-image-updater.argoproj.io/<option> keys the updater reads; any
// other key under that prefix without an alias is reported as ignored (a typo changes nothing
// silently otherwise).
var topLevelOptions = []string{"allow-tags", "chart-version", "force-update", "git-branch", "git-repository", "ignore-tags",
	"image-list", "pull-secret", "update-strategy", "write-back-method", "write-back-target"}

// Strategy names how the best tag is chosen.
type Strategy string

// Update strategies (upstream names; aliases are accepted when parsing).
const (
	StrategySemver       Strategy = "semver"
	StrategyNewestBuild  Strategy = "newest-build"
	StrategyDigest       Strategy = "digest"
	StrategyAlphabetical Strategy = "alphabetical"
)

// strategyNames maps every accepted name, lower case, to its strategy (upstream's aliases:
// latest = newest-build, name = alphabetical).
var strategyNames = map[string]Strategy{
	"": StrategySemver, "semver": StrategySemver,
	"newest-build": StrategyNewestBuild, "latest": StrategyNewestBuild,
	"digest":       StrategyDigest,
	"alphabetical": StrategyAlphabetical, "name": StrategyAlphabetical,
}

// policy is what an Application's annotations ask for.
type policy struct {
	constraint string // raw constraint annotation value
	semver     *semver.Constraints
	strategy   Strategy
	allow      *regexp.Regexp // nil: every tag
	ignore     []string       // globs
	downgrade  bool           // strata.dev/allow-downgrade
	pullSecret string
	writeBack  writeBack
	warnings   []string // annotations ignored, each named
}

// optedIn reports whether the Application carries one of the opt-in annotations.
func optedIn(ann map[string]string) bool {
	for _, k := range []string{AnnotationChartVersion, AnnotationBundleConstraint, AnnotationImageList} {
		if _, ok := ann[k]; ok {
			return true
		}
	}
	return false
}

// MaxImageListBytes bounds the image-list annotation (the other values: MaxAnnotationBytes).
const MaxImageListBytes = 16 << 10

// imageSpec is one item of image-list: [<alias>=]<image>[:<constraint>].
type imageSpec struct {
	alias, image, constraint string
}

// parseImageList reads upstream's image-list annotation.
func parseImageList(v string) ([]imageSpec, error) {
	if len(v) > MaxImageListBytes {
		return nil, fmt.Errorf("annotation %s: value of %d bytes: at most %d are allowed", AnnotationImageList, len(v), MaxImageListBytes)
	}
	var out []imageSpec
	seen := map[string]bool{}
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		var s imageSpec
		if a, rest, ok := strings.Cut(item, "="); ok {
			s.alias, item = strings.TrimSpace(a), strings.TrimSpace(rest)
			if s.alias == "" {
				return nil, fmt.Errorf("annotation %s: %q: empty alias before '='", AnnotationImageList, item)
			}
			if seen[s.alias] {
				return nil, fmt.Errorf("annotation %s: alias %q used twice", AnnotationImageList, s.alias)
			}
			seen[s.alias] = true
		}
		s.image = item
		// A constraint follows the last ':' after the last '/' (a ':' before it is a port).
		if i := strings.LastIndex(item, ":"); i > strings.LastIndex(item, "/") {
			s.image, s.constraint = item[:i], strings.TrimSpace(item[i+1:])
		}
		if s.image == "" {
			return nil, fmt.Errorf("annotation %s: %q names no image", AnnotationImageList, item)
		}
		out = append(out, s)
	}
	return out, nil
}

// aliasKey is the annotation key of option for alias ('/' in an alias is written '_', as
// upstream does: Kubernetes annotation names allow one '/').
func aliasKey(alias, option string) string {
	return upstreamPrefix + strings.ReplaceAll(alias, "/", "_") + "." + option
}

// option returns the value of option: <alias>.<option> when set, else the app-wide key.
func option(ann map[string]string, alias, opt string) (key, value string, ok bool) {
	if alias != "" {
		if v, ok := ann[aliasKey(alias, opt)]; ok {
			return aliasKey(alias, opt), v, true
		}
	}
	v, ok := ann[upstreamPrefix+opt]
	return upstreamPrefix + opt, v, ok
}

// Limits on what one Application can ask of the updater. Every tag of a repository is matched
// against an Application's allow-tags expression in each cycle, so its size bounds the time one
// Application can take from the others (the check deadline bounds the rest).
const (
	// MaxAnnotationBytes bounds every annotation value the updater parses but image-list.
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

// parsePolicy reads the annotations for the bundle the image-list entry spec names (nil: no
// entry, app-wide keys only). Errors name the annotation and the bad value.
func parsePolicy(ann map[string]string, spec *imageSpec) (*policy, error) {
	// in key order: with several over the limit, the error (and the Event it becomes) is the
	// same every cycle
	for _, k := range slices.Sorted(maps.Keys(ann)) {
		if v := ann[k]; k != AnnotationImageList && (strings.HasPrefix(k, upstreamPrefix) || strings.HasPrefix(k, "strata.dev/")) && len(v) > MaxAnnotationBytes {
			return nil, fmt.Errorf("annotation %s: value of %d bytes: at most %d are allowed", k, len(v), MaxAnnotationBytes)
		}
	}
	p := &policy{strategy: StrategySemver}
	alias := ""
	key := AnnotationBundleConstraint
	c, ok := ann[key]
	if !ok {
		key = AnnotationChartVersion
		c = ann[key]
	}
	if spec != nil {
		alias = spec.alias
		if spec.constraint != "" {
			key, c = AnnotationImageList, spec.constraint
		}
	}
	p.constraint = strings.TrimSpace(c)
	if k, s, ok := option(ann, alias, "update-strategy"); ok {
		st, known := strategyNames[strings.ToLower(strings.TrimSpace(s))]
		if !known {
			return nil, fmt.Errorf("annotation %s: unknown strategy %q (want semver, newest-build (latest), digest or alphabetical (name))", k, s)
		}
		p.strategy = st
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
	if k, a, ok := option(ann, alias, "allow-tags"); ok {
		a = strings.TrimSpace(a)
		switch {
		case a == "any" || a == "":
		case strings.HasPrefix(a, "regexp:"):
			re, err := compileTagPattern(strings.TrimPrefix(a, "regexp:"))
			if err != nil {
				return nil, fmt.Errorf("annotation %s: %w", k, err)
			}
			p.allow = re
		default:
			return nil, fmt.Errorf("annotation %s: %q is neither \"any\" nor \"regexp:<expression>\"", k, a)
		}
	}
	if k, v, ok := option(ann, alias, "ignore-tags"); ok {
		for _, g := range strings.Split(v, ",") {
			if g = strings.TrimSpace(g); g == "" {
				continue
			}
			if _, err := path.Match(g, ""); err != nil {
				return nil, fmt.Errorf("annotation %s: glob %q: %w", k, g, err)
			}
			p.ignore = append(p.ignore, g)
		}
	}
	force, err := boolOption(option(ann, alias, "force-update"))
	if err != nil {
		return nil, err
	}
	p.downgrade, err = boolOption(AnnotationAllowDowngrade, ann[AnnotationAllowDowngrade], true)
	if err != nil {
		return nil, err
	}
	if force && !p.downgrade {
		k, _, _ := option(ann, alias, "force-update")
		p.warnings = append(p.warnings, fmt.Sprintf("annotation %s: upstream's force-update updates an image the Application does not use yet; a bundle source is always in use, so it changes nothing (to allow going back to a lower version, set %s: \"true\")", k, AnnotationAllowDowngrade))
	}
	wb, wbWarnings, err := parseWriteBack(ann, alias)
	if err != nil {
		return nil, err
	}
	p.writeBack = wb
	p.warnings = append(p.warnings, wbWarnings...)
	if k, v, ok := option(ann, alias, "pull-secret"); ok {
		p.pullSecret = strings.TrimSpace(v)
		if p.pullSecret != "" {
			if _, err := parseCredentialSource(p.pullSecret); err != nil {
				return nil, fmt.Errorf("annotation %s: %w", k, err)
			}
		}
	}
	p.warnings = append(p.warnings, aliasWarnings(ann, spec, wb)...)
	return p, nil
}

func boolOption(key, v string, ok bool) (bool, error) {
	if !ok {
		return false, nil
	}
	switch strings.TrimSpace(strings.ToLower(v)) {
	case "true":
		return true, nil
	case "false", "":
		return false, nil
	}
	return false, fmt.Errorf("annotation %s: %q is neither true nor false", key, v)
}

// aliasWarnings names the annotations under argocd-image-updater.argoproj.io/ that change
// nothing: an option the updater does not know, an option for an alias image-list does not
// define, or an upstream option with no meaning for a bundle source (helm.*, kustomize.*,
// platforms) on the bundle's alias.
func aliasWarnings(ann map[string]string, spec *imageSpec, wb writeBack) []string {
	aliases := map[string]bool{}
	if specs, err := parseImageList(ann[AnnotationImageList]); err == nil {
		for _, s := range specs {
			if s.alias != "" {
				aliases[strings.ReplaceAll(s.alias, "/", "_")] = true
			}
		}
	}
	var out []string
	for k := range ann {
		rest, ok := strings.CutPrefix(k, upstreamPrefix)
		if !ok {
			continue
		}
		alias, opt, ok := strings.Cut(rest, ".")
		if !ok {
			if !slices.Contains(topLevelOptions, rest) {
				out = append(out, fmt.Sprintf("annotation %s: not an option of the image updater (known: %s, or <alias>.<option>): ignored", k, strings.Join(topLevelOptions, ", ")))
			}
			continue
		}
		switch {
		case slices.Contains(aliasOptions, opt) && !aliases[alias]:
			out = append(out, fmt.Sprintf("annotation %s: alias %q is not defined by %s: ignored", k, alias, AnnotationImageList))
		case opt == "helm.image-tag" && wb.target == targetHelmValues:
			// the values key a helmvalues target writes the revision to
		case spec != nil && spec.alias != "" && alias == strings.ReplaceAll(spec.alias, "/", "_") && !slices.Contains(aliasOptions, opt):
			out = append(out, fmt.Sprintf("annotation %s: %s has no meaning for a bundle source (Strata moves its targetRevision): ignored", k, opt))
		}
	}
	sort.Strings(out)
	return out
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
