package cmp_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"strata.dev/strata/internal/testing/testenv"
)

// BenchmarkGenerateVerified measures what signature verification adds to a render, both
// measured in the same run on the same bundle (the real registry on 127.0.0.1): one plain
// generate and one under a policy requiring the bundle's and its two images' signatures,
// alternately. Target (issue 21): added-ms ≤ 20. On a loaded machine the registry's answers
// dominate: rtt-ms is a plain registry round trip (GET /v2/) measured in the same loop, and
// added-rtts = added-ms / rtt-ms says what verification costs in round trips, whatever the load.
func BenchmarkGenerateVerified(b *testing.B) {
	f := newSignedFixture(b, "1.0.0")
	f.sign(b, f.repo+":1.0.0")
	for _, im := range f.report.Images {
		f.sign(b, im.Repo+"@"+im.ManifestDigest)
	}
	policy := f.policy(b, "rules:\n  - repositories: [\""+f.regPath+"/*\"]\n    keys: ["+f.pubFile+"]\n    images: true\n")
	env := f.helmEnv()
	ping := "http://" + testenv.Registry(b) + "/v2/"
	var plain, verified, rtt time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if _, err := f.generate("", env); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := f.generate(policy, env); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		resp, err := http.Get(ping)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		plain += t1.Sub(t0)
		verified += t2.Sub(t1)
		rtt += time.Since(t2)
	}
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / n }
	b.ReportMetric(ms(plain), "plain-ms")
	b.ReportMetric(ms(verified), "verified-ms")
	b.ReportMetric(ms(verified-plain), "added-ms")
	b.ReportMetric(ms(rtt), "rtt-ms")
	b.ReportMetric(float64(verified-plain)/float64(rtt), "added-rtts")
	b.ReportMetric(0, "ns/op")
}
