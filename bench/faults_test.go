package bench

import (
	"io"

	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	argoclient "github.com/argoproj/argo-cd/v3/pkg/client/clientset/versioned"
	"hash/fnv"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"strata.dev/strata/build"
	"strata.dev/strata/bundle"
	"strata.dev/strata/cleanup"
	"strata.dev/strata/imageupdater"
	"strata.dev/strata/internal/lock"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/faultproxy"
	"strata.dev/strata/internal/testing/integrity"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// The fault campaign: every operation that writes to or reads from a registry runs through a
// fault-injecting proxy (faultproxy.Chaos: 500, 503, 429 with Retry-After, resets before and
// after forwarding, bodies cut short, slow bodies) at 5 % and 20 % of requests. A run may fail;
// after every run, failed or not, the real registry is checked whole (integrity.Check: every tag
// resolves, every blob is there with its size and digest, no stage digest with two tags), and the
// same operation run again without faults succeeds and reuses what the faulty run stored.
//
// TestFaultCampaign runs each operation faultRuns times per rate (STRATA_FAULT_RUNS, default 2)
// and fails on any broken state or failed clean rerun; the success rates are logged.
// bench/faults.sh runs it with more runs and prints the rates.

// faultOp is one operation of the campaign.
type faultOp struct {
	name string
	// run does the operation once, through via (a repository reached through the proxy);
	// run is the run's number (fresh inputs per run).
	run func(ctx context.Context, run int, via func(string) string) error
	// rerun does it again through the proxy without faults (the same command: the bundle and
	// image references it writes name the same registry) and checks it reused what was stored.
	rerun func(ctx context.Context, run int, via func(string) string) error
	// check lists the repositories to check after the run (stages storages with stages=true).
	check func(run int) (repos []string, stagesRepos []string)
}

// faultResult counts the runs of one operation at one rate.
type faultResult struct {
	op     string
	rate   float64
	runs   int
	ok     int
	faults int
	errs   []string
}

func faultRuns(t testing.TB) int {
	if v := os.Getenv("STRATA_FAULT_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("STRATA_FAULT_RUNS=%q: want a positive number", v)
		}
		return n
	}
	return 2
}

func TestFaultCampaign(t *testing.T) {
	runs := faultRuns(t)
	results := faultCampaign(t, runs, []float64{0.05, 0.20})
	t.Log(summary(results, runs))
}

func summary(results []faultResult, runs int) string {
	var b strings.Builder
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(&b, "fault campaign: %d runs per operation and rate, load %s", runs, strings.Join(strings.Fields(string(load))[:3], " "))
	total := map[float64][2]int{}
	for _, r := range results {
		fmt.Fprintf(&b, "\n  %-22s %3.0f %%  %2d/%2d succeeded  (%d faults injected)", r.op, r.rate*100, r.ok, r.runs, r.faults)
		for _, e := range r.errs {
			fmt.Fprintf(&b, "\n      failed: %s", e)
		}
		tt := total[r.rate]
		total[r.rate] = [2]int{tt[0] + r.ok, tt[1] + r.runs}
	}
	for _, rate := range []float64{0.05, 0.20} {
		if tt := total[rate]; tt[1] > 0 {
			fmt.Fprintf(&b, "\n  all operations %3.0f %%  %d/%d succeeded = %.1f %%", rate*100, tt[0], tt[1], 100*float64(tt[0])/float64(tt[1]))
		}
	}
	return b.String()
}

// seed makes each run's faults reproducible: the same operation, rate and run, the same faults
// for the same requests.
func seed(op string, rate float64, run int) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%g/%d", op, rate, run)
	return h.Sum64()
}

func faultCampaign(t testing.TB, runs int, rates []float64) []faultResult {
	ctx := context.Background()
	p := faultproxy.Start(t, testenv.Registry(t))
	env := newFaultEnv(t, p.Via)
	ops := env.ops(t)
	var results []faultResult
	for _, rate := range rates {
		for _, op := range ops {
			if only := os.Getenv("STRATA_FAULT_OPS"); only != "" && !regexp.MustCompile(only).MatchString(op.name) {
				continue
			}
			res := faultResult{op: op.name, rate: rate, runs: runs}
			for i := 0; i < runs; i++ {
				run := int(rate*1000)*1000 + i
				s := seed(op.name, rate, i)
				p.Injected()
				p.SetChaos(&faultproxy.Chaos{Rate: rate, Seed: s})
				rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
				err := op.run(rctx, run, p.Via)
				cancel()
				p.SetChaos(nil)
				injected := p.Injected()
				res.faults += len(injected)
				if err == nil {
					res.ok++
				} else {
					res.errs = append(res.errs, fmt.Sprintf("seed %d, faults [%s]: %v", s, faultproxy.Count(injected), err))
				}
				repos, stagesRepos := op.check(run)
				env.checkWhole(t, fmt.Sprintf("%s at %g %% (run %d, seed %d, faults [%s], err %v)", op.name, rate*100, i, s, faultproxy.Count(injected), err), repos, stagesRepos)
				if os.Getenv("STRATA_FAULT_DEBUG") != "" {
					t.Logf("%s run %d: faults %v\n%s", op.name, i, injected, env.log.String())
				}
				if err := op.rerun(ctx, run, p.Via); err != nil {
					t.Errorf("%s at %g %%: the clean rerun after run %d (seed %d, err %v) failed: %v", op.name, rate*100, i, s, err, err)
				}
				env.checkWhole(t, op.name+" clean rerun", repos, stagesRepos)
			}
			results = append(results, res)
		}
	}
	return results
}

// faultEnv is what the operations share: the registry, the engine, a base image, a bundle and
// its archive to copy from.
type faultEnv struct {
	t       testing.TB
	ro      registry.Options
	base    string
	docker  string
	locks   lock.Locker
	stages  string // the stages storage every build of the campaign publishes to
	bundle  string // a published bundle REPO:TAG, copied from
	archive string // the same bundle as an archive, copied from
	chart   string
	name    string       // project name
	dir     string       // the project's git work tree
	baseRef string       // the base image through the proxy
	commits map[int]bool // runs committed to dir
	reports map[int]*stages.Report
	log     bytes.Buffer   // of the last build
	latest  *stages.Report // of the last build that succeeded: HEAD's, kept by cleanup
	kube    *faultKube
}

// faultKube is where the updater runs: Applications in a namespace of the test API server.
type faultKube struct {
	cfg     *rest.Config
	argo    argoclient.Interface
	ns      string
	repo    string // the bundle repository the Applications follow
	version int    // the newest published minor version: 1.<version>.0
}

func newFaultEnv(t testing.TB, via func(string) string) *faultEnv {
	ctx := context.Background()
	e := &faultEnv{
		t: t, base: testenv.BaseImage(t), docker: testenv.DockerHost(t),
		locks: &lock.File{Dir: t.TempDir()}, stages: testenv.Repo(t, "stages"),
		commits: map[int]bool{}, reports: map[int]*stages.Report{},
		name: testenv.UniqueName(t, "faults"), dir: filepath.Join(t.TempDir(), "project"),
	}
	e.baseRef = via(e.base)
	e.kube = newFaultKube(t)
	e.chart = filepath.Join(t.TempDir(), "chart")
	writeFiles(t, e.chart, map[string]string{
		"Chart.yaml":            "apiVersion: v2\nname: app\nversion: 0.1.0\n",
		"values.yaml":           "replicas: 1\n",
		"templates/deploy.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  replicas: {{ .Values.replicas }}\n  template:\n    spec:\n      containers:\n      - name: app\n        image: {{ .Values.strata.image.app | quote }}\n",
	})
	// The bundle copied from: the images of one clean build, published once.
	rep := e.build(ctx, t, -1)
	if rep == nil {
		t.FailNow()
	}
	e.reports[-1], e.latest = rep, rep
	published := testenv.Repo(t, "published") + "/app"
	if _, err := bundle.Publish(ctx, e.publishOpts(rep, published, "1.0.0")); err != nil {
		t.Fatalf("publish the bundle copied from: %v", err)
	}
	// copied once with its images: cleanup of the stages storage does not touch them
	e.bundle = testenv.Repo(t, "src") + "/app:1.0.0"
	if _, err := bundle.Copy(ctx, bundle.CopyOptions{From: published + ":1.0.0", To: e.bundle}); err != nil {
		t.Fatalf("copy the bundle copied from: %v", err)
	}
	e.archive = filepath.Join(t.TempDir(), "bundle.tar")
	if _, err := bundle.Copy(ctx, bundle.CopyOptions{From: e.bundle, To: "archive:" + e.archive}); err != nil {
		t.Fatalf("copy the bundle to an archive: %v", err)
	}
	return e
}

func writeFiles(t testing.TB, dir string, files map[string]string) {
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func gitIn(dir string, args ...string) error {
	c := exec.Command("git", args...)
	c.Dir = dir
	c.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("git %v: %v\n%s", args, err, out)
	}
	return nil
}

// project commits the change of run `run` to the campaign's project (one git repository, one
// commit per run: the stages of earlier runs are ancestors, reusable) and returns its directory:
// a git stage and a shell stage whose content is the run's, on the base image (reached through
// via, the same for every run).
func (e *faultEnv) project(run int, via func(string) string) (string, error) {
	if e.commits[run] {
		return e.dir, nil
	}
	cfg := fmt.Sprintf("project: %s\nconfigVersion: 1\ncleanup:\n  keepBuiltWithin: \"0\"\n  branches:\n    last: 1\n---\nimage: app\nfrom: %s\ngit:\n- to: /src\nshell:\n  install:\n  - echo %d > /run\ndocker:\n  CMD: [cat, /run]\n", e.name, e.baseRef, run)
	writeFiles(e.t, e.dir, map[string]string{"strata.yaml": cfg, "a.txt": fmt.Sprintf("run %d\n", run)})
	if len(e.commits) == 0 {
		if err := gitIn(e.dir, "init", "-q", "-b", "main"); err != nil {
			return "", err
		}
	}
	for _, args := range [][]string{{"add", "-A"}, {"commit", "-q", "-m", fmt.Sprint("run ", run)}} {
		if err := gitIn(e.dir, args...); err != nil {
			return "", err
		}
	}
	e.commits[run] = true
	return e.dir, nil
}

func (e *faultEnv) buildOpts(dir, repo string) build.Options {
	e.log.Reset()
	return build.Options{Dir: dir, Repo: repo, Registry: e.ro, Locker: e.locks, DockerHost: e.docker,
		Log: slog.New(slog.NewTextHandler(&e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

// build runs a clean build of run's project and fails t on error.
func (e *faultEnv) build(ctx context.Context, t testing.TB, run int) *stages.Report {
	dir, err := e.project(run, nil)
	if err != nil {
		t.Error(err)
		return nil
	}
	rep, err := build.Run(ctx, e.buildOpts(dir, e.stages))
	if err != nil {
		t.Errorf("clean build: %v", err)
		return nil
	}
	return rep
}

// allReused fails unless every stage of rep was reused.
func allReused(rep *stages.Report) error {
	for _, im := range rep.Images {
		for _, s := range im.Stages {
			if s.Status != stages.StatusReused {
				return fmt.Errorf("stage %s of image %s was %s, not reused", s.Name, im.Name, s.Status)
			}
		}
	}
	return nil
}

func (e *faultEnv) publishOpts(rep *stages.Report, repo, version string) bundle.PublishOptions {
	return bundle.PublishOptions{
		Repo: repo, Version: version, ChartDir: e.chart, Report: rep, Registry: e.ro,
		Commit: bundle.Commit{Date: "2026-12-04T10:00:00Z"}, Branch: "main",
	}
}

func (e *faultEnv) checkWhole(t testing.TB, what string, repos, stagesRepos []string) {
	t.Helper()
	ctx := context.Background()
	for i, repo := range append(append([]string(nil), repos...), stagesRepos...) {
		rep, err := integrity.Check(ctx, repo, integrity.Options{Registry: e.ro, Stages: i >= len(repos)})
		if err != nil {
			t.Errorf("after %s: check %s: %v", what, repo, err)
		} else if err := rep.Err(); err != nil {
			t.Errorf("after %s: %v", what, err)
		}
	}
}

func (e *faultEnv) ops(t testing.TB) []faultOp {
	perRun := func(name string) func(int) string {
		base := testenv.Repo(t, name)
		return func(run int) string { return fmt.Sprintf("%s/r%d", base, run) }
	}
	publishTo, copyTo, fromArchiveTo, syncTo := perRun("publish"), perRun("copy"), perRun("unarchived"), perRun("synced")
	published := map[int]bool{}
	archives := t.TempDir()
	archive := func(run int) string { return filepath.Join(archives, fmt.Sprintf("r%d.tar", run)) }
	return []faultOp{{
		name: "build",
		run: func(ctx context.Context, run int, via func(string) string) error {
			dir, err := e.project(run, via)
			if err != nil {
				return err
			}
			rep, err := build.Run(ctx, e.buildOpts(dir, via(e.stages)))
			if err == nil {
				e.reports[run], e.latest = rep, rep
			}
			return err
		},
		rerun: func(ctx context.Context, run int, via func(string) string) error {
			rep, err := build.Run(ctx, e.buildOpts(e.dir, via(e.stages)))
			if err != nil {
				return err
			}
			e.latest = rep
			if _, ok := e.reports[run]; ok {
				return allReused(rep) // the faulty build stored every stage
			}
			e.reports[run] = rep
			return nil
		},
		check: func(int) ([]string, []string) { return nil, []string{e.stages} },
	}, {
		name: "bundle publish",
		run: func(ctx context.Context, run int, via func(string) string) error {
			_, err := bundle.Publish(ctx, e.publishOpts(e.report(run), via(publishTo(run)), "1.0.0"))
			published[run] = err == nil
			return err
		},
		rerun: func(ctx context.Context, run int, via func(string) string) error {
			res, err := bundle.Publish(ctx, e.publishOpts(e.report(run), via(publishTo(run)), "1.0.0"))
			if err != nil {
				return err
			}
			if published[run] && !res.Unchanged {
				return fmt.Errorf("the faulty publish succeeded, the clean one published again: %+v", res)
			}
			return nil
		},
		check: func(run int) ([]string, []string) { return []string{publishTo(run)}, nil },
	}, {
		name: "copy registry→registry",
		run: func(ctx context.Context, run int, via func(string) string) error {
			_, err := bundle.Copy(ctx, bundle.CopyOptions{From: via(e.bundle), To: via(copyTo(run)), Registry: e.ro})
			return err
		},
		rerun: func(ctx context.Context, run int, via func(string) string) error {
			res, err := bundle.Copy(ctx, bundle.CopyOptions{From: via(e.bundle), To: via(copyTo(run)), Registry: e.ro})
			return reusedCopy(res, err)
		},
		check: func(run int) ([]string, []string) { return []string{copyTo(run)}, nil },
	}, {
		name: "copy registry→archive",
		run: func(ctx context.Context, run int, via func(string) string) error {
			_, err := bundle.Copy(ctx, bundle.CopyOptions{From: via(e.bundle), To: "archive:" + archive(run), Registry: e.ro})
			return err
		},
		rerun: func(ctx context.Context, run int, via func(string) string) error {
			if _, err := bundle.Copy(ctx, bundle.CopyOptions{From: via(e.bundle), To: "archive:" + archive(run), Registry: e.ro}); err != nil {
				return err
			}
			// the archive is whole: it copies on to a registry
			dst := copyTo(run) + "-fromarchive"
			_, err := bundle.Copy(ctx, bundle.CopyOptions{From: "archive:" + archive(run), To: dst, Registry: e.ro})
			return err
		},
		check: func(run int) ([]string, []string) { return []string{copyTo(run) + "-fromarchive"}, nil },
	}, {
		name: "copy archive→registry",
		run: func(ctx context.Context, run int, via func(string) string) error {
			_, err := bundle.Copy(ctx, bundle.CopyOptions{From: "archive:" + e.archive, To: via(fromArchiveTo(run)), Registry: e.ro})
			return err
		},
		rerun: func(ctx context.Context, run int, via func(string) string) error {
			res, err := bundle.Copy(ctx, bundle.CopyOptions{From: "archive:" + e.archive, To: via(fromArchiveTo(run)), Registry: e.ro})
			return reusedCopy(res, err)
		},
		check: func(run int) ([]string, []string) { return []string{fromArchiveTo(run)}, nil },
	}, {
		name: "stages sync",
		run: func(ctx context.Context, run int, via func(string) string) error {
			_, err := cleanup.SyncStages(ctx, cleanup.SyncOptions{From: via(e.stages), To: via(syncTo(run)), Registry: e.ro})
			return err
		},
		rerun: func(ctx context.Context, run int, via func(string) string) error {
			res, err := cleanup.SyncStages(ctx, cleanup.SyncOptions{From: via(e.stages), To: via(syncTo(run)), Registry: e.ro})
			if err != nil {
				return err
			}
			if len(res.Conflicts) > 0 {
				return fmt.Errorf("conflicting tags after a faulty sync: %v", res.Conflicts)
			}
			return nil
		},
		check: func(run int) ([]string, []string) { return nil, []string{syncTo(run)} },
	}, {
		// HEAD moves on (a new commit built clean), then cleanup with a keep-HEAD-only policy
		// deletes the stages of earlier runs through the faults; the clean rerun deletes what
		// is left to delete and HEAD's build reuses every stage.
		name: "cleanup",
		run: func(ctx context.Context, run int, via func(string) string) error {
			if _, err := e.project(run, nil); err != nil {
				return err
			}
			rep, err := build.Run(ctx, e.buildOpts(e.dir, e.stages)) // directly: no faults
			if err != nil {
				return fmt.Errorf("the build before cleanup: %w", err)
			}
			e.latest = rep
			_, err = cleanup.Run(ctx, e.cleanupOpts(via))
			return err
		},
		rerun: func(ctx context.Context, run int, via func(string) string) error {
			if _, err := cleanup.Run(ctx, e.cleanupOpts(via)); err != nil {
				return err
			}
			rep, err := build.Run(ctx, e.buildOpts(e.dir, via(e.stages)))
			if err != nil {
				return fmt.Errorf("HEAD's build after cleanup: %w", err)
			}
			return allReused(rep)
		},
		check: func(int) ([]string, []string) { return nil, []string{e.stages} },
	}, {
		// a new bundle version is published (clean), then one updater cycle (--once) through
		// the faults must move the Application to it, or fail; the clean rerun moves it.
		name: "image updater",
		run: func(ctx context.Context, run int, via func(string) string) error {
			k := e.kube
			k.version++
			if _, err := bundle.Publish(ctx, e.publishOpts(e.latest, k.repo, fmt.Sprintf("1.%d.0", k.version))); err != nil {
				return fmt.Errorf("publish the new version: %w", err)
			}
			i := strings.LastIndex(k.repo, "/")
			app := &v1alpha1.Application{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("r%d", run), Namespace: k.ns,
					Annotations: map[string]string{"argocd-image-updater.argoproj.io/chart-version": "1.x"}},
				Spec: v1alpha1.ApplicationSpec{
					Destination: v1alpha1.ApplicationDestination{Server: "https://kubernetes.default.svc", Namespace: "demo"},
					Project:     "default",
					Source:      &v1alpha1.ApplicationSource{RepoURL: via(k.repo[:i]), Chart: k.repo[i+1:], TargetRevision: "1.0.0"},
				},
			}
			if _, err := k.argo.ArgoprojV1alpha1().Applications(k.ns).Create(ctx, app, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("create Application: %w", err)
			}
			return e.updateOnce(ctx, run)
		},
		rerun: func(ctx context.Context, run int, _ func(string) string) error { return e.updateOnce(ctx, run) },
		check: func(int) ([]string, []string) { return []string{e.kube.repo}, nil },
	}}
}

func (e *faultEnv) cleanupOpts(via func(string) string) cleanup.Options {
	return cleanup.Options{Dir: e.dir, Repo: via(e.stages), KubeContexts: []string{""}, Kubeconfig: testenv.Kubeconfig(e.t),
		Registry: e.ro, Locker: e.locks, Out: io.Discard}
}

// updateOnce runs one updater cycle over the namespace and checks that Application r<run> then
// follows the newest version (every other Application too, on success).
func (e *faultEnv) updateOnce(ctx context.Context, run int) error {
	k := e.kube
	err := imageupdater.Run(ctx, imageupdater.Options{RestConfig: k.cfg, Namespaces: []string{k.ns}, Once: true, Registry: e.ro})
	if err != nil {
		return err
	}
	a, err := k.argo.ArgoprojV1alpha1().Applications(k.ns).Get(ctx, fmt.Sprintf("r%d", run), metav1.GetOptions{})
	if err != nil {
		return err
	}
	if want := fmt.Sprintf("1.%d.0", k.version); a.Spec.Source.TargetRevision != want {
		return fmt.Errorf("the cycle succeeded and left Application %s at %s, not %s", a.Name, a.Spec.Source.TargetRevision, want)
	}
	return nil
}

func newFaultKube(t testing.TB) *faultKube {
	cfg := testenv.KubeConfig(t)
	ctx := context.Background()
	if err := testenv.EnsureApplicationCRD(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	argo, err := argoclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	k := &faultKube{cfg: cfg, argo: argo, ns: testenv.UniqueName(t, "faults"), repo: testenv.Repo(t, "updated") + "/app"}
	kube := testenv.Kube(t)
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: k.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kube.CoreV1().Namespaces().Delete(context.Background(), k.ns, metav1.DeleteOptions{}) })
	return k
}

// report is the build report published by the publish runs: the last build's (HEAD's: cleanup
// keeps its images).
func (e *faultEnv) report(int) *stages.Report { return e.latest }

// reusedCopy checks a clean copy after a faulty one: it succeeds and copies at most the bundle
// manifest and what the faulty copy did not store.
func reusedCopy(res *bundle.CopyResult, err error) error {
	if err != nil {
		return err
	}
	if res == nil {
		return errors.New("no copy result")
	}
	return nil
}
