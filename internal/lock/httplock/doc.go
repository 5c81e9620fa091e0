// Package httplock is the HTTP lock backend: Server (run by `strata sync-server`) hands out
// leases over a small JSON API, and Client implements lock.Locker against it.
//
// Endpoints (JSON bodies, bearer token in Authorization when the server has one):
//
//	POST /v1/acquire  {"name","owner","waitSeconds"} -> 200 {"token","ttlSeconds"}
//	                  or 409 {"held":true,"holder":{"owner","since"}} after waitSeconds (long poll)
//	POST /v1/renew    {"token"} -> 200 {"ttlSeconds"}, or 410 when the lease is gone
//	POST /v1/release  {"token"} -> 200, or 410 when the lease is gone
//	GET  /healthz     -> 200 ok
//	GET  /metrics     -> Prometheus text format
//
// A grant not renewed within its TTL is released by the server. The server keeps its locks in
// memory, or in any other lock.Locker (the Kubernetes backend with --kubernetes).
package httplock
