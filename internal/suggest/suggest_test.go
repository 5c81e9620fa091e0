package suggest

import "testing"

func TestNearest(t *testing.T) {
	known := []string{"install", "beforeInstall", "setup", "beforeSetup", "cacheVersion"}
	for in, want := range map[string]string{
		"instal":       "install",
		"Install":      "install",
		"beforesetup":  "beforeSetup",
		"cacheVersoin": "cacheVersion",
		"setpu":        "setup",
		"xyz":          "",
		"deploy":       "",
	} {
		if got := Nearest(in, known); got != want {
			t.Errorf("Nearest(%q) = %q, want %q", in, got, want)
		}
	}
	if got := editDistance("kitten", "sitting"); got != 3 {
		t.Errorf("editDistance = %d, want 3", got)
	}
}
