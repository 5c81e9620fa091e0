package imageupdater

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
)

// reconcile checks one Application and writes its new targetRevision. On a write conflict it
// re-reads the Application from the API and decides again.
func (c *controller) reconcile(ctx context.Context, cyc *cycle, key string) (updated bool, err error) {
	app, ok := c.get(key)
	if !ok || !optedIn(app.GetAnnotations()) {
		return false, nil
	}
	c.metrics.checks.Inc()
	log := c.log.With("application", key)
	defer func() {
		if err != nil {
			c.reportError(ctx, app, key, err)
			log.Error("bundle check failed", "error", err)
		} else {
			c.clearError(key)
		}
	}()
	// One Application's check never holds up the others for longer than CheckTimeout: registry
	// calls and tag matching give up when checkCtx ends. Events still use ctx.
	checkCtx, cancel := context.WithTimeout(ctx, c.opts.CheckTimeout)
	defer cancel()
	defer func() {
		if err != nil && ctx.Err() == nil && errors.Is(checkCtx.Err(), context.DeadlineExceeded) {
			err = fail(reasonTimeout, fmt.Errorf("check did not finish within %v (check timeout): %w", c.opts.CheckTimeout, err))
		}
	}()
	updated, err = c.converge(checkCtx, cyc, app, log)
	return updated, err
}

// converge decides and writes until the Application points where it should. On a write
// conflict it re-reads the Application from the API and decides again.
func (c *controller) converge(ctx context.Context, cyc *cycle, app *unstructured.Unstructured, log *slog.Logger) (updated bool, err error) {
	const attempts = 10
	for attempt := 1; ; attempt++ {
		d, err := c.decideVerified(ctx, cyc, app)
		if attempt == 1 {
			c.reportOnChange(ctx, app, c.lastRefused, reasonRefused, d.refused, log)
		}
		if err != nil {
			return false, err
		}
		if attempt == 1 {
			c.reportOnChange(ctx, app, c.lastWarn, reasonIgnored, d.warnings, log)
		}
		if d.target == "" || d.target == d.source.current {
			log.Debug("bundle up to date", "repository", d.source.repository, "revision", d.source.current)
			return false, nil
		}
		if c.opts.DryRun {
			log.Info("would update bundle (dry run)", "repository", d.source.repository, "from", d.source.current, "to", d.target, "why", d.why)
			c.metrics.updates.Inc()
			return true, nil
		}
		if c.beforeWrite != nil {
			c.beforeWrite(app)
		}
		if d.writeBack.git {
			return c.convergeGit(ctx, app, d, log)
		}
		err = c.write(ctx, app, d)
		if err == nil {
			log.Info("updated bundle", "repository", d.source.repository, "from", d.source.current, "to", d.target, "why", d.why)
			c.metrics.updates.Inc()
			c.event(ctx, app, corev1.EventTypeNormal, reasonUpdated, fmt.Sprintf("targetRevision of %s: %s -> %s (%s)", d.source.repository, orNone(d.source.current), d.target, d.why))
			return true, nil
		}
		if !isConflict(err) || attempt == attempts {
			return false, fail(reasonWriteError, fmt.Errorf("update %s targetRevision to %s: %w", d.source.jsonPath(), d.target, err))
		}
		log.Debug("Application changed while updating; re-reading", "attempt", attempt)
		fresh, gerr := c.dyn.Resource(applications).Namespace(app.GetNamespace()).Get(ctx, app.GetName(), metav1.GetOptions{})
		if gerr != nil {
			if apierrors.IsNotFound(gerr) {
				return false, nil
			}
			return false, fail(reasonWriteError, fmt.Errorf("re-read after conflict: %w", gerr))
		}
		if !optedIn(fresh.GetAnnotations()) {
			return false, nil
		}
		app = fresh
	}
}

// convergeGit writes the decision to git (write-back-method git): the Application in the
// cluster follows when Argo CD syncs what manages it (an app-of-apps parent, an ApplicationSet's
// generator), so nothing is written in the cluster.
func (c *controller) convergeGit(ctx context.Context, app *unstructured.Unstructured, d decision, log *slog.Logger) (bool, error) {
	w, err := c.writeGit(ctx, app, d, log)
	if err != nil {
		return false, err
	}
	if !w.changed {
		log.Debug("git already says the revision; waiting for Argo CD to sync it", "repository", d.source.repository, "to", d.target, "git", w.url, "branch", w.branch, "file", w.file)
		return false, nil
	}
	log.Info("updated bundle in git", "repository", d.source.repository, "from", orNone(w.old), "to", d.target, "why", d.why,
		"git", w.url, "branch", w.branch, "file", w.file, "commit", w.commit)
	c.metrics.updates.Inc()
	c.event(ctx, app, corev1.EventTypeNormal, reasonUpdated, fmt.Sprintf("targetRevision of %s: %s -> %s (%s), written to %s %s:%s in commit %.12s",
		d.source.repository, orNone(w.old), d.target, d.why, w.url, w.branch, w.file, w.commit))
	return true, nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// write sets the source's targetRevision with a JSON patch that also carries the resourceVersion
// the decision was based on. The apiserver takes it as a precondition: after a concurrent edit the
// patch fails with 409 Conflict instead of overwriting, and only targetRevision is ever written.
func (c *controller) write(ctx context.Context, app *unstructured.Unstructured, d decision) error {
	ops := []map[string]any{
		{"op": "replace", "path": "/metadata/resourceVersion", "value": app.GetResourceVersion()},
		{"op": "add", "path": d.source.jsonPath(), "value": d.target},
	}
	body, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	_, err = c.dyn.Resource(applications).Namespace(app.GetNamespace()).Patch(ctx, app.GetName(), types.JSONPatchType, body, metav1.PatchOptions{FieldManager: component})
	return err
}

func isConflict(err error) bool { return apierrors.IsConflict(err) }

func (c *controller) reportError(ctx context.Context, app *unstructured.Unstructured, key string, err error) {
	reason := "BundleCheckFailed"
	var ce *checkError
	if errors.As(err, &ce) {
		reason = ce.reason
	}
	c.metrics.errors.WithLabelValues(reason).Inc()
	c.mu.Lock()
	same := c.lastErr[key] == err.Error()
	c.lastErr[key] = err.Error()
	c.mu.Unlock()
	if !same {
		c.event(ctx, app, corev1.EventTypeWarning, reason, err.Error())
	}
}

// reportOnChange logs and records as one Warning Event under reason, again only when they
// change (last holds the previous ones per Application), what a check ignored or refused.
func (c *controller) reportOnChange(ctx context.Context, app *unstructured.Unstructured, last map[string]string, reason string, warnings []string, log *slog.Logger) {
	key := app.GetNamespace() + "/" + app.GetName()
	msg := strings.Join(warnings, "; ")
	c.mu.Lock()
	same := last[key] == msg
	if msg == "" {
		delete(last, key)
	} else {
		last[key] = msg
	}
	c.mu.Unlock()
	if msg == "" || same {
		return
	}
	for _, w := range warnings {
		log.Warn(reason, "warning", w)
	}
	c.event(ctx, app, corev1.EventTypeWarning, reason, msg)
}

func (c *controller) clearError(key string) {
	c.mu.Lock()
	delete(c.lastErr, key)
	c.mu.Unlock()
}

// event records a core/v1 Event on the Application. Failures are logged, never fatal.
func (c *controller) event(ctx context.Context, app *unstructured.Unstructured, typ, reason, msg string) {
	if c.opts.DryRun {
		return
	}
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name:      fmt.Sprintf("%s.%x", app.GetName(), now.UnixNano()),
			Namespace: app.GetNamespace(),
		},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: applicationAPIVersion, Kind: "Application",
			Namespace: app.GetNamespace(), Name: app.GetName(), UID: app.GetUID(), ResourceVersion: app.GetResourceVersion(),
		},
		Reason: reason, Message: truncate(msg, 1024), Type: typ,
		Source:         corev1.EventSource{Component: component, Host: c.hostname},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "strata.dev/image-updater", ReportingInstance: truncate(component+"-"+c.hostname, 128),
	}
	if _, err := c.kube.CoreV1().Events(app.GetNamespace()).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		c.log.Warn("record event", "application", app.GetNamespace()+"/"+app.GetName(), "reason", reason, "error", err)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
