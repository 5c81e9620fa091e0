// Package backends opens a lock.Locker from a --synchronization spec:
//
//	:local                         file locks on this host (default)
//	kubernetes://NAMESPACE[:CONTEXT]  Leases through client-go with the user's kubeconfig
//	http(s)://HOST:PORT            a `strata sync-server`
package backends

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"strata.dev/strata/internal/lock"
)

// Options configure Open.
type Options struct {
	// Owner identifies this process in lock records; default lock.DefaultOwner().
	Owner string
	// Log receives wait and renewal messages.
	Log *slog.Logger
	// FileDir overrides the directory of :local locks.
	FileDir string
}

// Open returns the Locker a spec names. An empty spec means :local.
func Open(ctx context.Context, spec string, o Options) (lock.Locker, error) {
	switch {
	case spec == "" || spec == ":local":
		return &lock.File{Dir: o.FileDir, Owner: o.Owner, Log: o.Log}, nil
	case strings.HasPrefix(spec, "kubernetes://"), strings.HasPrefix(spec, "http://"), strings.HasPrefix(spec, "https://"):
		return nil, fmt.Errorf("synchronization %q: not implemented yet", spec)
	}
	return nil, fmt.Errorf("synchronization %q: want :local, kubernetes://NAMESPACE[:CONTEXT] or http(s)://HOST:PORT", spec)
}
