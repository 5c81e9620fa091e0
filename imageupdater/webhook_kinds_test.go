package imageupdater

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"strata.dev/strata/internal/testing/testenv"
)

func ghSignature(secret, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Payloads as each registry documents them (and argocd-image-updater's tests use them): the
// pushed registry/repository and tag, events of no interest ignored, bad bodies named.
func TestWebhookPayloadKinds(t *testing.T) {
	for _, tc := range []struct {
		name, kind, body string
		header           map[string]string
		want             []pushEvent
		err              string
	}{
		{name: "docker hub", kind: "docker.io", body: `{"callback_url":"https://registry.hub.docker.com/u/myuser/myapp/hook/x/",
			"push_data":{"pushed_at":1417566161,"pusher":"myuser","tag":"v1.0.0"},
			"repository":{"name":"myapp","namespace":"myuser","repo_name":"myuser/myapp","repo_url":"https://registry.hub.docker.com/u/myuser/myapp/"}}`,
			want: []pushEvent{{"docker.io/myuser/myapp", "v1.0.0"}}},
		{name: "docker hub namespace+name", kind: "docker.io", body: `{"push_data":{"tag":"2"},"repository":{"name":"app","namespace":"team"}}`,
			want: []pushEvent{{"docker.io/team/app", "2"}}},
		{name: "docker hub no tag", kind: "docker.io", body: `{"repository":{"repo_name":"a/b"}}`, err: "no push_data.tag"},
		{name: "docker hub no repository", kind: "docker.io", body: `{"push_data":{"tag":"1"}}`, err: "no repository.repo_name"},
		{name: "ghcr published", kind: "ghcr.io", header: map[string]string{"X-GitHub-Event": "package"},
			body: `{"action":"published","package":{"name":"MyApp","package_type":"CONTAINER","owner":{"login":"MyUser"},
			"registry":{"url":"https://ghcr.io"},"package_version":{"name":"sha256:abc","version":"sha256:abc",
			"container_metadata":{"tag":{"name":"v1.0.0","digest":"sha256:abc"}}}}}`,
			want: []pushEvent{{"ghcr.io/myuser/myapp", "v1.0.0"}}},
		{name: "ghcr updated ignored", kind: "ghcr.io", header: map[string]string{"X-GitHub-Event": "package"},
			body: `{"action":"updated","package":{"name":"a","package_type":"container","owner":{"login":"o"}}}`},
		{name: "ghcr npm ignored", kind: "ghcr.io", header: map[string]string{"X-GitHub-Event": "package"},
			body: `{"action":"published","package":{"name":"a","package_type":"npm","owner":{"login":"o"}}}`},
		{name: "ghcr ping ignored", kind: "ghcr.io", header: map[string]string{"X-GitHub-Event": "ping"}, body: `{"zen":"x"}`},
		{name: "ghcr no event header", kind: "ghcr.io", body: `{}`, err: "no X-GitHub-Event"},
		{name: "ghcr no owner", kind: "ghcr.io", header: map[string]string{"X-GitHub-Event": "package"},
			body: `{"action":"published","package":{"name":"a","package_type":"container","package_version":{"name":"1"}}}`, err: "package.owner.login"},
		{name: "harbor push", kind: "harbor", body: `{"type":"PUSH_ARTIFACT","occur_at":1640995200,"operator":"admin",
			"event_data":{"resources":[{"digest":"sha256:abc123","tag":"v1.0.0","resource_url":"harbor.example.com/library/myapp:v1.0.0"}],
			"repository":{"date_created":1640995000,"name":"myapp","namespace":"library","repo_full_name":"library/myapp","repo_type":"private"}}}`,
			want: []pushEvent{{"harbor.example.com/library/myapp", "v1.0.0"}}},
		{name: "harbor without resource_url", kind: "harbor", body: `{"type":"PUSH_ARTIFACT","event_data":{"resources":[{"tag":"v1"}],"repository":{"name":"myapp","namespace":"library"}}}`,
			want: []pushEvent{{"library/myapp", "v1"}}},
		{name: "harbor delete ignored", kind: "harbor", body: `{"type":"DELETE_ARTIFACT","event_data":{}}`},
		{name: "harbor no resources", kind: "harbor", body: `{"type":"PUSH_ARTIFACT","event_data":{"repository":{"repo_full_name":"a/b"}}}`, err: "no event_data.resources"},
		{name: "quay", kind: "quay.io", body: `{"name":"repository","repository":"mynamespace/repository","namespace":"mynamespace",
			"docker_url":"quay.io/mynamespace/repository","homepage":"https://quay.io/repository/mynamespace/repository",
			"updated_tags":["latest","v1.0.0"]}`,
			want: []pushEvent{{"quay.io/mynamespace/repository", "latest"}, {"quay.io/mynamespace/repository", "v1.0.0"}}},
		{name: "quay enterprise", kind: "quay.io", body: `{"repository":"ns/app","docker_url":"https://quay.corp.example/ns/app","updated_tags":["1"]}`,
			want: []pushEvent{{"quay.corp.example/ns/app", "1"}}},
		{name: "quay no tags", kind: "quay.io", body: `{"repository":"ns/app"}`, err: "no updated_tags"},
		{name: "acr push", kind: "acr", body: `{"id":"cb8c3971-9adc-488b-xxxx-43cbb4974ff5","timestamp":"2017-11-17T16:52:01.343145347Z","action":"push",
			"target":{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":524,"digest":"sha256:80f0d5c8","length":524,"repository":"hello-world","tag":"v1"},
			"request":{"id":"3cbb6949-7549-4fa1-xxxx-a6d5451dffc7","host":"myregistry.azurecr.io","method":"PUT","useragent":"docker/17.09.0-ce"}}`,
			want: []pushEvent{{"myregistry.azurecr.io/hello-world", "v1"}}},
		{name: "acr digest push", kind: "acr", body: `{"action":"push","target":{"repository":"a/b","digest":"sha256:x"},"request":{"host":"r.azurecr.io"}}`,
			want: []pushEvent{{"r.azurecr.io/a/b", ""}}},
		{name: "acr delete ignored", kind: "acr", body: `{"action":"delete","target":{"repository":"a"}}`},
		{name: "acr no repository", kind: "acr", body: `{"action":"push","target":{}}`, err: "no target.repository"},
		{name: "cloudevents ecr", kind: "cloudevents", body: `{"specversion":"1.0","id":"e1","type":"com.amazon.ecr.image.push",
			"source":"urn:aws:ecr:us-east-1:123456789012:repository/my-repo","subject":"my-repo:v1.0.0","time":"2025-01-01T00:00:00Z",
			"datacontenttype":"application/json","data":{"repositoryName":"my-repo","imageDigest":"sha256:abc","imageTag":"v1.0.0","registryId":"123456789012"}}`,
			want: []pushEvent{{"123456789012.dkr.ecr.us-east-1.amazonaws.com/my-repo", "v1.0.0"}}},
		{name: "cloudevents generic", kind: "cloudevents", body: `{"specversion":"1.0","id":"e2","type":"com.example.container.push",
			"source":"https://registry.example.com/","subject":"team/app:2.0","data":{}}`,
			want: []pushEvent{{"registry.example.com/team/app", "2.0"}}},
		{name: "cloudevents data", kind: "cloudevents", body: `{"specversion":"1.0","type":"dev.image.pushed","source":"ci",
			"data":{"repository":"team/app","tag":"3","registry":"reg.example:5000"}}`,
			want: []pushEvent{{"reg.example:5000/team/app", "3"}}},
		{name: "cloudevents other type ignored", kind: "cloudevents", body: `{"specversion":"1.0","type":"com.github.push","source":"x"}`},
		{name: "cloudevents no specversion", kind: "cloudevents", body: `{"type":"x.image"}`, err: "no specversion"},
		{name: "cloudevents no registry", kind: "cloudevents", body: `{"specversion":"1.0","type":"x.image","source":"ci","subject":"a/b:1"}`, err: "no registry"},
		{name: "distribution", kind: "distribution", body: `{"events":[{"action":"push","target":{"repository":"team/app","tag":"1"},"request":{"host":"reg:5000"}}]}`,
			want: []pushEvent{{"reg:5000/team/app", "1"}}},
		{name: "generic", kind: "", body: `{"repository":"oci://r.example/x","tag":"1"}`, want: []pushEvent{{"r.example/x", "1"}}},
		{name: "not JSON", kind: "harbor", body: `{"type":`, err: "harbor webhook body: unexpected end of JSON input"},
		{name: "JSON list", kind: "quay.io", body: `[]`, err: "quay.io webhook body: json: cannot unmarshal array"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader(tc.body))
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			got, err := webhookKinds[tc.kind].parse(r, []byte(tc.body))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want it to say %q", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// Docker Hub's webhooks say docker.io; Applications name index.docker.io or registry-1.docker.io.
func TestDockerHubHostsMatch(t *testing.T) {
	for _, b := range []string{"docker.io/team/app", "index.docker.io/team/app", "registry-1.docker.io/team/app"} {
		if !repositoryMatches(b, "docker.io/team/app") {
			t.Errorf("%s does not match docker.io/team/app", b)
		}
	}
	if repositoryMatches("ghcr.io/team/app", "docker.io/team/app") {
		t.Error("ghcr.io matched docker.io")
	}
}

// signedRequest is a request of kind carrying secret the way that registry sends it.
func signedRequest(target, kind, secret, body string) *http.Request {
	u := target + "?type=" + url.QueryEscape(kind)
	if kind == "docker.io" || kind == "quay.io" || (kind == "cloudevents" && secret != "") {
		u += "&secret=" + url.QueryEscape(secret)
	}
	r, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	switch kind {
	case "ghcr.io":
		r.Header.Set("X-GitHub-Event", "package")
		r.Header.Set("X-Hub-Signature-256", ghSignature(secret, body))
	case "harbor", "acr":
		r.Header.Set("Authorization", secret)
	case "distribution", "":
		r.Header.Set("Authorization", "Bearer "+secret)
	}
	return r
}

// Each kind's secret is checked as its registry sends it: right → 202, wrong or missing → 401;
// no secret configured → /webhook refuses everything unless explicitly insecure; oversize → 413;
// unknown type and bad bodies → 400 naming the problem.
func TestWebhookSecretsAndLimits(t *testing.T) {
	newC := func(o Options) *controller {
		return &controller{opts: o, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	}
	serve := func(c *controller, r *http.Request) (int, string) {
		rec := httptest.NewRecorder()
		c.webhook(rec, r)
		return rec.Code, rec.Body.String()
	}
	c := newC(Options{WebhookSecret: "s3cret"})
	bodies := map[string]string{
		"":             `{"repository":"r.example/a","tag":"1"}`,
		"distribution": `{"events":[]}`,
		"docker.io":    `{"push_data":{"tag":"1"},"repository":{"repo_name":"a/b"}}`,
		"ghcr.io":      `{"action":"published","package":{"name":"b","package_type":"container","owner":{"login":"a"},"package_version":{"name":"1"}}}`,
		"harbor":       `{"type":"PUSH_ARTIFACT","event_data":{"resources":[{"tag":"1"}],"repository":{"repo_full_name":"a/b"}}}`,
		"quay.io":      `{"repository":"a/b","updated_tags":["1"]}`,
		"acr":          `{"action":"push","target":{"repository":"a/b","tag":"1"},"request":{"host":"r.azurecr.io"}}`,
		"cloudevents":  `{"specversion":"1.0","type":"x.image.push","source":"https://r.example","subject":"a/b:1"}`,
	}
	for kind, body := range bodies {
		if code, out := serve(c, signedRequest("/webhook", kind, "s3cret", body)); code != http.StatusAccepted {
			t.Errorf("%s, right secret: %d %s", kind, code, out)
		}
		if code, _ := serve(c, signedRequest("/webhook", kind, "wrong", body)); code != http.StatusUnauthorized {
			t.Errorf("%s, wrong secret: %d, want 401", kind, code)
		}
		r := signedRequest("/webhook", kind, "", body)
		r.URL.RawQuery = "type=" + url.QueryEscape(kind)
		r.Header.Del("Authorization")
		r.Header.Del("X-Hub-Signature-256")
		if code, _ := serve(c, r); code != http.StatusUnauthorized {
			t.Errorf("%s, no secret: %d, want 401", kind, code)
		}
	}
	// GHCR: a signature of another body is refused.
	r := signedRequest("/webhook", "ghcr.io", "s3cret", bodies["ghcr.io"])
	r.Header.Set("X-Hub-Signature-256", ghSignature("s3cret", bodies["ghcr.io"]+" "))
	if code, _ := serve(c, r); code != http.StatusUnauthorized {
		t.Errorf("ghcr.io, signature of another body: %d, want 401", code)
	}
	// The X-Registry-Type header selects the kind as ?type= does.
	r = signedRequest("/webhook", "harbor", "s3cret", bodies["harbor"])
	r.URL.RawQuery = ""
	r.Header.Set("X-Registry-Type", "harbor")
	if code, out := serve(c, r); code != http.StatusAccepted {
		t.Errorf("X-Registry-Type: %d %s", code, out)
	}
	if code, out := serve(c, signedRequest("/webhook", "gitlab", "s3cret", "{}")); code != http.StatusBadRequest || !strings.Contains(out, `unknown webhook type "gitlab"`) || !strings.Contains(out, "ghcr.io") {
		t.Errorf("unknown type: %d %s", code, out)
	}
	if code, out := serve(c, signedRequest("/webhook", "acr", "s3cret", `{"action":"push"}`)); code != http.StatusBadRequest || !strings.Contains(out, "no target.repository") {
		t.Errorf("bad acr body: %d %s", code, out)
	}
	big := `{"repository":"a/b","tag":"1","pad":"` + strings.Repeat("x", maxWebhookBody) + `"}`
	if code, out := serve(c, signedRequest("/webhook", "", "s3cret", big)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversize body: %d %s", code, out)
	}
	if code, _ := serve(c, httptest.NewRequest(http.MethodGet, "/webhook", nil)); code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", code)
	}

	// No secret: refused, whatever is sent, unless explicitly insecure.
	off := newC(Options{})
	if code, out := serve(off, signedRequest("/webhook", "", "", bodies[""])); code != http.StatusForbidden || !strings.Contains(out, "--webhook-secret") {
		t.Errorf("no secret configured: %d %s", code, out)
	}
	insecure := newC(Options{WebhookInsecureNoSecret: true})
	if code, out := serve(insecure, signedRequest("/webhook", "quay.io", "", bodies["quay.io"])); code != http.StatusAccepted {
		t.Errorf("insecure: %d %s", code, out)
	}
}

// End to end, one per kind, on the real kube-apiserver and registry: a POST in each registry's
// format (its host given with registry_url where the format names a public registry) makes the
// updater list that repository again and move its Application; a wrong secret moves nothing.
func TestWebhookKindsTriggerUpdate(t *testing.T) {
	k := newKubeEnv(t)
	type hook struct {
		kind string
		body func(host, path, tag string) string
	}
	hooks := []hook{
		{"distribution", func(h, p, tag string) string {
			return fmt.Sprintf(`{"events":[{"action":"push","target":{"repository":%q,"tag":%q},"request":{"host":%q}}]}`, p, tag, h)
		}},
		{"docker.io", func(_, p, tag string) string {
			return fmt.Sprintf(`{"push_data":{"tag":%q},"repository":{"repo_name":%q}}`, tag, p)
		}},
		{"ghcr.io", func(_, p, tag string) string {
			owner, name, _ := strings.Cut(p, "/")
			return fmt.Sprintf(`{"action":"published","package":{"name":%q,"package_type":"container","owner":{"login":%q},"package_version":{"container_metadata":{"tag":{"name":%q}}}}}`, name, owner, tag)
		}},
		{"harbor", func(h, p, tag string) string {
			return fmt.Sprintf(`{"type":"PUSH_ARTIFACT","event_data":{"resources":[{"tag":%q,"resource_url":"%s/%s:%s"}],"repository":{"repo_full_name":%q}}}`, tag, h, p, tag, p)
		}},
		{"quay.io", func(h, p, tag string) string {
			return fmt.Sprintf(`{"repository":%q,"docker_url":"%s/%s","updated_tags":[%q]}`, p, h, p, tag)
		}},
		{"acr", func(h, p, tag string) string {
			return fmt.Sprintf(`{"action":"push","target":{"repository":%q,"tag":%q},"request":{"host":%q}}`, p, tag, h)
		}},
		{"cloudevents", func(h, p, tag string) string {
			return fmt.Sprintf(`{"specversion":"1.0","id":"1","type":"dev.strata.image.pushed","source":"ci","subject":"%s:%s","data":{"registryUrl":%q}}`, p, tag, h)
		}},
	}
	repos := map[string]string{}
	for _, h := range hooks {
		name := "hook-" + strings.ReplaceAll(h.kind, ".", "")
		repo := testenv.Repo(t, name)
		repos[h.kind] = repo
		pushBundle(t, repo, "1.0.0", t0)
		k.app(t, name, map[string]string{AnnotationChartVersion: "1.x"}, helmSource(repo, "1.0.0"))
	}
	c, ct, _ := k.startController(t, func(o *Options) { o.WebhookSecret = "s3cret" })
	srv := httptest.NewServer(c.handler())
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = c.loop(ctx, nil) }()
	waitFirstCycle(ctx, t, c)
	do := func(r *http.Request) (int, string) {
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, h := range hooks {
		t.Run(h.kind, func(t *testing.T) {
			repo := repos[h.kind]
			host, path, _ := strings.Cut(repo, "/")
			name := "hook-" + strings.ReplaceAll(h.kind, ".", "")
			pushBundle(t, repo, "1.1.0", t0.Add(time.Hour))
			body := h.body(host, path, "1.1.0")
			target := srv.URL + "/webhook"
			before := ct.listings(repo)
			if code, out := do(signedRequest(target, h.kind, "wrong", body)); code != http.StatusUnauthorized {
				t.Fatalf("wrong secret: %d %s", code, out)
			}
			time.Sleep(100 * time.Millisecond)
			if n := ct.listings(repo); n != before {
				t.Errorf("a refused POST listed the repository (%d -> %d)", before, n)
			}
			r := signedRequest(target, h.kind, "s3cret", body)
			if h.kind == "docker.io" || h.kind == "ghcr.io" {
				r.URL.RawQuery += "&registry_url=" + url.QueryEscape(host)
			}
			code, out := do(r)
			if code != http.StatusAccepted || !strings.Contains(out, k.ns+"/"+name) {
				t.Fatalf("webhook: %d %s", code, out)
			}
			waitRevision(t, k, name, "1.1.0", 5*time.Second)
			if n := ct.listings(repo); n <= before {
				t.Errorf("listings %d -> %d: the repository was not listed again", before, n)
			}
		})
	}
	if got := metricValue(t, c, "strata_image_updater_cycles_total"); got != "1" {
		t.Errorf("cycles = %s: an update came from a cycle, not from a webhook", got)
	}
}
