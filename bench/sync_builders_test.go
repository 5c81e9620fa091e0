package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"strata.dev/strata/internal/testing/strataproc"
	"strata.dev/strata/internal/testing/testenv"
)

// BenchmarkSyncBuilders measures, for each lock backend, 8 cold `strata build` processes on one
// project against 1 cold builder in the same run: the wall-time ratio (target ≤ 1.5×), the
// number of duplicate pushes (stored tags beyond one per stage digest; target 0) and how many
// stage results the 7 slower builders discarded. Each backend runs in the default mode (every
// builder builds every stage, the first publish is kept) and with --wait-for-in-flight (a
// builder waits for the one building a stage and reuses its result); both ratios are printed,
// each against 1 builder in the same mode.
//
//	go test ./bench -run '^$' -bench SyncBuilders -benchtime 1x
func BenchmarkSyncBuilders(b *testing.B) {
	host := testenv.DockerHost(b)
	base := testenv.BaseImage(b)
	kubeconfig := testenv.Kubeconfig(b)
	cs := testenv.Kube(b)
	bin := strataproc.Binary(b)
	const builders = 8

	ns := testenv.UniqueName(b, "ns")
	b.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	token := testenv.UniqueName(b, "token")
	server := strataproc.StartSyncServer(b, bin, token)
	backends := []struct {
		name, spec string
		env        []string
	}{
		{"local", ":local", []string{"STRATA_HOME=" + b.TempDir()}},
		{"kubernetes", "kubernetes://" + ns, []string{"KUBECONFIG=" + kubeconfig}},
		{"http", "http://" + server, []string{"STRATA_SYNC_TOKEN=" + token}},
	}
	modes := []struct {
		name, suffix string
		args         []string
	}{
		{"default", "", nil},
		{"wait-for-in-flight", "-wait", []string{"--wait-for-in-flight"}},
	}
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			env := append(be.env, "DOCKER_HOST="+host)
			var summary []string
			for _, m := range modes {
				var one, eight time.Duration
				var dups int
				oneStages, eightStages := &syncResult{}, &syncResult{}
				for i := 0; i < b.N; i++ {
					repo := testenv.Repo(b, "one")
					start := time.Now()
					syncBuild(b, bin, strataproc.Project(b, "syncbench", base, 1), repo, be.spec, env, m.args, 1, oneStages)
					one += time.Since(start)

					repo = testenv.Repo(b, "eight")
					start = time.Now()
					syncBuild(b, bin, strataproc.Project(b, "syncbench", base, 1), repo, be.spec, env, m.args, builders, eightStages)
					eight += time.Since(start)
					dups += syncDuplicates(b, repo)
				}
				discarded := eightStages.statuses["discarded-for-existing"]
				ratio := eight.Seconds() / one.Seconds()
				b.ReportMetric(ratio, "ratio-8vs1"+m.suffix)
				b.ReportMetric(float64(dups)/float64(b.N), "duplicate-pushes"+m.suffix)
				b.ReportMetric(float64(discarded)/float64(b.N), "discarded-results"+m.suffix)
				b.Logf("%s, %s: 1 builder %s, %d builders %s, ratio %.2fx (target <= 1.5x), duplicate pushes %d (target 0), discarded results %d, statuses %v",
					be.name, m.name, (one / time.Duration(b.N)).Round(time.Millisecond), builders, (eight / time.Duration(b.N)).Round(time.Millisecond), ratio, dups, discarded, eightStages.statuses)
				b.Logf("%s, %s: mean stage time, 1 builder: %s; %d builders: %s", be.name, m.name, oneStages.means(), builders, eightStages.means())
				summary = append(summary, fmt.Sprintf("%s %.2fx", m.name, ratio))
			}
			b.Logf("%s: ratio 8 vs 1 builders: %s", be.name, strings.Join(summary, ", "))
		})
	}
}

// syncResult sums the reports of builders: stage statuses, and per stage name the time it took.
type syncResult struct {
	mu       sync.Mutex
	statuses map[string]int
	order    []string
	ms       map[string]int64
	n        map[string]int
}

func (r *syncResult) add(stage, status string, ms int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.statuses == nil {
		r.statuses, r.ms, r.n = map[string]int{}, map[string]int64{}, map[string]int{}
	}
	r.statuses[status]++
	if _, ok := r.n[stage]; !ok {
		r.order = append(r.order, stage)
	}
	r.ms[stage] += ms
	r.n[stage]++
}

// means lists the mean time of each stage, in pipeline order.
func (r *syncResult) means() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var parts []string
	for _, st := range r.order {
		parts = append(parts, fmt.Sprintf("%s %s", st, (time.Duration(r.ms[st]/int64(r.n[st]))*time.Millisecond).Round(time.Millisecond)))
	}
	return strings.Join(parts, ", ")
}

// syncBuild runs n builders at once (with the extra build args) and adds their reports to res.
func syncBuild(b *testing.B, bin, dir, repo, spec string, env, args []string, n int, res *syncResult) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rp := filepath.Join(b.TempDir(), "report.json")
			cmd := exec.Command(bin, append([]string{"build", "-q", "--dir", dir, "--repo", repo, "--synchronization", spec, "--report", rp}, args...)...)
			cmd.Env = append(os.Environ(), env...)
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("builder %d: %v\n%s", i, err, out)
				return
			}
			var rep struct {
				Images []struct {
					Stages []struct {
						Name, Status string
						DurationMs   int64
					}
				}
			}
			data, err := os.ReadFile(rp)
			if err == nil {
				err = json.Unmarshal(data, &rep)
			}
			if err != nil {
				errs[i] = fmt.Errorf("builder %d report: %v", i, err)
				return
			}
			for _, im := range rep.Images {
				for _, st := range im.Stages {
					res.add(st.Name, st.Status, st.DurationMs)
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
}

// syncDuplicates counts stored stage tags beyond one per digest.
func syncDuplicates(b *testing.B, repo string) int {
	b.Helper()
	ref, err := name.NewRepository(repo, name.Insecure)
	if err != nil {
		b.Fatal(err)
	}
	tags, err := remote.List(ref)
	if err != nil {
		b.Fatal(err)
	}
	re := regexp.MustCompile(`^([0-9a-f]{56})-[0-9]+$`)
	digests := map[string]bool{}
	n := 0
	for _, t := range tags {
		if m := re.FindStringSubmatch(t); m != nil {
			digests[m[1]] = true
			n++
		}
	}
	return n - len(digests)
}
