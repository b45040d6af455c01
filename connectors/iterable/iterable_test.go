package iterable_test

import (
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
	"github.com/lethe-dev/lethe/connectors/iterable/iterablefake"
)

func TestVendor(t *testing.T) {
	t.Parallel()
	connectortest.RunVendor(t, connectortest.VendorSuite{
		VendorCases: connectortest.VendorCases{
			Type:  "iterable",
			Start: connectortest.StartFake(iterablefake.Start),
			// Iterable's 429 names no delay.
			MinRetryAfter: time.Second, MaxRetryAfter: time.Second, Credential: "API key",
		},
		Misconfigured: "base_url: {url}/iterable", // 404s that must not pass for "no such user"
		Hostile: []connectors.Subject{{Email: "subject1@example.com&email=subject2@example.com"},
			connectortest.VendorUserID("user-2/../user-3"), connectortest.VendorUserID("user-2?x=1")},
		Resolves: connectortest.ResolvesUserID,
	})
}

// TestProjectTypes: an email-based project forgets by email only and a
// userID-based one by userId only; the other identifier alone is refused.
func TestProjectTypes(t *testing.T) {
	t.Parallel()
	s := connectortest.VendorSubject(7)
	id := s.UserIDs[connectortest.UserIDSystem]
	for _, tc := range []struct {
		typ, forgets string
		other        connectors.Subject
	}{
		{"email", s.Email, connectors.Subject{UserIDs: s.UserIDs}},
		{"userid", id, connectors.Subject{Email: s.Email}},
	} {
		f := iterablefake.Start(t, iterablefake.Options{})
		f.Seed(s)
		c := connectortest.Build(t, "iterable", "it", fakevendor.MergeYAML(f.Config(), "project_type: "+tc.typ))
		if _, err := c.Erase(connectortest.Ctx(t), tc.other); !connectortest.IsPermanent(err) || f.Count(s) != 1 {
			t.Fatalf("%s: erase by the other identifier = %v, left %d; want a permanent error, nothing forgotten", tc.typ, err, f.Count(s))
		}
		out, err := c.Erase(connectortest.Ctx(t), s)
		if err != nil || out.Status != connectors.StatusRunning {
			t.Fatalf("%s: erase = %+v, %v", tc.typ, out, err)
		}
		if !f.Forgotten(tc.forgets) || f.Count(s) != 0 {
			t.Fatalf("%s: forgotten %v, left %d", tc.typ, f.Forgotten(tc.forgets), f.Count(s))
		}
		if !strings.Contains(connectortest.EvidenceText(out.Evidence), "acknowledged") {
			t.Errorf("%s: evidence %v must say the forget was only acknowledged", tc.typ, out.Evidence)
		}
	}
}

func TestPollRefusesForeignRefs(t *testing.T) {
	t.Parallel()
	f := iterablefake.Start(t, iterablefake.Options{})
	c := connectortest.Build(t, "iterable", "it", f.Config()).(connectors.Poller)
	for _, ref := range []string{"", `{"Forgotten":0}`, `{"Forgotten":"x"}`, "sendgrid:1"} {
		if _, err := c.Poll(connectortest.Ctx(t), ref); !connectortest.IsPermanent(err) {
			t.Errorf("Poll(%q) = %v, want a permanent error", ref, err)
		}
	}
	out, err := c.Poll(connectortest.Ctx(t), `{"Forgotten":2}`)
	if err != nil || out.Status != connectors.StatusErased || out.Records != 2 || !strings.Contains(connectortest.EvidenceText(out.Evidence), "unforget") {
		t.Fatalf("Poll = %+v, %v; want 2 erased, naming the unforget risk", out, err)
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	connectortest.RunVendorConfigCases(t, "iterable", "api_key: k\n", "base_url", "user_id_system", "poll_interval")
	connectortest.RunConfigCases(t, "iterable", nil, nil, connectortest.ConfigCases{
		{"no api key", "project_type: email\n", "api_key: required"},
		{"plain http", "api_key: k\nbase_url: http://api.iterable.com\n", "base_url: must use https"},
		{"with /api", "api_key: k\nbase_url: https://api.iterable.com/api\n", "base_url: leave out /api"},
		{"bad project type", "api_key: k\nproject_type: phone\n", "project_type: must be"},
		{"ok eu hybrid", "api_key: k\nbase_url: https://api.eu.iterable.com\nproject_type: hybrid\nuser_id_system: app\n", ""},
	})
}
