package sign

import (
	"bytes"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Policy says which keys must have signed the bundles (and their images) of each repository.
// It is read from a YAML file the platform controls (the sidecar's configuration, never an
// Application's): the first rule whose pattern matches the bundle repository applies.
//
//	rules:
//	  - repositories: ["registry.example.com/team-a/**"]
//	    keys: [team-a.pub]        # files (relative to the policy file) or inline PEM
//	    images: true              # every image of the bundle's lock must be signed too
//	    imageKeys: [ci.pub]       # by these keys (default: keys)
//	  - repositories: ["registry.example.com/sandbox/*"]
//	    skip: true                # no signature required
//	unmatched: refuse             # or allow; default refuse
//	insecureRegistries: []        # reached over plain HTTP (loopback always is)
type Policy struct {
	Rules              []Rule   `yaml:"rules"`
	Unmatched          string   `yaml:"unmatched"`
	InsecureRegistries []string `yaml:"insecureRegistries"`

	file string
}

// Rule is one entry of a Policy.
type Rule struct {
	// Repositories are patterns over REGISTRY/PATH/NAME: "*" matches within a path element,
	// "**" across elements, "?" one character.
	Repositories []string `yaml:"repositories"`
	// Skip requires no signature for the matched repositories.
	Skip bool `yaml:"skip"`
	// Keys are the trusted public keys of the bundle: file paths or inline PEM.
	Keys []string `yaml:"keys"`
	// Images requires every image of the bundle's lock to be signed by ImageKeys (default Keys).
	Images    bool     `yaml:"images"`
	ImageKeys []string `yaml:"imageKeys"`

	// Where names the rule in messages: "FILE: rules[i] (line N)".
	Where string `yaml:"-"`
	// BundleKeys and ImagePublicKeys are the loaded keys.
	BundleKeys      []*ecdsa.PublicKey `yaml:"-"`
	ImagePublicKeys []*ecdsa.PublicKey `yaml:"-"`

	patterns []*regexp.Regexp
}

// ErrPolicyRefused: the policy matches no rule for the repository and refuses unmatched ones.
var ErrPolicyRefused = errors.New("the verification policy names no rule for this repository")

// LoadPolicy reads and checks a policy file, loading every key it names.
func LoadPolicy(file string) (*Policy, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("verification policy: %w", err)
	}
	p, err := ParsePolicy(b, file)
	if err != nil {
		return nil, fmt.Errorf("verification policy %w", err)
	}
	return p, nil
}

// ParsePolicy decodes a policy; file names it in errors and anchors relative key paths.
func ParsePolicy(b []byte, file string) (*Policy, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	p := &Policy{file: file}
	if err := dec.Decode(p); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	switch p.Unmatched {
	case "":
		p.Unmatched = "refuse"
	case "refuse", "allow":
	default:
		return nil, fmt.Errorf("%s: unmatched: %q, want refuse or allow", file, p.Unmatched)
	}
	lines := ruleLines(&doc)
	for i := range p.Rules {
		r := &p.Rules[i]
		r.Where = fmt.Sprintf("%s: rules[%d]", file, i)
		if i < len(lines) {
			r.Where += fmt.Sprintf(" (line %d)", lines[i])
		}
		if err := r.load(filepath.Dir(file)); err != nil {
			return nil, fmt.Errorf("%s: %w", r.Where, err)
		}
	}
	return p, nil
}

// ruleLines returns the line of each entry of the top-level "rules" sequence.
func ruleLines(doc *yaml.Node) []int {
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "rules" {
			var out []int
			for _, n := range m.Content[i+1].Content {
				out = append(out, n.Line)
			}
			return out
		}
	}
	return nil
}

func (r *Rule) load(dir string) error {
	if len(r.Repositories) == 0 {
		return errors.New("repositories: at least one pattern is required")
	}
	for j, pat := range r.Repositories {
		re, err := globRegexp(pat)
		if err != nil {
			return fmt.Errorf("repositories[%d] %q: %w", j, pat, err)
		}
		r.patterns = append(r.patterns, re)
	}
	if r.Skip {
		if len(r.Keys) > 0 || r.Images || len(r.ImageKeys) > 0 {
			return errors.New("skip: true takes no keys, images or imageKeys")
		}
		return nil
	}
	if len(r.Keys) == 0 {
		return errors.New("keys: at least one public key is required (or skip: true)")
	}
	var err error
	if r.BundleKeys, err = loadKeys(dir, "keys", r.Keys); err != nil {
		return err
	}
	r.ImagePublicKeys = r.BundleKeys
	if len(r.ImageKeys) > 0 {
		if !r.Images {
			return errors.New("imageKeys given without images: true")
		}
		if r.ImagePublicKeys, err = loadKeys(dir, "imageKeys", r.ImageKeys); err != nil {
			return err
		}
	}
	return nil
}

func loadKeys(dir, field string, srcs []string) ([]*ecdsa.PublicKey, error) {
	out := make([]*ecdsa.PublicKey, len(srcs))
	for i, s := range srcs {
		var err error
		if strings.HasPrefix(strings.TrimSpace(s), "-----BEGIN") {
			out[i], err = ParsePublicKey([]byte(s))
		} else {
			if !filepath.IsAbs(s) && !strings.HasPrefix(s, EnvKeyPrefix) {
				s = filepath.Join(dir, s)
			}
			out[i], err = LoadPublicKey(s)
		}
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", field, i, err)
		}
	}
	return out, nil
}

// globRegexp turns a repository pattern into an anchored regexp.
func globRegexp(pat string) (*regexp.Regexp, error) {
	pat = strings.TrimPrefix(pat, "oci://")
	if pat == "" {
		return nil, errors.New("empty pattern")
	}
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(pat); i++ {
		switch c := pat[i]; {
		case c == '*' && i+1 < len(pat) && pat[i+1] == '*':
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// For returns the rule that applies to repository REGISTRY/PATH/NAME: the first matching one;
// nil with no error when none matches and unmatched repositories are allowed.
func (p *Policy) For(repo string) (*Rule, error) {
	repo = strings.TrimPrefix(repo, "oci://")
	for i := range p.Rules {
		for _, re := range p.Rules[i].patterns {
			if re.MatchString(repo) {
				return &p.Rules[i], nil
			}
		}
	}
	if p.Unmatched == "allow" {
		return nil, nil
	}
	return nil, fmt.Errorf("%w: %s (%s: add a rule, or unmatched: allow)", ErrPolicyRefused, repo, p.file)
}
