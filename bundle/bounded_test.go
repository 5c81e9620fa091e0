package bundle

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"strata.dev/strata/internal/testing/procstat"
)

var strataCLI struct {
	once sync.Once
	path string
	err  error
}

// strataBinary builds cmd/strata once for the tests that need a process of their own.
func strataBinary(t *testing.T) string {
	t.Helper()
	strataCLI.once.Do(func() {
		dir, err := os.MkdirTemp("", "strata-bundle-test-")
		if err != nil {
			strataCLI.err = err
			return
		}
		strataCLI.path = filepath.Join(dir, "strata")
		c := exec.Command("go", "build", "-o", strataCLI.path, "../cmd/strata")
		c.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := c.CombinedOutput(); err != nil {
			strataCLI.err = errors.New(string(out))
		}
	})
	if strataCLI.err != nil {
		t.Fatalf("go build cmd/strata: %v", strataCLI.err)
	}
	return strataCLI.path
}

// Hostile templates (issue 19, item 3) fail `strata bundle render` with a clear error naming
// the chart and the bound, within a generous time and memory, instead of running forever or
// until the machine runs out of memory. Each runs as its own process: Helm's engine cannot be
// stopped, and a process exits after such an error.
//
// The error names the template file running when the bound was reached (CHART/templates/FILE).
func TestRenderBoundsHostileTemplates(t *testing.T) {
	bin := strataBinary(t)
	launch := procstat.Launcher(t)
	cases := []struct {
		name, template string
		args           []string
		wants          []string // one of them in the error
	}{
		{"nested loops", `{{ range until 100000 }}{{ range until 100000 }}{{ end }}{{ end }}`,
			[]string{"--render-timeout", "3s"}, []string{"did not finish within 3s"}},
		{"100 million iterations of output", `{{ range until 100000000 }}x{{ end }}`,
			[]string{"--render-timeout", "60s", "--max-render-memory", "134217728"},
			[]string{"more than 128 MiB of memory", "larger than the limit of", "did not finish within 60s"}},
		{"string doubling", `{{ $s := "x" }}{{ range until 64 }}{{ $s = print $s $s }}{{ end }}{{ $s }}`,
			[]string{"--render-timeout", "60s", "--max-render-memory", "134217728"}, []string{"more than 128 MiB of memory"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "Chart.yaml", "apiVersion: v2\nname: hostile\nversion: 0.1.0\n")
			writeFile(t, dir, "templates/ok.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n")
			writeFile(t, dir, "templates/bomb.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n  x: "+c.template+"\n")
			cmd := exec.Command(launch, append([]string{bin, "bundle", "render", "--dir", dir}, c.args...)...)
			start := time.Now()
			_, st, err := procstat.Run(cmd)
			took := time.Since(start)
			if err == nil {
				t.Fatal("rendered without an error")
			}
			msg := err.Error()
			t.Logf("after %s: %s", took.Round(time.Millisecond), msg[strings.LastIndex(msg, "\n\n")+1:])
			if !strings.Contains(msg, "render chart "+dir) {
				t.Errorf("the error does not name the chart %s: %s", dir, msg)
			}
			if !strings.Contains(msg, "larger than the limit of") && !strings.Contains(msg, "in template hostile/templates/bomb.yaml") {
				t.Errorf("the error does not name the template hostile/templates/bomb.yaml: %s", msg)
			}
			found := false
			for _, w := range c.wants {
				found = found || strings.Contains(msg, w)
			}
			if !found {
				t.Errorf("the error says none of %q: %s", c.wants, msg)
			}
			if strings.Contains(msg, "fatal error") || strings.Contains(msg, "goroutine ") {
				t.Errorf("the process crashed: %s", msg)
			}
			if took > 3*time.Minute {
				t.Errorf("took %s", took)
			}
			if st.RSSKiB > 1<<20 {
				t.Errorf("peak RSS %d MiB", st.RSSKiB>>10)
			}
			t.Logf("peak RSS %d MiB", st.RSSKiB>>10)
		})
	}
}

// `strata cmp generate` (what the sidecar runs) renders under the default bounds: a chart whose
// template doubles a string fails with the memory bound's error, the process neither crashes
// nor takes the sidecar's memory.
func TestCMPGenerateBoundsHostileTemplates(t *testing.T) {
	bin := strataBinary(t)
	launch := procstat.Launcher(t)
	dir := t.TempDir()
	writeFile(t, dir, "Chart.yaml", "apiVersion: v2\nname: hostile\nversion: 0.1.0\n")
	writeFile(t, dir, "templates/bomb.yaml", `apiVersion: v1
kind: ConfigMap
metadata: {name: bomb}
data:
  x: {{ $s := "x" }}{{ range until 64 }}{{ $s = print $s $s }}{{ end }}{{ $s }}
`)
	meta, err := os.ReadFile("testdata/app/" + MetadataFile)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, MetadataFile, string(meta))
	cmd := exec.Command(launch, bin, "cmp", "generate")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ARGOCD_APP_NAME=shop", "ARGOCD_APP_NAMESPACE=team-a")
	_, st, err := procstat.Run(cmd)
	if err == nil || !strings.Contains(err.Error(), "more than 128 MiB of memory in template hostile/templates/bomb.yaml") || strings.Contains(err.Error(), "fatal error") {
		t.Fatalf("want the memory bound's error, got %v\n%+v", err, st)
	}
	if st.RSSKiB > 512<<10 {
		t.Errorf("peak RSS %d MiB, above the sidecar's 512 MiB", st.RSSKiB>>10)
	}
	t.Logf("peak RSS %d MiB, %s", st.RSSKiB>>10, st.Wall.Round(time.Millisecond))
}
