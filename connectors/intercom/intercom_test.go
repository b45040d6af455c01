package intercom_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
	"github.com/lethe-dev/lethe/connectors/intercom/intercomfake"
)

func TestVendor(t *testing.T) {
	t.Parallel()
	connectortest.RunVendor(t, connectortest.VendorSuite{
		VendorCases: connectortest.VendorCases{
			Type:  "intercom",
			Start: connectortest.StartFake(intercomfake.Start),
			// Intercom's 429 names the window's reset (a unix time) within 2s.
			MinRetryAfter: 500 * time.Millisecond, MaxRetryAfter: 2 * time.Second,
			Unavailable: intercomfake.Unavailable, Credential: "access token",
		},
		Misconfigured: "base_url: {url}/not-the-api", // 404s that must not pass for "no such contact"
		Hostile: []connectors.Subject{{Email: "subject1@example.com\",\"operator\":\"~"},
			connectortest.VendorUserID("user-2/../user-3"), connectortest.VendorUserID("user-%")},
		Resolves: connectortest.ResolvesUserID,
	})
}

func TestResolveCases(t *testing.T) {
	t.Parallel()
	connectortest.RunResolveCases(t, connectortest.ResolveCases{
		Start: connectortest.StartFake(intercomfake.Start),
		New: func(t *testing.T, f connectortest.FaultyVendor) connectors.Resolver {
			return connectortest.Build(t, "intercom", "support", f.Config()).(connectors.Resolver)
		},
		Unavailable:    intercomfake.Unavailable,
		NobodyEvidence: "lookup=0 contacts found by email; ",
	})
}

func setup(t *testing.T, opt intercomfake.Options, lines ...string) (*intercomfake.Fake, connectors.Connector) {
	f := intercomfake.Start(t, opt)
	return f, connectortest.Build(t, "intercom", "support", fakevendor.MergeYAML(f.Config(), lines...))
}

// calls lists "METHOD path status" of what f was sent.
func calls(f *intercomfake.Fake) string {
	var out []string
	for _, c := range f.Calls() {
		out = append(out, fmt.Sprintf("%s %s %d", c.Method, c.Path, c.Status))
	}
	return strings.Join(out, "; ")
}

// TestDelete: every contact found, users and leads, is deleted with
// DELETE /contacts/{id} and counted from Intercom's answer.
func TestDelete(t *testing.T) {
	t.Parallel()
	f, c := setup(t, intercomfake.Options{})
	s := connectortest.VendorSubject(1)
	id := f.Add(s.Email, s.UserIDs[connectortest.UserIDSystem], "")
	lead := f.Add(s.Email, "", "lead") // a lead with the same email
	other := f.Add("other@example.com", "user-other", "")
	out, err := c.Erase(connectortest.Ctx(t), s)
	if err != nil || out.Status != connectors.StatusErased || out.Records != 2 || f.Count(s) != 0 {
		t.Fatalf("Erase = %+v, %v; %d left", out, err, f.Count(s))
	}
	ev := connectortest.EvidenceText(out.Evidence)
	if !strings.Contains(ev, "2 contacts found (1 user, 1 lead)") || !strings.Contains(ev, "2 contacts permanently deleted (0 archived)") {
		t.Errorf("evidence %q", ev)
	}
	if want := fmt.Sprintf("DELETE /contacts/%s 200; DELETE /contacts/%s 200", id, lead); !strings.Contains(calls(f), want) || strings.Contains(calls(f), other) {
		t.Errorf("calls %s, want %s", calls(f), want)
	}
	connectortest.CallsCarry(t, f, "Intercom-Version", "2.14")
	connectortest.CallsCarry(t, f, "Authorization", "Bearer "+intercomfake.DefaultToken)
}

// TestArchived: Intercom's search omits archived contacts; the probe
// (creating a user with the external_id) finds an archived user by
// Intercom's 409, which is then deleted.
func TestArchived(t *testing.T) {
	t.Parallel()
	s := connectortest.VendorSubject(2)
	uid := s.UserIDs[connectortest.UserIDSystem]
	t.Run("found by probe and deleted", func(t *testing.T) {
		t.Parallel()
		f, c := setup(t, intercomfake.Options{})
		f.Archive(f.Add(s.Email, uid, ""))
		other := f.Add("other@example.com", "user-other", "")
		f.Archive(other)
		f.Add(s.Email, "", "lead")
		if v, err := c.(connectors.Verifier).Verify(connectortest.Ctx(t), s); err != nil || v.Remaining != 2 {
			t.Fatalf("Verify before = %+v, %v; want the lead and the archived user", v, err)
		}
		out, err := connectortest.EraseAndWait(connectortest.Ctx(t), c, s, 5*time.Second)
		if err != nil || out.Status != connectors.StatusErased || out.Records != 2 || f.Count(s) != 0 {
			t.Fatalf("Erase = %+v, %v; %d left; calls %s", out, err, f.Count(s), calls(f))
		}
		if n := f.Count(connectors.Subject{Email: "other@example.com"}); n != 1 {
			t.Error("the bystander's archived user went")
		}
		if v, err := c.(connectors.Verifier).Verify(connectortest.Ctx(t), s); err != nil || v.Remaining != 0 {
			t.Errorf("Verify after = %+v, %v", v, err)
		}
	})
	t.Run("none archived: the probe's contact is deleted", func(t *testing.T) {
		t.Parallel()
		f, c := setup(t, intercomfake.Options{})
		out, err := c.Erase(connectortest.Ctx(t), s)
		if err != nil || out.Status != connectors.StatusNotFound || !strings.Contains(connectortest.EvidenceText(out.Evidence), "probe's contact was deleted") {
			t.Fatalf("Erase = %+v, %v", out, err)
		}
		if f.Count(s) != 0 || !strings.Contains(calls(f), "POST /contacts 200; DELETE /contacts/") {
			t.Errorf("%d left; calls %s", f.Count(s), calls(f))
		}
	})
	t.Run("the probe's delete fails", func(t *testing.T) {
		t.Parallel()
		f, c := setup(t, intercomfake.Options{})
		f.Inject(3, f.PassThrough()) // two searches and the probe
		f.Inject(1, intercomfake.Unavailable)
		if _, err := c.Erase(connectortest.Ctx(t), s); err == nil || connectortest.IsPermanent(err) {
			t.Fatalf("err = %v; want retryable", err)
		}
		if f.Count(s) != 1 {
			t.Fatalf("the probe left %d contacts", f.Count(s))
		}
		// The retry finds the probe's contact and deletes it.
		if out, err := connectortest.EraseAndWait(connectortest.Ctx(t), c, s, 5*time.Second); err != nil || f.Count(s) != 0 {
			t.Fatalf("retry = %+v, %v; %d left", out, err, f.Count(s))
		}
	})
	for _, tc := range []struct {
		name, config string
		s            connectors.Subject
		says         string
	}{
		{"lookup off", "archived_lookup: off", s, "archived users not looked for (archived_lookup: off)"},
		{"no user id", "", connectors.Subject{Email: s.Email}, "archived contacts not looked for (no user id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, c := setup(t, intercomfake.Options{}, tc.config)
			f.Archive(f.Add(s.Email, uid, ""))
			out, err := c.Erase(connectortest.Ctx(t), tc.s)
			if err != nil || out.Status != connectors.StatusNotFound || !strings.Contains(connectortest.EvidenceText(out.Evidence), tc.says) {
				t.Fatalf("Erase = %+v, %v; want not found saying %q", out, err, tc.says)
			}
			if strings.Contains(calls(f), "POST /contacts ") {
				t.Errorf("probed: %s", calls(f))
			}
		})
	}
}

func TestPagination(t *testing.T) {
	t.Parallel()
	f, c := setup(t, intercomfake.Options{})
	f.PageSize(2)
	s := connectors.Subject{Email: "many@example.com"}
	for range 5 {
		f.Add(s.Email, "", "lead")
	}
	out, err := c.Erase(connectortest.Ctx(t), s)
	if err != nil || out.Records != 5 || f.Count(s) != 0 || f.Deletes() != 5 {
		t.Fatalf("Erase = %+v, %v; %d left after %d deletes", out, err, f.Count(s), f.Deletes())
	}
}

func TestErrorsNameIntercomCodes(t *testing.T) {
	t.Parallel()
	f, c := setup(t, intercomfake.Options{})
	s := connectortest.VendorSubject(3)
	f.Seed(s)
	f.Inject(1, intercomfake.Answer(http.StatusForbidden, "api_plan_restricted", "Active subscription needed for "+s.Email))
	_, err := c.Erase(connectortest.Ctx(t), s)
	if !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), "code api_plan_restricted, request_id ") || !strings.Contains(err.Error(), "check access_token") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), s.Email) {
		t.Errorf("the error quotes Intercom's message: %v", err)
	}
}

// TestDeleteNotFound: Intercom's not_found to a delete is a contact gone
// since the search (not counted); any other 404 proves nothing; an
// archived user the probe just named must not pass for gone.
func TestDeleteNotFound(t *testing.T) {
	t.Parallel()
	notFound := intercomfake.Answer(http.StatusNotFound, "not_found", "Contact Not Found")
	t.Run("gone meanwhile", func(t *testing.T) {
		t.Parallel()
		f, c := setup(t, intercomfake.Options{}, "archived_lookup: off")
		s := connectortest.VendorSubject(4)
		f.Seed(s)
		f.Add(s.Email, "", "lead")
		f.Inject(2, f.PassThrough()) // the searches
		f.Inject(1, notFound)
		out, err := c.Erase(connectortest.Ctx(t), s)
		if err != nil || out.Status != connectors.StatusErased || out.Records != 1 {
			t.Fatalf("Erase = %+v, %v", out, err)
		}
	})
	t.Run("not Intercom's 404", func(t *testing.T) {
		t.Parallel()
		f, c := setup(t, intercomfake.Options{}, "archived_lookup: off")
		s := connectortest.VendorSubject(5)
		f.Seed(s)
		f.Inject(2, f.PassThrough())
		f.Inject(1, func(w http.ResponseWriter, _ *http.Request) { http.NotFound(w, nil) })
		if _, err := c.Erase(connectortest.Ctx(t), s); !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), "check base_url") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("not acknowledged", func(t *testing.T) {
		t.Parallel()
		f, c := setup(t, intercomfake.Options{}, "archived_lookup: off")
		s := connectortest.VendorSubject(7)
		f.Seed(s)
		f.Inject(2, f.PassThrough())
		f.Inject(1, func(w http.ResponseWriter, _ *http.Request) {
			fakevendor.JSON(w, http.StatusOK, map[string]any{"type": "contact", "deleted": false})
		})
		if _, err := c.Erase(connectortest.Ctx(t), s); err == nil || connectortest.IsPermanent(err) {
			t.Fatalf("err = %v; want retryable", err)
		}
	})
	t.Run("archived user", func(t *testing.T) {
		t.Parallel()
		f, c := setup(t, intercomfake.Options{})
		s := connectortest.VendorSubject(6)
		f.SeedRecoverable(s)
		f.Inject(3, f.PassThrough()) // the searches and the probe
		f.Inject(1, notFound)
		_, err := c.Erase(connectortest.Ctx(t), s)
		if !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), "intercom_version is 2.6 or later") || f.Count(s) != 1 {
			t.Fatalf("err = %v, %d left", err, f.Count(s))
		}
	})
}

func TestPlan(t *testing.T) {
	t.Parallel()
	connectortest.RunPlanCases(t, "intercom", connectortest.PlanCases{
		{Name: "default", Instance: "support", YAML: "access_token: x\n", Keys: "[email|user_ids.support]",
			Uses: "[email user_ids.support]", ResolveBy: "[email]", Gives: "[user_ids.support]"},
		{Name: "user_id_system", Instance: "support", YAML: "access_token: x\nuser_id_system: app\n", Keys: "[email|user_ids.app]",
			Uses: "[email user_ids.app]", ResolveBy: "[email]", Gives: "[user_ids.app]"},
	})
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	connectortest.RunVendorConfigCases(t, "intercom", "access_token: k\n", "base_url", "user_id_system")
	connectortest.RunConfigCases(t, "intercom", map[string]string{"INTERCOM_TOKEN": "t"}, nil, connectortest.ConfigCases{
		{"no access token", "base_url: https://api.intercom.io\n", "access_token: required"},
		{"plain http", "access_token: k\nbase_url: http://api.intercom.io\n", "base_url: must use https"},
		{"bad version", "access_token: k\nintercom_version: latest\n", "intercom_version: must be an Intercom API version 2.6 or later"},
		{"1.x version", "access_token: k\nintercom_version: \"1.4\"\n", "intercom_version: must be an Intercom API version 2.6 or later"},
		{"before archived deletes", "access_token: k\nintercom_version: \"2.5\"\n", "intercom_version: must be an Intercom API version 2.6 or later"},
		{"ok 2.10", "access_token: k\nintercom_version: \"2.10\"\n", ""},
		{"bad archived_lookup", "access_token: k\narchived_lookup: always\n", "archived_lookup: must be off or probe"},
		{"everything at once", "intercom_version: x\narchived_lookup: y\n", "access_token: required"},
		{"ok eu", "access_token: k\nbase_url: https://api.eu.intercom.io\nintercom_version: Unstable\nuser_id_system: app\narchived_lookup: off\n", ""},
		{"ok au", "access_token: {env: INTERCOM_TOKEN}\nbase_url: https://api.au.intercom.io\n", ""},
	})
}
