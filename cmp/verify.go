package cmp

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"strata.dev/strata/bundle"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/sign"
)

// EnvVerifyKey is the plugin env entry (Application spec.source.plugin.env, name
// STRATA_VERIFY_KEY) holding a PEM public key: the bundle must also be signed by it. An
// Application can only add this requirement; the sidecar's policy still applies.
const EnvVerifyKey = "ARGOCD_ENV_STRATA_VERIFY_KEY"

// verification is what the policy and the Application require of one bundle.
type verification struct {
	repo, ref  string
	rule       *sign.Rule
	appKey     *ecdsa.PublicKey
	registry   registry.Options
	policyFile string
}

// verifiedDir applies the verification policy (Options.VerifyPolicy) and the Application's
// STRATA_VERIFY_KEY to the bundle. With nothing to verify it returns Options.Dir. Otherwise the
// bundle's signature is checked in the registry, and what is rendered is exactly what was
// signed: Options.Dir when its files hash to the content digest the signed manifest carries
// (bundles Strata published), else the bundle read again at the verified digest into a
// temporary directory (removed by done), which must carry the same metadata as Options.Dir.
// With images: true every image of the lock must be signed too.
func verifiedDir(ctx context.Context, o Options, m *bundle.Metadata, req *Request) (dir string, done func(), err error) {
	v, err := planVerification(o, m, req)
	if err != nil || v == nil {
		return o.Dir, func() {}, err
	}
	return v.run(ctx, o, m)
}

func planVerification(o Options, m *bundle.Metadata, req *Request) (*verification, error) {
	v := &verification{policyFile: o.VerifyPolicy}
	var policy *sign.Policy
	if o.VerifyPolicy != "" {
		p, err := sign.LoadPolicy(o.VerifyPolicy)
		if err != nil {
			return nil, err
		}
		policy = p
		v.registry.Insecure = p.InsecureRegistries
	}
	if pemKey := lookupEnv(o.Environ, EnvVerifyKey); pemKey != "" {
		k, err := sign.ParsePublicKey([]byte(pemKey))
		if err != nil {
			return nil, fmt.Errorf("plugin env STRATA_VERIFY_KEY: %w", err)
		}
		v.appKey = k
	}
	if policy == nil && v.appKey == nil {
		return nil, nil
	}
	repo, ref, err := bundleLocation(req, m)
	if err != nil {
		return nil, fmt.Errorf("cannot verify the bundle's signature: %w", err)
	}
	v.repo, v.ref = repo, ref
	if policy != nil {
		if v.rule, err = policy.For(repo); err != nil {
			return nil, err
		}
		if v.rule != nil && v.rule.Skip {
			v.rule = nil
		}
	}
	if v.rule == nil && v.appKey == nil {
		return nil, nil
	}
	return v, nil
}

// bundleLocation is where Argo CD took the bundle from: an oci:// source names the repository
// and passes the resolved digest as the revision; a Helm-OCI source (repoURL + chart) names
// the registry path, the chart name is the repository's last element and the version its tag.
func bundleLocation(req *Request, m *bundle.Metadata) (repo, ref string, err error) {
	if req.RepoURL == "" {
		return "", "", errors.New("the Application's source names no registry repository (ARGOCD_APP_SOURCE_REPO_URL is empty)")
	}
	_, tag, err := bundle.ChartVersion(m.Version)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", bundle.MetadataFile, err)
	}
	if r, ok := strings.CutPrefix(req.RepoURL, "oci://"); ok {
		repo = strings.TrimSuffix(r, "/")
		if strings.HasPrefix(req.Revision, "sha256:") {
			return repo, repo + "@" + req.Revision, nil
		}
		return repo, repo + ":" + tag, nil
	}
	repo = strings.TrimSuffix(req.RepoURL, "/") + "/" + m.Chart
	return repo, repo + ":" + tag, nil
}

func (v *verification) run(ctx context.Context, o Options, m *bundle.Metadata) (string, func(), error) {
	vf, err := sign.NewVerifier(ctx, sign.Options{Registry: v.registry})
	if err != nil {
		return "", nil, err
	}
	// the images are checked while the bundle is: their result only counts once the bundle's
	// signature, and that the lock is the signed one, are established below
	images := make(chan error, 1)
	if v.rule != nil && v.rule.Images {
		go func() { images <- verifyImages(vf, m, v.rule) }()
	} else {
		images <- nil
	}
	var verified *sign.Verified
	if v.rule != nil {
		if verified, err = vf.Verify(v.ref, v.rule.BundleKeys...); err != nil {
			return "", nil, fmt.Errorf("refused by %s: %w", v.rule.Where, err)
		}
	}
	if v.appKey != nil {
		ref := v.ref
		if verified != nil {
			ref = verified.Ref // the same digest, not the tag again
		}
		if verified, err = vf.Verify(ref, v.appKey); err != nil {
			return "", nil, fmt.Errorf("refused by the Application's STRATA_VERIFY_KEY: %w", err)
		}
	}
	dir, done := o.Dir, func() {}
	cd := verified.Annotations[bundle.AnnotationContentDigest]
	if got, err := bundle.DirContentDigest(o.Dir, o.MaxChartBytes); cd == "" || err != nil || got != cd {
		if dir, done, err = pullVerified(ctx, o, m, verified.Ref, v.registry); err != nil {
			return "", nil, err
		}
	}
	if err := <-images; err != nil {
		done()
		return "", nil, err
	}
	return dir, done, nil
}

// pullVerified reads the bundle at the verified digest into a temporary directory; its
// metadata must be the one of the directory Argo CD handed over.
func pullVerified(ctx context.Context, o Options, m *bundle.Metadata, ref string, ro registry.Options) (string, func(), error) {
	tmp, err := os.MkdirTemp("", "strata-cmp-verified-")
	if err != nil {
		return "", nil, err
	}
	done := func() { os.RemoveAll(tmp) }
	dir := filepath.Join(tmp, "chart")
	p, err := bundle.Pull(ctx, bundle.PullOptions{Ref: ref, Dir: dir, Registry: ro, MaxChartBytes: o.MaxChartBytes})
	if err != nil {
		done()
		return "", nil, fmt.Errorf("read the verified bundle: %w", err)
	}
	if p.Metadata == nil || !reflect.DeepEqual(p.Metadata, m) {
		done()
		got := "none"
		if p.Metadata != nil {
			got = fmt.Sprintf("commit %s, created %s", p.Metadata.Commit.Hash, p.Metadata.Created.Format(time.RFC3339))
		}
		return "", nil, fmt.Errorf("the bundle Argo CD handed over (commit %s, created %s) is not the signed %s (%s): the tag moved since Argo CD fetched it; hard-refresh the Application",
			m.Commit.Hash, m.Created.Format(time.RFC3339), ref, got)
	}
	return dir, done, nil
}

// verifyImages checks, concurrently, that every image of the lock is signed by the rule's image keys.
func verifyImages(vf *sign.Verifier, m *bundle.Metadata, rule *sign.Rule) error {
	err := m.EachImage(func(_ string, im bundle.Image) error {
		_, err := vf.Verify(im.Repo+"@"+im.Digest, rule.ImagePublicKeys...)
		return err
	})
	if err != nil {
		return fmt.Errorf("refused by %s (images: true): %w", rule.Where, err)
	}
	return nil
}

func lookupEnv(environ []string, key string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}
