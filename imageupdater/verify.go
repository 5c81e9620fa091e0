package imageupdater

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"oras.land/oras-go/v2/registry/remote/auth"

	"strata.dev/strata/bundle"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/sign"
)

// reasonRefused is the Warning Event reason of a candidate bundle the verification policy refused.
const reasonRefused = "BundleSignatureRefused"

// decideVerified is decide under the verification policy (Options.VerifyPolicy): a candidate
// whose bundle (or, with images: true, one of its images) is not signed as the policy requires is
// refused, and the next best candidate is decided, until one passes or none is left. The
// Application is never moved to a refused candidate; decision.refused names each one and why.
func (c *controller) decideVerified(ctx context.Context, cyc *cycle, app *unstructured.Unstructured) (decision, error) {
	refused := map[string]bool{}
	var why []string
	for {
		d, err := c.decide(ctx, cyc, app, refused)
		d.refused = why
		if err != nil {
			var ce *checkError
			if len(why) > 0 && errors.As(err, &ce) && ce.reason == reasonNoTag {
				d.target = "" // every candidate was refused: stay where it is
				return d, nil
			}
			return d, err
		}
		if c.policy == nil || d.target == "" || d.target == d.source.current {
			return d, nil
		}
		err = c.verifyCandidate(ctx, cyc, d)
		if err == nil {
			return d, nil
		}
		if !refusal(err) {
			return d, fail(reasonRegistry, fmt.Errorf("verify the signature of %s: %w", d.target, err))
		}
		refused[d.target] = true
		why = append(why, fmt.Sprintf("%s %s refused: %v", d.source.repository, d.target, err))
		c.log.Warn("candidate bundle refused by the verification policy", "application", app.GetNamespace()+"/"+app.GetName(), "repository", d.source.repository, "revision", d.target, "error", err)
	}
}

// refusal reports whether err says the bundle is not signed as required (rather than that the
// registry failed, which is retried).
func refusal(err error) bool {
	return errors.Is(err, sign.ErrNotSigned) || errors.Is(err, sign.ErrUntrusted) || errors.Is(err, sign.ErrPolicyRefused)
}

// verifyCandidate applies the policy to the bundle d.target names (chart version, tag or digest
// of d.source.repository): its signature, and with images: true those of its images. The
// registries are reached as the check reaches them: same credentials, rate limits, insecure list.
func (c *controller) verifyCandidate(ctx context.Context, cyc *cycle, d decision) error {
	repo, rev := d.source.repository, d.target
	rule, err := c.policy.For(repo)
	if err != nil || rule == nil || rule.Skip {
		return err
	}
	ref := repo + ":" + strings.ReplaceAll(rev, "+", "_")
	if strings.HasPrefix(rev, "sha256:") {
		ref = repo + "@" + rev
	}
	ro := c.verifyRegistry(ctx, cyc, hostOf(repo), d.pullSecret)
	vf, err := sign.NewVerifier(ctx, sign.Options{Registry: ro, Log: c.log})
	if err != nil {
		return err
	}
	v, err := vf.Verify(ref, rule.BundleKeys...)
	if err != nil {
		return fmt.Errorf("%s: %w", rule.Where, err)
	}
	if !rule.Images {
		return nil
	}
	tmp, err := os.MkdirTemp("", "strata-updater-verify-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	p, err := bundle.Pull(ctx, bundle.PullOptions{Ref: v.Ref, Dir: filepath.Join(tmp, "chart"), Registry: ro})
	if err != nil {
		return fmt.Errorf("read the verified bundle %s: %w", v.Ref, err)
	}
	if p.Metadata == nil {
		return fmt.Errorf("%s (images: true): %w: %s carries no Strata metadata, so no images lock to verify", rule.Where, sign.ErrUntrusted, v.Ref)
	}
	err = p.Metadata.EachImage(func(_ string, im bundle.Image) error {
		_, err := vf.Verify(im.Repo+"@"+im.Digest, rule.ImagePublicKeys...)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s (images: true): %w", rule.Where, err)
	}
	return nil
}

// verifyRegistry is how verification reaches registries: the check's credentials (the
// Application's pull-secret for the bundle's registry, else the registries config's, else the
// docker config) and rate limits, plus the policy's insecure registries.
func (c *controller) verifyRegistry(ctx context.Context, cyc *cycle, bundleHost, pullSecret string) registry.Options {
	ro := cyc.ra.opts
	ro.Insecure = append(append([]string(nil), ro.Insecure...), c.policy.InsecureRegistries...)
	ro.Keychain = cycleKeychain{ctx: ctx, cyc: cyc, bundleHost: bundleHost, pullSecret: pullSecret}
	base := ro.Transport
	if base == nil {
		base = remote.DefaultTransport
	}
	ro.Transport = &limitedTransport{ra: cyc.ra, base: base}
	return ro
}

// cycleKeychain gives go-containerregistry (package sign) the credentials the cycle resolves;
// the Application's pull-secret is for the bundle's registry only (images may live elsewhere).
type cycleKeychain struct {
	ctx                    context.Context
	cyc                    *cycle
	bundleHost, pullSecret string
}

func (k cycleKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	host, ps := r.RegistryStr(), ""
	if strings.EqualFold(host, k.bundleHost) {
		ps = k.pullSecret
	}
	cred, err := k.cyc.credential(k.ctx, k.cyc.ra.credentialKey(ps, host), host)
	if err != nil {
		return nil, err
	}
	if cred == auth.EmptyCredential {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(authn.AuthConfig{Username: cred.Username, Password: cred.Password, IdentityToken: cred.RefreshToken, RegistryToken: cred.AccessToken}), nil
}
