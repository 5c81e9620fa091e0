package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// Options configure Run.
type Options struct {
	// RepoRoot is the strata module root (examples/quickstart and cmd/strata are read from it).
	RepoRoot string
	// Env is the test environment (registry, kubeconfig, docker host).
	Env testenv.Env
	// WorkDir holds the project copy, the strata binary and reports; a temp dir if empty.
	WorkDir string
	// Out receives the human summary; Log the progress.
	Out io.Writer
	Log *slog.Logger
	// Keep leaves the demo namespace and Application in the cluster.
	Keep bool
}

// Step is one publish of the demo.
type Step struct {
	Commit   string
	Bundle   string // REPO:VERSION
	Digest   string // manifest digest of the bundle
	Images   map[string]string
	Reused   []string // image/stage
	Built    []string
	Revision string // Application targetRevision after the updater ran
	// SyncStatus and SyncRevision are the Application's sync status once Argo CD synced it,
	// Operation the phase of its last sync operation, SyncTime how long after the updater
	// moved it.
	SyncStatus, SyncRevision, Operation string
	SyncTime                            time.Duration
	// Live are the objects the Application lists, read from the API server after the sync;
	// Annotations those every one of them carries with the same value.
	Live        []LiveObject
	Annotations map[string]string
	BuildTime   time.Duration
	// NoEngine: the build ran with no container engine reachable.
	NoEngine bool
}

// Summary is what the demo did.
type Summary struct {
	StagesRepo  string
	BundleRepo  string
	Application string // NAMESPACE/NAME in Argo CD's namespace
	Destination string // namespace the Application deploys into
	Steps       []Step
	Total       time.Duration
}

type runner struct {
	o       Options
	bin     string
	project string
	env     []string
	log     *slog.Logger
}

// Run runs the demo.
func Run(ctx context.Context, o Options) (_ *Summary, err error) {
	start := time.Now()
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Env.Registry == "" || o.Env.Kubeconfig == "" || o.Env.DockerHost == "" {
		return nil, fmt.Errorf("demo: the test environment is not up (run %s)", testenv.UpCommand)
	}
	if o.WorkDir == "" {
		d, err := os.MkdirTemp("", "strata-demo-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		o.WorkDir = d
	}
	r := &runner{o: o, log: o.Log, bin: filepath.Join(o.WorkDir, "bin", "strata"), project: filepath.Join(o.WorkDir, "quickstart")}
	r.env = append(os.Environ(),
		"DOCKER_HOST="+o.Env.DockerHost, "KUBECONFIG="+o.Env.Kubeconfig,
		"STRATA_HOME="+filepath.Join(o.WorkDir, "home"),
		"PATH="+filepath.Dir(r.bin)+string(os.PathListSeparator)+os.Getenv("PATH"))

	// strata is built while Argo CD starts: its plugin runs r.bin only when asked to generate.
	// Without Argo CD the demo stops at once.
	buildCtx, stopBuild := context.WithCancel(ctx)
	built := make(chan error, 1)
	r.log.Info("building the strata binary")
	go func() {
		_, err := r.run(buildCtx, o.RepoRoot, "go", "build", "-o", r.bin, "./cmd/strata")
		built <- err
	}()
	a, err := r.startArgoCD(ctx)
	if err != nil {
		stopBuild()
		<-built
		return nil, err
	}
	defer func() {
		if err != nil {
			a.KeepDir = true
			err = fmt.Errorf("%w\n(Argo CD's logs are kept in %s)", err, filepath.Join(a.Dir, "log"))
		}
		a.Stop()
	}()
	err = <-built
	stopBuild()
	if err != nil {
		return nil, err
	}
	if err := r.initProject(); err != nil {
		return nil, err
	}

	id := time.Now().UTC().Format("20060102-150405")
	s := &Summary{
		StagesRepo: o.Env.Registry + "/strata-demo/" + id + "/quickstart",
		BundleRepo: o.Env.Registry + "/strata-demo/" + id + "/bundle/quickstart",
	}
	dest := "strata-demo-" + id
	if _, err := a.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: dest}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("demo: create namespace %s: %w", dest, err)
	}
	app, err := r.createApplication(ctx, a, dest, s.BundleRepo)
	if err != nil {
		return nil, err
	}
	if !o.Keep {
		// Argo CD stops with the demo: nothing would act on the Application any more.
		defer func() {
			_ = a.Argo.ArgoprojV1alpha1().Applications(a.Namespace).Delete(context.Background(), app.Name, metav1.DeleteOptions{})
			_ = a.Kube.CoreV1().Namespaces().Delete(context.Background(), dest, metav1.DeleteOptions{})
		}()
	}
	s.Application = a.Namespace + "/" + app.Name
	s.Destination = dest

	for i, version := range []string{"0.1.0", "0.1.1"} {
		if i > 0 {
			r.log.Info("changing one source file and committing")
			page := filepath.Join(r.project, "app", "public", "index.html")
			if err := os.WriteFile(page, []byte("<!doctype html>\n<title>Strata quickstart</title>\n<h1>Hello from the Strata quickstart, version 2</h1>\n"), 0o644); err != nil {
				return nil, err
			}
			if err := r.git("commit", "-qam", "quickstart: version 2 of the page"); err != nil {
				return nil, err
			}
		}
		head, err := r.head()
		if err != nil {
			return nil, err
		}
		// After the change, nothing the build does may need a container engine: point it at none.
		st, err := r.publish(ctx, s, version, i > 0)
		if err != nil {
			return nil, err
		}
		if st.Commit != head {
			return nil, fmt.Errorf("demo: the build report names commit %s, HEAD is %s", st.Commit, head)
		}
		// The updater moves the Application; Argo CD's controller then syncs what it points at.
		moved, err := r.updateApplication(ctx, a, app.Name)
		if err != nil {
			return nil, err
		}
		st.Revision = moved.Spec.Source.TargetRevision
		r.log.Info("waiting for Argo CD to sync", "application", s.Application, "revision", st.Revision)
		t0 := time.Now()
		synced, err := r.waitSynced(ctx, a, app.Name, st.Revision)
		if err != nil {
			return nil, err
		}
		st.SyncTime = time.Since(t0)
		st.SyncStatus, st.SyncRevision = string(synced.Status.Sync.Status), synced.Status.Sync.Revision
		st.Operation = string(synced.Status.OperationState.Phase)
		if st.Live, err = r.liveObjects(ctx, synced); err != nil {
			return nil, err
		}
		st.Annotations = commonAnnotations(st.Live)
		s.Steps = append(s.Steps, *st)
	}
	s.Total = time.Since(start)
	s.print(o.Out)
	return s, nil
}

func (r *runner) run(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	return r.runEnv(ctx, dir, r.env, name, args...)
}

func (r *runner) runEnv(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("demo: %s %s: %w\n%s", name, strings.Join(args, " "), err, tail(stderr.String(), 20))
	}
	return out, nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (r *runner) strata(ctx context.Context, args ...string) ([]byte, error) {
	r.log.Info("$ strata " + shellJoin(args))
	return r.run(ctx, r.project, r.bin, args...)
}

// shellJoin joins args as a shell would read them back: empty or unsafe ones are quoted.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`|&;<>()*?[]{}~#!") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

func (r *runner) git(args ...string) error {
	_, err := r.run(context.Background(), r.project, "git", append([]string{"-c", "user.name=Strata Demo", "-c", "user.email=demo@strata.dev"}, args...)...)
	return err
}

// initProject copies examples/quickstart into a fresh git repository with one commit.
func (r *runner) initProject() error {
	src := filepath.Join(r.o.RepoRoot, "examples", "quickstart")
	if err := os.CopyFS(r.project, os.DirFS(src)); err != nil {
		return fmt.Errorf("demo: copy %s: %w", src, err)
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"remote", "add", "origin", "https://github.com/strata-dev/quickstart.git"},
		{"add", "-A"},
		{"commit", "-qm", "quickstart: first version"},
	} {
		if err := r.git(args...); err != nil {
			return err
		}
	}
	return nil
}

// head returns the commit the project's HEAD points at.
func (r *runner) head() (string, error) {
	out, err := r.run(context.Background(), r.project, "git", "rev-parse", "HEAD")
	return strings.TrimSpace(string(out)), err
}

// publish builds the images and publishes the bundle VERSION. With noEngine the build runs with
// DOCKER_HOST pointing at a socket nobody listens on, so it fails if any stage needs an engine.
func (r *runner) publish(ctx context.Context, s *Summary, version string, noEngine bool) (*Step, error) {
	report := filepath.Join(r.o.WorkDir, "build-"+version+".json")
	t0 := time.Now()
	args := []string{"build", "--repo", s.StagesRepo, "--report", report}
	var err error
	if noEngine {
		r.log.Info("$ DOCKER_HOST=unix:///nonexistent strata " + strings.Join(args, " "))
		env := append(slices.Clone(r.env), "DOCKER_HOST=unix:///nonexistent/docker.sock")
		_, err = r.runEnv(ctx, r.project, env, r.bin, args...)
	} else {
		_, err = r.strata(ctx, args...)
	}
	if err != nil {
		return nil, err
	}
	st := &Step{BuildTime: time.Since(t0), Images: map[string]string{}, NoEngine: noEngine}
	b, err := os.ReadFile(report)
	if err != nil {
		return nil, err
	}
	var rep stages.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("demo: %s: %w", report, err)
	}
	st.Commit = rep.Commit
	for _, img := range rep.Images {
		st.Images[img.Name] = img.Ref + "@" + img.ManifestDigest
		for _, stage := range img.Stages {
			name := img.Name + "/" + stage.Name
			if stage.Status == stages.StatusBuilt {
				st.Built = append(st.Built, name)
			} else {
				st.Reused = append(st.Reused, name)
			}
		}
	}
	out, err := r.strata(ctx, "bundle", "publish", "--repo", s.BundleRepo, "--tag", version, "--build-report", report,
		"--ci-pipeline-url", "https://ci.example.com/quickstart/pipelines/"+version)
	if err != nil {
		return nil, err
	}
	ref, digest, _ := strings.Cut(strings.TrimSpace(string(out)), "@")
	st.Bundle, st.Digest = ref, digest
	return st, nil
}

func (s *Summary) print(w io.Writer) {
	fmt.Fprintf(w, "\nStrata quickstart demo (%s)\n", s.Total.Round(time.Second))
	fmt.Fprintf(w, "  stages repository: %s\n  bundle repository: %s\n  Application:       %s (real Argo CD, deploying into namespace %s)\n",
		s.StagesRepo, s.BundleRepo, s.Application, s.Destination)
	for i, st := range s.Steps {
		fmt.Fprintf(w, "\n%d. commit %s -> bundle %s@%s\n", i+1, short(st.Commit), st.Bundle, short(strings.TrimPrefix(st.Digest, "sha256:")))
		engine := ""
		if st.NoEngine {
			engine = " (no container engine reachable)"
		}
		fmt.Fprintf(w, "   build %s%s: built %s; reused %s\n", st.BuildTime.Round(time.Millisecond), engine, list(st.Built), list(st.Reused))
		for _, name := range sortedKeys(st.Images) {
			fmt.Fprintf(w, "   image %-7s %s\n", name, st.Images[name])
		}
		fmt.Fprintf(w, "   image updater moved the Application to targetRevision %s\n", st.Revision)
		fmt.Fprintf(w, "   Argo CD: %s at revision %s (sync %s, %s after the move); live objects:\n",
			st.SyncStatus, st.SyncRevision, st.Operation, st.SyncTime.Round(100*time.Millisecond))
		for _, o := range st.Live {
			fmt.Fprintf(w, "     %s %s/%s\n", o.Kind, o.Namespace, o.Name)
		}
		fmt.Fprintf(w, "   each annotated with\n")
		for _, k := range sortedKeys(st.Annotations) {
			if strings.HasPrefix(k, "strata.dev/") || strings.HasPrefix(k, "link.argocd.argoproj.io/") {
				fmt.Fprintf(w, "     %s: %s\n", k, st.Annotations[k])
			}
		}
	}
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func list(xs []string) string {
	if len(xs) == 0 {
		return "nothing"
	}
	return strings.Join(xs, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
