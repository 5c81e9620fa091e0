package config

import (
	"encoding/json"
	"strings"
	"testing"
)

// config list and config graph, as werf's: names in config order (final only on request), and
// each image with the images it is built from, imports from and depends on.
func TestGraphAndList(t *testing.T) {
	cfg, err := Parse("werf.yaml", []byte(`project: p
configVersion: 1
---
artifact: builder
from: alpine
---
image: base
from: alpine
---
image: app
fromImage: base
import:
- artifact: builder
  add: /out
  after: install
- artifact: builder
  add: /more
  after: setup
- from: registry.example.com/tools:1.0
  add: /bin/tool
  before: install
dependencies:
- image: base
  after: install
  imports:
  - type: ImageName
    targetEnv: BASE
---
image: web
dockerfile: Dockerfile
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.ImageNames(false), " "); got != "builder base app web" {
		t.Errorf("list = %q", got)
	}
	if got := strings.Join(cfg.ImageNames(true), " "); got != "base app web" {
		t.Errorf("list of final images = %q", got)
	}
	g, err := cfg.Graph(nil, false)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(g)
	want := `[{"image":"builder","dependsOn":{}},{"image":"base","dependsOn":{}},{"image":"app","dependsOn":{"from":"base","import":["builder"],"dependencies":["base"]}},{"image":"web","dependsOn":{}}]`
	if string(b) != want {
		t.Errorf("graph = %s\nwant %s", b, want)
	}
	g, err = cfg.Graph([]string{"web", "app"}, true)
	if err != nil || len(g) != 2 || g[0].Image != "app" || g[1].Image != "web" {
		t.Errorf("graph of app and web = %+v %v", g, err)
	}
	if _, err := cfg.Graph([]string{"nope"}, false); err == nil || !strings.Contains(err.Error(), `no image "nope" in werf.yaml`) {
		t.Errorf("unknown image: %v", err)
	}
	nameless, err := Parse("werf.yaml", []byte("project: p\nconfigVersion: 1\n---\nimage: ~\nfrom: alpine\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := nameless.ImageNames(false); len(got) != 1 || got[0] != "~" {
		t.Errorf("nameless list = %q", got)
	}
}
