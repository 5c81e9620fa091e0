package backends

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"strata.dev/strata/internal/kube"
	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/lock/httplock"
	"strata.dev/strata/internal/lock/kubelock"
)

// TokenEnv is the environment variable a sync-server client reads its bearer token from when
// Options.Token is empty.
const TokenEnv = "STRATA_SYNC_TOKEN"

// Options configure Open.
type Options struct {
	// Owner identifies this process in lock records; default lock.DefaultOwner().
	Owner string
	// Log receives wait and renewal messages.
	Log *slog.Logger
	// FileDir overrides the directory of :local locks.
	FileDir string
	// Kubeconfig overrides the kubeconfig path of kubernetes:// (default: KUBECONFIG, then
	// ~/.kube/config, then in-cluster).
	Kubeconfig string
	// Token is the bearer token of http(s):// (default: $STRATA_SYNC_TOKEN).
	Token string
	// TTL and RenewEvery override the kubernetes:// lease timing (defaults 15 s and 5 s).
	TTL, RenewEvery time.Duration
}

// Open returns the Locker a spec names. An empty spec means :local.
func Open(ctx context.Context, spec string, o Options) (lock.Locker, error) {
	switch {
	case spec == "" || spec == ":local":
		return &lock.File{Dir: o.FileDir, Owner: o.Owner, Log: o.Log}, nil
	case strings.HasPrefix(spec, "kubernetes://"):
		ns, kubeContext, _ := strings.Cut(strings.TrimPrefix(spec, "kubernetes://"), ":")
		k, err := openKubernetes(ns, kubeContext, o)
		if err != nil {
			return nil, fmt.Errorf("synchronization %q: %w", spec, err)
		}
		return k, nil
	case strings.HasPrefix(spec, "http://"), strings.HasPrefix(spec, "https://"):
		token := o.Token
		if token == "" {
			token = os.Getenv(TokenEnv)
		}
		c, err := httplock.NewClient(httplock.ClientOptions{URL: spec, Token: token, Owner: o.Owner, Log: o.Log})
		if err != nil {
			return nil, fmt.Errorf("synchronization %q: %w", spec, err)
		}
		return c, nil
	}
	return nil, fmt.Errorf("synchronization %q: want :local, kubernetes://NAMESPACE[:CONTEXT] or http(s)://HOST:PORT", spec)
}

// openKubernetes returns a Lease-backed Locker in namespace ns of the cluster of kubeContext.
func openKubernetes(ns, kubeContext string, o Options) (*kubelock.Locker, error) {
	cfg, err := kube.Config(o.Kubeconfig, kubeContext)
	if err != nil {
		return nil, err
	}
	cs, err := kubelock.ClientFor(cfg)
	if err != nil {
		return nil, err
	}
	return kubelock.New(kubelock.Options{Client: cs, Namespace: ns, Owner: o.Owner, TTL: o.TTL, RenewEvery: o.RenewEvery, Log: o.Log})
}
