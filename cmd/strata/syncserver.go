package main

import (
	"time"

	"github.com/spf13/cobra"

	"strata.dev/strata/internal/lock/backends"
)

func newSyncServerCmd(a *app) *cobra.Command {
	var (
		o    backends.ServerOptions
		kube backends.KubernetesOptions
	)
	cmd := &cobra.Command{
		Use:   "sync-server",
		Short: "Serve distributed locks over HTTP for builders",
		Long: `sync-server hands out the publish locks of builders that use
--synchronization=http(s)://HOST:PORT. Its locks live in memory, or with --kubernetes in Lease
objects of that namespace (so several servers, or a restarted one, share them).

Clients send --token (STRATA_TOKEN here) as a bearer token; they read it from STRATA_SYNC_TOKEN.
Without a token it listens only on a loopback address unless --insecure is given.
GET /healthz answers ok; GET /metrics serves Prometheus metrics.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Log = a.log
			if cmd.Flags().Changed("kubernetes") || kube.Namespace != "" {
				o.Kubernetes = &kube
			}
			return backends.Serve(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Listen, "listen", "127.0.0.1:7373", "address to listen on (host:port)")
	f.StringVar(&o.Token, "token", "", "bearer token clients must send (empty: no authentication, loopback --listen only)")
	f.BoolVar(&o.Insecure, "insecure", false, "allow a non-loopback --listen address without --token (any client that reaches it can take locks)")
	f.DurationVar(&o.TTL, "ttl", 15*time.Second, "how long a lock lives without a renew from its holder")
	f.DurationVar(&o.MaxWait, "max-wait", 30*time.Second, "longest time one acquire request waits (long poll)")
	f.StringVar(&kube.Namespace, "kubernetes", "", "keep locks as Leases in this Kubernetes namespace instead of in memory")
	f.StringVar(&kube.Context, "kube-context", "", "kubeconfig context for --kubernetes")
	f.StringVar(&kube.Kubeconfig, "kubeconfig", "", "kubeconfig path for --kubernetes (default: KUBECONFIG, ~/.kube/config, in-cluster)")
	return cmd
}
