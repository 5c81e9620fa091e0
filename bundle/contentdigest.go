package bundle

import (
	"fmt"
	"sort"
)

// DirContentDigest recomputes, from a chart directory extracted from a bundle, the content
// digest Publish stores in the manifest annotation AnnotationContentDigest. Equal digests mean
// the directory holds the published files (the metadata's created time aside); a verifier that
// checked the manifest's signature can then trust the directory without downloading it again.
func DirContentDigest(dir string, max int64) (string, error) {
	files, err := readChartDir(dir, max)
	if err != nil {
		return "", err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	for _, f := range files {
		if f.Name == MetadataFile {
			m, err := ParseMetadata(f.Data)
			if err != nil {
				return "", fmt.Errorf("%s: %w", MetadataFile, err)
			}
			return contentDigest(files, m), nil
		}
	}
	return "", fmt.Errorf("%s: no %s", dir, MetadataFile)
}
