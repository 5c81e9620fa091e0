package stages

import (
	"slices"
	"strings"
	"testing"
	"time"
)

var digest = strings.Repeat("0123456789abcdef", 4)[:DigestLen]

func TestTagRoundTrip(t *testing.T) {
	for _, ms := range []int64{0, 1, 1700000000123, 1<<63 - 1} {
		tag := Tag{Digest: digest, Millis: ms}
		got, ok := ParseTag(tag.String())
		if !ok || got != tag {
			t.Errorf("ParseTag(%q) = %+v, %v; want %+v", tag.String(), got, ok, tag)
		}
	}
	tag, ok := ParseTag(digest + "-1700000000123")
	if !ok || tag.Digest != digest || !tag.Created().Equal(time.UnixMilli(1700000000123)) {
		t.Errorf("ParseTag = %+v %v", tag, ok)
	}
}

// ParseTag accepts exactly what Tag.String writes: anything else is not a stage tag.
func TestParseTagRefuses(t *testing.T) {
	for _, bad := range []string{
		"",
		"latest",
		"-1700000000123",
		digest,                             // no millis
		digest + "-",                       // empty millis
		digest[:55] + "-1700000000123",     // digest too short
		digest + "0-1700000000123",         // digest too long
		strings.ToUpper(digest) + "-1",     // upper-case hex
		digest[:55] + "g-1",                // not hex
		digest + "-17000x",                 // millis not decimal
		digest + "--1",                     // negative
		digest + "-+1",                     // sign
		digest + "-01",                     // leading zero: String never writes it
		digest + "-1 ",                     // trailing space
		digest + "-1-2",                    // two dashes
		digest + "-9223372036854775808",    // beyond int64
		digest + "-99999999999999999999",   // 20 digits
		"app-" + digest + "-1700000000123", // prefixed
		digest + "-1700000000123.extra",    // suffixed
		"v1.2.0",
	} {
		if tag, ok := ParseTag(bad); ok {
			t.Errorf("ParseTag(%q) accepted: %+v", bad, tag)
		}
	}
}

func TestIsDigest(t *testing.T) {
	if !IsDigest(digest) {
		t.Errorf("IsDigest(%q) = false", digest)
	}
	for _, bad := range []string{"", digest[:55], digest + "0", strings.ToUpper(digest), "z" + digest[1:], digest + "-1"} {
		if IsDigest(bad) {
			t.Errorf("IsDigest(%q) = true", bad)
		}
	}
}

func TestByDigest(t *testing.T) {
	other := strings.Repeat("f", DigestLen)
	got := ByDigest([]string{
		digest + "-30", "latest", other + "-5", digest + "-10", digest + "-20", digest + "-010", "app-" + other + "-1",
	})
	if len(got) != 2 || !slices.Equal(got[digest], []int64{10, 20, 30}) || !slices.Equal(got[other], []int64{5}) {
		t.Errorf("ByDigest = %v", got)
	}
	if got := ByDigest(nil); len(got) != 0 {
		t.Errorf("ByDigest(nil) = %v", got)
	}
}

func TestLockNames(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{PublishLock("app", digest), "app/" + digest},
		{BuildingLock("app", digest), "app/" + digest + "#building"},
		{CleanupLock("app"), "app/cleanup"},
		{CommitLabel(2), "dev.strata.git.2.commit"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if !IsBuildingLock(BuildingLock("app", digest)) || IsBuildingLock(PublishLock("app", digest)) || IsBuildingLock(CleanupLock("app")) {
		t.Error("IsBuildingLock does not tell the building lock from the others")
	}
	// The labels all carry LabelPrefix, which a stage built on another stage drops.
	for _, l := range []string{LabelProject, LabelDigest, LabelParent, LabelImage, LabelStage, LabelVersion, CommitLabel(0)} {
		if !strings.HasPrefix(l, LabelPrefix) {
			t.Errorf("label %q lacks the prefix %q", l, LabelPrefix)
		}
	}
}
