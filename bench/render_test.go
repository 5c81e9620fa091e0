package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"strata.dev/strata/internal/testing/helmcli"
	"strata.dev/strata/internal/testing/procstat"
	"strata.dev/strata/internal/testing/strataproc"
	"strata.dev/strata/internal/testing/testenv"
)

// BenchmarkRenderLargeCharts measures, pair by pair in the same run, `strata cmp generate` (the
// binary as it ships, as Argo CD's CMP server runs it: Application context in the environment,
// the bundle in the working directory) and `helm template` (the CLI Argo CD runs for Helm
// sources, same release, namespace and capabilities) on the three large charts of the
// render-equivalence corpus (bundle/testdata/charts: platform 83 objects, monitoring 58, forge
// 52). Per chart it prints the medians of wall and CPU time, the peak RSS of each, and the
// ratios strata/helm (targets: <= 1.0x wall and CPU, RSS <= helm's).
//
//	STRATA_TEST_HELM=.../helm go test -run '^$' -bench BenchmarkRenderLargeCharts -benchtime 20x ./bench/
func BenchmarkRenderLargeCharts(b *testing.B) {
	helm := helmcli.Path(b)
	strata := strataproc.Binary(b)
	launch := procstat.Launcher(b)
	root := testenv.RepoRoot()
	meta, err := os.ReadFile(filepath.Join(root, "bundle/testdata/app/strata-bundle.json"))
	if err != nil {
		b.Fatal(err)
	}
	const apis = "v1,apps/v1,monitoring.coreos.com/v1"
	env := append(os.Environ(), "ARGOCD_APP_NAME=shop", "ARGOCD_APP_NAMESPACE=team-a", "ARGOCD_APP_PROJECT_NAME=default",
		"ARGOCD_APP_REVISION=1.2.0", "ARGOCD_APP_SOURCE_REPO_URL=127.0.0.1:5000/bundles", "ARGOCD_APP_SOURCE_TARGET_REVISION=1.2.0",
		"KUBE_VERSION=1.31.0", "KUBE_API_VERSIONS="+apis)
	home := b.TempDir()
	helmEnv := append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_DATA_HOME="+filepath.Join(home, "data"))

	for _, chart := range []string{"platform", "monitoring", "forge"} {
		b.Run(chart, func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), chart)
			if err := os.CopyFS(dir, os.DirFS(filepath.Join(root, "bundle/testdata/charts", chart))); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "strata-bundle.json"), meta, 0o644); err != nil {
				b.Fatal(err)
			}
			strataCmd := func() *exec.Cmd {
				c := exec.Command(launch, strata, "cmp", "generate")
				c.Dir, c.Env = dir, env
				return c
			}
			helmCmd := func() *exec.Cmd {
				args := []string{helm, "template", ".", "--name-template", "shop", "--namespace", "team-a", "--include-crds", "--kube-version", "1.31.0"}
				for _, a := range strings.Split(apis, ",") {
					args = append(args, "--api-versions", a)
				}
				c := exec.Command(launch, args...)
				c.Dir, c.Env = dir, helmEnv
				return c
			}
			// Both render the same number of objects (the equivalence test compares them).
			counts := map[string]int{}
			for name, mk := range map[string]func() *exec.Cmd{"strata": strataCmd, "helm": helmCmd} {
				out, _, err := procstat.Run(mk())
				if err != nil {
					b.Fatalf("%s: %v", name, err)
				}
				counts[name] = strings.Count(string(out), "\nkind: ")
			}
			if counts["strata"] != counts["helm"] || counts["helm"] < 50 {
				b.Fatalf("objects rendered: %v", counts)
			}

			var s, h []procstat.Stat
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, p := range []struct {
					mk  func() *exec.Cmd
					out *[]procstat.Stat
				}{{strataCmd, &s}, {helmCmd, &h}} {
					_, st, err := procstat.Run(p.mk())
					if err != nil {
						b.Fatal(err)
					}
					*p.out = append(*p.out, st)
				}
			}
			b.StopTimer()
			sw, sc, sr := medians(s)
			hw, hc, hr := medians(h)
			b.ReportMetric(float64(sw)/float64(hw), "wall-ratio")
			b.ReportMetric(float64(sc)/float64(hc), "cpu-ratio")
			b.ReportMetric(float64(sr)/float64(hr), "rss-ratio")
			fmt.Printf("BenchmarkRenderLargeCharts/%s (%d objects, %d pairs): strata cmp generate %.1f ms wall, %.1f ms CPU, peak RSS %.1f MiB; helm template %.1f ms wall, %.1f ms CPU, peak RSS %.1f MiB; ratio %.2fx wall, %.2fx CPU, %.2fx RSS\n",
				chart, counts["helm"], b.N, ms(sw), ms(sc), float64(sr)/1024, ms(hw), ms(hc), float64(hr)/1024,
				float64(sw)/float64(hw), float64(sc)/float64(hc), float64(sr)/float64(hr))
		})
	}
}

// medians of wall and CPU time, and the largest peak RSS.
func medians(stats []procstat.Stat) (wall, cpu time.Duration, rssKiB int64) {
	var w, c []time.Duration
	for _, s := range stats {
		w, c = append(w, s.Wall), append(c, s.CPU)
		rssKiB = max(rssKiB, s.RSSKiB)
	}
	slices.Sort(w)
	slices.Sort(c)
	return w[len(w)/2], c[len(c)/2], rssKiB
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
