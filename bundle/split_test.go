package bundle

import (
	"math/rand"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/releaseutil"
)

// helmSplit is releaseutil.SplitManifests's documents in order.
func helmSplit(s string) []string {
	m := releaseutil.SplitManifests(s)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return len(a) - len(b) + strings.Compare(a, b)*boolInt(len(a) == len(b)) })
	docs := make([]string, len(keys))
	for i, k := range keys {
		docs[i] = m[k]
	}
	return docs
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// splitManifests splits documents exactly as Helm's regular expression does, on hand-picked
// cases and on random texts made of the pieces that matter (dashes, blanks, line breaks, text).
func TestSplitManifestsMatchesHelm(t *testing.T) {
	cases := []string{
		"", "---", "---\n", "a: 1", "---\na: 1\n---\nb: 2\n", "a: 1\n---\n---\nb: 2", "a: 1\n\n  \n---  \n\nb: 2",
		"a: 1\n---b: 2", "a: 1\n--- # c\nb: 2", "x---y\n", "a: |\n  ---\n  b\n", "\n---\n---\na", "a\r\n---\r\nb",
		"  ---  \n a", "a:\n---\n---\n", "a\n----\nb", "a\n\t\n---\n\tb", "a \f\n---\n", "\v---\na", "a\n---\v\nb",
	}
	r := rand.New(rand.NewSource(1))
	parts := []string{"---", "-", "\n", " ", "\t", "\r", "a", "b: c", "#", "\v", "\u00a0"}
	for i := 0; i < 20000; i++ {
		var b strings.Builder
		for n := r.Intn(12); n > 0; n-- {
			b.WriteString(parts[r.Intn(len(parts))])
		}
		cases = append(cases, b.String())
	}
	for _, c := range cases {
		got, want := splitManifests(c), helmSplit(c)
		if len(got) == 0 && len(want) == 0 {
			continue
		}
		if !slices.Equal(got, want) {
			t.Fatalf("split of %q:\n got %q\nwant %q", c, got, want)
		}
	}
}
