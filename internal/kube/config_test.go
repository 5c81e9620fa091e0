package kube

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const twoContexts = `apiVersion: v1
kind: Config
clusters:
- name: a
  cluster: {server: "https://127.0.0.1:6443"}
- name: b
  cluster: {server: "https://127.0.0.2:7443"}
users:
- name: u
  user: {token: t0k3n}
contexts:
- name: ctx-a
  context: {cluster: a, user: u}
- name: ctx-b
  context: {cluster: b, user: u}
current-context: ctx-a
`

func writeKubeconfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(path, []byte(twoContexts), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigPicksFileAndContext(t *testing.T) {
	path := writeKubeconfig(t)
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	for _, c := range []struct{ file, context, env, host string }{
		{path, "", "", "https://127.0.0.1:6443"},      // explicit file, current context
		{path, "ctx-b", "", "https://127.0.0.2:7443"}, // explicit file, named context
		{"", "ctx-b", path, "https://127.0.0.2:7443"}, // $KUBECONFIG, named context
	} {
		t.Setenv("KUBECONFIG", c.env)
		cfg, err := Config(c.file, c.context)
		if err != nil {
			t.Fatalf("Config(%q, %q) with KUBECONFIG=%q: %v", c.file, c.context, c.env, err)
		}
		if cfg.Host != c.host || cfg.BearerToken != "t0k3n" {
			t.Errorf("Config(%q, %q) with KUBECONFIG=%q: host %q token %q, want %q", c.file, c.context, c.env, cfg.Host, cfg.BearerToken, c.host)
		}
	}
}

func TestConfigErrorNamesFileAndContext(t *testing.T) {
	path := writeKubeconfig(t)
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	missing := filepath.Join(t.TempDir(), "missing")
	for _, c := range []struct {
		file, context, env string
		want               []string
	}{
		{path, "nope", "", []string{"kubernetes client config", path, "context nope"}},
		{missing, "", "", []string{"kubernetes client config", missing}},
		{"", "", missing, []string{"kubernetes client config", "default kubeconfig"}},
	} {
		t.Setenv("KUBECONFIG", c.env)
		_, err := Config(c.file, c.context)
		if err == nil {
			t.Fatalf("Config(%q, %q) with KUBECONFIG=%q: no error", c.file, c.context, c.env)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Config(%q, %q) with KUBECONFIG=%q: %v, want it to name %q", c.file, c.context, c.env, err, w)
			}
		}
	}
}
