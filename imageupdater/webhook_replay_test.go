package imageupdater

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Each sender's delivery id and time are read where it sends them (the documented payload
// fields and headers); senders that send neither get no id.
func TestDeliveryOf(t *testing.T) {
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	gh := httptest.NewRequest(http.MethodPost, "/webhook", nil)
	gh.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	plain := httptest.NewRequest(http.MethodPost, "/webhook", nil)
	for _, tc := range []struct {
		kind, body string
		r          *http.Request
		id         string
		at         time.Time
	}{
		{"distribution", `{"events":[{"id":"b","timestamp":"2026-12-04T10:00:01Z"},{"id":"a","timestamp":"2026-12-04T10:00:00Z"}]}`, plain, "distribution:a,b", at},
		{"", `{"events":[{"id":"e1","timestamp":"2026-12-04T10:00:00.123456789Z"}]}`, plain, "distribution:e1", at.Add(123456789)},
		{"", `{"repository":"r/a","tag":"1"}`, plain, "", time.Time{}},
		{"docker.io", `{"callback_url":"https://registry.hub.docker.com/u/a/b/hook/1/","push_data":{"pushed_at":1796378400,"tag":"1"}}`, plain, "docker.io:https://registry.hub.docker.com/u/a/b/hook/1/", time.Unix(1796378400, 0)},
		{"ghcr.io", `{"action":"published"}`, gh, "ghcr.io:72d3162e-cc78-11e3-81ab-4c9367dc0958", time.Time{}},
		{"acr", `{"id":"831e1650-001e-001b-66ab-eeb76e069631","timestamp":"2026-12-04T10:00:00Z","action":"push"}`, plain, "acr:831e1650-001e-001b-66ab-eeb76e069631", at},
		{"cloudevents", `{"specversion":"1.0","id":"42","source":"urn:aws:ecr:eu-west-1:1:r","time":"2026-12-04T10:00:00Z"}`, plain, "cloudevents:urn:aws:ecr:eu-west-1:1:r#42", at},
		{"quay.io", `{"repository":"a/b","updated_tags":["1"]}`, plain, "", time.Time{}},
	} {
		d := deliveryOf(tc.kind, tc.r, []byte(tc.body))
		if d.id != tc.id || !d.at.Equal(tc.at) {
			t.Errorf("%s %s: delivery %q at %v, want %q at %v", tc.kind, tc.body, d.id, d.at, tc.id, tc.at)
		}
	}
	h := deliveryOf("harbor", plain, []byte(`{"type":"PUSH_ARTIFACT","occur_at":1796378400}`))
	if !strings.HasPrefix(h.id, "harbor:") || !h.at.Equal(time.Unix(1796378400, 0)) {
		t.Errorf("harbor: %q at %v, want the body's hash at occur_at", h.id, h.at)
	}
	if other := deliveryOf("harbor", plain, []byte(`{"type":"PUSH_ARTIFACT","occur_at":1796378401}`)); other.id == h.id {
		t.Error("harbor: two events share an id")
	}
}

func TestReplayGuard(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	g := &replayGuard{window: 10 * time.Minute}
	d := delivery{id: "acr:1", at: now.Add(-time.Minute)}
	if why := g.admit(d, now); why != "" {
		t.Fatalf("first delivery refused: %s", why)
	}
	if why := g.admit(d, now.Add(5*time.Minute)); !strings.Contains(why, "acr:1 was already received") {
		t.Errorf("replay within the window: %q", why)
	}
	// Once forgotten, the timestamp is outside the window: still refused.
	if why := g.admit(d, now.Add(20*time.Minute)); !strings.Contains(why, "older than the replay window") {
		t.Errorf("replay after the window: %q", why)
	}
	if why := g.admit(delivery{id: "x", at: now.Add(time.Hour)}, now); !strings.Contains(why, "ahead") {
		t.Errorf("future timestamp: %q", why)
	}
	// No id, no time (Quay): nothing to recognise a replay by.
	for i := 0; i < 2; i++ {
		if why := g.admit(delivery{}, now); why != "" {
			t.Errorf("delivery without id refused: %s", why)
		}
	}
	// An id without time is remembered for the window, then forgotten.
	if why := g.admit(delivery{id: "gh:1"}, now); why != "" {
		t.Fatal(why)
	}
	if why := g.admit(delivery{id: "gh:1"}, now.Add(9*time.Minute)); why == "" {
		t.Error("GitHub redelivery within the window admitted")
	}
	if why := g.admit(delivery{id: "gh:1"}, now.Add(11*time.Minute)); why != "" {
		t.Errorf("after the window: %s", why)
	}
	off := &replayGuard{window: -1}
	if off.admit(d, now) != "" || off.admit(d, now) != "" {
		t.Error("a negative window must turn replay protection off")
	}
	// Bounded: a flood of distinct deliveries does not grow the memory past maxRemembered.
	for i := 0; i < maxRemembered+10; i++ {
		g.admit(delivery{id: fmt.Sprint("flood:", i)}, now)
	}
	if n := len(g.seen); n > maxRemembered {
		t.Errorf("%d deliveries remembered, bound %d", n, maxRemembered)
	}
}

// Through /webhook: a correctly signed delivery sent again is answered 200 with why and checks
// nothing (the first one got 202), counted in strata_image_updater_webhook_replays_total; so is
// a delivery dated before the window. A distinct delivery is accepted. The secret is checked
// first: a replay with a wrong secret is 401 and does not reach the memory.
func TestWebhookReplayRefused(t *testing.T) {
	c := &controller{opts: Options{WebhookSecret: "s3cret"}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		metrics: newMetrics(), replay: &replayGuard{window: DefaultWebhookReplayWindow}}
	serve := func(r *http.Request) (int, string) {
		rec := httptest.NewRecorder()
		c.webhook(rec, r)
		return rec.Code, rec.Body.String()
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	event := func(id, ts string) string {
		return `{"events":[{"id":"` + id + `","timestamp":"` + ts + `","action":"push","target":{"repository":"team/app","tag":"1.0.0"},"request":{"host":"r.example"}}]}`
	}
	if code, out := serve(signedRequest("/webhook", "distribution", "wrong", event("e1", now))); code != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %d %s", code, out)
	}
	if code, out := serve(signedRequest("/webhook", "distribution", "s3cret", event("e1", now))); code != http.StatusAccepted {
		t.Fatalf("first delivery: %d %s", code, out)
	}
	if code, out := serve(signedRequest("/webhook", "distribution", "s3cret", event("e1", now))); code != http.StatusOK || !strings.Contains(out, "already received") {
		t.Errorf("replayed delivery: %d %s, want 200 saying it was already received", code, out)
	}
	if code, out := serve(signedRequest("/webhook", "distribution", "s3cret", event("e2", now))); code != http.StatusAccepted {
		t.Errorf("next delivery: %d %s", code, out)
	}
	old := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	if code, out := serve(signedRequest("/webhook", "distribution", "s3cret", event("e3", old))); code != http.StatusOK || !strings.Contains(out, "older than the replay window") {
		t.Errorf("an hour-old delivery: %d %s", code, out)
	}
	gh := signedRequest("/webhook", "ghcr.io", "s3cret", `{"action":"published","package":{"name":"b","package_type":"container","owner":{"login":"a"},"package_version":{"container_metadata":{"tag":{"name":"1"}}}}}`)
	gh.Header.Set("X-GitHub-Delivery", "d-1")
	if code, out := serve(gh); code != http.StatusAccepted {
		t.Fatalf("ghcr delivery: %d %s", code, out)
	}
	gh = signedRequest("/webhook", "ghcr.io", "s3cret", `{"action":"published","package":{"name":"b","package_type":"container","owner":{"login":"a"},"package_version":{"container_metadata":{"tag":{"name":"1"}}}}}`)
	gh.Header.Set("X-GitHub-Delivery", "d-1")
	if code, out := serve(gh); code != http.StatusOK || !strings.Contains(out, "ghcr.io:d-1 was already received") {
		t.Errorf("ghcr redelivery: %d %s", code, out)
	}
	if n := testutil.ToFloat64(c.metrics.webhookReplays); n != 3 {
		t.Errorf("webhook_replays_total = %v, want 3", n)
	}
}
