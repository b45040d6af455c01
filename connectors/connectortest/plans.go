package connectortest

import (
	"fmt"
	"testing"

	"github.com/lethe-dev/lethe/config"
)

// PlanCases are instances' configs and the plans Lethe must read from
// them, each part written as fmt.Sprint prints it ("[email|user_ids.app]");
// an empty ResolveBy or Gives is "[]".
type PlanCases []struct {
	Name, Instance, YAML         string
	Keys, Uses, ResolveBy, Gives string
}

// RunPlanCases reads each case's plan as Lethe does, without building the
// connector or revealing its secrets ({env: NEVER_SET} keys are fine), as
// subtests.
//
//	connectortest.RunPlanCases(t, "amplitude", connectortest.PlanCases{
//		{Name: "user_id_system", Instance: "amp", YAML: base + "user_id_system: app\n",
//			Keys: "[user_ids.app]", Uses: "[user_ids.app]"},
//	})
func RunPlanCases(t *testing.T, typ string, cases PlanCases) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			p := Plan(t, typ, tc.Instance, tc.YAML)
			want := map[string]string{"keys": tc.Keys, "uses": tc.Uses, "resolve_by": tc.ResolveBy, "gives": tc.Gives}
			for part, got := range map[string]string{"keys": fmt.Sprint(p.Keys), "uses": fmt.Sprint(p.Uses),
				"resolve_by": fmt.Sprint(p.ResolveBy), "gives": fmt.Sprint(p.Gives)} {
				if w := want[part]; (w == "" && got != "[]") || (w != "" && got != w) {
					t.Errorf("%s = %s, want %s", part, got, w)
				}
			}
		})
	}
}

// Validated decodes yamlConfig strictly into a C and validates it, failing
// the test on an error: what a test of a config's defaults starts from.
//
//	cfg := connectortest.Validated[amplitude.Config](t, "api_key: k\nsecret_key: s\n")
//	if cfg.PollInterval != 24*time.Hour { … }
func Validated[C any, P interface {
	*C
	Validate() error
}](t testing.TB, yamlConfig string) C {
	t.Helper()
	var c C
	if err := config.DecodeYAML([]byte(yamlConfig), &c); err != nil {
		t.Fatal(err)
	}
	if err := P(&c).Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}
