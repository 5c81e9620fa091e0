package cmp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"strata.dev/strata/bundle"
)

// ErrNotBundle is returned for a directory that holds no Strata bundle.
var ErrNotBundle = errors.New("not a Strata bundle")

// Options configure the plugin commands.
type Options struct {
	// Dir is the directory Argo CD runs the plugin in: the extracted bundle's chart.
	Dir string
	// Environ is the environment Argo CD gives the plugin (os.Environ()).
	Environ []string
	// MaxChartBytes and MaxOutputBytes limit the bundle and the rendered output (0: defaults).
	MaxChartBytes  int64
	MaxOutputBytes int64
	// VerifyPolicy is the signature verification policy file (see sign.Policy); "" verifies
	// only what the Application's STRATA_VERIFY_KEY asks for.
	VerifyPolicy string
}

// checkBundle returns the bundle's metadata, or an error saying why Dir is not a bundle.
func checkBundle(dir string) (*bundle.Metadata, error) {
	if _, err := os.Stat(filepath.Join(dir, "Chart.yaml")); err != nil {
		return nil, fmt.Errorf("%s: no Chart.yaml: %w", dir, ErrNotBundle)
	}
	m, err := bundle.ReadMetadata(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: no %s: %w", dir, bundle.MetadataFile, ErrNotBundle)
		}
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return m, nil
}

// Discover writes one line naming the bundle to w if Dir is a Strata bundle (Argo CD matches on
// exit 0 with non-empty stdout), else returns an error wrapping ErrNotBundle and writes nothing;
// the command turns that error into a silent exit 0.
func Discover(o Options, w io.Writer) error {
	m, err := checkBundle(o.Dir)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "strata bundle %s %s (commit %s)\n", m.Chart, m.Version, m.Commit.Hash)
	return err
}

// Generate renders the bundle for the Application described by Environ and writes the objects
// to w. It writes nothing unless the whole render succeeded and produced at least one object.
func Generate(ctx context.Context, o Options, w io.Writer) error {
	m, err := checkBundle(o.Dir)
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	req, err := ParseEnviron(o.Environ)
	if err != nil {
		return fmt.Errorf("generate %s %s: %w", m.Chart, m.Version, err)
	}
	dir, done, err := verifiedDir(ctx, o, m, req)
	if err != nil {
		return fmt.Errorf("generate %s %s: %w", m.Chart, m.Version, err)
	}
	defer done()
	out, err := bundle.Render(ctx, bundle.RenderOptions{
		ChartDir:       dir,
		ReleaseName:    req.ReleaseName,
		Namespace:      req.AppNamespace,
		Values:         req.Values,
		Set:            req.Set,
		KubeVersion:    req.KubeVersion,
		APIVersions:    req.APIVersions,
		BundleRef:      bundleRef(req),
		Metadata:       m,
		MaxChartBytes:  o.MaxChartBytes,
		MaxOutputBytes: o.MaxOutputBytes,
	})
	if err != nil {
		return fmt.Errorf("generate %s %s: %w", m.Chart, m.Version, err)
	}
	if len(bytes.TrimSpace(out)) == 0 {
		return fmt.Errorf("generate %s %s: the bundle rendered no objects (refusing empty output: Argo CD would prune everything)", m.Chart, m.Version)
	}
	_, err = w.Write(out)
	return err
}

// bundleRef is REPO@DIGEST for oci:// sources, where Argo CD passes the resolved digest as the
// revision. For Helm-OCI sources the revision is the chart version: the metadata's location is
// used instead.
func bundleRef(r *Request) string {
	if !strings.HasPrefix(r.Revision, "sha256:") || r.RepoURL == "" {
		return ""
	}
	return strings.TrimPrefix(r.RepoURL, "oci://") + "@" + r.Revision
}

// Parameters writes the dynamic parameter announcement: the bundle's images and their exact
// references (read-only information shown in Argo CD's UI), as the JSON list Argo CD expects.
func Parameters(o Options, w io.Writer) error {
	m, err := checkBundle(o.Dir)
	if err != nil {
		return fmt.Errorf("parameters: %w", err)
	}
	images := map[string]string{}
	for _, name := range m.ImageNames() {
		images[name] = m.Images[name].Ref
	}
	ann := []*parameterAnnouncement{{
		Name:           "images",
		Title:          "Images (read-only: set by strata bundle publish)",
		Tooltip:        "Exact image references of this bundle, from its images lock.",
		CollectionType: "map",
		Map:            images,
	}}
	if m.Commit.Hash != "" {
		ann = append(ann, &parameterAnnouncement{
			Name:    "commit",
			Title:   "Commit (read-only)",
			Tooltip: "The git commit this bundle was built from.",
			String:  m.Commit.Hash,
		})
	}
	b, err := json.Marshal(ann)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}
