package build

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"strata.dev/strata/config"
)

// What a shell stage's container runs with besides its commands: werf's mount: directories,
// secrets: files, network: and platform:. None of it is in a layer, and secrets are in no
// digest.

// runOpts are the settings of one shell-stage container.
type runOpts struct {
	network string
	mounts  []mount.Mount
	// hide are the mount targets: their entries (and directories created only to hold them)
	// are left out of the committed layer.
	hide []string
}

// secretsDir is where a build writes its secrets (0700, files 0400), removed when it ends.
// tmpDir holds the tmp_dir mounts of the build, per image.
type buildDirs struct {
	tmp     string                       // per build: <tmp>/mounts/<image>/<slug>, <tmp>/secrets/<image>/<id>
	secrets map[string]map[string]string // image -> secret id -> host file
}

// resolveSecrets reads every secret of the images before anything is built (an unset variable
// or a missing file stops the build naming the secret, never its value) and writes each to a
// file of the build's own directory.
func resolveSecrets(images []*Image, projectDir, dir string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for _, im := range images {
		if len(im.Secrets) == 0 || im.Dockerfile != "" {
			continue
		}
		idir := filepath.Join(dir, "secrets", slug(im.Name))
		if err := os.MkdirAll(idir, 0o700); err != nil {
			return nil, err
		}
		files := map[string]string{}
		for _, s := range im.Secrets {
			data, err := secretValue(s, projectDir)
			if err != nil {
				return nil, fmt.Errorf("image %s: secret %s: %w", im.Name, s.ID, err)
			}
			f := filepath.Join(idir, s.ID)
			if err := os.WriteFile(f, data, 0o400); err != nil {
				return nil, fmt.Errorf("image %s: secret %s: %w", im.Name, s.ID, err)
			}
			files[s.ID] = f
		}
		out[im.Name] = files
	}
	return out, nil
}

// maxSecret bounds a secret read into memory.
const maxSecret = 1 << 20

func secretValue(s config.Secret, projectDir string) ([]byte, error) {
	switch {
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok {
			return nil, fmt.Errorf("environment variable %s is not set", s.Env)
		}
		return []byte(v), nil
	case s.Src != "":
		p := s.Src
		if p == "~" || strings.HasPrefix(p, "~/") {
			home, err := os.UserHomeDir()
			if err != nil {
				return nil, err
			}
			p = filepath.Join(home, strings.TrimPrefix(p, "~"))
		} else if !filepath.IsAbs(p) {
			p = filepath.Join(projectDir, p)
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("src %s: %w", p, errors.Unwrap(err))
		}
		defer f.Close()
		if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
			return nil, fmt.Errorf("src %s: not a regular file", p)
		}
		data, err := io.ReadAll(io.LimitReader(f, maxSecret+1))
		if err != nil {
			return nil, fmt.Errorf("src %s: %w", p, err)
		}
		if len(data) > maxSecret {
			return nil, fmt.Errorf("src %s: larger than 1 MiB", p)
		}
		return data, nil
	}
	return []byte(s.Value), nil
}

// slug names a directory after a path or an image name: safe characters, and a short digest
// that keeps distinct names distinct.
func slug(s string) string {
	var b strings.Builder
	for _, c := range strings.Trim(s, "/") {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
	}
	d := newDigester("slug")
	d.add(s)
	out := b.String()
	if len(out) > 48 {
		out = out[:48]
	}
	return out + "-" + d.sum()[:8]
}

// runOptions are the container settings of im's shell stages: its network, its mounts
// (tmp_dir under the build's directory, build_dir under CacheDir/mounts/projects/<project>,
// fromPath from the host) and its secrets, read-only at /run/secrets/<id>.
func (b *builder) runOptions(im *Image) (runOpts, error) {
	o := runOpts{network: b.o.Network}
	if im.Network != "" {
		o.network = im.Network
	}
	for _, m := range b.mountsOf(im) {
		var src string
		switch {
		case m.From == "tmp_dir":
			src = filepath.Join(b.dirs.tmp, "mounts", slug(im.Name), slug(m.To))
		case m.From == "build_dir":
			if b.o.CacheDir == "" {
				return o, errors.New("mount from build_dir: no cache directory (set --cache-dir)")
			}
			src = filepath.Join(b.o.CacheDir, "mounts", "projects", slug(b.cfg.Project), slug(m.To))
		default:
			src = m.FromPath
			if !filepath.IsAbs(src) {
				src = filepath.Join(b.projectDir, src)
			}
			st, err := os.Stat(src)
			if err != nil || !st.IsDir() {
				return o, fmt.Errorf("mount fromPath %s: not a directory on this host", m.FromPath)
			}
		}
		if m.From != "" {
			if err := os.MkdirAll(src, 0o755); err != nil {
				return o, fmt.Errorf("mount %s: %w", m.From, err)
			}
		}
		o.mounts = append(o.mounts, mount.Mount{Type: mount.TypeBind, Source: src, Target: m.To})
		o.hide = append(o.hide, m.To)
	}
	for _, s := range im.Secrets {
		f := b.dirs.secrets[im.Name][s.ID]
		if f == "" {
			return o, fmt.Errorf("secret %s: not resolved", s.ID)
		}
		target := "/run/secrets/" + s.ID
		o.mounts = append(o.mounts, mount.Mount{Type: mount.TypeBind, Source: f, Target: target, ReadOnly: true})
		o.hide = append(o.hide, target)
	}
	return o, nil
}

// mountsOf returns im's mounts and those of the images it is built on (fromImage), which werf
// carries over to them; an image's own mount of a path wins. The inherited ones need no digest
// input of their own: they are in the first stage's digest of the image that declares them,
// under every stage built on it. A tmp_dir is still the image's own, per build.
func (b *builder) mountsOf(im *Image) []config.Mount {
	by := map[string]*Image{}
	for _, x := range b.cfg.Images {
		by[x.Name] = x
	}
	seen := map[string]bool{}
	var out []config.Mount
	for cur, n := im, 0; cur != nil && n <= len(b.cfg.Images); cur, n = by[cur.FromImage], n+1 {
		for _, m := range cur.Mount {
			if !seen[m.To] {
				seen[m.To] = true
				out = append(out, m)
			}
		}
		if cur.FromImage == "" {
			break
		}
	}
	return out
}

// hideMounts removes from a committed layer the entries at or below the mount targets, and the
// directories above them that hold nothing else in the layer (the engine creates missing
// mount points in the container; they are not the commands' output).
func hideMounts(data []byte, targets []string) ([]byte, error) {
	if len(targets) == 0 {
		return data, nil
	}
	under := func(p, t string) bool { return p == t || strings.HasPrefix(p, t+"/") }
	type entry struct {
		h    *tar.Header
		body []byte
		p    string
	}
	var entries []entry
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read committed layer: %w", err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("read committed layer: %w", err)
		}
		entries = append(entries, entry{h, body, path.Clean("/" + h.Name)})
	}
	hidden := func(p string) bool {
		for _, t := range targets {
			if under(p, t) {
				return true
			}
		}
		return false
	}
	above := func(p string) bool {
		for _, t := range targets {
			if strings.HasPrefix(t, p+"/") || p == "/" {
				return true
			}
		}
		return false
	}
	// A directory above a target stays only if an entry below it stays that is neither hidden
	// nor itself a directory above a target.
	keepDir := func(p string) bool {
		if !above(p) {
			return true
		}
		for _, e := range entries {
			if e.p != p && (strings.HasPrefix(e.p, p+"/") || p == "/") && !hidden(e.p) && !(e.h.Typeflag == tar.TypeDir && above(e.p)) {
				return true
			}
		}
		return false
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if hidden(e.p) || (e.h.Typeflag == tar.TypeDir && !keepDir(e.p)) {
			continue
		}
		if err := tw.WriteHeader(e.h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// checkPlatform refuses to build im on an engine of another platform: Strata builds for the
// engine's platform only.
func (b *builder) checkPlatform(ctx context.Context, cli *client.Client, im *Image) error {
	if len(im.Platform) == 0 {
		return nil
	}
	v, err := cli.ServerVersion(ctx)
	if err != nil {
		return fmt.Errorf("read the engine's platform: %w", err)
	}
	engine := v.Os + "/" + v.Arch
	if len(im.Platform) > 1 || !samePlatform(im.Platform[0], engine) {
		return fmt.Errorf("platform %s: Strata builds for the engine's platform only, %s (one platform per image; multi-platform builds are not supported)", strings.Join(im.Platform, ","), engine)
	}
	return nil
}

// samePlatform compares os/arch[/variant], ignoring a variant the other side does not state.
func samePlatform(want, engine string) bool {
	w, e := strings.Split(want, "/"), strings.Split(engine, "/")
	return len(w) >= 2 && len(e) >= 2 && w[0] == e[0] && w[1] == e[1] && (len(w) < 3 || len(e) < 3 || w[2] == e[2])
}

// prepare checks what the images need from this host before anything is built (one platform
// per image, every secret readable) and makes the build's own directory: tmp_dir mounts and
// secret files, removed by the returned cleanup.
func (b *builder) prepare(images []*Image) (func(), error) {
	need := false
	for _, im := range images {
		if len(im.Platform) > 1 {
			return nil, fmt.Errorf("image %s: platform %s: Strata builds one platform per image, the engine's (multi-platform builds are not supported)", im.Name, strings.Join(im.Platform, ","))
		}
		if im.Staged && (len(im.Platform) > 0 || im.Network != "" || len(im.AddHost) > 0 || im.ImageSpec != nil) {
			return nil, fmt.Errorf("image %s: platform, network, addHost and imageSpec (or build.imageSpec) are not supported with staged: true yet", im.Name)
		}
		need = need || len(b.mountsOf(im)) > 0 || len(im.Secrets) > 0
	}
	if !need {
		return func() {}, nil
	}
	b.removeStaleDirs(os.TempDir())
	dir, err := os.MkdirTemp("", buildDirPattern)
	if err != nil {
		return nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	if err := os.WriteFile(filepath.Join(dir, buildDirOwner), []byte(builderID()), 0o600); err != nil {
		cleanup()
		return nil, err
	}
	b.dirs.tmp = dir
	if b.dirs.secrets, err = resolveSecrets(images, b.projectDir, dir); err != nil {
		cleanup()
		return nil, err
	}
	return cleanup, nil
}

// basePlatform refuses a base image of another platform than im's.
func basePlatform(img v1.Image, im *Image) error {
	if len(im.Platform) == 0 {
		return nil
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("read base image %s: %w", im.From, err)
	}
	got := cf.OS + "/" + cf.Architecture
	if cf.Variant != "" {
		got += "/" + cf.Variant
	}
	if !samePlatform(im.Platform[0], got) {
		return fmt.Errorf("platform %s: base image %s is %s", im.Platform[0], im.From, got)
	}
	return nil
}

// buildDirPattern names a build's own directory under $TMPDIR; buildDirOwner is the file in it
// naming the strata process that made it (a labelBuilder value: HOST PID START).
const (
	buildDirPattern = "strata-build-*"
	buildDirOwner   = "builder"
)

// removeStaleDirs removes the build directories under tmp (secrets, tmp_dir mounts) of strata
// processes of this host and user that are gone: killed (SIGKILL) before their cleanup ran. A
// directory of another user, of a live process or without an owner file is left alone.
// Failures are logged: they never fail the build.
func (b *builder) removeStaleDirs(tmp string) {
	dirs, err := filepath.Glob(filepath.Join(tmp, buildDirPattern))
	if err != nil {
		return
	}
	for _, dir := range dirs {
		fi, err := os.Lstat(dir)
		if err != nil || !fi.IsDir() || !ownedByMe(fi) {
			continue
		}
		owner, err := os.ReadFile(filepath.Join(dir, buildDirOwner))
		if err != nil || !builderGone(string(owner)) {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			b.o.Log.Warn("remove the directory of a build that was killed", "dir", dir, "error", err)
			continue
		}
		b.o.Log.Info("removed the directory of a build that was killed", "dir", dir, "builder", string(owner))
	}
}

// ownedByMe reports whether fi belongs to this process's user.
func ownedByMe(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Getuid()
}
