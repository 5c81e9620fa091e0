package imageupdater

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"strata.dev/strata/internal/kube"
	"strata.dev/strata/internal/registry"
)

// Options configure the controller (`strata image-updater run`).
type Options struct {
	// Namespaces to watch; empty means all.
	Namespaces []string
	// Interval between check cycles; 0 means 2 minutes.
	Interval time.Duration
	// Once runs one cycle and returns; an Application that failed makes Run return an error.
	Once bool
	// DryRun logs the updates without writing them.
	DryRun bool
	// Listen is the address of the HTTP server (/webhook, /healthz, /metrics); "" for none.
	Listen string
	// WebhookSecret, if set, must be sent with /webhook requests (Authorization: Bearer <secret>
	// or X-Strata-Webhook-Secret: <secret>).
	WebhookSecret string
	// Registries holds insecure registries, rate limits and default credentials.
	Registries RegistriesConfig
	// Registry is how registries are reached (insecure list, keychain, transport).
	Registry registry.Options
	// Kubeconfig is a kubeconfig path; "" means $KUBECONFIG, ~/.kube/config or in-cluster.
	Kubeconfig string
	// RestConfig, if set, is used instead of Kubeconfig.
	RestConfig *rest.Config
	// Logger receives the controller's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultInterval is the check interval when none is set.
const DefaultInterval = 2 * time.Minute

const (
	component = "strata-image-updater"

	applicationAPIVersion = "argoproj.io/v1alpha1"

	reasonUpdated    = "BundleUpdated"
	reasonInvalid    = "InvalidBundleAnnotation"
	reasonRegistry   = "BundleRegistryError"
	reasonNoTag      = "NoMatchingBundle"
	reasonWriteError = "BundleUpdateFailed"
)

// Run runs the controller until ctx ends (or one cycle with Options.Once).
func Run(ctx context.Context, opts Options) error {
	c, err := newController(opts)
	if err != nil {
		return err
	}
	return c.run(ctx)
}

// applications is Argo CD's Application resource. The controller reads and watches it with
// client-go's dynamic client: Applications stay unstructured objects, and only a source's
// targetRevision is ever written (a JSON patch), so every other field, known to Strata or not,
// is kept as it is.
var applications = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}

// controller is the image updater. Its loop owns the cycles; informer and webhook handlers only
// queue work for it.
type controller struct {
	opts     Options
	log      *slog.Logger
	dyn      dynamic.Interface
	kube     kubernetes.Interface
	reg      *registryAccess
	metrics  *metrics
	hostname string

	factories []dynamicinformer.DynamicSharedInformerFactory
	listers   []cache.GenericLister
	synced    []cache.InformerSynced

	mu      sync.Mutex
	ready   bool
	current *cycle            // the last cycle's registry state, reused for event-driven checks
	pending map[string]bool   // Application keys to check
	fresh   map[string]bool   // repositories to re-list before checking
	lastErr map[string]string // last error reported per Application (Events only on change)
	wake    chan struct{}

	beforeWrite func(*unstructured.Unstructured) // test hook: runs between decision and write
}

func restConfig(opts Options) (*rest.Config, error) {
	if opts.RestConfig != nil {
		return opts.RestConfig, nil
	}
	return kube.Config(opts.Kubeconfig, "")
}

func newController(opts Options) (*controller, error) {
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Interval < 0 {
		return nil, fmt.Errorf("interval %v is negative", opts.Interval)
	}
	if err := opts.Registries.validate(); err != nil {
		return nil, fmt.Errorf("registries config: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := restConfig(opts)
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = registry.UserAgent() + " image-updater"
	if cfg.QPS == 0 {
		// client-go's default (5 rps) would take minutes to move 1,000 Applications.
		cfg.QPS, cfg.Burst = 50, 100
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes dynamic client: %w", err)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	host, _ := os.Hostname()
	m := newMetrics()
	c := &controller{
		opts: opts, log: log, dyn: dyn, kube: kube, metrics: m, hostname: host,
		reg:     newRegistryAccess(opts.Registry, opts.Registries, kube, m),
		pending: map[string]bool{}, fresh: map[string]bool{}, lastErr: map[string]string{},
		wake: make(chan struct{}, 1),
	}
	for _, ns := range c.namespaces() {
		f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 0, ns, nil)
		inf := f.ForResource(applications)
		if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { c.onChange(nil, obj) },
			UpdateFunc: c.onChange,
		}); err != nil {
			return nil, fmt.Errorf("watch applications: %w", err)
		}
		c.factories = append(c.factories, f)
		c.listers = append(c.listers, inf.Lister())
		c.synced = append(c.synced, inf.Informer().HasSynced)
	}
	return c, nil
}

// onChange queues an Application whose annotations or sources changed (not status updates).
func (c *controller) onChange(oldObj, newObj any) {
	app, ok := newObj.(*unstructured.Unstructured)
	if !ok || !optedIn(app.GetAnnotations()) {
		return
	}
	if old, ok := oldObj.(*unstructured.Unstructured); ok {
		if equalStrings(old.GetAnnotations(), app.GetAnnotations()) && sameSpecField(old, app, "source") &&
			sameSpecField(old, app, "sources") && sameSpecField(old, app, "sourceHydrator") {
			return
		}
	}
	c.enqueue([]string{app.GetNamespace() + "/" + app.GetName()}, nil)
}

// sameSpecField reports whether spec.<field> is equal in a and b (both unset counts as equal).
func sameSpecField(a, b *unstructured.Unstructured, field string) bool {
	av, _, _ := unstructured.NestedFieldNoCopy(a.Object, "spec", field)
	bv, _, _ := unstructured.NestedFieldNoCopy(b.Object, "spec", field)
	return reflect.DeepEqual(av, bv)
}

func equalStrings(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func (c *controller) enqueue(keys, freshRepos []string) {
	c.mu.Lock()
	for _, k := range keys {
		c.pending[k] = true
	}
	for _, r := range freshRepos {
		c.fresh[r] = true
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// start checks that Applications can be listed (CRD installed, RBAC), starts the informers and
// waits for their caches.
func (c *controller) start(ctx context.Context) error {
	for _, ns := range c.namespaces() {
		if _, err := c.dyn.Resource(applications).Namespace(ns).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
			where := "all namespaces"
			if ns != "" {
				where = "namespace " + ns
			}
			return fmt.Errorf("list Argo CD Applications (argoproj.io/v1alpha1) in %s: %w", where, err)
		}
	}
	for _, f := range c.factories {
		f.Start(ctx.Done())
	}
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("applications informer did not sync")
	}
	c.mu.Lock()
	c.ready = true
	c.mu.Unlock()
	return nil
}

// namespaces are the watched namespaces, without duplicates; [""] means all.
func (c *controller) namespaces() []string {
	if len(c.opts.Namespaces) == 0 {
		return []string{metav1.NamespaceAll}
	}
	var out []string
	for _, ns := range c.opts.Namespaces {
		if !slices.Contains(out, ns) {
			out = append(out, ns)
		}
	}
	return out
}

func (c *controller) stop() {
	for _, f := range c.factories {
		f.Shutdown()
	}
}

func (c *controller) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var srv *http.Server
	errc := make(chan error, 1)
	if c.opts.Listen != "" {
		ln, err := net.Listen("tcp", c.opts.Listen)
		if err != nil {
			return fmt.Errorf("listen %s: %w", c.opts.Listen, err)
		}
		srv = &http.Server{Handler: c.handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("http server: %w", err)
			}
		}()
		c.log.Info("image updater listening", "address", ln.Addr().String())
		defer func() {
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer scancel()
			_ = srv.Shutdown(sctx)
		}()
	}
	// Informers stop only once ctx is cancelled: cancel first, then wait for them.
	defer func() { cancel(); c.stop() }()
	if err := c.start(ctx); err != nil {
		return err
	}
	if c.opts.Once {
		res := c.runCycle(ctx)
		if res.failed > 0 {
			return fmt.Errorf("%d of %d Applications failed their check (see the log)", res.failed, res.checked)
		}
		return nil
	}
	return c.loop(ctx, errc)
}

// loop runs a cycle now and every interval, and the queued checks in between.
func (c *controller) loop(ctx context.Context, errc <-chan error) error {
	ticker := time.NewTicker(c.opts.Interval)
	defer ticker.Stop()
	c.runCycle(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case <-ticker.C:
			c.runCycle(ctx)
		case <-c.wake:
			c.runPending(ctx)
		}
	}
}

// cycleResult counts what a cycle did.
type cycleResult struct {
	checked, updated, failed int
}

// runCycle checks every opted-in Application with a fresh registry state.
func (c *controller) runCycle(ctx context.Context) cycleResult {
	cyc := c.reg.newCycle()
	c.mu.Lock()
	c.current = cyc
	// Everything pending is covered by the full cycle.
	c.pending, c.fresh = map[string]bool{}, map[string]bool{}
	c.mu.Unlock()
	start := time.Now()
	res := c.check(ctx, cyc, c.allKeys())
	c.metrics.cycles.Inc()
	c.metrics.lastCycle.SetToCurrentTime()
	c.log.Info("image updater cycle", "applications", res.checked, "updated", res.updated, "failed", res.failed, "duration", time.Since(start).Round(time.Millisecond))
	return res
}

// runPending checks queued Applications, re-listing the repositories a webhook named.
func (c *controller) runPending(ctx context.Context) cycleResult {
	c.mu.Lock()
	keys := make([]string, 0, len(c.pending))
	for k := range c.pending {
		keys = append(keys, k)
	}
	fresh := c.fresh
	c.pending, c.fresh = map[string]bool{}, map[string]bool{}
	cyc := c.current
	if cyc == nil {
		cyc = c.reg.newCycle()
		c.current = cyc
	}
	c.mu.Unlock()
	for r := range fresh {
		cyc.forget(r)
	}
	sort.Strings(keys)
	return c.check(ctx, cyc, keys)
}

func (c *controller) allKeys() []string {
	var keys []string
	for _, l := range c.listers {
		apps, err := l.List(labels.Everything())
		if err != nil {
			continue
		}
		for _, o := range apps {
			if a, ok := o.(*unstructured.Unstructured); ok && optedIn(a.GetAnnotations()) {
				keys = append(keys, a.GetNamespace()+"/"+a.GetName())
			}
		}
	}
	sort.Strings(keys)
	return keys
}

// get returns Application key (NAMESPACE/NAME) from the informer cache. The object is shared with
// the cache: never change it.
func (c *controller) get(key string) (*unstructured.Unstructured, bool) {
	ns, name, _ := strings.Cut(key, "/")
	for _, l := range c.listers {
		if o, err := l.ByNamespace(ns).Get(name); err == nil {
			if a, ok := o.(*unstructured.Unstructured); ok {
				return a, true
			}
		}
	}
	return nil, false
}

const checkWorkers = 8

func (c *controller) check(ctx context.Context, cyc *cycle, keys []string) cycleResult {
	var (
		mu  sync.Mutex
		res cycleResult
		wg  sync.WaitGroup
	)
	work := make(chan string)
	for range min(checkWorkers, len(keys)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				updated, err := c.reconcile(ctx, cyc, k)
				mu.Lock()
				res.checked++
				if updated {
					res.updated++
				}
				if err != nil {
					res.failed++
				}
				mu.Unlock()
			}
		}()
	}
	for _, k := range keys {
		select {
		case work <- k:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	return res
}

// checkError is a failed check with the Event reason it is reported under.
type checkError struct {
	reason string
	err    error
}

func (e *checkError) Error() string { return e.err.Error() }
func (e *checkError) Unwrap() error { return e.err }

func fail(reason string, err error) error { return &checkError{reason: reason, err: err} }

// decision is what a check concluded for one Application.
type decision struct {
	source bundleSource
	target string // new targetRevision; "" or == source.current: nothing to do
	why    string
}

// decide computes the targetRevision app should have. It reads only the registry (through cyc).
func (c *controller) decide(ctx context.Context, cyc *cycle, app *unstructured.Unstructured) (decision, error) {
	p, err := parsePolicy(app.GetAnnotations())
	if err != nil {
		return decision{}, fail(reasonInvalid, err)
	}
	src, err := findBundleSource(app, p.source)
	if err != nil {
		return decision{}, fail(reasonInvalid, err)
	}
	d := decision{source: src}
	if p.strategy == StrategyDigest {
		if !src.oci {
			return d, fail(reasonInvalid, fmt.Errorf("the digest strategy pins a digest, which only oci:// sources accept (source %s is a Helm chart source)", src.repository))
		}
		mi, err := cyc.manifest(ctx, src.repository, p.constraint, p.pullSecret)
		if err != nil {
			return d, fail(reasonRegistry, err)
		}
		d.target, d.why = mi.digest, "tag "+p.constraint+" points at "+mi.digest
		return d, nil
	}
	tags, err := cyc.tags(ctx, src.repository, p.pullSecret)
	if err != nil {
		return d, fail(reasonRegistry, err)
	}
	cur := src.currentTag()
	switch p.strategy {
	case StrategySemver:
		best, ok := p.pickSemver(tags)
		if !ok {
			return d, fail(reasonNoTag, fmt.Errorf("no tag of %s satisfies %q (%d tags)", src.repository, p.constraint, len(tags)))
		}
		d.target, d.why = src.revisionFor(best.tag), "highest version satisfying "+strconvQuote(p.constraint)
		if cv, err := semverOf(cur); err == nil && !p.force && !best.version.GreaterThan(cv) {
			d.target = src.current // never downgrade, and 1.0.0 == 1.0.0+x stays put
		}
	case StrategyAlphabetical:
		best, ok := p.pickAlphabetical(filterConstraint(p, tags))
		if !ok {
			return d, fail(reasonNoTag, fmt.Errorf("no allowed tag in %s (%d tags)", src.repository, len(tags)))
		}
		d.target, d.why = src.revisionFor(best.tag), "alphabetically last tag"
		if cur != "" && !p.force && best.tag <= cur {
			d.target = src.current
		}
	case StrategyNewestBuild:
		var cands []candidate
		for _, t := range filterConstraint(p, tags) {
			if !p.tagAllowed(t) {
				continue
			}
			mi, err := cyc.manifest(ctx, src.repository, t, p.pullSecret)
			if err != nil {
				return d, fail(reasonRegistry, err)
			}
			cands = append(cands, candidate{tag: t, created: mi.created})
		}
		best, ok := pickNewest(cands)
		if !ok {
			return d, fail(reasonNoTag, fmt.Errorf("no allowed tag of %s has the annotation org.opencontainers.image.created (%d tags)", src.repository, len(tags)))
		}
		d.target, d.why = src.revisionFor(best.tag), "newest build ("+best.created.Format(time.RFC3339)+")"
		if cur != "" && cur != best.tag && !p.force {
			if mi, err := cyc.manifest(ctx, src.repository, cur, p.pullSecret); err == nil && !mi.created.IsZero() && !best.created.After(mi.created) {
				d.target = src.current
			}
		}
	}
	return d, nil
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

func semverOf(tag string) (*semver.Version, error) {
	if tag == "" {
		return nil, fmt.Errorf("no tag")
	}
	if v, err := versionOf(tag); err == nil {
		return v, nil
	}
	return semver.NewVersion(strings.ReplaceAll(tag, "_", "+")) // loose forms such as v1.2
}

// filterConstraint keeps the tags a semver constraint admits, for strategies other than semver:
// "", "*" and "latest" admit every tag; otherwise only semver tags within the constraint.
func filterConstraint(p *policy, tags []string) []string {
	if p.constraint == "" || p.constraint == "*" || p.constraint == "latest" || p.semver == nil {
		return tags
	}
	var out []string
	for _, t := range tags {
		if v, err := versionOf(t); err == nil && p.semver.Check(v) {
			out = append(out, t)
		}
	}
	return out
}

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
	const attempts = 10
	for attempt := 1; ; attempt++ {
		d, err := c.decide(ctx, cyc, app)
		if err != nil {
			return false, err
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
