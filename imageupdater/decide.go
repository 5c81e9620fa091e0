package imageupdater

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"strata.dev/strata/sign"
)

// Event reasons of a check's outcome.
const (
	reasonUpdated    = "BundleUpdated"
	reasonInvalid    = "InvalidBundleAnnotation"
	reasonRegistry   = "BundleRegistryError"
	reasonNoTag      = "NoMatchingBundle"
	reasonWriteError = "BundleUpdateFailed"
	reasonTimeout    = "BundleCheckTimeout"
	reasonIgnored    = "IgnoredBundleAnnotation"
)

// checkError is a failed check with the Event reason it is reported under.
type checkError struct {
	reason string
	err    error
}

func (e *checkError) Error() string { return e.err.Error() }
func (e *checkError) Unwrap() error { return e.err }

func fail(reason string, err error) error { return &checkError{reason: reason, err: err} }

// retryable reports whether a failed check may pass without an edit of the Application: the
// registry or the apiserver failed, or the check ran out of time. A bad annotation or a
// constraint no tag satisfies waits for an edit, a push or the next cycle.
func retryable(err error) bool {
	var ce *checkError
	if !errors.As(err, &ce) {
		return true
	}
	switch ce.reason {
	case reasonInvalid, reasonNoTag:
		return false
	}
	return true
}

// decision is what a check concluded for one Application.
type decision struct {
	source   bundleSource
	target   string // new targetRevision; "" or == source.current: nothing to do
	why      string
	warnings []string // annotations ignored, each named
	refused  []string // candidates the verification policy refused, each with why (verify.go)
	// pullSecret is the Application's credential source for the bundle repository ("" none)
	pullSecret string
	writeBack  writeBack // how the target is written (in the cluster, or to git)
	alias      string    // the image-list alias of the bundle ("" none)
}

// decide computes the targetRevision app should have, never one of refused (targetRevisions the
// verification policy refused). It reads only the registry (through cyc) and gives up when ctx ends.
func (c *controller) decide(ctx context.Context, cyc *cycle, app *unstructured.Unstructured, refused map[string]bool) (decision, error) {
	t, ok, err := selectTarget(app)
	if err != nil {
		return decision{}, fail(reasonInvalid, err)
	}
	if !ok {
		return decision{}, nil // image-list names container images only: upstream's, not Strata's
	}
	src := t.source
	p, err := parsePolicy(app.GetAnnotations(), t.spec)
	if err != nil {
		return decision{}, fail(reasonInvalid, err)
	}
	d := decision{source: src, warnings: p.warnings, pullSecret: p.pullSecret, writeBack: p.writeBack}
	if t.spec != nil {
		d.alias = t.spec.alias
	}
	if !d.writeBack.git {
		if w := c.revertWarning(app); w != "" {
			d.warnings = append(d.warnings, w)
		}
	}
	if p.strategy == StrategyDigest {
		if !src.oci {
			return d, fail(reasonInvalid, fmt.Errorf("the digest strategy pins a digest, which only oci:// sources accept (source %s is a Helm chart source)", src.repository))
		}
		mi, err := cyc.manifest(ctx, src.repository, p.constraint, p.pullSecret)
		if err != nil {
			return d, fail(reasonRegistry, err)
		}
		d.target, d.why = mi.digest, "tag "+p.constraint+" points at "+mi.digest
		if refused[d.target] {
			d.target = src.current
		}
		return d, nil
	}
	all, err := cyc.tags(ctx, src.repository, p.pullSecret)
	if err != nil {
		return d, fail(reasonRegistry, err)
	}
	tags, err := p.allowedTags(ctx, all)
	if err != nil {
		return d, err
	}
	kept := tags[:0:0]
	for _, t := range tags {
		if !refused[src.revisionFor(t)] && !signatureTag(t) {
			kept = append(kept, t)
		}
	}
	tags = kept
	cur := src.currentTag()
	switch p.strategy {
	case StrategySemver:
		best, ok := p.pickSemver(tags)
		if !ok {
			return d, fail(reasonNoTag, fmt.Errorf("no tag of %s satisfies %q (%d tags)", src.repository, p.constraint, len(all)))
		}
		d.target, d.why = src.revisionFor(best.tag), "highest version satisfying "+strconvQuote(p.constraint)
		if cv, err := semverOf(cur); err == nil && !p.downgrade && !best.version.GreaterThan(cv) {
			d.target = src.current // never downgrade, and 1.0.0 == 1.0.0+x stays put
		}
	case StrategyAlphabetical:
		best, ok := pickAlphabetical(filterConstraint(p, tags))
		if !ok {
			return d, fail(reasonNoTag, fmt.Errorf("no allowed tag in %s (%d tags)", src.repository, len(all)))
		}
		d.target, d.why = src.revisionFor(best.tag), "alphabetically last tag"
		if cur != "" && !p.downgrade && best.tag <= cur {
			d.target = src.current
		}
	case StrategyNewestBuild:
		var cands []candidate
		for _, t := range filterConstraint(p, tags) {
			mi, err := cyc.manifest(ctx, src.repository, t, p.pullSecret)
			if err != nil {
				return d, fail(reasonRegistry, err)
			}
			cands = append(cands, candidate{tag: t, created: mi.created})
		}
		best, ok := pickNewest(cands)
		if !ok {
			return d, fail(reasonNoTag, fmt.Errorf("no allowed tag of %s has the annotation org.opencontainers.image.created (%d tags)", src.repository, len(all)))
		}
		d.target, d.why = src.revisionFor(best.tag), "newest build ("+best.created.Format(time.RFC3339)+")"
		if cur != "" && cur != best.tag && !p.downgrade {
			if mi, err := cyc.manifest(ctx, src.repository, cur, p.pullSecret); err == nil && !mi.created.IsZero() && !best.created.After(mi.created) {
				d.target = src.current
			}
		}
	}
	return d, nil
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

func semverOf(tag string) (*semver.Version, error) {
	if tag == "" {
		return nil, fmt.Errorf("no tag")
	}
	if v, err := versionOf(tag); err == nil {
		return v, nil
	}
	return semver.NewVersion(strings.ReplaceAll(tag, "_", "+")) // loose forms such as v1.2
}

// filterConstraint keeps the tags a semver constraint admits, for strategies other than semver:
// "", "*" and "latest" admit every tag; otherwise only semver tags within the constraint.
func filterConstraint(p *policy, tags []string) []string {
	if p.constraint == "" || p.constraint == "*" || p.constraint == "latest" || p.semver == nil {
		return tags
	}
	var out []string
	for _, t := range tags {
		if v, err := versionOf(t); err == nil && p.semver.Check(v) {
			out = append(out, t)
		}
	}
	return out
}

// signatureTag reports whether tag is one of cosign's tags for a manifest's signatures,
// attestations or SBOM (sha256-<hex>.sig, .att, .sbom): never a bundle to move to.
func signatureTag(tag string) bool {
	_, _, ok := sign.AttachedTo(tag)
	return ok
}
