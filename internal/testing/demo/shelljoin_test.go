package demo

import "testing"

// The demo echoes each strata command so it can be pasted into a shell: an empty value or one
// with spaces or quotes survives as one argument.
func TestShellJoinQuotesWhatTheShellWouldSplit(t *testing.T) {
	got := shellJoin([]string{"image-updater", "run", "--listen", "", "--set", "a=b c", "it's"})
	if want := `image-updater run --listen '' --set 'a=b c' 'it'\''s'`; got != want {
		t.Errorf("shellJoin = %s, want %s", got, want)
	}
}
