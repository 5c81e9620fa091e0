package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: no input makes the parser panic or hang; every error names the file.
func FuzzParse(f *testing.F) {
	paths, _ := filepath.Glob("testdata/corpus/*.txt")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		// The first file of each case is its config.
		if _, after, ok := strings.Cut(string(b), " --\n"); ok {
			body, _, _ := strings.Cut(after, "\n-- ")
			f.Add([]byte(body))
		}
	}
	f.Add([]byte("project: p\nconfigVersion: 1\n---\nimage: a\nfrom: x\nshell: &a {install: [*a]}\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := Parse("strata.yaml", data)
		if err != nil && !strings.Contains(err.Error(), "strata.yaml") {
			t.Errorf("error without the file name: %v", err)
		}
	})
}
