package imageupdater

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"strata.dev/strata/internal/testing/fuzztest"
)

// FuzzWebhookReceivers sends one fuzzed body to the real /webhook handler as every receiver
// kind, signed as that registry signs it, and once with a fuzzed Authorization header and
// query secret. Nothing panics or hangs; a request without the right secret is refused (401)
// before its body is parsed; with it, the answer is 202 (with the Applications as JSON) or 400
// naming the problem; each kind parses the same body (and its delivery id and time) the same way
// twice, every push it reads names a repository, and a delivery with an id is admitted once.
func FuzzWebhookReceivers(f *testing.F) {
	for _, b := range []string{
		`{"events":[{"action":"push","target":{"repository":"team/app","tag":"1.0.0"},"request":{"host":"reg.local:5000"}}]}`,
		`{"repository":"oci://reg.local:5000/team/app","tag":"1.2.0"}`,
		`{"events":null}`,
		`{"push_data":{"tag":"1"},"repository":{"repo_name":"a/b"}}`,
		`{"action":"published","package":{"name":"b","package_type":"container","owner":{"login":"a"},"package_version":{"name":"1","container_metadata":{"tag":{"name":"1"}}}}}`,
		`{"type":"PUSH_ARTIFACT","event_data":{"resources":[{"tag":"1","resource_url":"h/a/b:1"}],"repository":{"repo_full_name":"a/b"}}}`,
		`{"repository":"a/b","docker_url":"%zz","updated_tags":["1"]}`,
		`{"action":"push","target":{"repository":"a/b","tag":"1"},"request":{"host":"r.azurecr.io"}}`,
		`{"specversion":"1.0","type":"com.amazon.ecr.image.push","source":"urn:aws:ecr:r:1","subject":"a:1"}`,
		`{"specversion":"1.0","type":"x.image.push","source":"https://r.example","subject":"a/b@sha256:00"}`,
		`[]`, `null`, `{"events":[{"action":"push","target":{}}]}`,
	} {
		f.Add([]byte(b), "Bearer s3cret", "s3cret", "https://other.example:5000/")
	}
	kinds := make([]string, 0, len(webhookKinds))
	for k := range webhookKinds {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	c := &controller{opts: Options{WebhookSecret: "s3cret"}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	bounds := fuzztest.Bounds{Time: 10 * time.Second, Heap: 64 << 20}
	f.Fuzz(func(t *testing.T, body []byte, auth, querySecret, registryURL string) {
		serve := func(r *http.Request) (int, string) {
			t.Helper()
			rec := httptest.NewRecorder()
			fuzztest.Bounded(t, bounds, "webhook", func() { c.webhook(rec, r) })
			return rec.Code, rec.Body.String()
		}
		for _, kind := range kinds {
			// The right secret, sent the way the kind's registry sends it.
			r := signedRequest("http://updater.local/webhook", kind, "s3cret", string(body))
			if registryURL != "" {
				r.URL.RawQuery += "&registry_url=" + strings.ReplaceAll(registryURL, "&", "%26")
			}
			code, out := serve(r)
			switch code {
			case http.StatusAccepted:
				var resp struct{ Applications []string }
				if err := json.Unmarshal([]byte(out), &resp); err != nil {
					t.Fatalf("kind %q: 202 with a body that is not JSON: %q", kind, out)
				}
			case http.StatusBadRequest:
				if strings.TrimSpace(out) == "" {
					t.Fatalf("kind %q: 400 without saying why", kind)
				}
			case http.StatusRequestEntityTooLarge:
				if len(body) <= maxWebhookBody {
					t.Fatalf("kind %q: 413 for %d bytes", kind, len(body))
				}
			default:
				t.Fatalf("kind %q: %d %q", kind, code, out)
			}
			r = signedRequest("http://updater.local/webhook", kind, "s3cret", string(body))
			e1, err1 := webhookKinds[kind].parse(r, body)
			e2, err2 := webhookKinds[kind].parse(r, body)
			if (err1 == nil) != (err2 == nil) || len(e1) != len(e2) {
				t.Fatalf("kind %q parses the same body differently: %v %v / %v %v", kind, e1, err1, e2, err2)
			}
			// The delivery's id and time, read the same way twice; a delivery with an id that
			// was admitted is refused the second time (replay).
			d1, d2 := deliveryOf(kind, r, body), deliveryOf(kind, r, body)
			if d1 != d2 {
				t.Fatalf("kind %q reads the delivery differently: %+v / %+v", kind, d1, d2)
			}
			g := &replayGuard{window: DefaultWebhookReplayWindow}
			if why := g.admit(d1, time.Now()); why == "" && d1.id != "" {
				if g.admit(d1, time.Now()) == "" {
					t.Fatalf("kind %q: delivery %+v admitted twice", kind, d1)
				}
			}
			for i, e := range e1 {
				if e != e2[i] {
					t.Fatalf("kind %q parses the same body differently: %v / %v", kind, e1, e2)
				}
				if strings.Trim(e.repository, "/") == "" {
					t.Errorf("kind %q read a push without repository: %+v from %q", kind, e, body)
				}
			}

			// A fuzzed secret: refused unless it is the secret, whatever the body.
			r, err := http.NewRequest(http.MethodPost, "http://updater.local/webhook?type="+kind, strings.NewReader(string(body)))
			if err != nil {
				t.Fatal(err)
			}
			q := r.URL.Query()
			q.Set("secret", querySecret)
			r.URL.RawQuery = q.Encode()
			r.Header.Set("Authorization", auth)
			r.Header.Set("X-Hub-Signature-256", auth)
			r.Header.Set("X-Webhook-Secret", auth)
			if strings.Contains(auth, "s3cret") || strings.Contains(querySecret, "s3cret") || strings.HasPrefix(auth, "sha256=") {
				continue
			}
			if code, out := serve(r); code != http.StatusUnauthorized && code != http.StatusRequestEntityTooLarge {
				t.Fatalf("kind %q with Authorization %q and secret %q: %d %q, want 401", kind, auth, querySecret, code, out)
			}
		}
	})
}
