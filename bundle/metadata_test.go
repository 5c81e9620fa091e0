package bundle

import (
	"testing"
)

func TestCommitURL(t *testing.T) {
	h := "0123456789abcdef0123456789abcdef01234567"
	for git, want := range map[string]string{
		"https://github.com/o/r.git":                  "https://github.com/o/r/commit/" + h,
		"https://user:token@gitlab.example.com/g/s/r": "https://gitlab.example.com/g/s/r/commit/" + h,
		"http://git.local:8080/o/r/":                  "http://git.local:8080/o/r/commit/" + h,
		"git@github.com:o/r.git":                      "https://github.com/o/r/commit/" + h,
		"ssh://git@gitlab.example.com:2222/g/r.git":   "https://gitlab.example.com/g/r/commit/" + h,
		"/srv/git/r.git":                              "",
		"":                                            "",
		"file:///srv/r":                               "",
	} {
		m := &Metadata{GitURL: git, Commit: Commit{Hash: h}}
		if got := m.CommitURL(); got != want {
			t.Errorf("CommitURL(%q) = %q, want %q", git, got, want)
		}
	}
	if got := CleanGitURL("https://user:token@host/o/r"); got != "https://host/o/r" {
		t.Errorf("CleanGitURL = %q", got)
	}
}

func TestReadMetadata(t *testing.T) {
	m, err := ReadMetadata("testdata/app")
	if err != nil {
		t.Fatal(err)
	}
	if m.Commit.Hash != "0123456789abcdef0123456789abcdef01234567" || m.Images["web"].Digest == "" || m.CIURL() != "https://ci.example.com/pipelines/7" {
		t.Errorf("metadata = %+v", m)
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := ParseMetadata(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := m2.Marshal()
	if string(b) != string(b2) {
		t.Errorf("round trip differs:\n%s\n%s", b, b2)
	}
	if _, err := ParseMetadata([]byte(`{"schemaVersion": 99}`)); err == nil {
		t.Error("future schema accepted")
	}
}
