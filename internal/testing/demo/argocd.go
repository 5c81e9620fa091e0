package demo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"

	"strata.dev/strata/imageupdater"
	"strata.dev/strata/internal/testing/argocdtest"
	"strata.dev/strata/internal/testing/testenv"
)

// ErrNoArgoCD wraps what is missing when real Argo CD cannot be started (binaries not built,
// STRATA_TESTENV_ARGOCD=0): the demo needs it.
var ErrNoArgoCD = errors.New("the demo runs on real Argo CD")

// startArgoCD starts real Argo CD (redis, repo server, application controller and the CMP
// server with the strata plugin, running the demo's strata binary).
func (r *runner) startArgoCD(ctx context.Context) (*argocdtest.ArgoCD, error) {
	a, err := argocdtest.Start(ctx, argocdtest.Options{Strata: r.bin, Log: r.log})
	if errors.Is(err, argocdtest.ErrMissing) {
		return nil, fmt.Errorf("%w, which is not available here: %v; start the environment with it: %s (without STRATA_TESTENV_ARGOCD=0; the first run builds Argo CD, ~5 min)",
			ErrNoArgoCD, err, testenv.UpCommand)
	}
	if err != nil {
		return nil, fmt.Errorf("demo: start Argo CD: %w", err)
	}
	return a, nil
}

// createApplication creates the demo's Application in Argo CD's namespace: a Helm-OCI source
// (repoURL + chart, with the repository Secret Argo CD needs for it: type helm, enableOCI)
// rendered by the strata plugin, auto-synced into dest, opted in to the updater with a semver
// constraint. It starts at 0.0.0: nothing is published yet.
func (r *runner) createApplication(ctx context.Context, a *argocdtest.ArgoCD, dest, bundleRepo string) (*v1alpha1.Application, error) {
	repoURL, chart, _ := cutLast(bundleRepo, "/")
	if err := a.AddRepository(ctx, "strata-demo-bundles", map[string]string{
		"type": "helm", "name": "strata-demo-bundles", "url": repoURL, "enableOCI": "true", "insecureOCIForceHttp": "true",
	}); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	app := &v1alpha1.Application{
		ObjectMeta: metav1.ObjectMeta{
			Name:        chart,
			Namespace:   a.Namespace,
			Annotations: map[string]string{imageupdater.AnnotationChartVersion: ">=0.1.0"},
		},
		Spec: v1alpha1.ApplicationSpec{
			Project: "default",
			Source: &v1alpha1.ApplicationSource{
				RepoURL:        repoURL,
				Chart:          chart,
				TargetRevision: "0.0.0",
				Plugin:         &v1alpha1.ApplicationSourcePlugin{Name: "strata"},
			},
			Destination: v1alpha1.ApplicationDestination{Server: "https://kubernetes.default.svc", Namespace: dest},
			SyncPolicy:  &v1alpha1.SyncPolicy{Automated: &v1alpha1.SyncPolicyAutomated{Prune: true}},
		},
	}
	created, err := a.Argo.ArgoprojV1alpha1().Applications(a.Namespace).Create(ctx, app, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("demo: create Application: %w", err)
	}
	return created, nil
}

// updateApplication runs one cycle of the image updater and returns the Application as it is then.
func (r *runner) updateApplication(ctx context.Context, a *argocdtest.ArgoCD, name string) (*v1alpha1.Application, error) {
	if _, err := r.strata(ctx, "image-updater", "run", "--once", "--namespace", a.Namespace, "--kubeconfig", r.o.Env.Kubeconfig); err != nil {
		return nil, err
	}
	app, err := a.Argo.ArgoprojV1alpha1().Applications(a.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("demo: get Application: %w", err)
	}
	return app, nil
}

// waitSynced waits until Argo CD's controller has synced the Application on revision: sync
// status Synced on it and the last sync operation succeeded on it.
func (r *runner) waitSynced(ctx context.Context, a *argocdtest.ArgoCD, name, revision string) (*v1alpha1.Application, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	apps := a.Argo.ArgoprojV1alpha1().Applications(a.Namespace)
	var app *v1alpha1.Application
	for {
		got, err := apps.Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			app = got
			op := app.Status.OperationState
			if app.Status.Sync.Status == v1alpha1.SyncStatusCodeSynced && app.Status.Sync.Revision == revision &&
				op != nil && op.Phase == "Succeeded" && op.SyncResult != nil && op.SyncResult.Revision == revision {
				return app, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("demo: Application %s/%s not Synced on %s in 3 min (%s); repo server:%s\ncontroller:%s\nplugin:%s",
				a.Namespace, name, revision, appState(app), a.LogTail("argocd-repo-server", 10),
				a.LogTail("argocd-application-controller", 10), a.LogTail("argocd-cmp-server", 10))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func appState(app *v1alpha1.Application) string {
	if app == nil {
		return "not read"
	}
	s := fmt.Sprintf("sync %s on %q", app.Status.Sync.Status, app.Status.Sync.Revision)
	if op := app.Status.OperationState; op != nil {
		s += fmt.Sprintf(", operation %s: %s", op.Phase, op.Message)
	}
	for _, c := range app.Status.Conditions {
		s += fmt.Sprintf(", %s: %s", c.Type, c.Message)
	}
	return s
}

// LiveObject is an object Argo CD synced, as the API server has it.
type LiveObject struct {
	Kind, Namespace, Name string
	Annotations           map[string]string
}

// liveObjects reads every resource the Application lists from the API server.
func (r *runner) liveObjects(ctx context.Context, app *v1alpha1.Application) ([]LiveObject, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", r.o.Env.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("demo: kubeconfig: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	groups, err := restmapper.GetAPIGroupResources(disc)
	if err != nil {
		return nil, fmt.Errorf("demo: discovery: %w", err)
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	var out []LiveObject
	for _, res := range app.Status.Resources {
		m, err := mapper.RESTMapping(schema.GroupKind{Group: res.Group, Kind: res.Kind}, res.Version)
		if err != nil {
			return nil, fmt.Errorf("demo: %s %s: %w", res.Kind, res.Name, err)
		}
		obj, err := dyn.Resource(m.Resource).Namespace(res.Namespace).Get(ctx, res.Name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("demo: live %s %s/%s: %w", res.Kind, res.Namespace, res.Name, err)
		}
		out = append(out, LiveObject{Kind: res.Kind, Namespace: res.Namespace, Name: res.Name, Annotations: obj.GetAnnotations()})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("demo: the Application %s lists no resources", app.Name)
	}
	return out, nil
}

// commonAnnotations are the annotations every object carries with the same value.
func commonAnnotations(objs []LiveObject) map[string]string {
	var common map[string]string
	for _, o := range objs {
		if common == nil {
			common = map[string]string{}
			for k, v := range o.Annotations {
				common[k] = v
			}
			continue
		}
		for k, v := range common {
			if o.Annotations[k] != v {
				delete(common, k)
			}
		}
	}
	return common
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}
