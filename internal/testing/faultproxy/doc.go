// Package faultproxy is a test harness: a reverse proxy on 127.0.0.1 in front of a real server
// (the test registry) that injects faults — by rule (one-shot, N-shot or always) or at random
// at a given rate (Chaos): a status (500, 503, 429 with Retry-After), a reset before forwarding
// (the server never sees the request), a lost response (forwarded, then the connection closed
// unanswered), a body cut short, a slow body — and logs every request it sees and every fault
// it injected.
package faultproxy
