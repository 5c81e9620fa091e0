package main

import (
	"crypto/ecdsa"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"strata.dev/strata/bundle"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/sign"
	"strata.dev/strata/stages"
)

// Password variables of encrypted signing keys, in order.
var signPasswordEnv = []string{"STRATA_SIGN_PASSWORD", "COSIGN_PASSWORD"}

// loadSigningKey reads a cosign or PEM private key (file or env://NAME); an encrypted key's
// password comes from STRATA_SIGN_PASSWORD, else COSIGN_PASSWORD (an empty value is a password).
func loadSigningKey(source string) (*ecdsa.PrivateKey, error) {
	var password []byte
	for _, v := range signPasswordEnv {
		if p, ok := os.LookupEnv(v); ok {
			password = []byte(p)
			break
		}
	}
	k, err := sign.LoadPrivateKey(source, password)
	if err != nil && strings.Contains(err.Error(), sign.ErrPasswordRequired.Error()) {
		return nil, fmt.Errorf("%w: set %s (or %s)", err, signPasswordEnv[0], signPasswordEnv[1])
	}
	return k, err
}

func loadPublicKeys(sources []string) ([]*ecdsa.PublicKey, error) {
	if len(sources) == 0 {
		return nil, fmt.Errorf("no public key given (--key FILE, e.g. cosign.pub)")
	}
	keys := make([]*ecdsa.PublicKey, len(sources))
	for i, s := range sources {
		k, err := sign.LoadPublicKey(s)
		if err != nil {
			return nil, err
		}
		keys[i] = k
	}
	return keys, nil
}

func parseClaims(kvs []string) (map[string]any, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := map[string]any{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("annotation %q: want KEY=VALUE", kv)
		}
		out[k] = v
	}
	return out, nil
}

func newSignCmd(a *app) *cobra.Command {
	var (
		keyFile string
		claims  []string
		asJSON  bool
	)
	c := &cobra.Command{
		Use:   "sign REF --key FILE",
		Short: "Sign an image or bundle in the registry with a key (cosign's format, offline)",
		Long: `Signs the manifest REF names (REPO:TAG, resolved once, or REPO@DIGEST) and stores the
signature under REPO:sha256-<hex>.sig as cosign does: 'cosign verify --key PUB
--insecure-ignore-tlog' accepts it. --key is a cosign key (cosign generate-key-pair; password
from STRATA_SIGN_PASSWORD or COSIGN_PASSWORD), a PEM ECDSA P-256 private key, or env://NAME
holding either. Signing again with the same key adds nothing. Prints REPO@DIGEST. See docs/signing.md.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := loadSigningKey(keyFile)
			if err != nil {
				return err
			}
			ann, err := parseClaims(claims)
			if err != nil {
				return err
			}
			s, err := sign.Sign(cmd.Context(), args[0], sign.SignOptions{
				Options: sign.Options{Registry: a.registry(), Log: a.log},
				Key:     k, Annotations: ann,
			})
			if err != nil {
				return err
			}
			return a.printResult(asJSON, s, s.Ref)
		},
	}
	f := c.Flags()
	f.StringVar(&keyFile, "key", "", "private key: cosign.key, a PEM ECDSA P-256 key, or env://NAME")
	f.StringArrayVarP(&claims, "annotation", "a", nil, "extra claim KEY=VALUE in the signed payload (repeatable)")
	a.addRegistryFlags(f)
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	_ = c.MarkFlagRequired("key")
	return c
}

func newVerifyCmd(a *app) *cobra.Command {
	var (
		keys   []string
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "verify REF --key PUB",
		Short: "Verify an image's or bundle's signature (cosign's format, offline)",
		Long: `Checks that the manifest REF names (REPO:TAG, resolved once, or REPO@DIGEST) carries a
cosign signature (REPO:sha256-<hex>.sig) by one of the --key public keys over a payload naming
this very digest. No transparency log is consulted. Prints REPO@DIGEST; exits non-zero with the
reason otherwise (not signed, signed by another key, signature for another digest).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pubs, err := loadPublicKeys(keys)
			if err != nil {
				return err
			}
			v, err := sign.Verify(cmd.Context(), args[0], sign.VerifyOptions{
				Options: sign.Options{Registry: a.registry(), Log: a.log}, Keys: pubs,
			})
			if err != nil {
				return err
			}
			return a.printResult(asJSON, v, v.Ref)
		},
	}
	f := c.Flags()
	f.StringArrayVar(&keys, "key", nil, "trusted public key (cosign.pub, PEM) or env://NAME; repeatable: any one suffices")
	a.addRegistryFlags(f)
	f.BoolVar(&asJSON, "json", false, "print the verified signature as JSON")
	return c
}

// bundleVerified is `strata bundle verify --json`'s output.
type bundleVerified struct {
	Bundle *sign.Verified            `json:"bundle"`
	Images map[string]*sign.Verified `json:"images,omitempty"`
}

func newBundleVerifyCmd(a *app) *cobra.Command {
	var (
		keys, imageKeys []string
		images          bool
		asJSON          bool
		maxChartBytes   int64
	)
	c := &cobra.Command{
		Use:   "verify REF --key PUB [--images]",
		Short: "Verify a bundle's signature, and with --images every image of its lock",
		Long: `Checks the bundle REF's cosign signature by one of the --key public keys (see 'strata
verify'). With --images, the bundle is read at the verified digest and every image of its
images lock must carry a valid signature too, by an --image-key (default: the --key keys).
Prints REPO@DIGEST of the bundle.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			pubs, err := loadPublicKeys(keys)
			if err != nil {
				return fmt.Errorf("bundle verify: %w", err)
			}
			so := sign.Options{Registry: a.registry(), Log: a.log}
			v, err := sign.Verify(ctx, strings.TrimPrefix(args[0], "oci://"), sign.VerifyOptions{Options: so, Keys: pubs})
			if err != nil {
				return fmt.Errorf("bundle verify: %w", err)
			}
			res := bundleVerified{Bundle: v}
			if images {
				ipubs := pubs
				if len(imageKeys) > 0 {
					if ipubs, err = loadPublicKeys(imageKeys); err != nil {
						return fmt.Errorf("bundle verify: %w", err)
					}
				}
				tmp, err := os.MkdirTemp("", "strata-verify-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				// read the lock from the digest just verified, not from the tag again
				p, err := bundle.Pull(ctx, bundle.PullOptions{Ref: v.Ref, Dir: filepath.Join(tmp, "chart"),
					Registry: so.Registry, MaxChartBytes: maxChartBytes, Log: a.log})
				if err != nil {
					return fmt.Errorf("bundle verify: %w", err)
				}
				if p.Metadata == nil || len(p.Metadata.Images) == 0 {
					return fmt.Errorf("bundle verify %s: --images: the bundle has no images lock (%s)", v.Ref, bundle.MetadataFile)
				}
				vf, err := sign.NewVerifier(ctx, so)
				if err != nil {
					return err
				}
				res.Images = map[string]*sign.Verified{}
				var mu sync.Mutex
				failed := 0
				err = p.Metadata.EachImage(func(n string, im bundle.Image) error {
					iv, err := vf.Verify(im.Repo+"@"+im.Digest, ipubs...)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						failed++
						return err
					}
					res.Images[n] = iv
					return nil
				})
				if err != nil {
					return fmt.Errorf("bundle verify %s: %d of %d images fail: %w", v.Ref, failed, len(p.Metadata.Images), err)
				}
			}
			return a.printResult(asJSON, res, v.Ref)
		},
	}
	f := c.Flags()
	f.StringArrayVar(&keys, "key", nil, "trusted public key of the bundle (cosign.pub, PEM) or env://NAME; repeatable")
	f.BoolVar(&images, "images", false, "verify every image of the bundle's images lock too")
	f.StringArrayVar(&imageKeys, "image-key", nil, "trusted public key of the images (default: the --key keys); repeatable")
	f.Int64Var(&maxChartBytes, "max-chart-bytes", bundle.DefaultMaxChartBytes, "refuse charts larger than this")
	a.addRegistryFlags(f)
	f.BoolVar(&asJSON, "json", false, "print the verified signatures as JSON")
	return c
}

// publishSigner signs what `bundle publish --sign-key` pushed; a nil one signs nothing.
type publishSigner struct{ key *ecdsa.PrivateKey }

// newPublishSigner loads the key before anything is built or pushed, so a bad key or password
// fails first.
func newPublishSigner(source string) (*publishSigner, error) {
	if source == "" {
		return nil, nil
	}
	k, err := loadSigningKey(source)
	if err != nil {
		return nil, err
	}
	return &publishSigner{key: k}, nil
}

// signedPublish is `bundle publish --json`'s output: the publish result and its signature.
type signedPublish struct {
	*bundle.PublishResult
	Signature *sign.Signed `json:"signature,omitempty"`
}

// sign signs the pushed manifest by digest (also when the tag was unchanged: a signature push
// that failed before is completed by publishing again).
func (p *publishSigner) sign(cmd *cobra.Command, a *app, ro registry.Options, res *bundle.PublishResult) (signedPublish, error) {
	out := signedPublish{PublishResult: res}
	if p == nil {
		return out, nil
	}
	repo := strings.TrimSuffix(res.Ref, ":"+res.Tag)
	s, err := sign.Sign(cmd.Context(), repo+"@"+res.Digest, sign.SignOptions{
		Options: sign.Options{Registry: ro, Log: a.log}, Key: p.key,
	})
	if err != nil {
		return out, fmt.Errorf("bundle publish: %s was published but not signed (publish again to retry): %w", res.Ref, err)
	}
	out.Signature = s
	return out, nil
}

// signedCopy is `bundle copy --json`'s output: the copy result (with the signatures carried
// along) and the destination bundle's new signature.
type signedCopy struct {
	*bundle.CopyResult
	Signature *sign.Signed `json:"signature,omitempty"`
}

// signCopy runs after a bundle copy, which carried the signatures of the images (and of the
// bundle, into an archive, where it is unchanged): the bundle at a registry destination,
// rewritten for its new location, is signed with --sign-key.
func signCopy(cmd *cobra.Command, a *app, o bundle.CopyOptions, res *bundle.CopyResult, signer *publishSigner) (signedCopy, error) {
	out := signedCopy{CopyResult: res}
	if signer == nil {
		return out, nil
	}
	if strings.HasPrefix(o.To, bundle.ArchivePrefix) {
		a.log.Info("the bundle is stored unchanged in the archive, with the signatures it had; --sign-key signs it where it is copied out to", "to", o.To)
		return out, nil
	}
	s, err := sign.Sign(cmd.Context(), refRepo(res.Ref)+"@"+res.Digest, sign.SignOptions{Options: sign.Options{Registry: o.Registry, Log: a.log}, Key: signer.key})
	if err != nil {
		return out, fmt.Errorf("bundle copy: %s was copied but not signed (copy again to retry): %w", res.Ref, err)
	}
	out.Signature = s
	return out, nil
}

// refRepo is the repository of REPO[:TAG][@DIGEST].
func refRepo(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

// signImages signs every final image of a build report (strata build --sign-key); a nil
// signer signs nothing.
func (p *publishSigner) signImages(cmd *cobra.Command, a *app, ro registry.Options, rep *stages.Report) error {
	if p == nil {
		return nil
	}
	for _, im := range rep.Images {
		if _, err := sign.Sign(cmd.Context(), im.Repo+"@"+im.ManifestDigest, sign.SignOptions{
			Options: sign.Options{Registry: ro, Log: a.log}, Key: p.key,
		}); err != nil {
			return fmt.Errorf("build: image %s was built but not signed (build again to retry): %w", im.Name, err)
		}
	}
	return nil
}
