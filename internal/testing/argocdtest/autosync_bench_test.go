package argocdtest

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"strata.dev/strata/bundle"
	"strata.dev/strata/imageupdater"
	"strata.dev/strata/internal/testing/testenv"
)

// BenchmarkPublishToSynced measures the auto-sync chain with the real controller: publish a
// bundle version, one updater cycle (`strata image-updater run --once`) moves the Application's
// targetRevision, Argo CD auto-syncs, the live ConfigMap carries the new commit. It reports p50 and
// p95 over 10 publishes (target: p50 ≤ 10 s) and, as the baseline measured in the same run, the
// same wait when targetRevision is moved by hand (Argo CD alone): chain/baseline is the cost of
// Strata's part.
func BenchmarkPublishToSynced(b *testing.B) {
	a := argoCD(b)
	const rounds = 10
	p := publish(b, "testdata/bundle", "1.0.0", false)
	name := "bench-" + randomSuffix() // -count runs more than once on one Argo CD
	dest := createApp(b, a, a.Namespace, name, p.helmSource(b, a))
	waitApp(b, a, a.Namespace, name, "Synced on 1.0.0", syncedAt("1.0.0"))
	updateApp(b, a, a.Namespace, name, func(app *v1alpha1.Application) {
		app.Annotations = map[string]string{imageupdater.AnnotationChartVersion: "1.x"}
	})
	live := func(version, commit string) {
		b.Helper()
		waitApp(b, a, a.Namespace, name, "Synced on "+version, func(app *v1alpha1.Application) bool {
			cm, err := a.Kube.CoreV1().ConfigMaps(dest).Get(context.Background(), name+"-config", metav1.GetOptions{})
			return syncedAt(version)(app) && err == nil && cm.Annotations[bundle.AnnotationCommit] == commit
		})
	}
	commit := func(i int) string { return fmt.Sprintf("%040x", 0xbe00+i) }
	updater := imageupdater.Options{
		Namespaces: []string{a.Namespace}, Once: true, Kubeconfig: testenv.Load().Kubeconfig,
		Logger: slog.New(slog.DiscardHandler),
	}

	b.ResetTimer()
	var chain, baseline []time.Duration
	for i := 1; i <= rounds; i++ {
		// Strata's chain: publish, one updater cycle, Argo CD's auto-sync.
		version := fmt.Sprintf("1.%d.0", 2*i-1)
		start := time.Now()
		republish(b, p, "testdata/bundle", version, commit(2*i-1), false, false)
		if err := imageupdater.Run(context.Background(), updater); err != nil {
			b.Fatalf("updater cycle: %v", err)
		}
		live(version, commit(2*i-1))
		chain = append(chain, time.Since(start))

		// Baseline: the version already published, targetRevision moved by hand.
		version = fmt.Sprintf("1.%d.0", 2*i)
		republish(b, p, "testdata/bundle", version, commit(2*i), false, false)
		start = time.Now()
		updateApp(b, a, a.Namespace, name, func(app *v1alpha1.Application) { app.Spec.Source.TargetRevision = version })
		live(version, commit(2*i))
		baseline = append(baseline, time.Since(start))
	}
	b.StopTimer()
	pct := func(d []time.Duration, p float64) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[int(p*float64(len(s)-1)+0.5)]
	}
	b.ReportMetric(pct(chain, 0.5).Seconds(), "p50-s")
	b.ReportMetric(pct(chain, 0.95).Seconds(), "p95-s")
	b.ReportMetric(pct(baseline, 0.5).Seconds(), "baseline-p50-s")
	b.ReportMetric(float64(pct(chain, 0.5))/float64(pct(baseline, 0.5)), "p50-ratio")
	b.Logf("publish → Synced over %d publishes: p50 %s, p95 %s; targetRevision moved by hand: p50 %s, p95 %s",
		rounds, pct(chain, 0.5).Round(time.Millisecond), pct(chain, 0.95).Round(time.Millisecond),
		pct(baseline, 0.5).Round(time.Millisecond), pct(baseline, 0.95).Round(time.Millisecond))
}
