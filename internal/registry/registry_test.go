package registry

import "testing"

func TestInsecureOnlyForLoopbackAndListed(t *testing.T) {
	o := Options{Insecure: []string{"registry.internal:5000"}}
	for reg, want := range map[string]bool{
		"127.0.0.1:5000":         true,
		"localhost:5000":         true,
		"[::1]:5000":             true,
		"registry.internal:5000": true,
		"registry.internal":      false,
		"ghcr.io":                false,
		"10.0.0.1:5000":          false,
	} {
		if got := o.IsInsecure(reg); got != want {
			t.Errorf("IsInsecure(%q) = %v, want %v", reg, got, want)
		}
	}
	ref, err := o.ParseReference("127.0.0.1:5000/p/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if ref.Context().Registry.Scheme() != "http" {
		t.Errorf("loopback scheme = %s, want http", ref.Context().Registry.Scheme())
	}
	ref, err = o.ParseReference("ghcr.io/p/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if ref.Context().Registry.Scheme() != "https" {
		t.Errorf("ghcr.io scheme = %s, want https", ref.Context().Registry.Scheme())
	}
	if _, err := o.ParseReference("UPPER/case:tag"); err == nil {
		t.Error("want an error for an invalid reference")
	}
}
