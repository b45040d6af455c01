package connectors_test

import (
	"fmt"
	"testing"

	"github.com/lethe-dev/lethe/connectors"
)

func TestPlan(t *testing.T) {
	t.Parallel()
	p := connectors.Plan{
		Keys:      []connectors.Requirement{{connectors.UserIDKind("crm"), connectors.Email}},
		Uses:      []connectors.Kind{connectors.Phone, connectors.Phone},
		ResolveBy: []connectors.Kind{connectors.Email},
		Gives:     []connectors.Kind{connectors.UserIDKind("app")},
	}.Normalized()
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(p.Uses); got != "[email phone user_ids.crm]" {
		t.Errorf("Uses = %s: the keys' kinds belong in it, once each", got)
	}
	byPhone := connectors.Subject{Phone: "+447700900123"}
	if p.Met(byPhone) || len(p.Missing(byPhone)) != 1 {
		t.Error("a subject with only a phone meets a plan keyed on email or a CRM id")
	}
	s := connectors.Subject{Phone: "+447700900123", UserIDs: map[string]string{"crm": "7"}}
	if !p.Met(s) || fmt.Sprint(p.SearchedBy(s)) != "[phone user_ids.crm]" || len(p.LooksUpBy(s)) != 0 {
		t.Errorf("Met/SearchedBy/LooksUpBy: %v %v %v", p.Met(s), p.SearchedBy(s), p.LooksUpBy(s))
	}
	for _, bad := range []connectors.Plan{
		{Keys: []connectors.Requirement{{}}},
		{Uses: []connectors.Kind{"user_id:app"}},
		{Gives: []connectors.Kind{connectors.UserIDKind("app")}},
	} {
		if bad.Check() == nil {
			t.Errorf("plan %+v passed Check", bad)
		}
	}
	var r connectors.Resolution
	r.Add(connectors.Phone, "")
	r.Add(connectors.UserIDKind("app"), "u1")
	r.Add(connectors.UserIDKind("app"), "u1")
	r.Add(connectors.UserIDKind("app"), "u2")
	if len(r.Found) != 1 || len(r.Values()) != 2 {
		t.Errorf("Resolution.Add: %v", r.Found)
	}
}
