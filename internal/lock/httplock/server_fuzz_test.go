package httplock

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/testing/fuzztest"
)

// FuzzServerRequests drives the real handler (memory and file backends) with any method, path,
// Authorization header and body, then with a lock named and owned by the fuzzer. Nothing
// panics or hangs; without the token every lock endpoint answers 401 and grants nothing; every
// answer of a lock endpoint is JSON with a status of the protocol; a lock name is only a key
// (the file backend writes one hashed file in its directory, nothing elsewhere); and the
// protocol holds for any name and owner: acquire 200, a second acquire 409 naming the owner,
// renew 200, release 200, release again 410, acquire again 200.
func FuzzServerRequests(f *testing.F) {
	for _, s := range []struct {
		method, path, auth, body, name, owner string
	}{
		{"POST", "/v1/acquire", "Bearer s3cret", `{"name":"shop/0123abcd","owner":"ci-1","waitSeconds":0.01}`, "shop/0123abcd", "ci-1"},
		{"POST", "/v1/renew", "Bearer s3cret", `{"token":"00"}`, "../../etc/passwd", "x"},
		{"POST", "/v1/release", "Bearer wrong", `{"token":""}`, "a\x00b", ""},
		{"POST", "/v1/acquire", "", `{"name":"x","waitSeconds":-1e308}`, "x/../../y", "o"},
		{"POST", "/v1/acquire", "Bearer s3cret", `{"name":"x","waitSeconds":1e400}`, "building/p/d", "owner with spaces"},
		{"POST", "/v1/acquire", "Bearer s3cret", `{"name":"x"}{"name":"y"}`, strings.Repeat("n", 300), "o"},
		{"POST", "/v1/acquire", "Bearer s3cret", `{"name":` + strings.Repeat("[", 1000), "cleanup/p", "o"},
		{"GET", "/v1/acquire", "Bearer s3cret", ``, "p", "o"},
		{"GET", "/metrics", "", ``, "p", "o"},
		{"GET", "/healthz", "", ``, "p", "o"},
		{"PUT", "/v1/../v1/release", "bearer s3cret", `null`, "p", "o"},
	} {
		f.Add(s.method, s.path, s.auth, []byte(s.body), s.name, s.owner, false)
	}
	bounds := fuzztest.Bounds{Time: 20 * time.Second, Heap: 128 << 20}
	f.Fuzz(func(t *testing.T, method, path, auth string, body []byte, name, owner string, fileBackend bool) {
		root := t.TempDir()
		dir := filepath.Join(root, "locks")
		o := ServerOptions{Token: "s3cret", TTL: time.Minute, MaxWait: 20 * time.Millisecond}
		if fileBackend {
			o.Backend = &lock.File{Dir: dir, Poll: 2 * time.Millisecond}
		}
		s := NewServer(o)
		defer s.Close()
		do := func(method, path, auth string, body []byte) (int, []byte) {
			t.Helper()
			r, err := http.NewRequest(method, "http://sync.local"+path, bytes.NewReader(body))
			if err != nil {
				return 0, nil
			}
			if auth != "" {
				r.Header.Set("Authorization", auth)
			}
			w := httptest.NewRecorder()
			fuzztest.Bounded(t, bounds, method+" "+path, func() { s.ServeHTTP(w, r) })
			return w.Code, w.Body.Bytes()
		}
		lockEndpoint := func(r *http.Request) bool {
			return r != nil && r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/")
		}

		// 1. The raw request.
		req, _ := http.NewRequest(method, "http://sync.local"+path, nil)
		code, out := do(method, path, auth, body)
		if lockEndpoint(req) && code != http.StatusNotFound && code != http.StatusMethodNotAllowed && code != http.StatusMovedPermanently {
			if auth != "Bearer s3cret" && code != http.StatusUnauthorized {
				t.Fatalf("%s %s with Authorization %q: %d, want 401", method, path, auth, code)
			}
			var resp AcquireResponse
			if err := json.Unmarshal(out, &resp); err != nil {
				t.Fatalf("%s %s: %d, not JSON: %q", method, path, code, out)
			}
			switch code {
			case http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized, http.StatusConflict, http.StatusGone:
			default:
				t.Fatalf("%s %s: status %d outside the protocol: %s", method, path, code, out)
			}
			if code != http.StatusOK && resp.Error == "" {
				t.Errorf("%s %s: %d without an error message", method, path, code)
			}
		}
		s.mu.Lock()
		granted := len(s.grants)
		s.mu.Unlock()
		if auth != "Bearer s3cret" && granted != 0 {
			t.Fatalf("a request without the token was granted a lock")
		}
		if granted != 0 {
			return // the name of the raw request may be the fuzzed one: the protocol below starts from no grant
		}

		// 2. The protocol, for any lock name and owner, as a client's JSON carries them (invalid
		// UTF-8 becomes U+FFFD).
		var asSent struct{ Name, Owner string }
		b, _ := json.Marshal(struct{ Name, Owner string }{name, owner})
		_ = json.Unmarshal(b, &asSent)
		name, owner = asSent.Name, asSent.Owner
		if name == "" {
			return
		}
		acquire, _ := json.Marshal(AcquireRequest{Name: name, Owner: owner, WaitSeconds: 0.01})
		code, out = do("POST", "/v1/acquire", "Bearer s3cret", acquire)
		var granted1 AcquireResponse
		if code != http.StatusOK || json.Unmarshal(out, &granted1) != nil || granted1.Token == "" {
			t.Fatalf("acquire %q: %d %s", name, code, out)
		}
		if code, _ = do("POST", "/v1/acquire", "", acquire); code != http.StatusUnauthorized {
			t.Fatalf("acquire without the token: %d", code)
		}
		code, out = do("POST", "/v1/acquire", "Bearer s3cret", acquire)
		var held AcquireResponse
		if code != http.StatusConflict || json.Unmarshal(out, &held) != nil || !held.Held || held.Holder == nil || held.Holder.Owner != owner {
			t.Fatalf("second acquire of %q: %d %s, want 409 naming owner %q", name, code, out, owner)
		}
		token, _ := json.Marshal(TokenRequest{Token: granted1.Token})
		if code, out = do("POST", "/v1/renew", "Bearer s3cret", token); code != http.StatusOK {
			t.Fatalf("renew: %d %s", code, out)
		}
		if code, out = do("POST", "/v1/release", "Bearer wrong", token); code != http.StatusUnauthorized {
			t.Fatalf("release with a wrong token: %d %s", code, out)
		}
		if code, out = do("POST", "/v1/release", "Bearer s3cret", token); code != http.StatusOK {
			t.Fatalf("release: %d %s", code, out)
		}
		if code, out = do("POST", "/v1/release", "Bearer s3cret", token); code != http.StatusGone {
			t.Fatalf("second release: %d %s, want 410", code, out)
		}
		if code, out = do("POST", "/v1/acquire", "Bearer s3cret", acquire); code != http.StatusOK {
			t.Fatalf("acquire after release: %d %s", code, out)
		}
		if fileBackend {
			ents, _ := os.ReadDir(root)
			if len(ents) != 1 || ents[0].Name() != "locks" {
				t.Fatalf("files outside the lock directory: %v", ents)
			}
			locks, _ := os.ReadDir(dir)
			if len(locks) != 1 || locks[0].Name() != lock.Key(name)+".lock" || !locks[0].Type().IsRegular() {
				t.Fatalf("lock directory holds %v, want the one file %s.lock", locks, lock.Key(name))
			}
		}
	})
}
