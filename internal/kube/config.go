package kube

import (
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Config loads a client configuration with client-go's default loading rules: the kubeconfig
// file (empty: the KUBECONFIG variable, else ~/.kube/config) and its context (empty: the
// current context); in a Pod with neither, the in-cluster configuration.
func Config(kubeconfig, context string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	if err == nil {
		return cfg, nil
	}
	if kubeconfig == "" && context == "" {
		// A broken default kubeconfig inside a Pod: the Pod's own service account still works.
		if in, ierr := rest.InClusterConfig(); ierr == nil {
			return in, nil
		}
	}
	where := kubeconfig
	if where == "" {
		where = "default kubeconfig"
	}
	if context != "" {
		where += ", context " + context
	}
	return nil, fmt.Errorf("kubernetes client config (%s): %w", where, err)
}
