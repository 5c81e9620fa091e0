package manifests

import (
	"embed"
	"io/fs"
)

//go:embed image-updater
var imageUpdaterFS embed.FS

// ImageUpdater returns the kustomize directory of the image updater (kustomization.yaml at its
// root; the optional component pull-secrets/ grants read access to Secrets).
func ImageUpdater() fs.FS {
	sub, err := fs.Sub(imageUpdaterFS, "image-updater")
	if err != nil {
		panic(err) // the directory is embedded: cannot happen
	}
	return sub
}
