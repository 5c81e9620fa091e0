package imageupdater

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultWebhookReplayWindow is how long a webhook delivery is remembered, and how far its
// timestamp may lie from now.
const DefaultWebhookReplayWindow = 10 * time.Minute

// maxRemembered bounds the deliveries remembered (a flood of distinct, correctly signed
// deliveries cannot grow the map without bound).
const maxRemembered = 100_000

// delivery is what identifies one webhook delivery, where the sender sends it: an id unique
// per delivery (and repeated when the sender redelivers) and the time the event happened.
type delivery struct {
	id string    // "" : the sender sends none
	at time.Time // zero: the sender sends none
}

// deliveryOf reads a delivery's id and time the way each sender sends them:
//   - distribution (and ACR, same envelope per event): events[].id, events[].timestamp;
//   - Docker Hub: callback_url (unique per delivery), push_data.pushed_at (unix seconds);
//   - GitHub: the X-GitHub-Delivery header (no time);
//   - Harbor: no id — occur_at (unix seconds) and a hash of the body stand for one;
//   - ACR: id, timestamp;
//   - CloudEvents: source + id (unique per the spec), time;
//   - Quay and Strata's {"repository","tag"}: nothing (the secret is the only protection).
func deliveryOf(kind string, r *http.Request, body []byte) delivery {
	var p struct {
		Events []struct {
			ID        string `json:"id"`
			Timestamp string `json:"timestamp"`
		} `json:"events"`
		ID          string          `json:"id"`
		Timestamp   string          `json:"timestamp"`
		Source      string          `json:"source"`
		Time        string          `json:"time"`
		CallbackURL string          `json:"callback_url"`
		OccurAt     json.RawMessage `json:"occur_at"`
		PushData    struct {
			PushedAt json.RawMessage `json:"pushed_at"`
		} `json:"push_data"`
	}
	_ = json.Unmarshal(body, &p) // the kind's parser has accepted the body already
	rfc := func(s string) time.Time {
		t, _ := time.Parse(time.RFC3339Nano, s)
		return t
	}
	unix := func(raw json.RawMessage) time.Time {
		f, err := strconv.ParseFloat(strings.Trim(string(raw), `"`), 64)
		if err != nil || f <= 0 {
			return time.Time{}
		}
		return time.Unix(int64(f), 0)
	}
	switch kind {
	case "", "distribution":
		var ids []string
		var at time.Time
		for _, e := range p.Events {
			if e.ID != "" {
				ids = append(ids, e.ID)
			}
			if t := rfc(e.Timestamp); !t.IsZero() && (at.IsZero() || t.Before(at)) {
				at = t
			}
		}
		sort.Strings(ids)
		return delivery{id: prefixed(kind, strings.Join(ids, ",")), at: at}
	case "docker.io":
		return delivery{id: prefixed(kind, p.CallbackURL), at: unix(p.PushData.PushedAt)}
	case "ghcr.io":
		return delivery{id: prefixed(kind, r.Header.Get("X-GitHub-Delivery"))}
	case "harbor":
		at := unix(p.OccurAt)
		if at.IsZero() {
			return delivery{}
		}
		h := sha256.Sum256(body)
		return delivery{id: prefixed(kind, hex.EncodeToString(h[:])), at: at}
	case "acr":
		return delivery{id: prefixed(kind, p.ID), at: rfc(p.Timestamp)}
	case "cloudevents":
		if p.ID == "" {
			return delivery{at: rfc(p.Time)}
		}
		return delivery{id: prefixed(kind, p.Source+"#"+p.ID), at: rfc(p.Time)}
	}
	return delivery{}
}

func prefixed(kind, id string) string {
	if id == "" {
		return ""
	}
	if kind == "" {
		kind = "distribution"
	}
	return kind + ":" + id
}

// replayGuard remembers deliveries for a window and refuses one seen before, or one whose
// timestamp lies outside the window (a delivery older than what is remembered could be a
// replay that is no longer recognised).
type replayGuard struct {
	window time.Duration // <= 0: no replay protection

	mu   sync.Mutex
	seen map[string]time.Time // id → until when it is remembered
}

// admit records d and returns "" when it is new, else why it is refused.
func (g *replayGuard) admit(d delivery, now time.Time) string {
	if g == nil || g.window <= 0 {
		return ""
	}
	if !d.at.IsZero() {
		switch {
		case now.Sub(d.at) > g.window:
			return fmt.Sprintf("delivery from %s is older than the replay window (%v)", d.at.UTC().Format(time.RFC3339), g.window)
		case d.at.Sub(now) > g.window:
			return fmt.Sprintf("delivery timestamp %s lies more than the replay window (%v) ahead", d.at.UTC().Format(time.RFC3339), g.window)
		}
	}
	if d.id == "" {
		return ""
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.seen == nil {
		g.seen = map[string]time.Time{}
	}
	if until, ok := g.seen[d.id]; ok && now.Before(until) {
		return fmt.Sprintf("delivery %s was already received", d.id)
	}
	if len(g.seen) >= maxRemembered {
		for k, until := range g.seen {
			if !now.Before(until) {
				delete(g.seen, k)
			}
		}
		for k := range g.seen { // still full: forget arbitrary ones
			if len(g.seen) < maxRemembered {
				break
			}
			delete(g.seen, k)
		}
	}
	from := now
	if d.at.After(now) {
		from = d.at
	}
	g.seen[d.id] = from.Add(g.window)
	return ""
}
