package ship

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"strata.dev/strata/bundle"
	"strata.dev/strata/internal/testing/testenv"
)

// A werf.yaml project's bundle carries werf's service values, found from the build report's
// config or, for a report without one, from the config file in Dir; a strata.yaml project's
// values are unchanged (no werf keys) unless WerfValues is asked for.
func TestRunWerfValues(t *testing.T) {
	ctx := context.Background()
	chart := t.TempDir()
	for n, c := range map[string]string{
		"Chart.yaml":          "apiVersion: v2\nname: app\nversion: 0.1.0\n",
		"values.yaml":         "replicas: 1\n",
		"templates/name.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  image: {{ .Values.strata.image.web | quote }}\n",
	} {
		p := filepath.Join(chart, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	base := testenv.BuildReport(t, "app", "web")
	repo := testenv.Repo(t, "bundles") + "/app"
	cases := []struct {
		name, config, dirFile string
		ask, wantWerf         bool
	}{
		{"werf.yaml in the report", "werf.yaml", "", false, true},
		{"werf.yml in the report", "werf.yml", "", false, true},
		{"strata.yaml in the report", "strata.yaml", "werf.yaml", false, false},
		{"werf.yaml in the project directory", "", "werf.yaml", false, true},
		{"strata.yaml in the project directory", "", "strata.yaml", false, false},
		{"asked for", "strata.yaml", "", true, true},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if c.dirFile != "" {
				if err := os.WriteFile(filepath.Join(dir, c.dirFile), []byte("project: app\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			rep := *base
			rep.Config = c.config
			reportFile := filepath.Join(dir, "report.json")
			b, _ := json.Marshal(&rep)
			if err := os.WriteFile(reportFile, b, 0o644); err != nil {
				t.Fatal(err)
			}
			version := "1.0." + string(rune('0'+i))
			_, err := Run(ctx, Options{Dir: dir, ReportFile: reportFile, Publish: bundle.PublishOptions{
				Repo: repo, Version: version, ChartDir: chart, WerfValues: c.ask, Commit: bundle.Commit{Date: "2026-11-22T10:00:00Z"}}})
			if err != nil {
				t.Fatal(err)
			}
			pulled := filepath.Join(t.TempDir(), "chart")
			if _, err := bundle.Pull(ctx, bundle.PullOptions{Ref: repo + ":" + version, Dir: pulled}); err != nil {
				t.Fatal(err)
			}
			raw, _ := os.ReadFile(filepath.Join(pulled, "values.yaml"))
			var v map[string]any
			if err := yaml.Unmarshal(raw, &v); err != nil {
				t.Fatal(err)
			}
			w, has := v["werf"].(map[string]any)
			if has != c.wantWerf {
				t.Fatalf("werf values present = %v, want %v:\n%s", has, c.wantWerf, raw)
			}
			if !has {
				if strings.Contains(string(raw), "werf:") || len(v["global"].(map[string]any)) != 1 {
					t.Errorf("values of a strata.yaml project changed:\n%s", raw)
				}
				return
			}
			if w["image"].(map[string]any)["web"] != rep.Images[0].Repo+":"+rep.Images[0].Tag+"@"+rep.Images[0].ManifestDigest {
				t.Errorf("werf.image.web:\n%s", raw)
			}
		})
	}
}
