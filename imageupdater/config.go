package imageupdater

import (
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

// DefaultRateLimit is the per-registry request rate (requests per second) when none is set.
const DefaultRateLimit = 20

// RegistriesConfig is the file given with --registries-config:
//
//	defaultLimit: 20            # requests per second per registry (default 20)
//	registries:
//	- name: registry.local:5000 # host[:port]
//	  insecure: true            # plain HTTP (loopback registries always are)
//	  limit: 50                 # requests per second for this registry
//	  credentials: pullsecret:argocd/regcred   # default credentials for this registry
type RegistriesConfig struct {
	DefaultLimit float64          `json:"defaultLimit,omitempty"`
	Registries   []RegistryConfig `json:"registries,omitempty"`
}

// RegistryConfig is one registry's settings.
type RegistryConfig struct {
	Name        string  `json:"name"`
	Insecure    bool    `json:"insecure,omitempty"`
	Limit       float64 `json:"limit,omitempty"`
	Credentials string  `json:"credentials,omitempty"`
}

// LoadRegistriesConfig reads and checks a registries config file.
func LoadRegistriesConfig(path string) (RegistriesConfig, error) {
	var c RegistriesConfig
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("registries config: %w", err)
	}
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return c, fmt.Errorf("registries config %s: %w", path, err)
	}
	if err := c.validate(); err != nil {
		return c, fmt.Errorf("registries config %s: %w", path, err)
	}
	return c, nil
}

func (c RegistriesConfig) validate() error {
	if c.DefaultLimit < 0 {
		return fmt.Errorf("defaultLimit: %v is negative", c.DefaultLimit)
	}
	seen := map[string]bool{}
	for i, r := range c.Registries {
		if r.Name == "" || strings.Contains(r.Name, "/") {
			return fmt.Errorf("registries[%d].name: %q is not host[:port]", i, r.Name)
		}
		if seen[r.Name] {
			return fmt.Errorf("registries[%d].name: %q listed twice", i, r.Name)
		}
		seen[r.Name] = true
		if r.Limit < 0 {
			return fmt.Errorf("registries[%d].limit: %v is negative", i, r.Limit)
		}
		if r.Credentials != "" {
			if _, err := parseCredentialSource(r.Credentials); err != nil {
				return fmt.Errorf("registries[%d].credentials: %w", i, err)
			}
		}
	}
	return nil
}

func (c RegistriesConfig) lookup(host string) (RegistryConfig, bool) {
	for _, r := range c.Registries {
		if strings.EqualFold(r.Name, host) {
			return r, true
		}
	}
	return RegistryConfig{}, false
}

// limit is the request rate for host.
func (c RegistriesConfig) limit(host string) float64 {
	if r, ok := c.lookup(host); ok && r.Limit > 0 {
		return r.Limit
	}
	if c.DefaultLimit > 0 {
		return c.DefaultLimit
	}
	return DefaultRateLimit
}
