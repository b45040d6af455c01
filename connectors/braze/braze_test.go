package braze_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/braze/brazefake"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

func TestVendor(t *testing.T) {
	t.Parallel()
	connectortest.RunVendor(t, connectortest.VendorSuite{
		VendorCases: connectortest.VendorCases{
			Type:  "braze",
			Start: connectortest.StartFake(brazefake.Start),
			// Braze's 429 names no Retry-After; X-RateLimit-Reset (epoch
			// seconds) is one to two seconds on in the fake.
			MinRetryAfter: 500 * time.Millisecond, MaxRetryAfter: 2 * time.Second, Credential: "API key",
			// Answers that are not a finished look-up or a full
			// acknowledgement never pass for "not found" or "erased".
			Answers: []connectortest.VendorAnswer{
				{Name: "export without users", Fault: fakevendor.Body(200, `{"message":"success"}`), Says: "not a finished export"},
				{Name: "export queued", Fault: fakevendor.Body(202, `{"message":"queued"}`), Says: "not a finished export"},
				{Name: "export not success", Fault: fakevendor.Body(200, `{"message":"queued","users":[]}`), Says: "not a finished export"},
				{Name: "export without braze_id", Fault: fakevendor.Body(200, `{"message":"success","users":[{"external_id":"x"}]}`), Says: "without its braze_id"},
				{Name: "delete not counted", Pass: 2, Fault: fakevendor.Body(200, `{"message":"success"}`), Says: "no acknowledgement"},
				{Name: "delete queued", Pass: 2, Fault: fakevendor.Body(202, `{"message":"queued"}`), Says: "no acknowledgement"},
				{Name: "not found", Fault: fakevendor.Body(404, `{"message":"Not Found"}`), Permanent: true, Says: "check base_url"},
				{Name: "forbidden", Pass: 2, Fault: fakevendor.Body(403, `{"message":"Forbidden"}`), Permanent: true, Says: "users.delete permission"},
			},
		},
		Misconfigured: "base_url: {url}/braze", // 404s that must not pass for "no such user"
		Hostile: []connectors.Subject{
			{Email: "%@example.com"}, {Email: "*@example.com"},
			{Email: `subject600@example.com","email_address":"subject601@example.com`},
			connectortest.VendorUserID(`user-600"],"braze_ids":["x`), connectortest.VendorUserID("user-600/../user-601"),
		},
		Resolves: connectortest.ResolvesUserID,
	})
}

func TestResolve(t *testing.T) {
	t.Parallel()
	connectortest.RunResolveCases(t, connectortest.ResolveCases{
		Start: connectortest.StartFake(brazefake.Start),
		New: func(t *testing.T, f connectortest.FaultyVendor) connectors.Resolver {
			return connectortest.Build(t, "braze", "braze", f.Config()).(connectors.Resolver)
		},
		// The pause follows X-RateLimit-Reset, which moves with the clock.
		NobodyEvidence: "lookup=0 user profiles exported by email; ",
	})
}

// start is a fake, with its options, and an instance on it.
func start(t *testing.T, opt brazefake.Options, extra string) (*brazefake.Fake, connectors.Connector) {
	f := brazefake.Start(t, opt)
	return f, connectortest.Build(t, "braze", "braze", fakevendor.MergeYAML(f.Config(), extra))
}

// deletes lists the bodies of the /users/delete requests f received.
func deletes(t *testing.T, f *brazefake.Fake) []map[string][]string {
	var out []map[string][]string
	for _, c := range f.Calls() {
		if c.Path == "/users/delete" {
			var body map[string][]string
			if err := json.Unmarshal(c.Body, &body); err != nil {
				t.Fatal(err)
			}
			out = append(out, body)
		}
	}
	return out
}

// TestDeletionShowsForAWhile: Braze queues the deletion and its exports
// may show the profile for up to five minutes; the job runs until an
// export by braze_id no longer shows it, and fails if it never stops.
func TestDeletionShowsForAWhile(t *testing.T) {
	t.Parallel()
	s := connectortest.VendorSubject(1)
	f, c := start(t, brazefake.Options{Polls: 3}, "")
	f.Seed(s)
	out, err := c.Erase(connectortest.Ctx(t), s)
	if err != nil || out.Status != connectors.StatusRunning || out.PollAfter != 10*time.Millisecond {
		t.Fatalf("Erase = %+v, %v; want running, polled after poll_interval", out, err)
	}
	if ev := connectortest.EvidenceText(out.Evidence); !strings.Contains(ev, "1 user profile looked up by external_id, email queued for deletion by braze_id (acknowledged") {
		t.Errorf("evidence %q must say what was found by and that the deletion was only acknowledged", ev)
	}
	// The profile was queued after Erase's look-ups: the first three polls' exports still show it.
	out, states := connectortest.PollToEnd(t, c, out, 5)
	want := "export=1 of 1 user profiles queued for deletion still exported (Braze documents up to five minutes); "
	if len(states) != 4 || states[0] != want || states[2] != want ||
		states[3] != "export=none of the 1 user profile queued for deletion is exported by braze_id any more; " {
		t.Errorf("poll states %q", states)
	}
	if out.Status != connectors.StatusErased || out.Records != 1 || f.Count(s) != 0 {
		t.Fatalf("after the polls: %+v, %d left", out, f.Count(s))
	}

	f, c = start(t, brazefake.Options{Polls: 100}, "")
	f.Seed(s)
	out, err = c.Erase(connectortest.Ctx(t), s)
	for polls := 0; err == nil && out.Status == connectors.StatusRunning; polls++ {
		if polls > 6 {
			t.Fatal("still running after 7 polls")
		}
		out, err = c.(connectors.Poller).Poll(connectortest.Ctx(t), out.JobRef)
	}
	if !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), "still exports 1 of 1 user profiles 6 polls after") {
		t.Fatalf("a deletion that never shows: %+v, %v; want a permanent error after 6 polls", out, err)
	}
}

// TestBatchesOf50: one person's 120 profiles (an email shared by many)
// are deleted 50 braze_ids a request, one identifier type each.
func TestBatchesOf50(t *testing.T) {
	t.Parallel()
	f, c := start(t, brazefake.Options{Polls: -1}, "")
	for range 120 {
		f.AddProfile(brazefake.Profile{Email: "many@example.com"})
	}
	f.AddProfile(brazefake.Profile{Email: "other@example.com"})
	out, err := connectortest.EraseAndWait(connectortest.Ctx(t), c, connectors.Subject{Email: "many@example.com"}, 5*time.Second)
	if err != nil || out.Status != connectors.StatusErased || out.Records != 120 || f.Held() != 1 {
		t.Fatalf("Erase = %+v, %v; %d held; want 120 erased, the other kept", out, err, f.Held())
	}
	var sizes []int
	for _, body := range deletes(t, f) {
		if len(body) != 1 || body["braze_ids"] == nil {
			t.Errorf("a delete request %v: want braze_ids only", body)
		}
		sizes = append(sizes, len(body["braze_ids"]))
	}
	if len(sizes) != 3 || sizes[0] != 50 || sizes[1] != 50 || sizes[2] != 20 {
		t.Errorf("delete batches %v, want [50 50 20]", sizes)
	}
}

// TestIdentifiers: a profile is found by each identifier alone (phone and
// a configured user alias included), deleted, and an email resolves its
// external_id and alias name.
func TestIdentifiers(t *testing.T) {
	t.Parallel()
	const aliasCfg = "alias_label: amplitude_id\nalias_system: amp\n"
	p := brazefake.Profile{ExternalID: "u-1", Email: "ann@example.com", Phone: "+447700900123", AliasName: "amp-1", AliasLabel: "amplitude_id"}
	for _, tc := range []struct {
		name string
		s    connectors.Subject
	}{
		{"email", connectors.Subject{Email: "ANN@example.com"}},
		{"phone", connectors.Subject{Phone: "+447700900123"}},
		{"external_id", connectortest.VendorUserID("u-1")},
		{"alias", connectors.Subject{UserIDs: map[string]string{"amp": "amp-1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, c := start(t, brazefake.Options{Polls: -1}, aliasCfg)
			f.AddProfile(p)
			f.AddProfile(brazefake.Profile{ExternalID: "u-2", Email: "bob@example.com", AliasName: "amp-1", AliasLabel: "other"})
			out, err := connectortest.EraseAndWait(connectortest.Ctx(t), c, tc.s, 5*time.Second)
			if err != nil || out.Status != connectors.StatusErased || out.Records != 1 || f.Held() != 1 {
				t.Fatalf("Erase = %+v, %v; %d held; want 1 erased, Bob kept", out, err, f.Held())
			}
		})
	}
	f, c := start(t, brazefake.Options{}, aliasCfg)
	f.AddProfile(p)
	// A second profile of the email: its alias under another label is not the configured one.
	f.AddProfile(brazefake.Profile{ExternalID: "u-3", Email: "ann@example.com", AliasName: "amp-9", AliasLabel: "other"})
	connectortest.Resolves(t, c.(connectors.Resolver), connectors.Subject{Email: "ann@example.com"},
		map[connectors.Kind]string{"user_ids.app": "[u-1 u-3]", "user_ids.amp": "[amp-1]"}, "lookup=2 user profiles exported by email; ")
	connectortest.RefusedUnsent(t, c, connectors.Subject{UserIDs: map[string]string{"crm": "x"}}, "none of the identifiers", f.Requests)
}

// TestDeleteCountedShort: a profile found but not counted as queued
// (another deletion removed it meanwhile) is left to the exports to judge.
func TestDeleteCountedShort(t *testing.T) {
	t.Parallel()
	s := connectortest.VendorSubject(4)
	f, c := start(t, brazefake.Options{}, "")
	f.Seed(s)
	f.Inject(2, f.PassThrough())
	f.Inject(1, func(w http.ResponseWriter, _ *http.Request) {
		fakevendor.JSON(w, http.StatusOK, map[string]any{"deleted": 0, "message": "success"})
	})
	out, err := c.Erase(connectortest.Ctx(t), s)
	if err != nil || out.Status != connectors.StatusRunning ||
		!strings.Contains(connectortest.EvidenceText(out.Evidence), "delete_count=Braze counted 0 of 1 as queued") {
		t.Fatalf("Erase = %+v, %v; want running, the short count in the evidence", out, err)
	}
	// The delete never reached the fake: the exports keep showing the
	// profile and the job fails rather than pass it as erased.
	for polls := 0; err == nil && out.Status == connectors.StatusRunning; polls++ {
		out, err = c.(connectors.Poller).Poll(connectortest.Ctx(t), out.JobRef)
	}
	if !connectortest.IsPermanent(err) || f.Count(s) != 1 {
		t.Fatalf("polls = %+v, %v; want a permanent error, the profile held", out, err)
	}
}

func TestPollRefusesForeignRefs(t *testing.T) {
	t.Parallel()
	f := brazefake.Start(t, brazefake.Options{})
	c := connectortest.Build(t, "braze", "braze", f.Config()).(connectors.Poller)
	for _, ref := range []string{"", "{}", `{"queued":1}`, `{"queued":1,"left":[""]}`, `{"queued":1,"left":["a","b"]}`,
		`{"queued":"x"}`, `{"Forgotten":2}`} {
		if _, err := c.Poll(connectortest.Ctx(t), ref); !connectortest.IsPermanent(err) {
			t.Errorf("Poll(%q) = %v, want a permanent error", ref, err)
		}
	}
	if n := f.Requests(); n != 0 {
		t.Errorf("%d requests sent for refused references", n)
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	connectortest.RunPlanCases(t, "braze", connectortest.PlanCases{
		{Name: "default", Instance: "crm", YAML: "api_key: {env: NEVER_SET}\nbase_url: https://rest.iad-01.braze.com\n",
			Keys: "[email|phone|user_ids.crm]", Uses: "[email phone user_ids.crm]", ResolveBy: "[email]", Gives: "[user_ids.crm]"},
		{Name: "alias", Instance: "crm", YAML: "api_key: k\nbase_url: https://rest.iad-01.braze.com\nuser_id_system: app\nalias_label: amplitude_id\nalias_system: amp\n",
			Keys: "[email|phone|user_ids.app|user_ids.amp]", Uses: "[email phone user_ids.amp user_ids.app]", ResolveBy: "[email]", Gives: "[user_ids.amp user_ids.app]"},
	})
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	const base = "api_key: k\nbase_url: https://rest.fra-01.braze.eu\n"
	connectortest.RunVendorConfigCases(t, "braze", base, "user_id_system", "poll_interval")
	connectortest.RunConfigCases(t, "braze", nil, nil, connectortest.ConfigCases{
		{"no api key", "base_url: https://rest.iad-01.braze.com\n", "api_key: required"},
		{"no base_url", "api_key: k\n", "base_url: required: the API's address, such as https://rest.iad-01.braze.com"},
		{"plain http", "api_key: k\nbase_url: http://rest.iad-01.braze.com\n", "base_url: must use https"},
		{"base_url not a URL", "api_key: k\nbase_url: ftp://rest.iad-01.braze.com\n", "base_url: must be an http(s) URL"},
		{"base_url with a query", "api_key: k\nbase_url: https://rest.iad-01.braze.com/?a=b\n", "base_url: must not carry"},
		{"alias label alone", base + "alias_label: amplitude_id\n", "alias_label: set alias_label and alias_system together"},
		{"alias system alone", base + "alias_system: amp\n", "alias_label: set alias_label and alias_system together"},
		{"alias system = user_id_system", base + "user_id_system: app\nalias_label: l\nalias_system: app\n", "alias_system: must differ"},
		{"bad alias system", base + "alias_label: l\nalias_system: Amp X\n", "alias_system: must be lower-case"},
		{"ok with alias", base + "user_id_system: app\nalias_label: amplitude_id\nalias_system: amp\npoll_interval: 1m\n", ""},
	})
}

// TestAliasSystemNotTheDefaultUserIDSystem: an alias_system equal to the
// instance name, where user_id_system defaults, would make the external
// id and the alias one kind; the instance refuses to start.
func TestAliasSystemNotTheDefaultUserIDSystem(t *testing.T) {
	t.Parallel()
	_, err := connectortest.TryBuild("braze", "crm", "api_key: k\nbase_url: https://rest.iad-01.braze.com\nalias_label: crm_id\nalias_system: crm\n")
	if err == nil || !strings.Contains(err.Error(), "alias_system: must differ from user_id_system") {
		t.Fatalf("build = %v, want the alias_system refused", err)
	}
	if _, err := connectortest.TryBuild("braze", "marketing", "api_key: k\nbase_url: https://rest.iad-01.braze.com\nalias_label: crm_id\nalias_system: crm\n"); err != nil {
		t.Fatalf("a distinct alias_system: %v", err)
	}
}
