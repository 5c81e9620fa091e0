package backends

import (
	"context"
	"fmt"

	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/lock/httplock"
)

// ServerOptions configure Serve.
type ServerOptions struct {
	httplock.ServeOptions
	// Kubernetes, when set, keeps the server's locks as Leases instead of in its memory, so that
	// several servers, or a restarted one, share them.
	Kubernetes *KubernetesOptions
}

// KubernetesOptions name where a sync server keeps its Leases.
type KubernetesOptions struct {
	// Namespace holds the Leases; default kubelock.DefaultNamespace.
	Namespace string
	// Kubeconfig and Context select the cluster; empty: the default loading rules, the current
	// context (in a Pod: in-cluster).
	Kubeconfig, Context string
}

// Serve runs `strata sync-server`: an HTTP lock server on o.Listen until ctx ends, its locks in
// memory or, with o.Kubernetes, in Leases owned by "sync-server/" + lock.DefaultOwner().
func Serve(ctx context.Context, o ServerOptions) error {
	if kc := o.Kubernetes; kc != nil {
		k, err := openKubernetes(kc.Namespace, kc.Context, Options{
			Owner: "sync-server/" + lock.DefaultOwner(), Log: o.Log, Kubeconfig: kc.Kubeconfig})
		if err != nil {
			return fmt.Errorf("sync-server lock backend: %w", err)
		}
		o.Backend = k
	}
	return httplock.Serve(ctx, o.ServeOptions)
}
