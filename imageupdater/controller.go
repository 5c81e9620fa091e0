package imageupdater

import (
	"context"
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
	"text/template"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"strata.dev/strata/internal/kube"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/sign"
)

// Options configure the controller (`strata image-updater run`).
type Options struct {
	// Namespaces to watch; empty means all.
	Namespaces []string
	// Interval between check cycles; 0 means 2 minutes.
	Interval time.Duration
	// CheckTimeout bounds the check of one Application (registry calls, tag matching, the
	// write); 0 means DefaultCheckTimeout. An Application that exceeds it fails its check and
	// is retried with backoff; the others are not held up.
	CheckTimeout time.Duration
	// RetryDelay is the first delay before a failed Application is checked again; it doubles
	// with each consecutive failure up to RetryMaxDelay. 0 means DefaultRetryDelay.
	RetryDelay time.Duration
	// RetryMaxDelay caps the retry delay; 0 means the Interval.
	RetryMaxDelay time.Duration
	// Once runs one cycle and returns; an Application that failed makes Run return an error.
	Once bool
	// DryRun logs the updates without writing them.
	DryRun bool
	// Listen is the address of the HTTP server (/webhook, /healthz, /metrics); "" for none.
	Listen string
	// WebhookSecret must be sent with /webhook requests, the way each sender sends it (bearer
	// token, query parameter, Authorization header, GitHub HMAC signature; webhook.go). Without
	// it /webhook refuses every request unless WebhookInsecureNoSecret is set.
	WebhookSecret string
	// WebhookInsecureNoSecret serves /webhook without a secret (anyone reaching it can trigger
	// checks).
	WebhookInsecureNoSecret bool
	// WebhookReplayWindow is how long webhook deliveries are remembered and how far from now
	// their timestamps may lie (webhook_replay.go); 0 means DefaultWebhookReplayWindow, < 0
	// turns replay protection off.
	WebhookReplayWindow time.Duration
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
	// VerifyPolicy is a verification policy file (sign.Policy, the plugin's format): an
	// Application is never moved to a bundle that fails it; the next best candidate that
	// passes is chosen, and each refused one is reported (Warning Event BundleSignatureRefused).
	VerifyPolicy string
	// GitWorkDir holds the scratch clones of git write-back (a fresh temporary directory if
	// empty, removed when Run returns).
	GitWorkDir string
	// GitCommitUser and GitCommitEmail author git write-back commits (defaults
	// DefaultGitCommitUser, DefaultGitCommitEmail).
	GitCommitUser, GitCommitEmail string
	// GitCommitMessageTemplate is a text/template for git write-back commit messages with
	// upstream's fields (.AppName, .AppNamespace, .AppChanges: .Image .Alias .OldTag .NewTag);
	// "" means DefaultGitCommitMessageTemplate.
	GitCommitMessageTemplate string
}

// Defaults of Options.
const (
	DefaultInterval     = 2 * time.Minute
	DefaultCheckTimeout = 30 * time.Second
	DefaultRetryDelay   = 5 * time.Second
)

const (
	component = "strata-image-updater"

	applicationAPIVersion = "argoproj.io/v1alpha1"
)

// Run runs the controller until ctx ends (or one cycle with Options.Once).
func Run(ctx context.Context, opts Options) error {
	c, err := newController(opts)
	if err != nil {
		return err
	}
	defer c.git.cleanup()
	return c.run(ctx)
}

// applications is Argo CD's Application resource. The controller reads and watches it with
// client-go's dynamic client: Applications stay unstructured objects, and only a source's
// targetRevision is ever written (a JSON patch), so every other field, known to Strata or not,
// is kept as it is.
var applications = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}

// controller is the image updater. Informers and the webhook only add Application keys
// (NAMESPACE/NAME) to a rate-limited work queue; workers check them (reconcile.go) and decide
// what each should point at (decide.go). A failed check goes back to the queue with per-key
// exponential backoff; a cycle every Interval queues every opted-in Application again.
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
	queue     workqueue.TypedRateLimitingInterface[string]

	mu       sync.Mutex
	ready    bool
	current  *cycle            // the registry state of the running cycle, shared by its checks
	round    *round            // the queued cycle's progress (daemon)
	lastErr  map[string]string // last error reported per Application (Events only on change)
	lastWarn map[string]string // last ignored annotations reported per Application
	// lastRefused: last candidates refused by the verification policy, per Application
	lastRefused map[string]string
	policy      *sign.Policy // Options.VerifyPolicy loaded; nil: no verification

	beforeWrite func(*unstructured.Unstructured) // test hook: runs between decision and write

	git            *gitRepos    // scratch clones of git write-back
	replay         *replayGuard // webhook deliveries seen
	commitTemplate *template.Template
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
	if opts.CheckTimeout == 0 {
		opts.CheckTimeout = DefaultCheckTimeout
	}
	if opts.RetryDelay == 0 {
		opts.RetryDelay = DefaultRetryDelay
	}
	if opts.RetryMaxDelay == 0 {
		opts.RetryMaxDelay = max(opts.Interval, opts.RetryDelay)
	}
	for name, d := range map[string]time.Duration{"interval": opts.Interval, "check timeout": opts.CheckTimeout, "retry delay": opts.RetryDelay, "retry max delay": opts.RetryMaxDelay} {
		if d < 0 {
			return nil, fmt.Errorf("%s %v is negative", name, d)
		}
	}
	if err := opts.Registries.validate(); err != nil {
		return nil, fmt.Errorf("registries config: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var policy *sign.Policy
	if opts.VerifyPolicy != "" {
		p, err := sign.LoadPolicy(opts.VerifyPolicy)
		if err != nil {
			return nil, err
		}
		policy = p
	}
	if opts.WebhookReplayWindow == 0 {
		opts.WebhookReplayWindow = DefaultWebhookReplayWindow
	}
	if opts.GitCommitUser == "" {
		opts.GitCommitUser = DefaultGitCommitUser
	}
	if opts.GitCommitEmail == "" {
		opts.GitCommitEmail = DefaultGitCommitEmail
	}
	if opts.GitCommitMessageTemplate == "" {
		opts.GitCommitMessageTemplate = DefaultGitCommitMessageTemplate
	}
	commitTemplate, err := template.New("commit").Parse(opts.GitCommitMessageTemplate)
	if err != nil {
		return nil, fmt.Errorf("git commit message template: %w", err)
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
		policy: policy, commitTemplate: commitTemplate, git: &gitRepos{dir: opts.GitWorkDir},
		replay: &replayGuard{window: opts.WebhookReplayWindow},
		opts:   opts, log: log, dyn: dyn, kube: kube, metrics: m, hostname: host,
		reg:     newRegistryAccess(opts.Registry, opts.Registries, kube, m),
		lastErr: map[string]string{}, lastWarn: map[string]string{}, lastRefused: map[string]string{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](opts.RetryDelay, opts.RetryMaxDelay),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "applications"}),
	}
	for _, ns := range c.namespaces() {
		f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 0, ns, nil)
		inf := f.ForResource(applications)
		if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
			AddFunc: func(obj any, initial bool) {
				if !initial { // the first cycle checks what the initial listing holds
					c.onChange(nil, obj)
				}
			},
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
	c.queue.Add(app.GetNamespace() + "/" + app.GetName())
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

// refresh drops what the running cycle knows about repositories (a webhook said they changed)
// and queues Applications keys.
func (c *controller) refresh(keys, repos []string) {
	cyc := c.cycle()
	for _, r := range repos {
		cyc.forget(r)
	}
	for _, k := range keys {
		c.queue.Add(k)
	}
}

// cycle returns the running cycle's registry state (a new one before the first cycle).
func (c *controller) cycle() *cycle {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.current == nil {
		c.current = c.reg.newCycle()
	}
	return c.current
}

// newCycle starts a cycle: a fresh registry state, every listing made again.
func (c *controller) newCycle() *cycle {
	cyc := c.reg.newCycle()
	c.mu.Lock()
	c.current = cyc
	c.mu.Unlock()
	return cyc
}

// cycleDone counts a finished cycle (every Application it queued checked once) and logs it.
func (c *controller) cycleDone(res cycleResult, start time.Time) {
	c.metrics.cycles.Inc()
	c.metrics.lastCycle.SetToCurrentTime()
	c.log.Info("image updater cycle", "applications", res.checked, "updated", res.updated, "failed", res.failed, "duration", time.Since(start).Round(time.Millisecond))
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
	c.queue.ShutDown()
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
		switch {
		case c.opts.WebhookSecret == "" && c.opts.WebhookInsecureNoSecret:
			c.log.Warn("/webhook accepts requests without a secret (--webhook-insecure-no-secret)")
		case c.opts.WebhookSecret == "":
			c.log.Warn("/webhook is disabled: no --webhook-secret (or --webhook-insecure-no-secret); /healthz and /metrics are served")
		}
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
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("cycle interrupted after %d of the Applications: %w", res.checked, err)
		}
		if res.failed > 0 {
			return fmt.Errorf("%d of %d Applications failed their check (see the log)", res.failed, res.checked)
		}
		return nil
	}
	return c.loop(ctx, errc)
}

const checkWorkers = 8

// loop queues every Application now and every interval, and runs the queue's workers until ctx
// ends. Workers finish the check they are in (bounded by CheckTimeout, cut short by ctx) and
// loop returns.
func (c *controller) loop(ctx context.Context, errc <-chan error) error {
	var wg sync.WaitGroup
	for range checkWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c.processNext(ctx) {
			}
		}()
	}
	defer func() {
		c.queue.ShutDown()
		wg.Wait()
	}()
	ticker := time.NewTicker(c.opts.Interval)
	defer ticker.Stop()
	c.queueCycle()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case <-ticker.C:
			c.queueCycle()
		}
	}
}

// round tracks a queued cycle until each of its Applications has been checked once.
type round struct {
	start   time.Time
	pending map[string]bool
	res     cycleResult
}

// queueCycle starts a cycle and queues every opted-in Application.
func (c *controller) queueCycle() {
	c.newCycle()
	keys := c.allKeys()
	r := &round{start: time.Now(), pending: make(map[string]bool, len(keys))}
	for _, k := range keys {
		r.pending[k] = true
	}
	c.mu.Lock()
	c.round = r
	c.mu.Unlock()
	if len(keys) == 0 {
		c.cycleDone(r.res, r.start)
	}
	for _, k := range keys {
		c.queue.Add(k)
	}
}

// checked records the outcome of key's check in the queued cycle, if it is one of its keys.
func (c *controller) checked(key string, updated bool, err error) {
	c.mu.Lock()
	r := c.round
	if r == nil || !r.pending[key] {
		c.mu.Unlock()
		return
	}
	delete(r.pending, key)
	r.res.add(updated, err)
	done := len(r.pending) == 0
	if done {
		c.round = nil
	}
	c.mu.Unlock()
	if done {
		c.cycleDone(r.res, r.start)
	}
}

// processNext checks the next queued Application. A failure that may pass (registry, write,
// timeout) puts it back with per-key exponential backoff; success or a failure that needs an
// edit (bad annotation, no matching tag) resets its backoff. It returns false once the queue
// is shut down.
func (c *controller) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	updated, err := c.reconcile(ctx, c.cycle(), key)
	c.checked(key, updated, err)
	if err != nil && retryable(err) && ctx.Err() == nil {
		c.queue.AddRateLimited(key)
		c.log.Debug("bundle check will be retried", "application", key, "failures", c.queue.NumRequeues(key))
		return true
	}
	c.queue.Forget(key)
	return true
}

// cycleResult counts what a cycle did.
type cycleResult struct {
	checked, updated, failed int
}

func (r *cycleResult) add(updated bool, err error) {
	r.checked++
	if updated {
		r.updated++
	}
	if err != nil {
		r.failed++
	}
}

// runCycle checks every opted-in Application with a fresh registry state and waits for the
// result (--once, tests and benchmarks; the daemon queues instead).
func (c *controller) runCycle(ctx context.Context) cycleResult {
	cyc := c.newCycle()
	start := time.Now()
	res := c.check(ctx, cyc, c.allKeys())
	c.cycleDone(res, start)
	return res
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

// check reconciles keys with checkWorkers workers and counts the outcome. It stops handing out
// keys once ctx ends.
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
				res.add(updated, err)
				mu.Unlock()
			}
		}()
	}
feed:
	for _, k := range keys {
		select {
		case work <- k:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	return res
}
