// Package faultproxy is a test harness: a reverse proxy on 127.0.0.1 in front of a real server
// (the test registry) that injects faults by rule — a status (503, 429 with Retry-After), a lost
// response (the request is forwarded, the connection closed unanswered), a body cut short — and
// logs every request it sees.
package faultproxy
