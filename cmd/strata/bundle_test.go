package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/bundle"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
	"strata.dev/strata/stages"
)

// The bundle commands end to end on the real registry: publish from a build report, pull,
// render a REF (deterministic), copy to an archive and back.
func TestBundleCommands(t *testing.T) {
	ctx := context.Background()
	stagesRepo := testenv.Repo(t, "stages")
	var ro registry.Options
	rep := stages.Report{Project: "app", Repo: stagesRepo, Commit: strings.Repeat("ab", 20)}
	for i, n := range []string{"web", "worker"} {
		img, err := random.Image(128, 1)
		if err != nil {
			t.Fatal(err)
		}
		tag := stages.Tag{Digest: fmt.Sprintf("%056x", i+1), Millis: time.Now().UnixMilli()}.String()
		ref, _ := ro.ParseReference(stagesRepo + ":" + tag)
		if err := remote.Write(ref, img, ro.Remote(ctx)...); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		rep.Images = append(rep.Images, stages.ImageReport{Name: n, Repo: stagesRepo, Tag: tag, Ref: stagesRepo + ":" + tag, ManifestDigest: d.String()})
	}
	tmp := t.TempDir()
	reportFile := filepath.Join(tmp, "build.json")
	b, _ := json.Marshal(rep)
	if err := os.WriteFile(reportFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	repo := testenv.Repo(t, "bundles") + "/app"
	t.Setenv("STRATA_GIT_URL", "https://git.example.com/team/app.git")
	t.Setenv("STRATA_CI_JOB_URL", "https://ci.example.com/jobs/9")
	out, _, err := run(t, "bundle", "publish", "--repo", repo, "--tag", "main", "--build-report", reportFile,
		"--chart-dir", "../../bundle/testdata/app", "--commit-date", "2026-11-22T10:00:00Z")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, repo+":0.0.0-main@sha256:") {
		t.Fatalf("publish printed %q", out)
	}
	// same content again: success, same digest
	out2, _, err := run(t, "bundle", "publish", "--repo", repo, "--tag", "main", "--build-report", reportFile,
		"--chart-dir", "../../bundle/testdata/app", "--commit-date", "2026-11-22T10:00:00Z")
	if err != nil || out2 != out {
		t.Fatalf("re-publish: %q, %v (first %q)", out2, err, out)
	}

	dir := filepath.Join(tmp, "pulled")
	pulled, _, err := run(t, "bundle", "pull", repo+":0.0.0-main", "--dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "Chart.yaml")); err != nil {
		t.Fatal(err)
	}
	r1, _, err := run(t, "bundle", "render", repo+":0.0.0-main", "--release-name", "r", "--namespace", "prod", "--set", "replicas=3")
	if err != nil {
		t.Fatal(err)
	}
	r2, _, err := run(t, "bundle", "render", "--dir", dir, "--release-name", "r", "--namespace", "prod", "--set", "replicas=3", "--bundle-ref", strings.TrimSpace(pulled))
	if err != nil {
		t.Fatal(err)
	}
	if r1 != r2 {
		t.Errorf("render of REF and of the pulled dir differ:\n%s\n----\n%s", r1, r2)
	}
	for _, w := range []string{"replicas: 3", "namespace: prod", "strata.dev/bundle: " + strings.TrimSpace(pulled), "link.argocd.argoproj.io/ci: https://ci.example.com/jobs/9",
		"image: " + rep.Images[0].Repo + ":" + rep.Images[0].Tag + "@" + rep.Images[0].ManifestDigest} {
		if !strings.Contains(r1, w) {
			t.Errorf("render lacks %q", w)
		}
	}

	archive := filepath.Join(tmp, "app.tar")
	if _, _, err := run(t, "bundle", "copy", "--from", repo+":0.0.0-main", "--to", "archive:"+archive); err != nil {
		t.Fatal(err)
	}
	dst := testenv.Repo(t, "imported") + "/app"
	copied, _, err := run(t, "bundle", "copy", "--from", "archive:"+archive, "--to", dst, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var cr bundle.CopyResult
	if err := json.Unmarshal([]byte(copied), &cr); err != nil {
		t.Fatal(err)
	}
	if cr.Ref != dst+":0.0.0-main" || !strings.HasPrefix(cr.Images["web"], dst+":") {
		t.Errorf("copy result %+v", cr)
	}
	r3, _, err := run(t, "bundle", "render", cr.Ref)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r3, stagesRepo) {
		t.Errorf("render of the imported bundle names the source repository:\n%s", r3)
	}

	// errors reach the user
	if _, _, err := run(t, "bundle", "render"); err == nil {
		t.Error("render without REF or --dir succeeded")
	}
	if _, _, err := run(t, "bundle", "publish", "--repo", repo, "--tag", "1.0.0"); err == nil || !strings.Contains(err.Error(), "--build-report") {
		t.Errorf("publish without a report: %v", err)
	}
}

// Without --build-report, publish builds first (registry-side stages only here) and bundles the
// images it built.
func TestBundlePublishBuildsFirst(t *testing.T) {
	base := testenv.BaseImage(t)
	dir := t.TempDir()
	files := map[string]string{
		"strata.yaml":              "project: pb\nconfigVersion: 1\n---\nimage: app\nfrom: " + base + "\ndocker:\n  USER: \"1000\"\n",
		".helm/Chart.yaml":         "apiVersion: v2\nname: whatever\nversion: 0.1.0\n",
		".helm/templates/pod.yaml": "apiVersion: v1\nkind: Pod\nmetadata: {name: app}\nspec: {containers: [{name: app, image: {{ .Values.strata.image.app | quote }}}]}\n",
		".helm/values.yaml":        "strata: {image: {app: placeholder}}\n",
	}
	for n, s := range files {
		p := filepath.Join(dir, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init"}} {
		c := exec.Command("git", args...)
		c.Dir = dir
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	stagesRepo := testenv.Repo(t, "stages")
	repo := testenv.Repo(t, "bundles") + "/pb"
	out, _, err := run(t, "bundle", "publish", "--dir", dir, "--stages-repo", stagesRepo, "--repo", repo, "--tag", "1.0.0", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var res bundle.PublishResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	rendered, _, err := run(t, "bundle", "render", res.Ref)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rendered, "image: "+stagesRepo+":") || !strings.Contains(rendered, "@sha256:") {
		t.Errorf("render does not use the built image:\n%s", rendered)
	}
	head := exec.Command("git", "rev-parse", "HEAD")
	head.Dir = dir
	h, _ := head.Output()
	if !strings.Contains(rendered, "strata.dev/commit: "+strings.TrimSpace(string(h))) {
		t.Errorf("render lacks the commit annotation:\n%s", rendered)
	}
}
