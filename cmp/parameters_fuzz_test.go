package cmp

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	"sigs.k8s.io/yaml"

	"strata.dev/strata/internal/testing/fuzztest"
)

// FuzzAppParameters: any ARGOCD_APP_PARAMETERS value (with plugin env entries) is read without
// panic, in bounded time and memory; an error names ARGOCD_APP_PARAMETERS or the parameter; a
// request that is read is well formed (release name, sorted KEY=VALUE set entries), and Argo CD
// marshalling it again (v1alpha1's own Environ) gives the same request.
func FuzzAppParameters(f *testing.F) {
	for _, s := range [][2]string{
		{`[{"name":"values","string":"replicas: 2\nimage:\n  tag: v1\n"},{"name":"set","map":{"a.b":"1","c":""}},{"name":"release-name","string":"green"}]`, ""},
		{`[{"name":"set","array":["a=1","b=two words","c[0]=x"]}]`, "x=1,y=2"},
		{`[{"name":"images","map":{"web":"reg/x:1"}},{"name":"commit","string":"abc"}]`, ""},
		{`[{"name":"set","map":{}},{"name":"set","array":[]}]`, ""},
		{`[{"name":"values","string":"- a\n- b\n"}]`, ""},
		{`[{"name":"values","string":"a: &x [*x]"}]`, ""},
		{`[{"name":"valeus","string":"x"}]`, ""},
		{`[{"name":"set","array":["=1"]}]`, ""},
		{`[{"name":"set","string":"a=1"}]`, "bad"},
		{`{"name":"set"}`, ""},
		{`[{"name":"values","string":"a: 1e400\nb: 12345678901234567890\nc: .inf\n"}]`, ""},
		{"", "k=v,=x"},
	} {
		f.Add(s[0], s[1], "team-a_shop")
	}
	bounds := fuzztest.Bounds{Time: 10 * time.Second, Heap: 256 << 20}
	f.Fuzz(func(t *testing.T, params, envSet, app string) {
		// Argo CD's values are Go strings decoded from JSON (an Application): valid UTF-8.
		envSet, app = strings.ToValidUTF8(envSet, "?"), strings.ToValidUTF8(app, "?")
		environ := []string{"ARGOCD_APP_NAME=" + app, "ARGOCD_APP_NAMESPACE=ns", "ARGOCD_APP_PARAMETERS=" + params, "ARGOCD_ENV_SET=" + envSet}
		var r *Request
		var err error
		fuzztest.Bounded(t, bounds, "ParseEnviron", func() { r, err = ParseEnviron(environ) })
		if err != nil {
			if msg := err.Error(); !strings.Contains(msg, "ARGOCD_APP_PARAMETERS") && !strings.Contains(msg, `parameter "`) && !strings.Contains(msg, "plugin env SET") {
				t.Errorf("error names neither the variable nor the parameter: %v", err)
			}
			return
		}
		if r.ReleaseName == "" && app != "" && !strings.HasSuffix(app, "_") {
			t.Errorf("no release name for app %q", app)
		}
		if !slices.IsSorted(r.Set) {
			t.Errorf("set entries not sorted: %q", r.Set)
		}
		for _, kv := range r.Set {
			if k, _, ok := strings.Cut(kv, "="); !ok || strings.TrimSpace(k) == "" {
				t.Errorf("set entry %q is not KEY=VALUE", kv)
			}
		}
		// Argo CD marshals what was read, the way it marshals an Application's parameters.
		var again v1alpha1.ApplicationSourcePluginParameters
		if r.Values != nil {
			y, err := yaml.Marshal(r.Values)
			if err != nil {
				t.Fatalf("values read but not marshallable: %v", err)
			}
			again = append(again, v1alpha1.ApplicationSourcePluginParameter{Name: ParamValues, String_: strPtr(string(y))})
		}
		if r.Set != nil {
			m := map[string]string{}
			for _, kv := range r.Set {
				k, v, _ := strings.Cut(kv, "=")
				m[k] = v
			}
			again = append(again, v1alpha1.ApplicationSourcePluginParameter{Name: ParamSet, OptionalMap: &v1alpha1.OptionalMap{Map: m}})
		}
		again = append(again, v1alpha1.ApplicationSourcePluginParameter{Name: ParamReleaseName, String_: strPtr(r.ReleaseName)})
		env, err := again.Environ()
		if err != nil {
			t.Fatal(err)
		}
		r2, err := ParseEnviron(append([]string{"ARGOCD_APP_NAME=" + app, "ARGOCD_APP_NAMESPACE=ns"}, env...))
		if err != nil {
			t.Fatalf("request %+v, marshalled by Argo CD, is refused: %v", r, err)
		}
		if len(r.Values) == 0 && len(r2.Values) == 0 {
			r2.Values = r.Values
		}
		if !reflect.DeepEqual(r, r2) {
			t.Errorf("request changed through Argo CD's marshalling:\n%+v\n%+v", r, r2)
		}
	})
}
