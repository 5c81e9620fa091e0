package cmp_test

import (
	"testing"

	"strata.dev/strata/cmp"
)

// With Applications in any namespace Argo CD names an Application outside its control-plane
// namespace <namespace>_<name> in ARGOCD_APP_NAME (controller: InstanceName). The release name
// must be the name part, as in Argo CD's own Helm rendering (argo.ParseInstanceName: split at the
// first underscore), or Helm refuses it ("release name ... invalid").
func TestReleaseNameOfAppInAnyNamespace(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"ARGOCD_APP_NAME=shop"}, "shop"},
		{[]string{"ARGOCD_APP_NAME=team-a_shop"}, "shop"},
		{[]string{"ARGOCD_APP_NAME=team-a_shop_x"}, "shop_x"}, // Argo CD splits at the first underscore only
		{[]string{"ARGOCD_APP_NAME=team-a_shop", "ARGOCD_ENV_RELEASE_NAME=blue"}, "blue"},
		{[]string{"ARGOCD_APP_NAME=team-a_shop", `ARGOCD_APP_PARAMETERS=[{"name":"release-name","string":"green"}]`}, "green"},
	} {
		req, err := cmp.ParseEnviron(tc.env)
		if err != nil {
			t.Fatalf("%v: %v", tc.env, err)
		}
		if req.ReleaseName != tc.want {
			t.Errorf("%v: release name %q, want %q", tc.env, req.ReleaseName, tc.want)
		}
		if req.AppName != tc.env[0][len("ARGOCD_APP_NAME="):] {
			t.Errorf("%v: AppName %q changed; it must stay what Argo CD sent", tc.env, req.AppName)
		}
	}
}
