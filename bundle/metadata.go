package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// MetadataFile is the name of the metadata file at the root of a bundle's chart.
const MetadataFile = "strata-bundle.json"

// MetadataSchemaVersion is the version of the metadata file format written by this package.
const MetadataSchemaVersion = 1

// Metadata describes where a bundle comes from: it is stored as MetadataFile inside the chart
// and repeated in the OCI manifest annotations.
type Metadata struct {
	// SchemaVersion of this file (MetadataSchemaVersion).
	SchemaVersion int `json:"schemaVersion"`
	// Project is the strata.yaml project name.
	Project string `json:"project,omitempty"`
	// Chart and Version are the chart's name and (semver) version.
	Chart   string `json:"chart,omitempty"`
	Version string `json:"version,omitempty"`
	// Bundle is where the bundle was published, REGISTRY/PATH/NAME:TAG (no digest: a chart cannot
	// contain its own digest).
	Bundle string `json:"bundle,omitempty"`
	// Commit is the git commit the bundle was built from.
	Commit Commit `json:"commit"`
	// Branch or Tag the commit was built for (either may be empty).
	Branch string `json:"branch,omitempty"`
	Tag    string `json:"tag,omitempty"`
	// GitURL is the project's repository URL (https or scp-like), without credentials.
	GitURL string `json:"gitURL,omitempty"`
	// CI links of the pipeline and job that published the bundle.
	CI CI `json:"ci,omitempty"`
	// Repo is the stages repository the images were built in.
	Repo string `json:"repo,omitempty"`
	// Images is the images lock: image name (strata.yaml) -> exact reference.
	Images map[string]Image `json:"images,omitempty"`
	// Created is when the bundle was published (UTC).
	Created time.Time `json:"created"`
	// Werf, when set, makes values.yaml carry werf's service values (werf.*, global.werf.*)
	// besides strata.*, so a chart written for werf renders unchanged.
	Werf *Werf `json:"werf,omitempty"`
}

// Werf configures the werf service values of a bundle.
type Werf struct {
	// Env is werf's --env (werf.env, global.env); may be empty.
	Env string `json:"env"`
}

// Commit is a git commit.
type Commit struct {
	Hash string `json:"hash,omitempty"`
	// Date is the committer date, RFC 3339.
	Date string `json:"date,omitempty"`
}

// CI holds links into the CI system.
type CI struct {
	PipelineURL string `json:"pipelineURL,omitempty"`
	JobURL      string `json:"jobURL,omitempty"`
}

// Image is one entry of the images lock.
type Image struct {
	// Repo is REGISTRY/PATH of the image.
	Repo string `json:"repo"`
	// Tag is its content-based tag.
	Tag string `json:"tag,omitempty"`
	// Ref is the full reference REPO:TAG@DIGEST (what strata.image.<name> holds).
	Ref string `json:"ref"`
	// Digest is the manifest digest, sha256:....
	Digest string `json:"digest"`
}

// ImageNames returns the names of the images lock, sorted.
func (m *Metadata) ImageNames() []string {
	names := make([]string, 0, len(m.Images))
	for n := range m.Images {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// EachImage calls fn for every image of the lock, at most 8 at a time, and joins the errors,
// each prefixed with "image NAME: ", in name order.
func (m *Metadata) EachImage(fn func(name string, im Image) error) error {
	names := m.ImageNames()
	errs := make([]error, len(names))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := fn(n, m.Images[n]); err != nil {
				errs[i] = fmt.Errorf("image %s: %w", n, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// CIURL is the most useful CI link: the pipeline, else the job.
func (m *Metadata) CIURL() string {
	if m.CI.PipelineURL != "" {
		return m.CI.PipelineURL
	}
	return m.CI.JobURL
}

// CommitURL is the web page of the commit derived from GitURL (https://HOST/OWNER/REPO/commit/HASH
// for https, http, ssh:// and scp-like git@HOST:OWNER/REPO.git URLs), or "" when unknown.
func (m *Metadata) CommitURL() string {
	if m.Commit.Hash == "" {
		return ""
	}
	web := WebURL(m.GitURL)
	if web == "" {
		return ""
	}
	return web + "/commit/" + m.Commit.Hash
}

var scpLike = regexp.MustCompile(`^(?:[A-Za-z0-9._~-]+@)?([A-Za-z0-9.-]+):([^/][^:]*)$`)

// WebURL turns a git remote URL into the https URL of the project's web page, without
// credentials and without a trailing .git; "" when it cannot tell.
func WebURL(git string) string {
	git = strings.TrimSpace(git)
	if git == "" {
		return ""
	}
	var host, p string
	if u, err := url.Parse(git); err == nil && u.Scheme != "" && u.Host != "" {
		switch u.Scheme {
		case "http", "https":
			host = u.Host
		case "ssh", "git", "git+ssh", "ssh+git":
			host = u.Hostname()
		default:
			return ""
		}
		if u.Scheme == "http" {
			host = "http://" + host
		} else {
			host = "https://" + host
		}
		p = u.Path
	} else if mm := scpLike.FindStringSubmatch(git); mm != nil {
		host, p = "https://"+mm[1], mm[2]
	} else {
		return ""
	}
	p = strings.TrimSuffix(strings.Trim(p, "/"), ".git")
	if p == "" {
		return ""
	}
	return host + "/" + p
}

// CleanGitURL removes credentials from an http(s) or ssh URL; scp-like URLs are returned as is.
func CleanGitURL(git string) string {
	u, err := url.Parse(git)
	if err != nil || u.Scheme == "" || u.User == nil {
		return git
	}
	if u.Scheme == "ssh" || u.Scheme == "git+ssh" {
		u.User = url.User(u.User.Username())
	} else {
		u.User = nil
	}
	return u.String()
}

// ReadMetadata reads MetadataFile from the chart directory chartDir. A chart without one gives an
// error that errors.Is(err, fs.ErrNotExist).
func ReadMetadata(chartDir string) (*Metadata, error) {
	p := filepath.Join(chartDir, MetadataFile)
	b, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("bundle metadata %s: %w (not a bundle published by strata?)", p, err)
		}
		return nil, fmt.Errorf("bundle metadata: %w", err)
	}
	m, err := ParseMetadata(b)
	if err != nil {
		return nil, fmt.Errorf("bundle metadata %s: %w", p, err)
	}
	return m, nil
}

// ParseMetadata decodes the contents of a metadata file. Unknown fields are ignored (files from
// newer Strata versions with the same schemaVersion stay readable).
func ParseMetadata(b []byte) (*Metadata, error) {
	if len(b) > 1<<20 {
		return nil, fmt.Errorf("metadata is %d bytes, more than the 1 MiB limit", len(b))
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	var m Metadata
	if err := dec.Decode(&m); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("invalid JSON at byte %d: %w", se.Offset, err)
		}
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if m.SchemaVersion > MetadataSchemaVersion {
		return nil, fmt.Errorf("schemaVersion %d is newer than this strata understands (%d)", m.SchemaVersion, MetadataSchemaVersion)
	}
	for n, im := range m.Images {
		if im.Ref == "" || im.Digest == "" {
			return nil, fmt.Errorf("images.%s: ref and digest are required", n)
		}
	}
	return &m, nil
}

// Marshal encodes the metadata as indented JSON with a final newline (deterministic).
func (m *Metadata) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
