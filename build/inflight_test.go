package build

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/lock/kubelock"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// hookLocker records the lock names asked for and runs hooks before and after each Lock.
type hookLocker struct {
	lock.Locker
	before, after func(name string)

	mu    sync.Mutex
	names []string
}

func (h *hookLocker) Lock(ctx context.Context, name string) (lock.Lease, error) {
	h.mu.Lock()
	h.names = append(h.names, name)
	h.mu.Unlock()
	if h.before != nil {
		h.before(name)
	}
	l, err := h.Locker.Lock(ctx, name)
	if err == nil && h.after != nil {
		h.after(name)
	}
	return l, err
}

func (h *hookLocker) asked() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.names...)
}

// inFlightProject has two shell stages (engine) and registry-side git and docker stages.
func inFlightProject(t *testing.T, base string) *gitRepo {
	g := newGitRepo(t)
	g.commit("init", map[string]string{
		"strata.yaml": "project: inflight\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\n" +
			"git:\n- add: /src\n  to: /app\n" +
			"shell:\n  beforeInstall: [echo " + testenv.UniqueName(t, "m") + " > /marker]\n  install: [cat /app/a.txt > /installed]\n" +
			"docker:\n  CMD: [cat, /installed]\n",
		"src/a.txt": "1",
	})
	return g
}

// With WaitForInFlight, two cold concurrent builds of one project build every stage once: the
// builder that finds another one building a stage waits for it and reports the stage
// reused-after-wait; nothing is discarded and every digest has one stored tag.
func TestWaitForInFlightBuildsEachStageOnce(t *testing.T) {
	host := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "inflight")
	reg := registry.Options{}
	g := inFlightProject(t, base)
	files := &lock.File{Dir: t.TempDir(), Poll: 10 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// A pauses right after taking its first #building lock (the from stage); B starts then, so
	// its single listing cannot hold any stage, and A goes on once B waits for that lock.
	aHolds, bWaits, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var aOnce, bOnce sync.Once
	lockA := &hookLocker{Locker: files, after: func(name string) {
		if stages.IsBuildingLock(name) {
			aOnce.Do(func() { close(aHolds); <-release })
		}
	}}
	lockB := &hookLocker{Locker: files, before: func(name string) {
		if stages.IsBuildingLock(name) {
			bOnce.Do(func() { close(bWaits) })
		}
	}}
	var logB bytes.Buffer
	var logMu sync.Mutex
	run := func(l lock.Locker, log *slog.Logger, out **stages.Report, errp *error, wg *sync.WaitGroup) {
		defer wg.Done()
		*out, *errp = Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: l, DockerHost: host, WaitForInFlight: true, Log: log})
	}
	var repA, repB *stages.Report
	var errA, errB error
	var wg sync.WaitGroup
	wg.Add(2)
	go run(lockA, nil, &repA, &errA, &wg)
	select {
	case <-aHolds:
	case <-time.After(30 * time.Second):
		t.Fatal("builder A took no #building lock in 30 s")
	}
	go run(lockB, slog.New(slog.NewTextHandler(&lockedWriter{w: &logB, mu: &logMu}, nil)), &repB, &errB, &wg)
	select {
	case <-bWaits:
	case <-time.After(30 * time.Second):
		t.Fatal("builder B asked for no #building lock in 30 s")
	}
	close(release)
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("builds: A %v, B %v", errA, errB)
	}
	a, b := repA.Image("app"), repB.Image("app")
	if a.Ref != b.Ref || a.ManifestDigest != b.ManifestDigest {
		t.Errorf("final images differ: A %s@%s, B %s@%s", a.Ref, a.ManifestDigest, b.Ref, b.ManifestDigest)
	}
	if len(a.Stages) != 5 || len(b.Stages) != len(a.Stages) {
		t.Fatalf("stages: A %+v, B %+v, want 5 each", a.Stages, b.Stages)
	}
	if b.Stages[0].Status != stages.StatusWaited {
		t.Errorf("B's from stage: %s, want %s (it waited for A)", b.Stages[0].Status, stages.StatusWaited)
	}
	for i, sa := range a.Stages {
		sb := b.Stages[i]
		if sa.Digest != sb.Digest || sa.Tag != sb.Tag {
			t.Errorf("stage %s: A %s, B %s", sa.Name, sa.Tag, sb.Tag)
		}
		got := map[string]int{sa.Status: 1}
		got[sb.Status]++
		if got[stages.StatusBuilt] != 1 || got[stages.StatusWaited] != 1 {
			t.Errorf("stage %s: A %s, B %s; want one built and one %s", sa.Name, sa.Status, sb.Status, stages.StatusWaited)
		}
	}
	r, err := reg.ParseRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := remoteList(ctx, reg, r)
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]int{}
	for _, tag := range tags {
		if st, ok := stages.ParseTag(tag); ok {
			per[st.Digest]++
		}
	}
	for _, s := range a.Stages {
		if per[s.Digest] != 1 {
			t.Errorf("stage %s: %d stored tags, want 1", s.Name, per[s.Digest])
		}
	}
	if len(per) != len(a.Stages) {
		t.Errorf("stored digests %v, want the %d stages", per, len(a.Stages))
	}
	// Each builder asks for the #building lock of every stage it did not find stored, and for
	// the publish lock of the stages it built only.
	for _, l := range []*hookLocker{lockA, lockB} {
		building := 0
		for _, n := range l.asked() {
			if stages.IsBuildingLock(n) {
				building++
			}
		}
		if building != len(a.Stages) {
			t.Errorf("#building locks asked %d, want one per stage (%d): %v", building, len(a.Stages), l.asked())
		}
	}
	built := func(r *stages.ImageReport) (n int) {
		for _, s := range r.Stages {
			if s.Status == stages.StatusBuilt {
				n++
			}
		}
		return n
	}
	for who, l := range map[*stages.ImageReport]*hookLocker{a: lockA, b: lockB} {
		publish := 0
		for _, n := range l.asked() {
			if !stages.IsBuildingLock(n) {
				publish++
			}
		}
		if publish != built(who) {
			t.Errorf("publish locks %d, stages built %d: %v", publish, built(who), l.asked())
		}
	}
	t.Logf("A: %v, B: %v", statuses(a), statuses(b))
	logMu.Lock()
	if !strings.Contains(logB.String(), "stage stored by another builder while waiting") {
		t.Errorf("B did not log the reuse after waiting:\n%s", logB.String())
	}
	logMu.Unlock()
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Without WaitForInFlight no #building lock is taken: only the publish lock of each built stage.
func TestNoBuildingLockByDefault(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "nowait")
	g := newGitRepo(t)
	g.commit("init", map[string]string{
		"strata.yaml": gitAppConfig("nowait", base),
		"src/a.txt":   "1",
	})
	l := &hookLocker{Locker: fileLocker(t)}
	rep, err := Run(context.Background(), Options{Dir: g.dir, Repo: repo, Locker: l, DockerHost: noEngine})
	if err != nil {
		t.Fatal(err)
	}
	app := rep.Image("app")
	var want []string
	for _, s := range app.Stages {
		if s.Status != stages.StatusBuilt {
			t.Errorf("cold build: stage %s %s", s.Name, s.Status)
		}
		want = append(want, "nowait/"+s.Digest)
	}
	if got := l.asked(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("locks %v, want the publish locks %v", got, want)
	}
}

// A #building holder that dies without releasing (its Lease is never renewed, as after a
// SIGKILL) blocks a waiting builder only until the Lease expires: the builder takes it over,
// re-checks, finds nothing stored and builds the stage itself.
func TestWaitForInFlightDeadHolder(t *testing.T) {
	base := testenv.BaseImage(t)
	cs := testenv.Kube(t)
	reg := registry.Options{}
	g := newGitRepo(t)
	g.commit("init", map[string]string{
		"strata.yaml": gitAppConfig("deadholder", base),
		"src/a.txt":   testenv.UniqueName(t, "content"),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The stage digests do not depend on the storage: learn them from a build elsewhere.
	first, err := Run(ctx, Options{Dir: g.dir, Repo: testenv.Repo(t, "scratch"), Registry: reg, Locker: fileLocker(t), DockerHost: noEngine})
	if err != nil {
		t.Fatal(err)
	}
	built := first.Image("app").Stages
	var gitArchive string
	for _, s := range built {
		if s.Name == "gitArchive" {
			gitArchive = s.Digest
		}
	}
	if gitArchive == "" {
		t.Fatalf("no gitArchive stage: %+v", built)
	}

	ns := testenv.UniqueName(t, "ns")
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	const ttl, renew = 3 * time.Second, time.Second
	name := stages.BuildingLock("deadholder", gitArchive)
	holder := "dead-builder/pid-1/0000"
	secs := int32(ttl / time.Second)
	now := metav1.NewMicroTime(time.Now())
	if _, err := cs.CoordinationV1().Leases(ns).Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: kubelock.LeaseName(name), Annotations: map[string]string{kubelock.NameAnnotation: name}},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	died := now.Time

	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil))
	kl, err := kubelock.New(kubelock.Options{Client: cs, Namespace: ns, TTL: ttl, RenewEvery: renew, MaxWait: 200 * time.Millisecond, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	repo := testenv.Repo(t, "dead")
	rep, err := Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: kl, DockerHost: noEngine, WaitForInFlight: true, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(died)
	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	for _, s := range rep.Image("app").Stages {
		if s.Status != stages.StatusBuilt {
			t.Errorf("stage %s: %s, want built (the dead holder stored nothing)", s.Name, s.Status)
		}
	}
	if !strings.Contains(out, "waiting for lock") || !strings.Contains(out, holder) {
		t.Errorf("the wait for the dead holder was not logged with its name:\n%s", out)
	}
	if took < ttl-renew {
		t.Errorf("build finished %s after the holder died, before its Lease (TTL %s) expired: the #building lock was not respected", took, ttl)
	}
	if limit := ttl + renew + 10*time.Second; took > limit {
		t.Errorf("build finished %s after the holder died, want at most TTL + renew + 10 s of work = %s", took, limit)
	}
	leases, err := cs.CoordinationV1().Leases(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(leases.Items) != 0 {
		t.Errorf("%d Leases left after the build", len(leases.Items))
	}
	t.Logf("dead #building holder (TTL %s): build done %s after it died", ttl, took.Round(time.Millisecond))
}

// A waiter does not depend on the #building holder releasing: it also re-lists the storage
// while it waits, so a stage stored meanwhile (here by a builder without the flag, while the
// holder hangs on to its Lease) is reused long before the lock would be free.
func TestWaitForInFlightSeesStageStoredWhileWaiting(t *testing.T) {
	base := testenv.BaseImage(t)
	cs := testenv.Kube(t)
	reg := registry.Options{}
	g := newGitRepo(t)
	g.commit("init", map[string]string{
		"strata.yaml": gitAppConfig("stuckholder", base),
		"src/a.txt":   testenv.UniqueName(t, "content"),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	first, err := Run(ctx, Options{Dir: g.dir, Repo: testenv.Repo(t, "scratch"), Registry: reg, Locker: fileLocker(t), DockerHost: noEngine})
	if err != nil {
		t.Fatal(err)
	}
	var fromDigest string
	for _, s := range first.Image("app").Stages {
		if s.Name == "from" {
			fromDigest = s.Digest
		}
	}
	ns := testenv.UniqueName(t, "ns")
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	// A holder whose Lease stays valid for a minute.
	name := stages.BuildingLock("stuckholder", fromDigest)
	holder := "stuck-builder/pid-1/0000"
	secs := int32(60)
	now := metav1.NewMicroTime(time.Now())
	if _, err := cs.CoordinationV1().Leases(ns).Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: kubelock.LeaseName(name), Annotations: map[string]string{kubelock.NameAnnotation: name}},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kl, err := kubelock.New(kubelock.Options{Client: cs, Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	repo := testenv.Repo(t, "stuck")
	done := make(chan struct{})
	var rep *stages.Report
	var runErr error
	start := time.Now()
	go func() {
		defer close(done)
		rep, runErr = Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: kl, DockerHost: noEngine, WaitForInFlight: true})
	}()
	time.Sleep(time.Second)
	other, err := Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: kl, DockerHost: noEngine})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the waiting build did not notice the stored stages within 20 s (the holder's Lease lasts 60 s)")
	}
	if runErr != nil {
		t.Fatal(runErr)
	}
	took := time.Since(start)
	w, o := rep.Image("app"), other.Image("app")
	if w.Ref != o.Ref {
		t.Errorf("waiting build %s, other build %s", w.Ref, o.Ref)
	}
	// The later stages race with the other build (either may build them, the publish lock keeps
	// one); the from stage was stored while the waiter waited.
	if w.Stages[0].Status != stages.StatusWaited {
		t.Errorf("from stage: %s, want %s", w.Stages[0].Status, stages.StatusWaited)
	}
	t.Logf("holder stuck for 60 s: the waiter reused the stored stages after %s", took.Round(time.Millisecond))
}
