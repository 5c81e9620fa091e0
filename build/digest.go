package build

import (
	"encoding/hex"
	"fmt"
	"hash"
	"sort"
	"strings"

	"golang.org/x/crypto/sha3"
)

// digester builds a stage digest: SHA3-224 over NUL-separated fields, 56 hex characters.
type digester struct{ h hash.Hash }

func newDigester(kind string) *digester {
	d := &digester{h: sha3.New224()}
	d.add("strata-stage-v1", kind)
	return d
}

func (d *digester) add(fields ...string) {
	for _, f := range fields {
		fmt.Fprintf(d.h, "%d:%s\x00", len(f), f)
	}
}

func (d *digester) list(name string, l []string) {
	d.add(name, fmt.Sprint(len(l)))
	d.add(l...)
}

func (d *digester) dict(name string, m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	d.add(name, fmt.Sprint(len(keys)))
	for _, k := range keys {
		d.add(k, m[k])
	}
}

func (d *digester) sum() string { return hex.EncodeToString(d.h.Sum(nil)) }

func shortDigest(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

// dockerFields adds the docker instructions to a digest.
func dockerFields(d *digester, di DockerInstructions) {
	d.add("WORKDIR", di.Workdir, "USER", di.User)
	d.dict("ENV", di.Env)
	d.dict("LABEL", di.Label)
	d.list("EXPOSE", di.Expose)
	d.list("VOLUME", di.Volume)
	d.add("CMD", fmt.Sprint(di.Cmd != nil))
	d.list("CMD", di.Cmd)
	d.add("ENTRYPOINT", fmt.Sprint(di.Entrypoint != nil))
	d.list("ENTRYPOINT", di.Entrypoint)
	if h := di.Healthcheck; h != nil {
		d.list("HEALTHCHECK", h.Test)
		d.add(h.Interval, h.Timeout, h.StartPeriod, fmt.Sprint(h.Retries))
	}
}

// imageFields adds the image-wide werf keys of a stage-built image to its first stage's digest,
// each only when set (a config without them keeps its digests): cacheVersion, the mounts (werf
// puts them in its from stage) and the platform.
func imageFields(d *digester, im *Image) {
	if im.CacheVersion != "" {
		d.add("cacheVersion", im.CacheVersion)
	}
	for _, m := range im.Mount {
		d.add("mount", m.From, m.FromPath, m.To)
	}
	if len(im.Platform) > 0 {
		d.list("platform", im.Platform)
	}
}

// gitFields adds a git mapping's settings to a digest.
func gitFields(d *digester, g GitMapping) {
	d.add("add", g.Add, "to", g.To, "owner", g.Owner, "group", g.Group)
	d.list("includePaths", g.IncludePaths)
	d.list("excludePaths", g.ExcludePaths)
	_ = strings.TrimSpace
}
