package cachefile

import (
	"os"
	"path/filepath"
)

// WriteOnce writes data to path unless path exists, through a temporary file in the same
// directory renamed into place. A cache is an optimisation: errors leave it without the entry
// and are not reported.
func WriteOnce(path string, data []byte) {
	if _, err := os.Stat(path); err == nil {
		return
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if werr != nil || cerr != nil || os.Rename(f.Name(), path) != nil {
		os.Remove(f.Name())
	}
}
