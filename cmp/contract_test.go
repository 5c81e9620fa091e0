package cmp

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	repoclient "github.com/argoproj/argo-cd/v3/reposerver/apiclient"
)

func strPtr(s string) *string { return &s }

// fromArgo converts Argo CD's parameter to what the local type must read from its JSON.
func fromArgo(p v1alpha1.ApplicationSourcePluginParameter) appParameter {
	out := appParameter{Name: p.Name, String: p.String_}
	if p.OptionalMap != nil {
		out.HasMap, out.Map = true, p.Map
		if out.Map == nil {
			out.Map = map[string]string{}
		}
	}
	if p.OptionalArray != nil {
		out.HasArray, out.Array = true, p.Array
		if out.Array == nil {
			out.Array = []string{}
		}
	}
	return out
}

// Argo CD's own parameters, marshalled by Argo CD (ARGOCD_APP_PARAMETERS as Environ builds it),
// read with the local type: every field and the presence of empty maps and arrays survive.
func TestAppParametersFromArgoCD(t *testing.T) {
	params := v1alpha1.ApplicationSourcePluginParameters{
		{Name: "values", String_: strPtr("replicas: 2\n")},
		{Name: "empty-string", String_: strPtr("")},
		{Name: "no-value"},
		{Name: "set", OptionalMap: &v1alpha1.OptionalMap{Map: map[string]string{"a.b": "1", "c": ""}}},
		{Name: "empty-map", OptionalMap: &v1alpha1.OptionalMap{}},
		{Name: "set-array", OptionalArray: &v1alpha1.OptionalArray{Array: []string{"a=1", "b=two words"}}},
		{Name: "empty-array", OptionalArray: &v1alpha1.OptionalArray{Array: []string{}}},
		{Name: "nil-array", OptionalArray: &v1alpha1.OptionalArray{}},
		{Name: "all", String_: strPtr("s"), OptionalMap: &v1alpha1.OptionalMap{Map: map[string]string{"k": "v"}},
			OptionalArray: &v1alpha1.OptionalArray{Array: []string{"x"}}},
	}
	env, err := params.Environ()
	if err != nil {
		t.Fatal(err)
	}
	var raw string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "ARGOCD_APP_PARAMETERS="); ok {
			raw = v
		}
	}
	if raw == "" {
		t.Fatalf("Argo CD set no ARGOCD_APP_PARAMETERS: %q", env)
	}
	var got []appParameter
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatalf("parse %s: %v", raw, err)
	}
	if len(got) != len(params) {
		t.Fatalf("read %d parameters from %s, want %d", len(got), raw, len(params))
	}
	for i, p := range params {
		if want := fromArgo(p); !reflect.DeepEqual(got[i], want) {
			t.Errorf("parameter %d from %s:\n got  %+v\n want %+v", i, raw, got[i], want)
		}
	}
}

// JSON written by hand (or by another Argo CD version) means the same to Argo CD's type and to
// the local one, including null values and unknown keys.
func TestAppParametersLikeArgoCD(t *testing.T) {
	for _, raw := range []string{
		`[{"name":"values","string":"a: 1"}]`,
		`[{"name":"set","map":{"a":"1"}},{"name":"set2","map":{}},{"name":"set3","map":null}]`,
		`[{"name":"arr","array":["a=1"]},{"name":"arr2","array":[]},{"name":"arr3","array":null}]`,
		`[{"name":"s","string":null},{"name":"future","extra":{"x":1}},{}]`,
	} {
		var argo v1alpha1.ApplicationSourcePluginParameters
		if err := json.Unmarshal([]byte(raw), &argo); err != nil {
			t.Fatalf("Argo CD: %s: %v", raw, err)
		}
		var got []appParameter
		if err := json.Unmarshal([]byte(raw), &got); err != nil {
			t.Fatalf("local: %s: %v", raw, err)
		}
		if len(got) != len(argo) {
			t.Fatalf("%s: %d parameters, Argo CD reads %d", raw, len(got), len(argo))
		}
		for i, p := range argo {
			want := appParameter{Name: p.Name, String: p.String_, HasMap: p.OptionalMap != nil, HasArray: p.OptionalArray != nil}
			if p.OptionalMap != nil {
				want.Map = p.Map
			}
			if p.OptionalArray != nil {
				want.Array = p.Array
			}
			if !reflect.DeepEqual(got[i], want) {
				t.Errorf("%s item %d:\n got  %+v\n want %+v (Argo CD's reading)", raw, i, got[i], want)
			}
		}
	}
	var bad []appParameter
	err := json.Unmarshal([]byte(`[{"name":"set","map":{"a":1}}]`), &bad)
	if err == nil || !strings.Contains(err.Error(), `"set"`) || !strings.Contains(err.Error(), "map") {
		t.Errorf("a map of numbers: error %v, want one naming parameter \"set\" and its map", err)
	}
}

// The announcement is the same JSON, byte for byte, as Argo CD's ParameterAnnouncement with the
// same content, and Argo CD reads every field of it back.
func TestParameterAnnouncementIsArgoCDs(t *testing.T) {
	local := []*parameterAnnouncement{
		{Name: "images", Title: "Images", Tooltip: "tip", CollectionType: "map", Map: map[string]string{"web": "r/web@sha256:1", "api": "r/api:1"}},
		{Name: "commit", Title: "Commit", String: "abc", Required: true, ItemType: "string"},
		{Name: "list", CollectionType: "array", Array: []string{"a", "b"}},
		{Name: "bare"},
	}
	argo := []*repoclient.ParameterAnnouncement{
		{Name: "images", Title: "Images", Tooltip: "tip", CollectionType: "map", Map: map[string]string{"web": "r/web@sha256:1", "api": "r/api:1"}},
		{Name: "commit", Title: "Commit", String_: "abc", Required: true, ItemType: "string"},
		{Name: "list", CollectionType: "array", Array: []string{"a", "b"}},
		{Name: "bare"},
	}
	lb, err := json.Marshal(local)
	if err != nil {
		t.Fatal(err)
	}
	ab, err := json.Marshal(argo)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(lb, ab) {
		t.Fatalf("local announcement JSON\n %s\ndiffers from Argo CD's\n %s", lb, ab)
	}
	var back []*repoclient.ParameterAnnouncement
	if err := json.Unmarshal(lb, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, argo) {
		t.Errorf("Argo CD reads %+v, want %+v", back, argo)
	}
	// and the reverse: Argo CD's JSON read with the local type
	var again []*parameterAnnouncement
	if err := json.Unmarshal(ab, &again); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, local) {
		t.Errorf("local type reads %+v from Argo CD's JSON, want %+v", again, local)
	}
}
