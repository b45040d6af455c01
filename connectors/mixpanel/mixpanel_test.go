package mixpanel

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
	"github.com/lethe-dev/lethe/connectors/mixpanel/mixpanelfake"
)

// instance is an instance named connectortest.UserIDSystem against f,
// reading distinct_ids under its name (the connector's default), without
// the email look-up, with extra lines set: connectortest.VendorSubject is
// one of its subjects.
func instance(t *testing.T, f *mixpanelfake.Fake, extra ...string) connectors.Connector {
	t.Helper()
	return resolvingInstance(t, f, append([]string{"resolve_by_email:", "query_api:"}, extra...)...)
}

// resolvingInstance is instance with the email look-up.
func resolvingInstance(t *testing.T, f *mixpanelfake.Fake, extra ...string) connectors.Connector {
	t.Helper()
	return connectortest.Build(t, "mixpanel", connectortest.UserIDSystem, f.ConfigWith(append([]string{"user_id_system:"}, extra...)...))
}

// TestVendor runs the conformance suite and the vendor cases against the
// fake.
func TestVendor(t *testing.T) {
	t.Parallel()
	connectortest.RunVendor(t, connectortest.VendorSuite{
		VendorCases: connectortest.VendorCases{
			Type:  "mixpanel",
			Start: connectortest.StartFake(mixpanelfake.Start),
			// Mixpanel's 429 names no delay; the GDPR API allows one a second.
			TooMany: mixpanelfake.TooMany, MinRetryAfter: time.Second, MaxRetryAfter: time.Second,
			Refused: mixpanelfake.Refused, Credential: "token", Secrets: []string{mixpanelfake.DefaultToken, mixpanelfake.DefaultProjectToken},
		},
		Misconfigured: "base_url: {url}/api/2.0",
		Hostile: []connectors.Subject{
			connectortest.VendorUserID("user-60%"), connectortest.VendorUserID("*"), connectortest.VendorUserID("../t-0001"), connectortest.VendorUserID("user-600?token=x"),
			connectortest.VendorUserID("user-600' OR '1'='1"), connectortest.VendorUserID("user-600\",\"user-601"),
		},
		// It resolves: the Query API finds the distinct_id by email.
		Resolves: connectortest.ResolvesUserID,
	})
}

func TestConformanceByEmail(t *testing.T) {
	f := mixpanelfake.Start(t, mixpanelfake.Options{})
	connectortest.Run(t, connectortest.Harness{
		New: func(t *testing.T) connectors.Connector {
			return instance(t, f, "identify_by: email")
		},
		Seed:               func(t *testing.T, s connectors.Subject) int64 { f.AddUser(s.Email); return 1 },
		Count:              func(t *testing.T, s connectors.Subject) int64 { return f.CountUser(s.Email) },
		NoRecoverableState: f.NoRecoverableState(),
	})
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	connectortest.RunVendorConfigCases(t, "mixpanel", "project_token: p\ntoken: t\n", "base_url", "user_id_system", "poll_interval")
	connectortest.RunConfigCases(t, "mixpanel", nil, nil, connectortest.ConfigCases{
		{"no tokens", "base_url: https://mixpanel.com\n", "project_token: required"},
		{"no gdpr token", "project_token: p\n", "token: required"},
		{"bad compliance", "project_token: p\ntoken: t\ncompliance_type: LGPD\n", "compliance_type:"},
		{"bad identify_by", "project_token: p\ntoken: t\nidentify_by: phone\n", "identify_by:"},
		{"system with email", "project_token: p\ntoken: t\nidentify_by: email\nuser_id_system: app\n", "user_id_system: not used"},
		{"token from empty env", "project_token: p\ntoken: {env: LETHE_TEST_UNSET_MIXPANEL}\n", "token: environment variable LETHE_TEST_UNSET_MIXPANEL"},
		{"resolve without query api", "project_token: p\ntoken: t\nresolve_by_email: true\n", "resolve_by_email: needs query_api"},
		{"resolve with identify by email", "project_token: p\ntoken: t\nidentify_by: email\nresolve_by_email: true\nquery_api:\n  project_id: 1\n  username: u\n  secret: s\n", "resolve_by_email: not used with identify_by: email"},
		{"query api unused", "project_token: p\ntoken: t\nquery_api:\n  project_id: 1\n  username: u\n  secret: s\n", "query_api: only used with resolve_by_email"},
		{"query api without project", "project_token: p\ntoken: t\nresolve_by_email: true\nquery_api:\n  username: u\n  secret: s\n", "query_api.project_id: required"},
		{"query api project not a number", "project_token: p\ntoken: t\nresolve_by_email: true\nquery_api:\n  project_id: abc\n  username: u\n  secret: s\n", "abc"},
		{"query api without username", "project_token: p\ntoken: t\nresolve_by_email: true\nquery_api:\n  project_id: 1\n  secret: s\n", "query_api.username: required"},
		{"query api username with colon", "project_token: p\ntoken: t\nresolve_by_email: true\nquery_api:\n  project_id: 1\n  username: a:b\n  secret: s\n", "query_api.username"},
		{"query api without secret", "project_token: p\ntoken: t\nresolve_by_email: true\nquery_api:\n  project_id: 1\n  username: u\n", "query_api.secret: required"},
		{"query api negative workspace", "project_token: p\ntoken: t\nresolve_by_email: true\nquery_api:\n  project_id: 1\n  workspace_id: -2\n  username: u\n  secret: s\n", "query_api.workspace_id"},
		{"query api secret from empty env", "project_token: p\ntoken: t\nresolve_by_email: true\nquery_api:\n  project_id: 1\n  username: u\n  secret: {env: LETHE_TEST_UNSET_MP_SA}\n", "query_api.secret: environment variable LETHE_TEST_UNSET_MP_SA"},
	})
	t.Run("defaults", func(t *testing.T) {
		cfg := connectortest.Validated[Config](t, "project_token: p\ntoken: t\n")
		if cfg.BaseURL != defaultBaseURL || cfg.ComplianceType != "GDPR" || cfg.IdentifyBy != "user_id" || cfg.PollInterval != 12*time.Hour {
			t.Errorf("defaults = %+v", cfg)
		}
	})
}

func TestTaskPolledToCompletion(t *testing.T) {
	t.Parallel()
	for _, list := range []bool{false, true} {
		t.Run(fmt.Sprintf("list answer %v", list), func(t *testing.T) {
			t.Parallel()
			f := mixpanelfake.Start(t, mixpanelfake.Options{})
			if list {
				f.AnswerCreateAsList()
			}
			f.AddUser("user-1")
			c := instance(t, f, "poll_interval: 3h")
			ctx := connectortest.Ctx(t)
			out, err := c.Erase(ctx, connectortest.VendorSubject(1))
			if err != nil {
				t.Fatal(err)
			}
			if out.Status != connectors.StatusRunning || out.PollAfter != 3*time.Hour || out.JobRef != `{"task":"t-0001"}` {
				t.Fatalf("Erase = %q %q after %v", out.Status, out.JobRef, out.PollAfter)
			}
			if got := connectortest.EvidenceText(out.Evidence); got != "mixpanel_task=t-0001: created (GDPR); " {
				t.Errorf("evidence = %s", got)
			}
			out, states := connectortest.PollToEnd(t, c, out, 10)
			want := "mixpanel_task=t-0001: PENDING; |mixpanel_task=t-0001: STAGING; |mixpanel_task=t-0001: STARTED; |mixpanel_task=t-0001: SUCCESS; "
			if strings.Join(states, "|") != want {
				t.Errorf("states = %s", strings.Join(states, "|"))
			}
			if out.Status != connectors.StatusErased || !out.Uncounted || out.Records != 0 || f.CountUser("user-1") != 0 {
				t.Errorf("final = %q %d (uncounted %v), %d left; want erased, uncounted: Mixpanel reports no count", out.Status, out.Records, out.Uncounted, f.CountUser("user-1"))
			}
		})
	}
}

// The plan makes the runtime wait for the distinct_id; a subject without
// it is refused, never "not found": nothing was searched.
func TestSubjectWithoutDistinctIDIsRefused(t *testing.T) {
	t.Parallel()
	f := mixpanelfake.Start(t, mixpanelfake.Options{})
	for _, tc := range []struct {
		extra string
		s     connectors.Subject
		why   string
	}{
		{"", connectors.Subject{Email: "a@example.com"}, "no user id for app"},
		{"identify_by: email", connectortest.VendorUserID("1"), "no email"},
	} {
		out, err := instance(t, f, tc.extra).Erase(connectortest.Ctx(t), tc.s)
		if err == nil || !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("Erase = %q, %v; want a permanent error saying %q", out.Status, err, tc.why)
		}
	}
	if n := len(f.Calls()); n != 0 {
		t.Errorf("%d calls to Mixpanel", n)
	}
}

func TestFailedTasks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		final     string
		permanent bool
		want      string
	}{
		{"FAILURE", false, "t-0001 FAILURE"},
		{"REVOKED", true, "t-0001 was REVOKED"},
		{"UNKNOWN", false, `status "UNKNOWN"`},
	} {
		t.Run(tc.final, func(t *testing.T) {
			t.Parallel()
			f := mixpanelfake.Start(t, mixpanelfake.Options{})
			f.EndTasksAs(tc.final)
			f.AddUser("user-2")
			c := instance(t, f)
			out, err := connectortest.EraseAndWait(connectortest.Ctx(t), c, connectortest.VendorSubject(2), 5*time.Second)
			if err == nil {
				t.Fatalf("a %s task was reported as %q", tc.final, out.Status)
			}
			if connectortest.IsPermanent(err) != tc.permanent || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v (permanent %v), want %q permanent %v", err, connectortest.IsPermanent(err), tc.want, tc.permanent)
			}
			if got := connectortest.EvidenceText(out.Evidence); got != "mixpanel_task=t-0001: "+tc.final+"; " {
				t.Errorf("evidence = %s", got)
			}
			if strings.Contains(err.Error(), "user-2") {
				t.Errorf("error carries the distinct_id: %v", err)
			}
		})
	}
	t.Run("unknown task", func(t *testing.T) {
		t.Parallel()
		f := mixpanelfake.Start(t, mixpanelfake.Options{})
		_, err := instance(t, f).(connectors.Poller).Poll(connectortest.Ctx(t), `{"task":"t-9999"}`)
		if err == nil || !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), "t-9999 not found") {
			t.Errorf("Poll = %v", err)
		}
	})
}

func TestMalformedAnswersAreRetryable(t *testing.T) {
	t.Parallel()
	f := mixpanelfake.Start(t, mixpanelfake.Options{})
	c := instance(t, f)
	ctx := connectortest.Ctx(t)
	// A body that is not JSON at all is a vendor case (TestVendor/cases).
	for name, fault := range map[string]fakevendor.Fault{
		"no task id": func(w http.ResponseWriter, r *http.Request) {
			fakevendor.JSON(w, 201, map[string]any{"status": "ok", "results": map[string]any{}})
		},
		"empty list": func(w http.ResponseWriter, r *http.Request) {
			fakevendor.JSON(w, 200, map[string]any{"status": "ok", "results": []any{}})
		},
	} {
		f.Inject(1, fault)
		if _, err := c.Erase(ctx, connectortest.VendorSubject(3)); err == nil || connectortest.IsPermanent(err) {
			t.Errorf("%s: Erase = %v; want a retryable error", name, err)
		}
	}
	out, err := c.Erase(ctx, connectortest.VendorSubject(3))
	if err != nil {
		t.Fatal(err)
	}
	for name, fault := range map[string]fakevendor.Fault{
		"no status": func(w http.ResponseWriter, r *http.Request) { fakevendor.JSON(w, 200, map[string]any{"status": "ok"}) },
	} {
		f.Inject(1, fault)
		if _, err := c.(connectors.Poller).Poll(ctx, out.JobRef); err == nil || connectortest.IsPermanent(err) {
			t.Errorf("%s: Poll = %v; want a retryable error", name, err)
		}
	}
	if _, err := c.(connectors.Poller).Poll(ctx, "t-0001"); err == nil || !connectortest.IsPermanent(err) {
		t.Errorf("malformed job ref: %v; want a permanent error", err)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	t.Run("one a second", func(t *testing.T) {
		t.Parallel()
		f := mixpanelfake.Start(t, mixpanelfake.Options{RateLimit: 1, Burst: 1})
		c := instance(t, f)
		if _, err := c.Erase(connectortest.Ctx(t), connectortest.VendorSubject(5)); err != nil {
			t.Fatal(err)
		}
		_, err := c.Erase(connectortest.Ctx(t), connectortest.VendorSubject(5))
		if perm, after := connectors.Classify(err); err == nil || perm || after != time.Second {
			t.Fatalf("second call within a second: %v; want a retryable 429 after 1s", err)
		}
		if f.Limited() != 1 {
			t.Errorf("the fake limited %d calls, want 1", f.Limited())
		}
	})
}

func TestTwoInstancesSideBySide(t *testing.T) {
	t.Parallel()
	us, eu := mixpanelfake.Start(t, mixpanelfake.Options{}), mixpanelfake.Start(t, mixpanelfake.Options{})
	eu.SetTokens("proj_eu", "gdpr_eu")
	us.AddUser("user-7")
	eu.AddUser("user-7")
	a := connectortest.Build(t, "mixpanel", "mixpanel-us", us.ConfigWith("resolve_by_email:", "query_api:"))
	b := connectortest.Build(t, "mixpanel", "mixpanel-eu", eu.ConfigWith("resolve_by_email:", "query_api:", "compliance_type: CCPA"))
	if _, err := connectortest.EraseAndWait(connectortest.Ctx(t), a, connectortest.VendorSubject(7), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if us.CountUser("user-7") != 0 || eu.CountUser("user-7") != 1 {
		t.Fatalf("after the US erase: us %d, eu %d", us.CountUser("user-7"), eu.CountUser("user-7"))
	}
	if _, err := connectortest.EraseAndWait(connectortest.Ctx(t), b, connectortest.VendorSubject(7), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if eu.CountUser("user-7") != 0 {
		t.Error("the EU instance did not erase")
	}
	if got := eu.Calls()[0]; got.Query != "token=proj_eu" || got.Header.Get("Authorization") != "Bearer gdpr_eu" || !strings.Contains(string(got.Body), `"CCPA"`) {
		t.Errorf("EU create = ?%s %q %s", got.Query, got.Header.Get("Authorization"), got.Body)
	}
}

func TestRequestsFollowTheContract(t *testing.T) {
	t.Parallel()
	f := mixpanelfake.Start(t, mixpanelfake.Options{})
	f.SetTokens("proj&x=1", mixpanelfake.DefaultToken)
	f.AddUser("user/8")
	c := instance(t, f)
	if out, err := connectortest.EraseAndWait(connectortest.Ctx(t), c, connectortest.VendorUserID("user/8"), 5*time.Second); err != nil || out.Status != connectors.StatusErased {
		t.Fatalf("EraseAndWait = %q, %v", out.Status, err)
	}
	calls := f.Calls()
	create, poll := calls[0], calls[1]
	token := "token=" + url.QueryEscape("proj&x=1")
	if create.Method != http.MethodPost || create.Path != "/api/app/data-deletions/v3.0/" || create.Query != token || create.Status != http.StatusCreated {
		t.Errorf("create = %s %s?%s → %d", create.Method, create.Path, create.Query, create.Status)
	}
	if create.Header.Get("Authorization") != "Bearer gdpr_token" || create.Header.Get("Content-Type") != "application/json" {
		t.Errorf("create headers = %v", create.Header)
	}
	var body map[string]any
	if err := json.Unmarshal(create.Body, &body); err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"distinct_ids": []any{"user/8"}, "compliance_type": "GDPR"}; fmt.Sprint(body) != fmt.Sprint(want) {
		t.Errorf("body = %v, want %v", body, want)
	}
	if poll.Method != http.MethodGet || poll.Path != "/api/app/data-deletions/v3.0/t-0001" || poll.Query != token || poll.Header.Get("Authorization") != "Bearer gdpr_token" {
		t.Errorf("poll = %s %s?%s", poll.Method, poll.Path, poll.Query)
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	// Plans are read without building the connector: the secrets'
	// variables are unset and never read.
	const base = "project_token: {env: MP_NEVER_READ}\ntoken: {env: MP_NEVER_READ}\n"
	const query = "resolve_by_email: true\nquery_api:\n  project_id: 1\n  username: u\n  secret: {env: MP_SA_NEVER_READ}\n"
	connectortest.RunPlanCases(t, "mixpanel", connectortest.PlanCases{
		{Name: "distinct_id under the instance name", Instance: "mixpanel-eu", YAML: base, Keys: "[user_ids.mixpanel-eu]", Uses: "[user_ids.mixpanel-eu]"},
		{Name: "user_id_system", Instance: "mixpanel", YAML: base + "user_id_system: app\n", Keys: "[user_ids.app]", Uses: "[user_ids.app]"},
		{Name: "identify by email", Instance: "mixpanel", YAML: base + "identify_by: email\n", Keys: "[email]", Uses: "[email]"},
		{Name: "resolve by email", Instance: "mixpanel", YAML: base + "user_id_system: app\n" + query,
			Keys: "[user_ids.app]", Uses: "[user_ids.app]", ResolveBy: "[email]", Gives: "[user_ids.app]"},
	})
	f := mixpanelfake.Start(t, mixpanelfake.Options{})
	if _, ok := instance(t, f).(connectors.Resolver); ok {
		t.Error("an instance without resolve_by_email is a Resolver")
	}
	c, ok := resolvingInstance(t, f).(connectors.Resolver)
	if !ok {
		t.Fatal("an instance with resolve_by_email is not a Resolver")
	}
	if _, ok := c.(connectors.Poller); !ok {
		t.Error("a resolving instance does not poll")
	}
}

func TestResolveByEmail(t *testing.T) {
	t.Parallel()
	kind := connectors.UserIDKind(connectortest.UserIDSystem)
	t.Run("every profile holding the email, over pages", func(t *testing.T) {
		t.Parallel()
		f := mixpanelfake.Start(t, mixpanelfake.Options{})
		f.SetPageSize(2)
		for _, id := range []string{"d-1", "d-2", "d-3", "d-4", "d-5"} {
			f.AddUser(id)
			f.SetEmail(id, "ann@example.com")
		}
		f.AddUser("d-6")
		f.SetEmail("d-6", "Ann@example.com") // Mixpanel compares exactly
		f.AddUser("d-7")
		f.SetEmail("d-7", "bob@example.com")
		c := resolvingInstance(t, f, "query_api:\n  project_id: 4242\n  workspace_id: 77\n  username: "+
			mixpanelfake.ServiceAccount+"\n  secret: "+mixpanelfake.ServiceSecret).(connectors.Resolver)
		connectortest.Resolves(t, c, connectors.Subject{Email: "ann@example.com"},
			map[connectors.Kind]string{kind: "[d-1 d-2 d-3 d-4 d-5]"}, "mixpanel_lookup=5 profiles found by email; ")
		calls := f.Calls()
		if len(calls) != 3 {
			t.Fatalf("%d queries, want 3 pages", len(calls))
		}
		first := calls[0]
		if first.Method != http.MethodPost || first.Path != "/api/query/engage" || first.Query != "project_id=4242&workspace_id=77" {
			t.Errorf("query = %s %s?%s", first.Method, first.Path, first.Query)
		}
		if u, p, ok := (&http.Request{Header: first.Header}).BasicAuth(); !ok || u != mixpanelfake.ServiceAccount || p != mixpanelfake.ServiceSecret {
			t.Errorf("auth = %q %q %v", u, p, ok)
		}
		if ct := first.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
			t.Errorf("Content-Type = %q", ct)
		}
		form, _ := url.ParseQuery(string(first.Body))
		if w := form.Get("where"); w != `properties["$email"] == "ann@example.com"` || form.Get("output_properties") != `["$email"]` || form.Has("page") {
			t.Errorf("form = %v", form)
		}
		for i, call := range calls[1:] {
			form, _ := url.ParseQuery(string(call.Body))
			if form.Get("page") != fmt.Sprint(i+1) || form.Get("session_id") != "sess-ann@example.com" {
				t.Errorf("page %d asked for with %v", i+1, form)
			}
		}
	})
	t.Run("numeric distinct_ids and profiles with another email", func(t *testing.T) {
		t.Parallel()
		f := mixpanelfake.Start(t, mixpanelfake.Options{})
		c := resolvingInstance(t, f).(connectors.Resolver)
		f.Inject(1, func(w http.ResponseWriter, r *http.Request) {
			fakevendor.JSON(w, http.StatusOK, map[string]any{"page": 0, "page_size": 1000, "session_id": "s", "status": "ok", "total": 3,
				"results": []map[string]any{
					{"$distinct_id": 4, "$properties": map[string]any{"$email": "ann@example.com"}},
					{"$distinct_id": "x-9", "$properties": map[string]any{"$email": "someone-else@example.com"}},
					{"$distinct_id": "x-10", "$properties": map[string]any{}},
				}})
		})
		connectortest.Resolves(t, c, connectors.Subject{Email: "ann@example.com"},
			map[connectors.Kind]string{kind: "[4]"}, "mixpanel_lookup=1 profile found by email; 2 profiles with another email ignored; ")
	})
}

// TestResolveCases runs the look-up cases every resolver runs.
func TestResolveCases(t *testing.T) {
	t.Parallel()
	connectortest.RunResolveCases(t, connectortest.ResolveCases{
		Start: connectortest.StartFake(mixpanelfake.Start),
		New: func(t *testing.T, f connectortest.FaultyVendor) connectors.Resolver {
			return resolvingInstance(t, f.(*mixpanelfake.Fake)).(connectors.Resolver)
		},
		// The Query API allows 60 queries an hour: a 429 naming no delay waits a minute.
		TooMany: mixpanelfake.TooMany, TooManyAfter: time.Minute,
		Faults: []connectortest.ResolveFault{{Name: "status not ok", Fault: func(w http.ResponseWriter, r *http.Request) {
			fakevendor.JSON(w, http.StatusOK, map[string]any{"status": "error", "results": []any{}})
		}}},
		NobodyEvidence: "mixpanel_lookup=0 profiles found by email; ",
		// Quotes and backslashes would escape the where expression.
		Unsent: []string{
			`x" or properties["$email"] != "@example.com`, `subject600@example.com" or "1" == "1`,
			`subject600@example.com\`, `\"@example.com`, "subject600@example.com\n", "subject600@example.com\x00",
		},
	})
}

func TestResolveCredentials(t *testing.T) {
	t.Parallel()
	s := connectors.Subject{Email: "ann@example.com"}
	// A rotated secret, and a project the account cannot see.
	f := mixpanelfake.Start(t, mixpanelfake.Options{})
	c := resolvingInstance(t, f).(connectors.Resolver)
	other := resolvingInstance(t, f, "query_api:\n  project_id: 99\n  username: "+
		mixpanelfake.ServiceAccount+"\n  secret: "+mixpanelfake.ServiceSecret).(connectors.Resolver)
	if _, err := other.Resolve(connectortest.Ctx(t), s); err == nil || !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), "403") {
		t.Errorf("Resolve in a project the account cannot see = %v; want a permanent 403", err)
	}
	f.SetServiceSecret("rotated")
	if _, err := c.Resolve(connectortest.Ctx(t), s); err == nil || !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), "401") {
		t.Errorf("Resolve with a refused secret = %v; want a permanent 401", err)
	}
}
