// Package argocdtest runs real Argo CD next to the test kube-apiserver: redis,
// argocd-repo-server, argocd-application-controller and argocd-cmp-server with the Strata plugin
// (manifests/argocd/plugin.yaml and a strata binary built from this tree), each as a process on
// 127.0.0.1, from the binaries scripts/testenv.sh builds and caches. Every Start gets its own
// control-plane namespace, so test runs do not see each other's Applications. No pods run (there
// is no kubelet): a sync creates the objects in the API server, which is what tests check.
package argocdtest
