package imageupdater

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"oras.land/oras-go/v2/registry/remote/auth"
)

// credentialSource is a parsed pull-secret annotation value.
type credentialSource struct {
	kind      string // pullsecret, secret, env
	namespace string
	name      string
	field     string
	env       string
}

func parseCredentialSource(s string) (credentialSource, error) {
	kind, rest, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || rest == "" {
		return credentialSource{}, fmt.Errorf("credentials %q: want pullsecret:NS/NAME, secret:NS/NAME#FIELD or env:VAR", s)
	}
	c := credentialSource{kind: kind}
	switch kind {
	case "pullsecret", "secret":
		ref := rest
		if kind == "secret" {
			var f string
			ref, f, ok = strings.Cut(rest, "#")
			if !ok || f == "" {
				return c, fmt.Errorf("credentials %q: secret:NS/NAME#FIELD needs #FIELD", s)
			}
			c.field = f
		}
		ns, n, ok := strings.Cut(ref, "/")
		if !ok || ns == "" || n == "" || strings.Contains(n, "/") {
			return c, fmt.Errorf("credentials %q: want %s:NAMESPACE/NAME", s, kind)
		}
		c.namespace, c.name = ns, n
	case "env":
		c.env = rest
	case "ext":
		return c, fmt.Errorf("credentials %q: ext: scripts are not supported", s)
	default:
		return c, fmt.Errorf("credentials %q: unknown kind %q (want pullsecret, secret or env)", s, kind)
	}
	return c, nil
}

// resolveCredential returns the credential source s gives for registry host.
func resolveCredential(ctx context.Context, kube kubernetes.Interface, s, host string) (auth.Credential, error) {
	c, err := parseCredentialSource(s)
	if err != nil {
		return auth.EmptyCredential, err
	}
	switch c.kind {
	case "env":
		v, ok := os.LookupEnv(c.env)
		if !ok {
			return auth.EmptyCredential, fmt.Errorf("credentials %s: environment variable %s is not set", s, c.env)
		}
		return userPass(s, v)
	}
	sec, err := kube.CoreV1().Secrets(c.namespace).Get(ctx, c.name, metav1.GetOptions{})
	if err != nil {
		return auth.EmptyCredential, fmt.Errorf("credentials %s: %w", s, err)
	}
	if c.kind == "secret" {
		v, ok := sec.Data[c.field]
		if !ok {
			return auth.EmptyCredential, fmt.Errorf("credentials %s: secret has no field %q", s, c.field)
		}
		return userPass(s, strings.TrimSpace(string(v)))
	}
	raw, ok := sec.Data[".dockerconfigjson"]
	if !ok {
		return repositoryCredential(s, sec.Data, host)
	}
	var cfg struct {
		Auths map[string]struct {
			Username string `json:"username"`
			Password string `json:"password"`
			Auth     string `json:"auth"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return auth.EmptyCredential, fmt.Errorf("credentials %s: .dockerconfigjson: %w", s, err)
	}
	for k, a := range cfg.Auths {
		if registryKey(k) != host {
			continue
		}
		if a.Username == "" && a.Auth != "" {
			dec, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return auth.EmptyCredential, fmt.Errorf("credentials %s: auths[%q].auth: %w", s, k, err)
			}
			return userPass(s, string(dec))
		}
		return auth.Credential{Username: a.Username, Password: a.Password}, nil
	}
	return auth.EmptyCredential, fmt.Errorf("credentials %s: .dockerconfigjson has no entry for %s", s, host)
}

// repositoryCredential reads an Argo CD repository (or repo-creds) Secret: keys username and
// password, and url naming the registry they are for (checked against host when present, so a
// Secret of another registry never sends its password here).
func repositoryCredential(src string, data map[string][]byte, host string) (auth.Credential, error) {
	u, p := string(data["username"]), string(data["password"])
	if u == "" || p == "" {
		return auth.EmptyCredential, fmt.Errorf("credentials %s: secret has neither .dockerconfigjson (type kubernetes.io/dockerconfigjson) nor username and password (an Argo CD repository Secret)", src)
	}
	if url := strings.TrimSpace(string(data["url"])); url != "" {
		if got := registryKey(strings.TrimPrefix(url, "oci://")); got != host {
			return auth.EmptyCredential, fmt.Errorf("credentials %s: the repository Secret is for %s (url %q), not %s", src, got, url, host)
		}
	}
	return auth.Credential{Username: u, Password: p}, nil
}

// registryKey normalises a docker config auths key (https://host/v1/ forms) to host[:port].
func registryKey(k string) string {
	k = strings.TrimPrefix(strings.TrimPrefix(k, "https://"), "http://")
	k, _, _ = strings.Cut(k, "/")
	if k == "index.docker.io" || k == "registry-1.docker.io" {
		return name.DefaultRegistry
	}
	return k
}

func userPass(src, v string) (auth.Credential, error) {
	u, p, ok := strings.Cut(v, ":")
	if !ok || u == "" {
		return auth.EmptyCredential, fmt.Errorf("credentials %s: value is not USER:PASSWORD", src)
	}
	return auth.Credential{Username: u, Password: p}, nil
}

// keychainCredential reads credentials for host from a go-containerregistry keychain (the docker
// config and its credential helpers by default).
func keychainCredential(kc authn.Keychain, host string) (auth.Credential, error) {
	reg, err := name.NewRegistry(host)
	if err != nil {
		return auth.EmptyCredential, err
	}
	a, err := kc.Resolve(reg)
	if err != nil {
		return auth.EmptyCredential, fmt.Errorf("credentials for %s: %w", host, err)
	}
	cfg, err := a.Authorization()
	if err != nil {
		return auth.EmptyCredential, fmt.Errorf("credentials for %s: %w", host, err)
	}
	return auth.Credential{Username: cfg.Username, Password: cfg.Password, RefreshToken: cfg.IdentityToken, AccessToken: cfg.RegistryToken}, nil
}
