package build

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
)

// A one-file source change of a staged Dockerfile image (deps RUN reused, the late COPY rebuilt
// registry-side) authenticates to the stages registry once (one transport for the listings,
// reads and pushes; its ping tries https and http on loopback), reads the reused RUN stage
// (its manifest, its config) from the caches of this host without a request, and publishes
// each of COPY, ENV and CMD (pushed along with each other) with a re-listing under the lock,
// the HEAD of the new tag, POST + PUT of each new blob, the manifest PUT and the HEAD of the
// parent.
// Before: 27 requests, 4 pings (29 and 6 before that).
func TestStagedSourceChangeRequests(t *testing.T) {
	host := testenv.DockerHost(t)
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "speedcount")
	cnt := &counter{}
	g := newGitRepo(t)
	files := map[string]string{}
	cfg := "project: speedcount\nconfigVersion: 1\n"
	for i := 0; i < 3; i++ {
		cfg += fmt.Sprintf("---\nimage: svc%[1]d\ndockerfile: Dockerfile\ncontext: svc%[1]d\nstaged: true\n", i)
		files[fmt.Sprintf("svc%d/Dockerfile", i)] = "FROM " + base + "\nWORKDIR /app\nCOPY deps.txt .\nRUN cat deps.txt > /installed\nCOPY . .\nENV MODE=prod\nCMD [\"cat\", \"/app/main.txt\"]\n"
		files[fmt.Sprintf("svc%d/.dockerignore", i)] = "Dockerfile\n"
		files[fmt.Sprintf("svc%d/deps.txt", i)] = fmt.Sprint("deps ", i)
		files[fmt.Sprintf("svc%d/main.txt", i)] = fmt.Sprint("main ", i)
	}
	files["strata.yaml"] = cfg
	g.commit("init", files)
	o := Options{Dir: g.dir, Repo: repo, Registry: registry.Options{Transport: cnt}, Locker: fileLocker(t), DockerHost: host, CacheDir: t.TempDir()}
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	o.DockerHost = noEngine
	g.commit("change", map[string]string{"svc0/main.txt": "main changed"})
	cnt.reset()
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	pings := 0
	for _, p := range cnt.paths {
		if p == "GET /v2/" {
			pings++
		}
		if strings.HasPrefix(p, "GET ") && (strings.Contains(p, "/manifests/") || strings.Contains(p, "/blobs/")) {
			t.Errorf("source change read %s: the reused stage's manifest and config are cached on this host", p)
		}
	}
	if pings > 2 || cnt.all > 23 {
		t.Errorf("source change: %d requests, %d of them pings; want at most 23 and 2", cnt.all, pings)
	}
	t.Logf("source change: %d requests, %d pings:\n%s", cnt.all, pings, strings.Join(cnt.paths, "\n"))
}
