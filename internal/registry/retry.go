package registry

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	orasremote "oras.land/oras-go/v2/registry/remote"
)

// Retry policy of the transport every registry request goes through.
const (
	// maxAttempts bounds the tries of one request.
	maxAttempts = 5
	// firstBackoff doubles after each failed try, up to maxBackoff, with ±20 % jitter.
	firstBackoff = 250 * time.Millisecond
	maxBackoff   = 4 * time.Second
	// maxRetryAfter caps the wait a 429's Retry-After asks for.
	maxRetryAfter = 10 * time.Second
	// maxBufferedResponse is the largest successful GET response (manifests, configs, small
	// blobs) read whole before it is returned, so that a body cut short is one more failed try.
	maxBufferedResponse = 4 << 20
	// maxReplayBytes is the largest request body kept in memory so that it can be sent again;
	// a larger body that cannot be given again (no GetBody) is sent once.
	maxReplayBytes = 16 << 20
)

// retryTransport retries the transient failures of registry requests with bounded exponential
// backoff: 429 (after its Retry-After, capped), 500, 502, 503, 504, and connections reset, closed
// or timed out before the whole response arrived (a body cut short included, for responses read
// whole: see readSmallBody); an upload chunk (PATCH) is never sent twice; a DELETE whose retry
// finds nothing to delete succeeded the first time (its answer was lost).
// A blob upload's final PUT (…/blobs/uploads/…?
// digest=D) that fails is first checked with a HEAD of blob D: when the registry holds it, the
// upload succeeded (its response was lost) and a 201 Created is returned.
type retryTransport struct {
	base http.RoundTripper
}

// uploadPath matches the path of a blob upload session: /v2/<name>/blobs/uploads/<id>.
var uploadPath = regexp.MustCompile(`^(/v2/.+)/blobs/uploads/[^/]+$`)

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req, replayable, err := replayableRequest(req)
	if err != nil {
		return nil, err
	}
	ctx := req.Context()
	for attempt := 1; ; attempt++ {
		resp, err := t.base.RoundTrip(req)
		if err == nil {
			resp, err = readSmallBody(resp)
		} else if plainHTTP(err) {
			return nil, fmt.Errorf("registry %s answers plain HTTP, not HTTPS: if it is meant to, list it with --insecure-registry %s (or STRATA_INSECURE_REGISTRY; loopback addresses always are): %w", req.URL.Host, req.URL.Host, err)
		}
		// after a lost response, a DELETE has done its work: a 404 on the next try is its success
		if attempt > 1 && err == nil && resp.StatusCode == http.StatusNotFound && req.Method == http.MethodDelete {
			discard(resp)
			return deleted(req), nil
		}
		// after a lost response, the upload session of a blob PUT is gone: a 404 on the next try
		lostUpload := attempt > 1 && err == nil && resp.StatusCode == http.StatusNotFound
		if !transient(resp, err) && !lostUpload {
			if err == nil && resumable(resp) {
				resp.Body = &resumingBody{t: t, req: req, body: resp.Body, size: resp.ContentLength}
			}
			return redactRequest(resp), err
		}
		if r, ok := t.uploadLanded(req); ok {
			discard(resp)
			return r, nil
		}
		if !replayable || lostUpload {
			return redactRequest(resp), err
		}
		if attempt == maxAttempts {
			return nil, gaveUp(req, resp, err, attempt)
		}
		wait := backoff(attempt, resp)
		discard(resp)
		if req, err = rewind(req); err != nil {
			return nil, err
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
	}
}

// resumable reports whether resp is a whole blob too large to be read before it is returned
// (see readSmallBody): its body is read on, from where it broke off, by resumingBody.
func resumable(resp *http.Response) bool {
	req := resp.Request
	return req != nil && req.Method == http.MethodGet && resp.StatusCode == http.StatusOK &&
		resp.ContentLength > maxBufferedResponse && strings.Contains(req.URL.Path, "/blobs/") &&
		req.Header.Get("Range") == ""
}

// resumingBody is the body of a large blob: when the connection breaks off before its end, the
// rest is asked for (Range: bytes=OFFSET-, answered 206 from that offset) and reading goes on,
// up to maxAttempts-1 times; the bytes read are the blob's either way (the caller verifies its
// digest).
type resumingBody struct {
	t       *retryTransport
	req     *http.Request
	body    io.ReadCloser
	off     int64
	size    int64
	resumes int
	broken  error // the error of the last read, to resume from at the next one
}

func (b *resumingBody) Read(p []byte) (int, error) {
	if b.broken != nil {
		if err := b.resume(); err != nil {
			return 0, err
		}
	}
	n, err := b.body.Read(p)
	b.off += int64(n)
	if err == nil || err == io.EOF && b.off >= b.size || !transient(nil, err) || b.resumes >= maxAttempts-1 {
		return n, err
	}
	b.broken = err
	if n > 0 {
		return n, nil
	}
	return b.Read(p)
}

// resume asks for the rest of the blob; on failure it returns the error the body broke off with.
func (b *resumingBody) resume() error {
	broken := b.broken
	b.broken = nil
	b.resumes++
	b.body.Close()
	ctx := b.req.Context()
	timer := time.NewTimer(backoff(b.resumes, nil))
	select {
	case <-ctx.Done():
		timer.Stop()
		return ctx.Err()
	case <-timer.C:
	}
	r := b.req.Clone(ctx)
	r.Header.Set("Range", fmt.Sprintf("bytes=%d-", b.off))
	resp, err := b.t.base.RoundTrip(r)
	if err != nil {
		return fmt.Errorf("%w (resuming at byte %d: %v)", broken, b.off, err)
	}
	want := fmt.Sprintf("bytes %d-%d/%d", b.off, b.size-1, b.size)
	if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != want {
		discard(resp)
		return fmt.Errorf("%w (resuming at byte %d: %s, Content-Range %q)", broken, b.off, resp.Status, resp.Header.Get("Content-Range"))
	}
	b.body = resp.Body
	return nil
}

func (b *resumingBody) Close() error { return b.body.Close() }

// StatusError is the error of a request that failed transiently on every try: the registry's
// last answer. net/http wraps it with the method and URL (url.Error): `PUT "https://…": 503
// Service Unavailable after 5 attempts: UNAVAILABLE: …`.
type StatusError struct {
	StatusCode int
	Status     string
	// Message is the registry's error (CODE: message of its JSON errors, else the start of
	// the body), "" if it sent none.
	Message  string
	Attempts int
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("%s after %d attempts", e.Status, e.Attempts)
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// gaveUp is the error of the last try of a request that failed transiently every time.
func gaveUp(req *http.Request, resp *http.Response, err error, attempts int) error {
	if err != nil {
		return fmt.Errorf("%w (after %d attempts)", err, attempts)
	}
	defer discard(resp)
	status := resp.Status
	if status == "" {
		status = fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	var msg string
	if req.Method != http.MethodHead && resp.Body != nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		msg = registryMessage(b)
	}
	return &StatusError{StatusCode: resp.StatusCode, Status: status, Message: msg, Attempts: attempts}
}

// registryMessage is what a registry's error body says: "CODE: message" of each of its JSON
// errors (the distribution spec's form), else its first line, shortened.
func registryMessage(b []byte) string {
	var body struct {
		Errors []struct{ Code, Message string }
	}
	if json.Unmarshal(b, &body) == nil && len(body.Errors) > 0 {
		var parts []string
		for _, e := range body.Errors {
			parts = append(parts, strings.TrimPrefix(e.Code+": "+e.Message, ": "))
		}
		return strings.Join(parts, "; ")
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(line) > 200 {
		line = line[:200] + "…"
	}
	return line
}

// readSmallBody reads into memory the body of at most maxBufferedResponse bytes of a successful
// GET response (manifests, configs, small blobs, tag listings) or of an error response (the
// registry's JSON errors): a body cut short is then an error (io.ErrUnexpectedEOF) another try
// may not meet, instead of a failed read or JSON decode after the transport returned.
func readSmallBody(resp *http.Response) (*http.Response, error) {
	if resp.Request == nil || resp.Request.Method == http.MethodHead ||
		!(resp.Request.Method == http.MethodGet && resp.StatusCode == http.StatusOK || resp.StatusCode >= 400) ||
		resp.ContentLength <= 0 || resp.ContentLength > maxBufferedResponse {
		return resp, nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, resp.ContentLength))
	resp.Body.Close()
	if err == nil && int64(len(b)) < resp.ContentLength {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, fmt.Errorf("read the response to %s %s: %w", resp.Request.Method, Redact(resp.Request.URL.Redacted()), err)
	}
	resp.Body = readSeekNopCloser{bytes.NewReader(b)}
	return resp, nil
}

type readSeekNopCloser struct{ *bytes.Reader }

func (readSeekNopCloser) Close() error { return nil }

// uploadState matches the upload state of a blob upload URL's query: a signed token that
// must not be printed.
var uploadState = regexp.MustCompile(`([?&]_state=)[^&\s"']+`)

// Redact replaces the upload state token (_state=…) of every URL in s with REDACTED.
func Redact(s string) string { return uploadState.ReplaceAllString(s, "${1}REDACTED") }

// redactingClient is an oras-go client whose errors never print an upload state: the URL of a
// request that failed without a response (url.Error, made by net/http) is redacted.
type redactingClient struct{ orasremote.Client }

func (c redactingClient) Do(req *http.Request) (*http.Response, error) {
	resp, err := c.Client.Do(req)
	var ue *url.Error
	if err != nil && errors.As(err, &ue) {
		ue.URL = Redact(ue.URL)
	}
	return resp, err
}

// redactRequest drops the upload state (_state, a signed token) from the URL of a failed
// response's request, which oras-go names in its errors.
func redactRequest(resp *http.Response) *http.Response {
	if resp == nil || resp.StatusCode < 400 || resp.Request == nil || !resp.Request.URL.Query().Has("_state") {
		return resp
	}
	r := resp.Request.Clone(resp.Request.Context())
	q := r.URL.Query()
	q.Set("_state", "REDACTED")
	r.URL.RawQuery = q.Encode()
	resp.Request = r
	return resp
}

// replayableRequest returns req ready to be sent more than once, and whether it can be: no body,
// a body the request can give again, or one small enough to be read into memory first.
func replayableRequest(req *http.Request) (*http.Request, bool, error) {
	if req.Method == http.MethodPatch {
		// a chunk of an upload: sent again after a lost response, it would be appended twice
		// (go-containerregistry restarts a failed upload itself)
		return req, false, nil
	}
	if req.Body == nil || req.Body == http.NoBody || req.GetBody != nil {
		return req, true, nil
	}
	if req.ContentLength < 0 || req.ContentLength > maxReplayBytes {
		return req, false, nil
	}
	b, err := io.ReadAll(io.LimitReader(req.Body, req.ContentLength))
	req.Body.Close()
	if err != nil {
		return nil, false, err
	}
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	return r, true, nil
}

func rewind(req *http.Request) (*http.Request, error) {
	if req.GetBody == nil {
		return req, nil
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	r := req.Clone(req.Context())
	r.Body = body
	return r, nil
}

// plainHTTP reports whether err is a TLS handshake answered by plain HTTP (net/http's client
// calls it "server gave HTTP response to HTTPS client").
func plainHTTP(err error) bool {
	var re tls.RecordHeaderError
	return errors.As(err, &re) && string(re.RecordHeader[:]) == "HTTP/" ||
		strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}

// transient reports whether a try failed in a way another try may not.
func transient(resp *http.Response, err error) bool {
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return false
		}
		var ne net.Error
		return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
			errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
			errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) || errors.As(err, &ne) && ne.Timeout()
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return manifestBlobUnknown(resp)
}

// manifestBlobUnknown reports whether resp refuses a manifest PUT because a blob it names is
// unknown. The client has just stored those blobs, so this is a registry that does not see them
// yet: storage that is eventually consistent, or distribution's filesystem storage reading a
// blob link another request is rewriting (a concurrent mount of the same blob into the same
// repository), which it then answers DIGEST_INVALID + MANIFEST_BLOB_UNKNOWN; a later try sees
// them (stages sync failed 3 of 20 runs on it without any injected fault). A blob that is
// really missing fails after the bounded tries, as before.
func manifestBlobUnknown(resp *http.Response) bool {
	req := resp.Request
	if req == nil || req.Method != http.MethodPut || !strings.Contains(req.URL.Path, "/manifests/") ||
		resp.StatusCode != http.StatusBadRequest || resp.Body == nil {
		return false
	}
	rs, ok := resp.Body.(io.ReadSeeker) // read whole by readSmallBody
	if !ok {
		return false
	}
	b, _ := io.ReadAll(io.LimitReader(rs, 64<<10))
	rs.Seek(0, io.SeekStart)
	return bytes.Contains(b, []byte("MANIFEST_BLOB_UNKNOWN"))
}

// uploadLanded answers a failed final PUT of a blob upload with 201 Created when the registry
// holds the blob all the same.
func (t *retryTransport) uploadLanded(req *http.Request) (*http.Response, bool) {
	dg := req.URL.Query().Get("digest")
	m := uploadPath.FindStringSubmatch(req.URL.Path)
	if req.Method != http.MethodPut || dg == "" || m == nil {
		return nil, false
	}
	u := *req.URL
	u.Path, u.RawPath, u.RawQuery = m[1]+"/blobs/"+dg, "", ""
	head, err := http.NewRequestWithContext(req.Context(), http.MethodHead, u.String(), nil)
	if err != nil {
		return nil, false
	}
	head.Header = req.Header.Clone()
	head.Header.Del("Content-Type")
	head.Header.Del("Content-Length")
	resp, err := t.base.RoundTrip(head)
	if err != nil {
		return nil, false
	}
	discard(resp)
	if resp.StatusCode != http.StatusOK {
		return nil, false
	}
	return &http.Response{
		Status:     "201 Created",
		StatusCode: http.StatusCreated,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{
			"Location":              {u.Path},
			"Docker-Content-Digest": {dg},
			"Content-Length":        {"0"},
		},
		Body:    http.NoBody,
		Request: req,
	}, true
}

// deleted is the answer to a DELETE whose earlier try removed the manifest or blob but whose
// answer was lost: 202 Accepted, as the registry answers a DELETE.
func deleted(req *http.Request) *http.Response {
	return &http.Response{
		Status: "202 Accepted", StatusCode: http.StatusAccepted,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Length": {"0"}}, Body: http.NoBody, Request: req,
	}
}

// backoff is the wait before try attempt+1: a 429's Retry-After (seconds or an HTTP date,
// capped), else exponential with jitter.
func backoff(attempt int, resp *http.Response) time.Duration {
	if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
		if d, ok := retryAfter(resp.Header.Get("Retry-After")); ok {
			return min(d, maxRetryAfter)
		}
	}
	d := min(firstBackoff<<(attempt-1), maxBackoff)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func retryAfter(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(time.Until(at), 0), true
	}
	return 0, false
}

func discard(resp *http.Response) {
	if resp != nil && resp.Body != nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}
}
