package bundle

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/Masterminds/semver/v3"
)

var nonIdent = regexp.MustCompile(`[^0-9A-Za-z-]+`)

// ChartVersion returns the semver chart version for a --tag VERSION and the OCI tag it is stored
// under ('+' becomes '_', as helm push does).
//
//   - A semver 2 version is used as is ("1.2.3", "1.2.3-rc.1+build.5"); a leading "v" is dropped
//     ("v1.2.3" -> "1.2.3").
//   - Anything else becomes the pre-release "0.0.0-<VERSION>" with every run of characters other
//     than [0-9A-Za-z-] replaced by '-' per dot-separated identifier and numeric identifiers
//     with a leading zero prefixed with "x": "main" -> "0.0.0-main", "feature/Foo_bar" ->
//     "0.0.0-feature-Foo-bar", "2024.01.5" -> "0.0.0-2024.x01.5".
func ChartVersion(version string) (chartVersion, tag string, err error) {
	v := strings.TrimSpace(version)
	if v == "" {
		return "", "", fmt.Errorf("bundle version is empty")
	}
	if sv, e := semver.StrictNewVersion(strings.TrimPrefix(v, "v")); e == nil {
		chartVersion = sv.Original()
	} else {
		var ids []string
		for _, id := range strings.Split(v, ".") {
			id = strings.Trim(nonIdent.ReplaceAllString(id, "-"), "-")
			if id == "" {
				continue
			}
			if len(id) > 1 && id[0] == '0' && strings.Trim(id, "0123456789") == "" {
				id = "x" + id
			}
			ids = append(ids, id)
		}
		if len(ids) == 0 {
			return "", "", fmt.Errorf("bundle version %q: no usable characters for a semver pre-release", version)
		}
		chartVersion = "0.0.0-" + strings.Join(ids, ".")
		if _, e := semver.StrictNewVersion(chartVersion); e != nil {
			return "", "", fmt.Errorf("bundle version %q: derived %q is not semver: %w", version, chartVersion, e)
		}
	}
	tag = strings.ReplaceAll(chartVersion, "+", "_")
	if len(tag) > 128 {
		return "", "", fmt.Errorf("bundle version %q: tag %q is longer than 128 characters", version, tag)
	}
	return chartVersion, tag, nil
}
