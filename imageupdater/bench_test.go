package imageupdater

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"strata.dev/strata/internal/testenv"
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

func ptr[T any](v T) *T { return &v }
