package imageupdater

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"strata.dev/strata/internal/testing/testenv"
)

// BenchmarkCycle: 1,000 Applications over 100 bundle repositories on the local registry (three
// versions each). Reports one steady-state cycle's duration, its registry requests and tag
// listings per repository (target ≤ 1), and the first cycle (which moves all 1,000).
//
//	go test ./imageupdater -run '^$' -bench Cycle -benchtime 5x
func BenchmarkCycle(b *testing.B) {
	const repos, appsPerRepo = 100, 10
	k := newKubeEnv(b)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	var repoNames []string
	for i := range repos {
		repoNames = append(repoNames, testenv.Repo(b, fmt.Sprintf("r%d", i)))
	}
	for i, repo := range repoNames {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			for j, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
				pushBundle(b, repo, v, t0.Add(time.Duration(j)*time.Hour))
			}
			for j := range appsPerRepo {
				a := &v1alpha1.Application{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("a%d-%d", i, j), Namespace: k.ns, Annotations: map[string]string{AnnotationChartVersion: "1.x"}},
					Spec: v1alpha1.ApplicationSpec{
						Source:      ptr(helmSource(repo, "1.0.0")),
						Destination: v1alpha1.ApplicationDestination{Server: "https://kubernetes.default.svc", Namespace: "demo"},
						Project:     "default",
					},
				}
				if _, err := k.argo.ArgoprojV1alpha1().Applications(k.ns).Create(context.Background(), a, metav1.CreateOptions{}); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	// Rate limit raised from the default 20 rps so the cycle measures the controller, not the limiter.
	c, ct, _ := k.startController(b, func(o *Options) {
		o.Registries = RegistriesConfig{DefaultLimit: 10000}
		o.Logger = nil
	})
	start := time.Now()
	first := c.runCycle(context.Background())
	firstDur := time.Since(start)
	if first.updated != repos*appsPerRepo {
		b.Fatalf("first cycle = %+v, want %d updated", first, repos*appsPerRepo)
	}
	// Let the informer see the writes so steady-state cycles are pure reads.
	time.Sleep(2 * time.Second)
	req0, list0 := ct.total(), 0
	for _, r := range repoNames {
		list0 += ct.listings(r)
	}
	cycles := 0
	for b.Loop() {
		res := c.runCycle(context.Background())
		if res.updated != 0 || res.failed != 0 || res.checked != repos*appsPerRepo {
			b.Fatalf("steady cycle = %+v", res)
		}
		cycles++
	}
	list := 0
	for _, r := range repoNames {
		list += ct.listings(r)
	}
	b.ReportMetric(float64(list-list0)/float64(cycles)/repos, "listings/repo/cycle")
	b.ReportMetric(float64(ct.total()-req0)/float64(cycles), "requests/cycle")
	b.ReportMetric(float64(firstDur.Milliseconds()), "first-cycle-ms")
	b.Logf("%d Applications over %d repositories: first cycle %v (moved %d); steady cycle: %.2f tag listings per repository, %.0f registry requests (baseline without sharing: %d listings)",
		repos*appsPerRepo, repos, firstDur.Round(time.Millisecond), first.updated,
		float64(list-list0)/float64(cycles)/repos, float64(ct.total()-req0)/float64(cycles), repos*appsPerRepo)
}

// BenchmarkNotificationToUpdate: the real registry (distribution with notifications configured
// to call the updater's /webhook) gets a new bundle version per iteration; reports the time from
// the push to the Application's new targetRevision (target ≤ 2 s), mean and worst.
//
//	go test ./imageupdater -run '^$' -bench NotificationToUpdate -benchtime 10x
func BenchmarkNotificationToUpdate(b *testing.B) {
	k := newKubeEnv(b)
	var handler http.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) })
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	defer hook.Close()
	addr := startRegistry(b, fmt.Sprintf(`notifications:
  endpoints:
  - name: strata
    url: %s/webhook
    headers: {Authorization: ["Bearer bench-secret"]}
    timeout: 2s
    threshold: 3
    backoff: 100ms
`, hook.URL))
	repo := addr + "/strata-bench/" + testenv.UniqueName(b, "notified")
	pushBundle(b, repo, "1.0.0", t0)
	k.app(b, "notified", map[string]string{AnnotationChartVersion: ">=1.0"}, helmSource(repo, "1.0.0"))
	c, _, _ := k.startController(b, func(o *Options) { o.WebhookSecret = "bench-secret" })
	handler = c.handler()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = c.loop(ctx, nil) }()
	if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return metricValue(b, c, "strata_image_updater_cycles_total") == "1", nil
	}); err != nil {
		b.Fatal("first cycle did not run")
	}
	var total, worst time.Duration
	b.ResetTimer()
	for i := range b.N {
		v := fmt.Sprintf("1.%d.0", i+1)
		start := time.Now()
		pushBundle(b, repo, v, t0.Add(time.Duration(i+1)*time.Hour))
		waitRevision(b, k, "notified", v, 30*time.Second)
		d := time.Since(start)
		total += d
		worst = max(worst, d)
	}
	b.StopTimer()
	if got := metricValue(b, c, "strata_image_updater_cycles_total"); got != "1" {
		b.Fatalf("cycles = %s: updates came from cycles, not from notifications", got)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/update")
	b.ReportMetric(float64(worst.Milliseconds()), "worst-ms")
}

func ptr[T any](v T) *T { return &v }
