// Package gitserver is a test harness: a real git server on 127.0.0.1 — git's own smart-HTTP
// CGI program, git http-backend, behind Go's net/http with basic authentication — serving
// bare repositories to git clients and to Argo CD's repo-server. Product code must not import it.
package gitserver
