package stages

import (
	"sort"
	"strconv"
	"strings"
	"time"
)

// DigestLen is the length of a stage's content digest: SHA3-224 in lowercase hex.
const DigestLen = 56

// Tag is the tag of a stored stage: <digest>-<unix-millis>.
type Tag struct {
	Digest string // the stage's content digest
	Millis int64  // when the stage was stored, in Unix milliseconds
}

// String returns the tag as stored: <digest>-<millis>.
func (t Tag) String() string { return t.Digest + "-" + strconv.FormatInt(t.Millis, 10) }

// Created returns when the stage was stored.
func (t Tag) Created() time.Time { return time.UnixMilli(t.Millis) }

// ParseTag parses a stage tag. It accepts exactly the tags Tag.String writes: a content digest
// (see IsDigest), a dash and the decimal milliseconds without sign or leading zero. Any other
// tag (e.g. one added by --add-tag) is not a stage tag.
func ParseTag(s string) (Tag, bool) {
	d, ms, ok := strings.Cut(s, "-")
	if !ok || !IsDigest(d) || ms == "" || len(ms) > 1 && ms[0] == '0' {
		return Tag{}, false
	}
	for i := 0; i < len(ms); i++ {
		if ms[i] < '0' || ms[i] > '9' {
			return Tag{}, false
		}
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return Tag{}, false // out of range
	}
	return Tag{Digest: d, Millis: n}, true
}

// IsDigest reports whether s is a stage content digest: 56 lowercase hex digits.
func IsDigest(s string) bool {
	if len(s) != DigestLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ByDigest groups the stage tags among tags by content digest: the creation millis of each
// digest's stages, oldest first. Tags that are not stage tags are left out.
func ByDigest(tags []string) map[string][]int64 {
	out := map[string][]int64{}
	for _, s := range tags {
		if t, ok := ParseTag(s); ok {
			out[t.Digest] = append(out[t.Digest], t.Millis)
		}
	}
	for _, ms := range out {
		sort.Slice(ms, func(i, j int) bool { return ms[i] < ms[j] })
	}
	return out
}
