package bench

import (
	"bufio"
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

	"strata.dev/strata/internal/testenv"
)

// BenchmarkSyncBuilders measures, for each lock backend, 8 cold `strata build` processes on one
// project against 1 cold builder in the same run: the wall-time ratio (target ≤ 1.5×), the
// number of duplicate pushes (stored tags beyond one per stage digest; target 0) and how many
// stage results the 7 slower builders discarded.
//
//	go test ./bench -run '^$' -bench SyncBuilders -benchtime 1x
func BenchmarkSyncBuilders(b *testing.B) {
	host := testenv.DockerHost(b)
	base := testenv.BaseImage(b)
	kubeconfig := testenv.Kubeconfig(b)
	cs := testenv.Kube(b)
	bin := syncStrataBinary(b)
	const builders = 8

	ns := testenv.UniqueName(b, "ns")
	b.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	token := testenv.UniqueName(b, "token")
	server := syncStartServer(b, bin, token)
	backends := []struct {
		name, spec string
		env        []string
	}{
		{"local", ":local", []string{"STRATA_HOME=" + b.TempDir()}},
		{"kubernetes", "kubernetes://" + ns, []string{"KUBECONFIG=" + kubeconfig}},
		{"http", "http://" + server, []string{"STRATA_SYNC_TOKEN=" + token}},
	}
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			env := append(be.env, "DOCKER_HOST="+host)
			var one, eight time.Duration
			var dups, discarded int
			for i := 0; i < b.N; i++ {
				repo := testenv.Repo(b, "one")
				start := time.Now()
				syncBuild(b, bin, syncProject(b, base), repo, be.spec, env, 1)
				one += time.Since(start)

				repo = testenv.Repo(b, "eight")
				start = time.Now()
				statuses := syncBuild(b, bin, syncProject(b, base), repo, be.spec, env, builders)
				eight += time.Since(start)
				dups += syncDuplicates(b, repo)
				discarded += statuses["discarded-for-existing"]
			}
			ratio := eight.Seconds() / one.Seconds()
			b.ReportMetric(ratio, "ratio-8vs1")
			b.ReportMetric(float64(dups)/float64(b.N), "duplicate-pushes")
			b.ReportMetric(float64(discarded)/float64(b.N), "discarded-results")
			b.Logf("%s: 1 builder %s, %d builders %s, ratio %.2fx (target <= 1.5x), duplicate pushes %d (target 0), discarded results %d",
				be.name, (one / time.Duration(b.N)).Round(time.Millisecond), builders, (eight / time.Duration(b.N)).Round(time.Millisecond), ratio, dups, discarded)
		})
	}
}

var (
	syncBinOnce sync.Once
	syncBinPath string
	syncBinErr  error
)

func syncStrataBinary(b *testing.B) string {
	b.Helper()
	syncBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "strata-bench-bin-")
		if err != nil {
			syncBinErr = err
			return
		}
		syncBinPath = filepath.Join(dir, "strata")
		cmd := exec.Command("go", "build", "-o", syncBinPath, "strata.dev/strata/cmd/strata")
		cmd.Dir = testenv.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			syncBinErr = fmt.Errorf("go build cmd/strata: %v\n%s", err, out)
		}
	})
	if syncBinErr != nil {
		b.Fatal(syncBinErr)
	}
	return syncBinPath
}

// syncProject writes a fresh one-image project (three stages, distinct digests per call).
func syncProject(b *testing.B, base string) string {
	b.Helper()
	dir := b.TempDir()
	write(b, filepath.Join(dir, "strata.yaml"), fmt.Sprintf(`project: syncbench
configVersion: 1
---
image: app
from: %s
shell:
  beforeInstall:
  - echo %s > /marker
  install:
  - sleep 1
  - echo installed > /installed
`, base, testenv.UniqueName(b, "marker")))
	gitRun(b, dir, "init", "-q")
	gitRun(b, dir, "add", "strata.yaml")
	gitRun(b, dir, "commit", "-q", "-m", "init")
	return dir
}

// syncBuild runs n builders at once and returns the stage statuses summed over their reports.
func syncBuild(b *testing.B, bin, dir, repo, spec string, env []string, n int) map[string]int {
	b.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[string]int{}
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rp := filepath.Join(b.TempDir(), "report.json")
			cmd := exec.Command(bin, "build", "-q", "--dir", dir, "--repo", repo, "--synchronization", spec, "--report", rp)
			cmd.Env = append(os.Environ(), env...)
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("builder %d: %v\n%s", i, err, out)
				return
			}
			var rep struct {
				Images []struct{ Stages []struct{ Status string } }
			}
			data, err := os.ReadFile(rp)
			if err == nil {
				err = json.Unmarshal(data, &rep)
			}
			if err != nil {
				errs[i] = fmt.Errorf("builder %d report: %v", i, err)
				return
			}
			mu.Lock()
			for _, im := range rep.Images {
				for _, st := range im.Stages {
					statuses[st.Status]++
				}
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return statuses
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

// syncStartServer runs `strata sync-server` on a free port and returns host:port.
func syncStartServer(b *testing.B, bin, token string) string {
	b.Helper()
	cmd := exec.Command(bin, "sync-server", "--listen", "127.0.0.1:0", "--log-format", "json")
	cmd.Env = append(os.Environ(), "STRATA_TOKEN="+token)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec struct{ Address string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && strings.Contains(rec.Address, ":") {
				select {
				case found <- rec.Address:
				default:
				}
			}
		}
	}()
	select {
	case a := <-found:
		return a
	case <-time.After(20 * time.Second):
		b.Fatal("strata sync-server did not report its address")
	}
	return ""
}
