package backends

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/lock/kubelock"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/strataproc"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// report is the part of `strata build --report` these tests read.
type report struct {
	Images []struct {
		Name, Ref, ManifestDigest string
		Stages                    []struct{ Name, Digest, Tag, Status string }
	}
}

// builder is one running `strata build` process.
type builder struct {
	cmd    *exec.Cmd
	out    *logBuffer // stdout and stderr, readable while the process runs
	report string
	done   chan struct{}
	err    error
	exited time.Time
}

// startBuilders starts n `strata build` processes on one project, with extra build args.
func startBuilders(t *testing.T, bin, dir, repo, spec string, env []string, n int, args ...string) []*builder {
	t.Helper()
	var bs []*builder
	for i := 0; i < n; i++ {
		b := &builder{out: &logBuffer{}, report: filepath.Join(t.TempDir(), "report.json"), done: make(chan struct{})}
		b.cmd = exec.Command(bin, append([]string{"build", "--dir", dir, "--repo", repo, "--synchronization", spec, "--report", b.report}, args...)...)
		b.cmd.Env = append(append(os.Environ(), env...), "DOCKER_HOST="+testenv.Load().DockerHost)
		b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
		if err := b.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { b.err = b.cmd.Wait(); b.exited = time.Now(); close(b.done) }()
		t.Cleanup(func() { _ = b.cmd.Process.Kill(); <-b.done })
		bs = append(bs, b)
	}
	return bs
}

// reports waits for the builders and returns their reports; any failure fails the test.
func reports(t *testing.T, bs []*builder) []report {
	t.Helper()
	var out []report
	for i, b := range bs {
		select {
		case <-b.done:
		case <-time.After(5 * time.Minute):
			t.Fatalf("builder %d still running after 5 minutes:\n%s", i, b.out)
		}
		if b.err != nil {
			t.Fatalf("builder %d: %v\n%s", i, b.err, b.out)
		}
		var r report
		data, err := os.ReadFile(b.report)
		if err == nil {
			err = json.Unmarshal(data, &r)
		}
		if err != nil {
			t.Fatalf("builder %d report: %v", i, err)
		}
		out = append(out, r)
	}
	return out
}

// buildConcurrently runs n `strata build` processes on one project and returns their reports.
func buildConcurrently(t *testing.T, bin, dir, repo, spec string, env []string, n int) []report {
	t.Helper()
	rs := reports(t, startBuilders(t, bin, dir, repo, spec, env, n))
	if len(rs) != n {
		t.Fatalf("%d reports from %d builders", len(rs), n)
	}
	return rs
}

// checkBuilds asserts (allBuilders: the reports are those of every builder that ran, on a cold
// project): identical final images and stage digests in all reports, exactly one stored tag per
// stage digest, exactly one builder reporting each stage as built and every other one reporting
// it as discarded-for-existing or reused, and at least one discarded duplicate.
func checkBuilds(t *testing.T, repo string, reports []report, allBuilders bool) {
	t.Helper()
	first := reports[0].Images
	if len(first) != 1 || len(first[0].Stages) == 0 {
		t.Fatalf("report 0: %+v, want one image with stages", first)
	}
	built := map[string]int{}
	statuses := map[string]int{}
	perStage := map[string]map[string]int{} // digest -> status -> reports
	for i, r := range reports {
		if len(r.Images) != 1 || r.Images[0].Ref != first[0].Ref || r.Images[0].ManifestDigest != first[0].ManifestDigest {
			t.Errorf("report %d names %+v, report 0 names %s@%s", i, r.Images, first[0].Ref, first[0].ManifestDigest)
			continue
		}
		if len(r.Images[0].Stages) != len(first[0].Stages) {
			t.Errorf("report %d has %d stages, report 0 has %d", i, len(r.Images[0].Stages), len(first[0].Stages))
			continue
		}
		for j, st := range r.Images[0].Stages {
			if st.Digest != first[0].Stages[j].Digest || st.Tag != first[0].Stages[j].Tag {
				t.Errorf("report %d stage %d is %s (%s), report 0 has %s (%s)", i, j, st.Digest, st.Tag, first[0].Stages[j].Digest, first[0].Stages[j].Tag)
			}
			switch st.Status {
			case "built":
				built[st.Digest]++
			case "discarded-for-existing", "reused":
			default:
				t.Errorf("report %d stage %s: status %q, want built, discarded-for-existing or reused", i, st.Name, st.Status)
			}
			statuses[st.Status]++
			if perStage[st.Digest] == nil {
				perStage[st.Digest] = map[string]int{}
			}
			perStage[st.Digest][st.Status]++
		}
	}
	for _, st := range first[0].Stages {
		if n := perStage[st.Digest]["built"] + perStage[st.Digest]["discarded-for-existing"] + perStage[st.Digest]["reused"]; n != len(reports) {
			t.Errorf("stage %s: %d of %d reports account for it (%v)", st.Name, n, len(reports), perStage[st.Digest])
		}
	}
	if allBuilders && statuses["discarded-for-existing"] == 0 {
		t.Errorf("%d cold concurrent builders and no stage reported discarded-for-existing: %v", len(reports), statuses)
	}
	ref, err := name.NewRepository(repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := remote.List(ref, remote.WithContext(context.Background()))
	if err != nil {
		t.Fatalf("list %s: %v", repo, err)
	}
	stageTag := regexp.MustCompile(`^([0-9a-f]{56})-[0-9]+$`)
	perDigest := map[string][]string{}
	for _, tag := range tags {
		if m := stageTag.FindStringSubmatch(tag); m != nil {
			perDigest[m[1]] = append(perDigest[m[1]], tag)
		}
	}
	for _, st := range first[0].Stages {
		if got := perDigest[st.Digest]; len(got) != 1 {
			t.Errorf("stage %s (%s): stored tags %v, want exactly one", st.Name, st.Digest, got)
		}
		if allBuilders && built[st.Digest] != 1 || built[st.Digest] > 1 {
			t.Errorf("stage %s: %d builders report it built, want exactly 1", st.Name, built[st.Digest])
		}
	}
	if len(perDigest) != len(first[0].Stages) {
		t.Errorf("repository holds stages of %d digests, the image has %d stages: %v", len(perDigest), len(first[0].Stages), perDigest)
	}
	t.Logf("%d builders, stage statuses %v, final %s", len(reports), statuses, first[0].Ref)
}

// TestConcurrentBuilds runs 8 cold `strata build` processes on one project for each backend.
func TestConcurrentBuilds(t *testing.T) {
	testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	kubeconfig := testenv.Kubeconfig(t)
	bin := strataproc.Binary(t)
	const builders = 8

	t.Run("local", func(t *testing.T) {
		repo := testenv.Repo(t, "local")
		home := t.TempDir()
		reports := buildConcurrently(t, bin, strataproc.Project(t, "synctest", base, 1), repo, ":local", []string{"STRATA_HOME=" + home}, builders)
		checkBuilds(t, repo, reports, true)
	})

	t.Run("kubernetes", func(t *testing.T) {
		repo := testenv.Repo(t, "kube")
		ns := kubeNamespace(t)
		reports := buildConcurrently(t, bin, strataproc.Project(t, "synctest", base, 1), repo, "kubernetes://"+ns, []string{"KUBECONFIG=" + kubeconfig}, builders)
		checkBuilds(t, repo, reports, true)
		leases, err := testenv.Kube(t).CoordinationV1().Leases(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(leases.Items) != 0 {
			t.Errorf("%d Leases left after all builds released their locks", len(leases.Items))
		}
	})

	t.Run("http", func(t *testing.T) {
		repo := testenv.Repo(t, "http")
		token := "tok-" + testenv.UniqueName(t, "t")
		addr := strataproc.StartSyncServer(t, bin, token)
		reports := buildConcurrently(t, bin, strataproc.Project(t, "synctest", base, 1), repo, "http://"+addr,
			[]string{TokenEnv + "=" + token}, builders)
		checkBuilds(t, repo, reports, true)
	})
}

// holderPID returns the pid in a kubelock holderIdentity "host/pid-N/suffix".
func holderPID(identity string) int {
	m := regexp.MustCompile(`/pid-([0-9]+)/`).FindStringSubmatch(identity)
	if m == nil {
		return 0
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

// TestSIGKILLHolderMidPublish kills the builder whose Lease appears first (it is publishing a
// stage) and checks that a survivor takes its lock over within TTL + 5 s of the kill, that the
// other 7 then finish, and that every digest has one stored tag and the final images agree.
func TestSIGKILLHolderMidPublish(t *testing.T) {
	testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	kubeconfig := testenv.Kubeconfig(t)
	bin := strataproc.Binary(t)
	cs := testenv.Kube(t)
	ns := kubeNamespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Kill the holder of the first Lease seen. A holder may release its Lease between the List
	// and the kill landing: then it held nothing when it died, so another holder is killed,
	// until one dies with its Lease still in place. If the builders finish before that happens,
	// the attempt is repeated with a fresh project and repository.
	var (
		repo   string
		bs     []*builder
		victim *builder
		killed time.Time
		dead   map[*builder]bool
	)
	for attempt := 1; victim == nil; attempt++ {
		if attempt > 3 {
			t.Fatal("in 3 attempts no builder could be killed while holding its Lease")
		}
		repo = testenv.Repo(t, fmt.Sprintf("kill%d", attempt))
		bs = startBuilders(t, bin, strataproc.Project(t, "synctest", base, 1), repo, "kubernetes://"+ns, []string{"KUBECONFIG=" + kubeconfig}, 8)
		byPID := map[int]*builder{}
		for _, b := range bs {
			byPID[b.cmd.Process.Pid] = b
		}
		dead = map[*builder]bool{}
		running := func() bool {
			for _, b := range bs {
				select {
				case <-b.done:
				default:
					return true
				}
			}
			return false
		}
		for victim == nil && running() {
			if ctx.Err() != nil {
				t.Fatal("no Lease appeared")
			}
			leases, err := cs.CoordinationV1().Leases(ns).List(ctx, metav1.ListOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				t.Fatal(err)
			}
			if err == nil {
				for _, l := range leases.Items {
					if l.Spec.HolderIdentity == nil {
						continue
					}
					b := byPID[holderPID(*l.Spec.HolderIdentity)]
					if b == nil || dead[b] {
						continue
					}
					_ = b.cmd.Process.Signal(syscall.SIGKILL)
					at := time.Now()
					<-b.done
					dead[b] = true
					still, err := cs.CoordinationV1().Leases(ns).Get(ctx, l.Name, metav1.GetOptions{})
					if err != nil || still.Spec.HolderIdentity == nil || *still.Spec.HolderIdentity != *l.Spec.HolderIdentity {
						t.Logf("builder pid %d released %s before the kill landed; killing the next holder", b.cmd.Process.Pid, l.Annotations["strata.dev/lock-name"])
						break
					}
					// Killed between its push and its unlock: the stage is stored, so no survivor
					// needs the lock any more and none will take it over (seen once in a full run).
					if lockedStageStored(t, ctx, repo, l.Annotations["strata.dev/lock-name"]) {
						t.Logf("builder pid %d had already stored the stage of %s when the kill landed; killing the next holder", b.cmd.Process.Pid, l.Annotations["strata.dev/lock-name"])
						break
					}
					killed, victim = at, b
					t.Logf("killed builder pid %d holding %s (%s)", b.cmd.Process.Pid, l.Annotations["strata.dev/lock-name"], *l.Spec.HolderIdentity)
					break
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		if victim == nil {
			t.Logf("attempt %d: the builders finished before one could be killed holding its Lease", attempt)
			for _, b := range bs {
				_ = b.cmd.Process.Kill()
				<-b.done
			}
		}
	}
	var survivors []*builder
	for _, b := range bs {
		if !dead[b] {
			survivors = append(survivors, b)
		}
	}
	reps := reports(t, survivors)
	var last time.Time
	for _, b := range survivors {
		if b.exited.After(last) {
			last = b.exited
		}
	}
	// The Lease the victim held is taken over by one of the survivors: the time from the kill to
	// that takeover is how long the dead holder blocked the others.
	const ttl, renew = 15 * time.Second, 5 * time.Second
	tookOver := regexp.MustCompile(`time=(\S+) .*took over expired lock`)
	var takeover time.Time
	var logs strings.Builder
	for i, b := range survivors {
		fmt.Fprintf(&logs, "--- builder %d (pid %d):\n%s\n", i, b.cmd.Process.Pid, b.out)
		for _, line := range strings.Split(b.out.String(), "\n") {
			if m := tookOver.FindStringSubmatch(line); m != nil {
				at, err := time.Parse(time.RFC3339Nano, m[1])
				if err != nil {
					t.Fatalf("log time %q: %v", m[1], err)
				}
				if takeover.IsZero() || at.Before(takeover) {
					takeover = at
				}
			}
		}
	}
	if takeover.IsZero() {
		t.Fatalf("no surviving builder logged \"took over expired lock\": the killed holder's Lease was never taken over\n%s", &logs)
	}
	blocked := takeover.Sub(killed)
	if blocked > ttl+5*time.Second {
		t.Errorf("the killed holder's lock was taken over %s after the kill, want at most TTL + 5 s = %s", blocked.Round(time.Millisecond), ttl+5*time.Second)
	}
	// After the takeover the survivors only publish the stage, then build and publish the
	// remaining one (a shell stage with `sleep 1`, 7 builders on 2 cores).
	finished, work := last.Sub(killed), last.Sub(takeover)
	if limit := ttl + renew + 5*time.Second + 20*time.Second; finished > limit {
		t.Errorf("the surviving builders finished %s after the kill (%s of it after the takeover), want at most TTL + renew + 5 s + 20 s of remaining work = %s",
			finished.Round(time.Millisecond), work.Round(time.Millisecond), limit)
	}
	t.Logf("SIGKILLed holder: lock taken over %s after the kill (TTL %s, renew %s); survivors finished %s after the kill, %s after the takeover",
		blocked.Round(time.Millisecond), ttl, renew, finished.Round(time.Millisecond), work.Round(time.Millisecond))
	checkBuilds(t, repo, reps, false)
}

// digestStored reports whether a stage whose digest starts with prefix has a tag in repo.
func digestStored(t *testing.T, ctx context.Context, repo, prefix string) bool {
	t.Helper()
	st, err := stages.Open(repo, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tags, err := st.Tags(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for d := range stages.ByDigest(tags) {
		if strings.HasPrefix(d, prefix) {
			return true
		}
	}
	return false
}

// lockedStageStored reports whether the stage a publish or #building lock name guards has a tag
// in repo.
func lockedStageStored(t *testing.T, ctx context.Context, repo, lockName string) bool {
	t.Helper()
	_, digest, ok := strings.Cut(strings.TrimSuffix(lockName, "#building"), "/")
	if !ok {
		t.Fatalf("lock name %q: want <project>/<digest>", lockName)
	}
	st, err := stages.Open(repo, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tags, err := st.Tags(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return len(stages.ByDigest(tags)[digest]) > 0
}

// TestSIGKILLBuildingHolder runs two builders with --wait-for-in-flight: the first is killed
// while it holds the #building lock of the install stage and the second waits for it. The
// survivor takes the dead holder's Lease over within TTL + 5 s of the kill, builds the stage
// itself and finishes; every digest has one stored tag.
func TestSIGKILLBuildingHolder(t *testing.T) {
	testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	kubeconfig := testenv.Kubeconfig(t)
	bin := strataproc.Binary(t)
	cs := testenv.Kube(t)
	ns := kubeNamespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const installSeconds = 5
	repo := testenv.Repo(t, "killbuilding")
	dir := strataproc.Project(t, "synctest", base, installSeconds)
	spec, env := "kubernetes://"+ns, []string{"KUBECONFIG=" + kubeconfig}

	victim := startBuilders(t, bin, dir, repo, spec, env, 1, "--wait-for-in-flight")[0]
	pid := victim.cmd.Process.Pid
	// Once the victim logged its beforeInstall stage, the #building Lease it holds for another
	// digest is install's (beforeInstall's own may still be held: a stage's push runs in the
	// background while the next stage builds, and its #building Lease lasts until it is stored).
	beforeInstall := regexp.MustCompile(`stage=beforeInstall digest=([0-9a-f]+)`)
	var lockName string
	for lockName == "" {
		select {
		case <-victim.done:
			t.Fatalf("the first builder ended before it held the install #building lock:\n%s", victim.out)
		case <-ctx.Done():
			t.Fatalf("no #building Lease of the install stage appeared:\n%s", victim.out)
		case <-time.After(20 * time.Millisecond):
		}
		m := beforeInstall.FindStringSubmatch(victim.out.String())
		if m == nil {
			continue
		}
		leases, err := cs.CoordinationV1().Leases(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			continue
		}
		for _, l := range leases.Items {
			n := l.Annotations[kubelock.NameAnnotation]
			_, digest, _ := strings.Cut(n, "/")
			if stages.IsBuildingLock(n) && !strings.HasPrefix(digest, m[1]) &&
				l.Spec.HolderIdentity != nil && holderPID(*l.Spec.HolderIdentity) == pid {
				lockName = n
			}
		}
		// The survivor must find beforeInstall stored, not wait for its push.
		if lockName != "" && !digestStored(t, ctx, repo, m[1]) {
			lockName = ""
		}
	}
	survivor := startBuilders(t, bin, dir, repo, spec, env, 1, "--wait-for-in-flight")[0]
	for !strings.Contains(survivor.out.String(), "waiting for lock") {
		select {
		case <-survivor.done:
			t.Fatalf("the second builder ended without waiting for %s:\n%s", lockName, survivor.out)
		case <-ctx.Done():
			t.Fatalf("the second builder never waited for %s:\n%s", lockName, survivor.out)
		case <-time.After(10 * time.Millisecond):
		}
	}
	_ = victim.cmd.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	t.Logf("killed builder pid %d holding %s", pid, lockName)
	reps := reports(t, []*builder{survivor})

	const ttl, renew = 15 * time.Second, 5 * time.Second
	out := survivor.out.String()
	tookOver := regexp.MustCompile(`time=(\S+) .*took over expired lock.*lock=` + regexp.QuoteMeta(lockName))
	m := tookOver.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the survivor did not log taking over %s:\n%s", lockName, out)
	}
	takeover, err := time.Parse(time.RFC3339Nano, m[1])
	if err != nil {
		t.Fatal(err)
	}
	if blocked := takeover.Sub(killed); blocked > ttl+5*time.Second {
		t.Errorf("the dead holder's #building lock was taken over %s after the kill, want at most TTL + 5 s", blocked.Round(time.Millisecond))
	}
	// After the takeover the survivor builds the install stage (sleep) and publishes it.
	if finished, limit := survivor.exited.Sub(killed), ttl+renew+time.Duration(installSeconds)*time.Second+15*time.Second; finished > limit {
		t.Errorf("the survivor finished %s after the kill, want at most TTL + renew + the install stage + 15 s = %s", finished.Round(time.Millisecond), limit)
	}
	statuses := map[string]string{}
	for _, st := range reps[0].Images[0].Stages {
		statuses[st.Name] = st.Status
	}
	if statuses["install"] != "built" || statuses["from"] != "reused" || statuses["beforeInstall"] != "reused" {
		t.Errorf("survivor statuses %v, want from and beforeInstall reused (stored by the victim), install built", statuses)
	}
	checkBuilds(t, repo, reps, false)
	t.Logf("SIGKILLed #building holder: taken over %s after the kill; survivor done %s after the kill",
		takeover.Sub(killed).Round(time.Millisecond), survivor.exited.Sub(killed).Round(time.Millisecond))
}

// TestAPIServerRestartDuringBuilds points 8 builders at a private kube-apiserver, kills it while
// one of them holds a Lease and another waits for it, starts it again, and checks all builds
// finish correctly.
func TestAPIServerRestartDuringBuilds(t *testing.T) {
	testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	bin := strataproc.Binary(t)
	srv := testenv.StartAPIServer(t)
	cs, err := kubelock.ClientFor(srv.Config())
	if err != nil {
		t.Fatal(err)
	}
	repo := testenv.Repo(t, "restart")
	bs := startBuilders(t, bin, strataproc.Project(t, "synctest", base, 1), repo, "kubernetes://", []string{"KUBECONFIG=" + srv.Kubeconfig()}, 8)
	// Stop the apiserver only once a Lease is held and a builder logged that it waits for it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var held []string
	waiting := -1
	for {
		if ctx.Err() != nil {
			t.Fatalf("no builder waited on a held Lease within a minute (Leases %v)", held)
		}
		held, waiting = held[:0], -1
		leases, err := cs.CoordinationV1().Leases(kubelock.DefaultNamespace).List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, l := range leases.Items {
				name := l.Annotations[kubelock.NameAnnotation]
				held = append(held, name)
				pid := 0
				if l.Spec.HolderIdentity != nil {
					pid = holderPID(*l.Spec.HolderIdentity)
				}
				for i, b := range bs {
					if b.cmd.Process.Pid == pid {
						continue
					}
					for _, line := range strings.Split(b.out.String(), "\n") {
						if strings.Contains(line, "waiting for lock") && strings.Contains(line, "lock="+name+" ") {
							waiting = i
						}
					}
				}
			}
		}
		if waiting >= 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	srv.Stop()
	running := 0
	for _, b := range bs {
		select {
		case <-b.done:
		default:
			running++
		}
	}
	t.Logf("apiserver stopped while Leases %v were held, builder %d waiting for one of them, %d builders running", held, waiting, running)
	if running == 0 {
		t.Fatal("every builder had finished when the apiserver stopped: the restart tested nothing")
	}
	time.Sleep(3 * time.Second)
	srv.Start()
	checkBuilds(t, repo, reports(t, bs), true)
}

// TestSyncServerKubernetesState runs `strata sync-server --kubernetes NS`: a lock granted over
// HTTP is a Lease in NS while held, and gone after release.
func TestSyncServerKubernetesState(t *testing.T) {
	kubeconfig := testenv.Kubeconfig(t)
	cs := testenv.Kube(t)
	bin := strataproc.Binary(t)
	ns := kubeNamespace(t)
	addr := strataproc.StartSyncServer(t, bin, "tok", "--kubernetes", ns, "--kubeconfig", kubeconfig)
	t.Setenv(TokenEnv, "tok")
	ctx := context.Background()
	l, err := Open(ctx, "http://"+addr, Options{Owner: "builder-x"})
	if err != nil {
		t.Fatal(err)
	}
	name := testenv.UniqueName(t, "lock")
	lease, err := l.Lock(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := cs.CoordinationV1().Leases(ns).Get(ctx, "strata-"+lock.Key(name), metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Lease of a lock granted by the server: %v", err)
	}
	if h := *obj.Spec.HolderIdentity; !strings.HasPrefix(h, "sync-server/") || obj.Annotations["strata.dev/lock-name"] != name {
		t.Fatalf("Lease holder %q annotations %v", h, obj.Annotations)
	}
	if err := lease.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoordinationV1().Leases(ns).Get(ctx, obj.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("Lease after release: %v, want NotFound", err)
	}
	// Without the token the server refuses at once.
	t.Setenv(TokenEnv, "")
	l, _ = Open(ctx, "http://"+addr, Options{})
	if _, err := l.Lock(ctx, name); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("Lock without token: %v, want 401", err)
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	for _, bad := range []string{"etcd://x", "kubernetes", "http://", "local"} {
		if _, err := Open(ctx, bad, Options{}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("Open(%q) = %v, want an error naming the spec", bad, err)
		}
	}
	if _, err := Open(ctx, "kubernetes://ns:no-such-context", Options{Kubeconfig: testenv.Kubeconfig(t)}); err == nil || !strings.Contains(err.Error(), "no-such-context") {
		t.Errorf("unknown context: %v", err)
	}
	l, err := Open(ctx, "kubernetes://:testenv", Options{Kubeconfig: testenv.Kubeconfig(t)})
	if err != nil {
		t.Fatal(err)
	}
	lease, err := l.Lock(ctx, testenv.UniqueName(t, "open"))
	if err != nil {
		t.Fatal(err)
	}
	if err := lease.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// logBuffer collects a process's output; safe for concurrent writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
