// Package backends opens a lock.Locker from a --synchronization spec:
//
//	:local                            file locks on this host (default)
//	kubernetes://NAMESPACE[:CONTEXT]  Leases through client-go with the user's kubeconfig
//	                                  (empty NAMESPACE: strata-synchronization)
//	http(s)://HOST:PORT               a `strata sync-server`; bearer token from Options.Token or
//	                                  the STRATA_SYNC_TOKEN environment variable
//
// Serve runs that sync server (`strata sync-server`) with its locks in memory or in Leases.
package backends
