package build

import "testing"

func TestMatcher(t *testing.T) {
	for _, tc := range []struct {
		glob, path string
		want       bool
	}{
		{"*.go", "a.go", true},
		{"*.go", "dir/a.go", false},
		{"**/*.go", "dir/sub/a.go", true},
		{"**/*.go", "a.go", true},
		{"src", "src/a/b.txt", true},
		{"src/", "src/a/b.txt", true},
		{"src/*", "src/a/b.txt", true},
		{"packages.txt", "packages.txt", true},
		{"packages.txt", "x/packages.txt", false},
		{"a?c", "abc", true},
		{"[ab]c", "bc", true},
		{"docs/**", "docs/x/y.md", true},
		{"docs/**", "doc/x", false},
	} {
		if got := newMatcher([]string{tc.glob}).match(tc.path); got != tc.want {
			t.Errorf("match(%q, %q) = %v, want %v", tc.glob, tc.path, got, tc.want)
		}
	}
}
