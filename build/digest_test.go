package build

import "testing"

func TestDigestsStableAndSensitive(t *testing.T) {
	d := func(f ...string) string { x := newDigester("k"); x.add(f...); return x.sum() }
	if d("a", "b") != d("a", "b") || len(d("a")) != 56 {
		t.Errorf("digest not stable or not 56 hex")
	}
	if d("ab", "c") == d("a", "bc") {
		t.Errorf("field boundaries not part of the digest")
	}
}
