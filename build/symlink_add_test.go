package build

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"strata.dev/strata/internal/registry"
	"strata.dev/strata/internal/testing/testenv"
)

// A git mapping whose add is a symbolic link to a directory maps the link itself at `to` (git
// stores a link as a link; werf maps the path add names, file or link, at to), never an empty
// layer; an add naming a regular file maps that file at to.
func TestGitMappingOfSymlinkAndFile(t *testing.T) {
	base := testenv.BaseImage(t)
	repo := testenv.Repo(t, "symlink")
	reg := registry.Options{}
	g := newGitRepo(t)
	g.write(map[string]string{
		"strata.yaml": "project: links\nconfigVersion: 1\n---\nimage: app\nfrom: " + base +
			"\ngit:\n- add: /current\n  to: /app\n- add: /real/a.txt\n  to: /etc/a.txt\n",
		"real/a.txt": "a",
	})
	if err := os.Symlink("real", filepath.Join(g.dir, "current")); err != nil {
		t.Fatal(err)
	}
	g.git("add", "-A")
	g.git("commit", "-q", "-m", "links")
	ctx := context.Background()
	rep, err := Run(ctx, Options{Dir: g.dir, Repo: repo, Registry: reg, Locker: fileLocker(t), DockerHost: noEngine})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := reg.ParseReference(repo + ":" + rep.Image("app").Tag)
	img, err := remote.Image(r, reg.Remote(ctx)...)
	if err != nil {
		t.Fatal(err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var link, file string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch filepath.Clean("/" + h.Name) {
		case "/app":
			if h.Typeflag != tar.TypeSymlink {
				t.Errorf("/app is of type %c, want a symbolic link", h.Typeflag)
			}
			link = h.Linkname
		case "/etc/a.txt":
			b, _ := io.ReadAll(tr)
			file = string(b)
		}
	}
	if link != "real" || file != "a" {
		t.Errorf("/app -> %q (want real), /etc/a.txt = %q (want a)", link, file)
	}
}
