package demo

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/klog/v2"

	"strata.dev/strata/internal/testing/syncbuf"
	"strata.dev/strata/internal/testing/testenv"
)

// The README's first command, as a test: the whole chain on examples/quickstart, synced by real
// Argo CD.
func TestDemo(t *testing.T) {
	testenv.Docker(t)
	testenv.BaseImage(t)
	testenv.KubeConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// Nothing reaches stderr through klog (client-go's default output) while the demo runs: in
	// `make demo` it would be stray lines between the progress log and the summary.
	var klogOut syncbuf.Buffer
	klog.LogToStderr(false)
	klog.SetOutput(&klogOut)
	defer func() { klog.SetOutput(os.Stderr); klog.LogToStderr(true) }()
	var out strings.Builder
	s, err := Run(ctx, Options{
		RepoRoot: testenv.RepoRoot(),
		Env:      testenv.Load(),
		WorkDir:  t.TempDir(),
		Out:      &out,
		Log:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if errors.Is(err, ErrNoArgoCD) {
		testenv.Missing(t, "real Argo CD", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Log(out.String())
	if got := klogOut.String(); got != "" {
		t.Errorf("library output through klog during the demo:\n%s", got)
	}
	if len(s.Steps) != 2 {
		t.Fatalf("%d steps, want 2", len(s.Steps))
	}
	first, second := s.Steps[0], s.Steps[1]

	// First publish: everything built, the Application moved from 0.0.0 to the bundle.
	if first.Revision != "0.1.0" || second.Revision != "0.1.1" {
		t.Errorf("Application revisions %q then %q, want 0.1.0 then 0.1.1", first.Revision, second.Revision)
	}
	// After changing one source file, only the git patch stage (and the instruction stage on top
	// of it: image config only, no layer) is rebuilt, with no container engine reachable; the
	// shell stages and the Dockerfile image are reused.
	if !second.NoEngine || first.NoEngine {
		t.Errorf("engine use: first %v, second %v; want the second build to run without one", !first.NoEngine, !second.NoEngine)
	}
	if want := []string{"web/gitLatestPatch", "web/dockerInstructions"}; !slices.Equal(second.Built, want) {
		t.Errorf("second build built %v, want %v (reused %v)", second.Built, want, second.Reused)
	}
	for _, stage := range []string{"web/from", "web/gitArchive", "web/install", "worker/dockerfile"} {
		if !slices.Contains(second.Reused, stage) {
			t.Errorf("second build did not reuse %s (reused %v)", stage, second.Reused)
		}
	}
	if first.Images["worker"] != second.Images["worker"] || first.Images["web"] == second.Images["web"] {
		t.Errorf("images: worker %s -> %s (want same), web %s -> %s (want new)",
			first.Images["worker"], second.Images["worker"], first.Images["web"], second.Images["web"])
	}
	// Argo CD's controller synced each revision the updater chose, and every live object links
	// back to the commit just made (Run checks that the build's commit is git rev-parse HEAD of
	// the project).
	for i, st := range s.Steps {
		if st.SyncStatus != "Synced" || st.SyncRevision != st.Revision || st.Operation != "Succeeded" {
			t.Errorf("step %d: Application %s on %q (operation %s), want Synced on %s", i+1, st.SyncStatus, st.SyncRevision, st.Operation, st.Revision)
		}
		var kinds []string
		for _, o := range st.Live {
			kinds = append(kinds, o.Kind+"/"+o.Name)
			if o.Namespace != s.Destination {
				t.Errorf("step %d: live %s %s in namespace %q, want %s", i+1, o.Kind, o.Name, o.Namespace, s.Destination)
			}
			if got := o.Annotations["strata.dev/commit"]; got != st.Commit || got == "" {
				t.Errorf("step %d: %s %s: strata.dev/commit = %q, want %q", i+1, o.Kind, o.Name, got, st.Commit)
			}
			if got := o.Annotations["link.argocd.argoproj.io/commit"]; !strings.HasSuffix(got, "/commit/"+st.Commit) {
				t.Errorf("step %d: %s %s: commit link = %q", i+1, o.Kind, o.Name, got)
			}
			// A Helm-OCI source hands the plugin the chart version, not the digest: the bundle
			// is named by its tag (oci:// sources record REPO@DIGEST, see argocdtest).
			if got := o.Annotations["strata.dev/bundle"]; got != st.Bundle {
				t.Errorf("step %d: %s %s: strata.dev/bundle = %q, want %q", i+1, o.Kind, o.Name, got, st.Bundle)
			}
		}
		slices.Sort(kinds)
		if want := []string{"Deployment/quickstart-web", "Deployment/quickstart-worker", "Service/quickstart-web"}; !slices.Equal(kinds, want) {
			t.Errorf("step %d: live objects %v, want %v", i+1, kinds, want)
		}
		if st.Annotations["strata.dev/commit"] != st.Commit {
			t.Errorf("step %d: common annotations %v lack the commit", i+1, st.Annotations)
		}
	}
	// The summary says it: sync status, revision, the live objects and their annotations.
	for _, want := range []string{
		"Argo CD: Synced at revision 0.1.0 (sync Succeeded", "Argo CD: Synced at revision 0.1.1 (sync Succeeded",
		"Deployment " + s.Destination + "/quickstart-web", "Service " + s.Destination + "/quickstart-web",
		"strata.dev/commit: " + first.Commit, "strata.dev/commit: " + second.Commit,
		"link.argocd.argoproj.io/commit: ", "link.argocd.argoproj.io/ci: https://ci.example.com/quickstart/pipelines/0.1.1",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	if first.Commit == second.Commit {
		t.Error("both steps report the same commit")
	}
}

// The "By hand" block of docs/quickstart.md runs as written on the test environment.
func TestQuickstartDoc(t *testing.T) {
	testenv.Docker(t)
	testenv.BaseImage(t)
	env := testenv.Load()
	root := testenv.RepoRoot()
	doc, err := os.ReadFile(filepath.Join(root, "docs", "quickstart.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "<!-- executed: TestQuickstartDoc -->\n```sh\n")
	block, _, ok2 := strings.Cut(after, "```")
	if !ok || !ok2 || strings.Count(block, "strata ") < 4 {
		t.Fatalf("docs/quickstart.md: no executed block found (%v %v)", ok, ok2)
	}
	block = strings.ReplaceAll(block, "127.0.0.1:5000", env.Registry)

	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "strata"), "./cmd/strata")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", block)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"DOCKER_HOST="+env.DockerHost, "STRATA_HOME="+t.TempDir(), "TMPDIR="+t.TempDir())
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("docs/quickstart.md block: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	// The render printed annotated objects; the second build reused the shell stage.
	if !strings.Contains(stdout.String(), "strata.dev/commit: ") || !strings.Contains(stdout.String(), "kind: Deployment") {
		t.Errorf("render output lacks annotated objects:\n%s", stdout.String())
	}
	// The second build (its log lines come after the render's "pulled bundle") reused the shell
	// stage and built the git patch.
	logs := stderr.String()
	second := logs[strings.LastIndex(logs, "pulled bundle")+1:]
	for stage, status := range map[string]string{"install": "reused", "from": "reused", "gitLatestPatch": "built"} {
		found := false
		for _, line := range strings.Split(second, "\n") {
			if strings.Contains(line, "stage="+stage+" ") && strings.Contains(line, "status="+status) {
				found = true
			}
		}
		if !found {
			t.Errorf("second build: no %s line for stage %s:\n%s", status, stage, second)
		}
	}
}

// Without Argo CD's binaries (STRATA_TESTENV_ARGOCD=0, or not built yet) the demo stops at once
// saying what is missing and how to get it.
func TestDemoWithoutArgoCDSaysSo(t *testing.T) {
	testenv.KubeConfig(t)
	t.Setenv("STRATA_TEST_ARGOCD", filepath.Join(t.TempDir(), "argocd"))
	start := time.Now()
	_, err := Run(context.Background(), Options{RepoRoot: testenv.RepoRoot(), Env: testenv.Load(), WorkDir: t.TempDir()})
	if !errors.Is(err, ErrNoArgoCD) {
		t.Fatalf("Run without Argo CD: %v, want ErrNoArgoCD", err)
	}
	for _, want := range []string{"real Argo CD", "STRATA_TEST_ARGOCD", testenv.UpCommand, "STRATA_TESTENV_ARGOCD=0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	t.Logf("%v (after %s)", err, time.Since(start).Round(time.Millisecond))
}
