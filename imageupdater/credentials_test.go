package imageupdater

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"strata.dev/strata/internal/testing/testenv"
)

// A registry with authentication: the pull-secret forms authenticate; wrong credentials leave
// the Application untouched with a registry error.
func TestPullSecretsOnAuthenticatedRegistry(t *testing.T) {
	k := newKubeEnv(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("p4ss"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("ci:"+string(hash)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := startRegistry(t, "auth:\n  htpasswd: {realm: strata, path: "+htpasswd+"}\n")

	// Publish with credentials from a docker config; the controller gets none from there.
	dcfg := t.TempDir()
	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{addr: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte("ci:p4ss"))}}})
	os.WriteFile(filepath.Join(dcfg, "config.json"), cfg, 0o600)
	t.Setenv("DOCKER_CONFIG", dcfg)
	repo := addr + "/strata-test/" + testenv.UniqueName(t, "private")
	publishSeries(t, repo)
	t.Setenv("DOCKER_CONFIG", t.TempDir())

	ctx := context.Background()
	mk := func(name string, data map[string][]byte, typ corev1.SecretType) {
		if _, err := k.kube.CoreV1().Secrets(k.ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Type: typ, Data: data}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mk("regcred", map[string][]byte{".dockerconfigjson": cfg}, corev1.SecretTypeDockerConfigJson)
	mk("plain", map[string][]byte{"creds": []byte("ci:p4ss"), "wrong": []byte("ci:nope")}, corev1.SecretTypeOpaque)
	// An Argo CD repository Secret (Helm-OCI form) reused as the pull secret, and one for another registry.
	repoSecret := func(name, url string) {
		if _, err := k.kube.CoreV1().Secrets(k.ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels: map[string]string{"argocd.argoproj.io/secret-type": "repository"}}, Type: corev1.SecretTypeOpaque,
			StringData: map[string]string{"type": "helm", "enableOCI": "true", "url": url, "username": "ci", "password": "p4ss"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	repoSecret("argocd-repo", repo[:strings.LastIndex(repo, "/")])
	repoSecret("argocd-other", "oci://other.example:5000/charts")
	t.Setenv("IU_TEST_REGISTRY_CREDS", "ci:p4ss")

	k.app(t, "pullsecret", map[string]string{AnnotationChartVersion: "1.x", AnnotationPullSecret: "pullsecret:" + k.ns + "/regcred"}, helmSource(repo, "1.0.0"))
	k.app(t, "secret", map[string]string{AnnotationChartVersion: "1.x", AnnotationPullSecret: "secret:" + k.ns + "/plain#creds"}, helmSource(repo, "1.0.0"))
	k.app(t, "env", map[string]string{AnnotationChartVersion: "1.x", AnnotationPullSecret: "env:IU_TEST_REGISTRY_CREDS"}, helmSource(repo, "1.0.0"))
	k.app(t, "wrong", map[string]string{AnnotationChartVersion: "1.x", AnnotationPullSecret: "secret:" + k.ns + "/plain#wrong"}, helmSource(repo, "1.0.0"))
	k.app(t, "argocd-repo", map[string]string{AnnotationChartVersion: "1.x", AnnotationPullSecret: "pullsecret:" + k.ns + "/argocd-repo"}, helmSource(repo, "1.0.0"))
	k.app(t, "argocd-other", map[string]string{AnnotationChartVersion: "1.x", AnnotationPullSecret: "pullsecret:" + k.ns + "/argocd-other"}, helmSource(repo, "1.0.0"))
	k.app(t, "anonymous", map[string]string{AnnotationChartVersion: "1.x"}, helmSource(repo, "1.0.0"))

	c, _, logs := k.startController(t, nil)
	res := c.runCycle(ctx)
	if res.updated != 4 || res.failed != 3 {
		t.Fatalf("cycle = %+v, want 4 updated, 3 failed", res)
	}
	for name, want := range map[string]string{"pullsecret": "1.2.0", "secret": "1.2.0", "env": "1.2.0", "argocd-repo": "1.2.0", "wrong": "1.0.0", "argocd-other": "1.0.0", "anonymous": "1.0.0"} {
		if got := revision(k.getApp(t, name), -1); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	for _, name := range []string{"wrong", "anonymous", "argocd-other"} {
		if evs := k.events(t, name); len(evs) != 1 || evs[0].Reason != reasonRegistry {
			t.Errorf("%s: events %+v, want one %s", name, evs, reasonRegistry)
		}
	}
	if evs := k.events(t, "argocd-other"); len(evs) == 1 && !strings.Contains(evs[0].Message, "the repository Secret is for other.example:5000") {
		t.Errorf("argocd-other: event %q does not say the Secret is for another registry", evs[0].Message)
	}
	if got := metricValue(t, c, `strata_image_updater_errors_total{reason="BundleRegistryError"}`); got != "3" {
		t.Errorf("registry errors metric = %q, want 3\n%s", got, logs.String())
	}
}
