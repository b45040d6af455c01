package mixpanel

import (
	"encoding/json"
	"fmt"
	"io"
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
			MinRetryAfter: time.Second, MaxRetryAfter: time.Second, Credential: "token",
			// An answer refusing the create fails the whole call,
			// classified as a single create is, so the runtime can split it.
			BatchAnswers: []connectortest.VendorAnswer{
				{Name: "400", Fault: func(w http.ResponseWriter, r *http.Request) {
					// Mixpanel names the ids it refuses: none may be quoted.
					body, _ := io.ReadAll(r.Body)
					fakevendor.JSON(w, http.StatusBadRequest, map[string]string{"status": "error", "error": "invalid distinct_ids: " + string(body)})
				}, Permanent: true, Says: "400"},
				{Name: "401", Fault: mixpanelfake.Refused, Permanent: true, Says: "token"},
				{Name: "503", Fault: fakevendor.Status(http.StatusServiceUnavailable), Says: "503"},
				{Name: "500", Fault: fakevendor.Status(http.StatusInternalServerError), Says: "500"},
				{Name: "429", Fault: mixpanelfake.TooMany, After: time.Second, AfterMax: time.Second, Says: "429"},
				{Name: "task of fewer ids than sent", Fault: func(w http.ResponseWriter, r *http.Request) {
					fakevendor.JSON(w, http.StatusOK, map[string]any{"status": "ok", "results": []map[string]any{{"tracking_id": "t-7", "status": "PENDING", "distinct_id_count": 2}}})
				}, Permanent: true, Says: "holds 2 of the 3"},
			},
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
		CannotTellAbsent:   f.CannotTellAbsent(),
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
		{"batch of one", "project_token: p\ntoken: t\nbatch_size: 1\n", "batch_size: must be from 2 to 1999"},
		{"batch past Mixpanel's limit", "project_token: p\ntoken: t\nbatch_size: 2000\n", "batch_size: must be from 2 to 1999"},
		{"negative batch", "project_token: p\ntoken: t\nbatch_size: -5\n", "batch_size:"},
		{"batch for group analytics", "project_token: p\ntoken: t\nbatch_size: 500\n", ""},
	})
	t.Run("defaults", func(t *testing.T) {
		cfg := connectortest.Validated[Config](t, "project_token: p\ntoken: t\n")
		if cfg.BaseURL != defaultBaseURL || cfg.ComplianceType != "GDPR" || cfg.IdentifyBy != "user_id" || cfg.PollInterval != 12*time.Hour || cfg.BatchSize != 1999 {
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

// TestComplianceType: an instance for CCPA asks for CCPA deletions with
// its own tokens. (Two instances side by side, each at its own account,
// are a vendor case.)
func TestComplianceType(t *testing.T) {
	t.Parallel()
	f := mixpanelfake.Start(t, mixpanelfake.Options{})
	f.SetTokens("proj_eu", "gdpr_eu")
	f.AddUser("user-7")
	c := connectortest.Build(t, "mixpanel", "mixpanel-eu", f.ConfigWith("resolve_by_email:", "query_api:", "compliance_type: CCPA"))
	if _, err := connectortest.EraseAndWait(connectortest.Ctx(t), c, connectortest.VendorSubject(7), 5*time.Second); err != nil || f.CountUser("user-7") != 0 {
		t.Fatalf("EraseAndWait: %v, %d left", err, f.CountUser("user-7"))
	}
	if got := f.Calls()[0]; got.Query != "token=proj_eu" || got.Header.Get("Authorization") != "Bearer gdpr_eu" || !strings.Contains(string(got.Body), `"CCPA"`) {
		t.Errorf("create = ?%s %q %s", got.Query, got.Header.Get("Authorization"), got.Body)
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
		TooManyAfter: time.Minute,
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

// batcher is instance as a batch eraser and poller.
func batcher(t *testing.T, f *mixpanelfake.Fake, extra ...string) connectortest.Batcher {
	t.Helper()
	return connectortest.AsBatcher(t, instance(t, f, extra...))
}

// subjects are VendorSubject(from) … VendorSubject(from+n-1), the first
// seeded of them seeded in the fake.
func subjects(f *mixpanelfake.Fake, from, n, seeded int) []connectors.Subject {
	ss := connectortest.Subjects(from, n)
	connectortest.SeedAll(f, ss[:seeded])
	return ss
}

// callsTo counts the calls of method to the fake's deletion API.
func callsTo(f *mixpanelfake.Fake, method string) int {
	return len(connectortest.CallsTo(f, method, "/api/app/data-deletions/v3.0/"))
}

// pollAll polls refs together until none runs, checking each round asks
// Mixpanel once a task (tasks of them), and returns the last items.
func pollAll(t *testing.T, c connectors.BatchPoller, f *mixpanelfake.Fake, refs []string, tasks int) []connectors.Item {
	t.Helper()
	for round := 0; round < 10; round++ {
		before := callsTo(f, http.MethodGet)
		items, err := c.PollBatch(connectortest.Ctx(t), refs)
		if err != nil {
			t.Fatalf("PollBatch: %v", err)
		}
		if len(items) != len(refs) {
			t.Fatalf("PollBatch answered %d items for %d refs", len(items), len(refs))
		}
		if got := callsTo(f, http.MethodGet) - before; got != tasks {
			t.Fatalf("round %d: %d status calls for %d refs of %d tasks", round, got, len(refs), tasks)
		}
		running := false
		for i, it := range items {
			if it.Err == nil && it.Outcome.Status == connectors.StatusRunning {
				running = true
				refs[i] = it.Outcome.JobRef
			}
		}
		if !running {
			return items
		}
	}
	t.Fatal("still running after 10 rounds")
	return nil
}

// TestBatchCalls: one deletion task for up to batch_size subjects, one
// status call a task each round, and no call at all past the limit.
func TestBatchCalls(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		n     int
		extra []string
		ref   string // every subject's job ref
	}{
		{"one", 1, nil, `{"task":"t-0001"}`},
		{"two", 2, nil, `{"task":"t-0001","of":2}`},
		{"120", 120, nil, `{"task":"t-0001","of":120}`},
		{"batch_size", 7, []string{"batch_size: 7"}, `{"task":"t-0001","of":7}`},
		{"Mixpanel's limit", 1999, nil, `{"task":"t-0001","of":1999}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := mixpanelfake.Start(t, mixpanelfake.Options{})
			c := batcher(t, f, tc.extra...)
			ss := subjects(f, 1, tc.n, tc.n)
			items, err := c.EraseBatch(connectortest.Ctx(t), ss)
			if err != nil {
				t.Fatal(err)
			}
			if got := callsTo(f, http.MethodPost); got != 1 {
				t.Fatalf("%d subjects cost %d create calls, want 1", tc.n, got)
			}
			var want []string
			for _, s := range ss {
				want = append(want, s.UserIDs[connectortest.UserIDSystem])
			}
			if got := f.TaskIDs(); len(got) != 1 || fmt.Sprint(got[0]) != fmt.Sprint(want) {
				t.Fatalf("tasks filed: %d, the first for %d distinct_ids; want one for all %d in order", len(got), len(got[0]), tc.n)
			}
			refs := connectortest.RunningRefs(t, items)
			for i, ref := range refs {
				if ref != tc.ref {
					t.Fatalf("subject %d: job ref %s, want %s", i, ref, tc.ref)
				}
			}
			for i, it := range pollAll(t, c, f, refs, 1) {
				if it.Err != nil || it.Outcome.Status != connectors.StatusErased || !it.Outcome.Uncounted || it.Outcome.Records != 0 {
					t.Fatalf("subject %d: %q (%d, uncounted %v), %v; want erased, uncounted", i, it.Outcome.Status, it.Outcome.Records, it.Outcome.Uncounted, it.Err)
				}
				if n := f.Count(ss[i]); n != 0 {
					t.Fatalf("subject %d: %d records left", i, n)
				}
			}
		})
	}
	t.Run("a distinct_id twice is sent once", func(t *testing.T) {
		t.Parallel()
		f := mixpanelfake.Start(t, mixpanelfake.Options{})
		ss := subjects(f, 1, 2, 2)
		ss = append(ss, connectors.Subject{Email: "other@example.com", UserIDs: ss[0].UserIDs})
		items, err := batcher(t, f).EraseBatch(connectortest.Ctx(t), ss)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.TaskIDs(); len(got) != 1 || fmt.Sprint(got[0]) != "[user-1 user-2]" {
			t.Errorf("tasks filed for %v, want one for [user-1 user-2]", got)
		}
		for i, ref := range connectortest.RunningRefs(t, items) {
			if ref != `{"task":"t-0001","of":2}` {
				t.Errorf("subject %d: job ref %s", i, ref)
			}
		}
	})
	// The runtime never gives more than BatchLimit: more is refused whole
	// (permanently, nothing sent), which the runtime answers by halving.
	for _, tc := range []struct {
		name  string
		n     int
		extra []string
		limit int
	}{
		{"past batch_size", 4, []string{"batch_size: 3"}, 3},
		{"past Mixpanel's limit", 2000, nil, 1999},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := mixpanelfake.Start(t, mixpanelfake.Options{})
			c := batcher(t, f, tc.extra...)
			if c.BatchLimit() != tc.limit {
				t.Errorf("BatchLimit() = %d, want %d", c.BatchLimit(), tc.limit)
			}
			ss := subjects(f, 1, tc.n, tc.n)
			items, err := c.EraseBatch(connectortest.Ctx(t), ss)
			if err == nil || !connectortest.IsPermanent(err) || items != nil {
				t.Fatalf("EraseBatch of %d = %d items, %v; want a permanent error", tc.n, len(items), err)
			}
			if n := len(f.Calls()); n != 0 {
				t.Errorf("%d calls to Mixpanel for a batch past the limit", n)
			}
		})
	}
}

// TestBatchGroupAnalytics: a project with group keys takes fewer
// distinct_ids a task; batch_size follows, else Mixpanel's 400 refuses
// the whole call.
func TestBatchGroupAnalytics(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		extra     []string
		n         int
		permanent bool
	}{
		{"batch_size for three group keys", []string{"batch_size: 500"}, 500, false},
		{"default batch_size", nil, 501, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := mixpanelfake.Start(t, mixpanelfake.Options{})
			f.SetGroupKeys(3) // floor(2000 / 4) = 500 distinct_ids a task
			ss := subjects(f, 1, tc.n, tc.n)
			items, err := batcher(t, f, tc.extra...).EraseBatch(connectortest.Ctx(t), ss)
			if !tc.permanent {
				if err != nil {
					t.Fatal(err)
				}
				connectortest.RunningRefs(t, items)
				return
			}
			if err == nil || !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), "400") {
				t.Fatalf("EraseBatch of %d past the project's limit = %v; want Mixpanel's 400, permanent", tc.n, err)
			}
			if strings.Contains(err.Error(), "user-") {
				t.Errorf("error carries distinct_ids: %v", err)
			}
		})
	}
}

// TestBatchAttribution: Mixpanel's status is the task's, so it is each
// subject's: erased (uncounted) for all once any id held data, not found
// only when the task says so for all, a subject without a distinct_id
// failing alone.
func TestBatchAttribution(t *testing.T) {
	t.Parallel()
	const (
		erased = "erased"

		refused = "permanent"
	)
	for _, tc := range []struct {
		name     string
		subjects []connectors.Subject
		seeded   []bool
		want     []string
		evidence string // of the first subject at the end
		calls    int
	}{
		{
			name:     "Mixpanel knows some of the ids",
			subjects: []connectors.Subject{connectortest.VendorSubject(1), connectortest.VendorSubject(2), connectortest.VendorSubject(3)},
			seeded:   []bool{true, false, true},
			// Mixpanel does not say which ids it held: none is not_found.
			want:     []string{erased, erased, erased},
			evidence: "mixpanel_task=t-0001: SUCCESS (task of 3 distinct_ids); ",
			calls:    1 + 4,
		},
		{
			name:     "Mixpanel knows none of the ids",
			subjects: []connectors.Subject{connectortest.VendorSubject(1), connectortest.VendorSubject(2)},
			seeded:   []bool{false, false},
			// It says the task succeeded, not that it held nobody: no
			// search happened, so nobody is not_found.
			want:     []string{erased, erased},
			evidence: "mixpanel_task=t-0001: SUCCESS (task of 2 distinct_ids); ",
			calls:    1 + 4,
		},
		{
			name:     "a subject without a distinct_id",
			subjects: []connectors.Subject{connectortest.VendorSubject(1), {Email: "a@example.com"}, connectortest.VendorSubject(2)},
			seeded:   []bool{true, false, true},
			want:     []string{erased, refused, erased},
			evidence: "mixpanel_task=t-0001: SUCCESS (task of 2 distinct_ids); ",
			calls:    1 + 4,
		},
		{
			name:     "no subject with a distinct_id",
			subjects: []connectors.Subject{{Email: "a@example.com"}, {}},
			seeded:   []bool{false, false},
			want:     []string{refused, refused},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := mixpanelfake.Start(t, mixpanelfake.Options{})
			for i, s := range tc.subjects {
				if tc.seeded[i] {
					f.Seed(s)
				}
			}
			items, err := connectortest.EraseBatchAndWait(connectortest.Ctx(t), batcher(t, f), tc.subjects, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			for i, it := range items {
				got := string(it.Outcome.Status)
				if it.Err != nil {
					got = "retryable"
					if connectortest.IsPermanent(it.Err) {
						got = refused
					}
				}
				if got != tc.want[i] {
					t.Errorf("subject %d: %s (%v), want %s", i, got, it.Err, tc.want[i])
				}
				if got == erased && (!it.Outcome.Uncounted || it.Outcome.Records != 0) {
					t.Errorf("subject %d: erased with %d records (uncounted %v): Mixpanel counts nothing", i, it.Outcome.Records, it.Outcome.Uncounted)
				}
			}
			if tc.evidence != "" {
				if got := connectortest.EvidenceText(items[0].Outcome.Evidence); got != tc.evidence {
					t.Errorf("evidence = %s, want %s", got, tc.evidence)
				}
			}
			if n := len(f.Calls()); n != tc.calls {
				t.Errorf("%d calls to Mixpanel, want %d", n, tc.calls)
			}
		})
	}
}

// TestPollBatch: refs of several tasks, an old single-erase ref among
// them, polled together: one status call a task a round, each ref its
// task's outcome, in order; a malformed ref fails alone; single Poll
// reads batch refs.
func TestPollBatch(t *testing.T) {
	t.Parallel()
	f := mixpanelfake.Start(t, mixpanelfake.Options{})
	c := batcher(t, f)
	ctx := connectortest.Ctx(t)
	a, err := c.EraseBatch(ctx, subjects(f, 1, 3, 3)) // t-0001
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.EraseBatch(ctx, subjects(f, 10, 2, 0)) // t-0002, nothing held
	if err != nil {
		t.Fatal(err)
	}
	f.AddUser("user-20")
	old, err := c.Erase(ctx, connectortest.VendorSubject(20)) // t-0003
	if err != nil {
		t.Fatal(err)
	}
	if old.JobRef != `{"task":"t-0003"}` {
		t.Fatalf("single Erase ref = %s, want the ref single erases always made", old.JobRef)
	}
	ra, rb := connectortest.RunningRefs(t, a), connectortest.RunningRefs(t, b)
	refs := []string{ra[0], rb[0], old.JobRef, ra[1], rb[1], ra[2], `{"of":2}`}
	items := pollAll(t, c, f, refs, 3)
	want := []string{
		"erased|mixpanel_task=t-0001: SUCCESS (task of 3 distinct_ids); ",
		"erased|mixpanel_task=t-0002: SUCCESS (task of 2 distinct_ids); ",
		"erased|mixpanel_task=t-0003: SUCCESS; ",
		"erased|mixpanel_task=t-0001: SUCCESS (task of 3 distinct_ids); ",
		"erased|mixpanel_task=t-0002: SUCCESS (task of 2 distinct_ids); ",
		"erased|mixpanel_task=t-0001: SUCCESS (task of 3 distinct_ids); ",
	}
	for i, w := range want {
		if got := string(items[i].Outcome.Status) + "|" + connectortest.EvidenceText(items[i].Outcome.Evidence); got != w || items[i].Err != nil {
			t.Errorf("ref %d: %s (%v), want %s", i, got, items[i].Err, w)
		}
	}
	if err := items[6].Err; err == nil || !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("malformed ref: %q, %v; want a permanent error of its own", items[6].Outcome.Status, err)
	}
	t.Run("single Poll reads a batch ref", func(t *testing.T) {
		f := mixpanelfake.Start(t, mixpanelfake.Options{})
		c := batcher(t, f)
		items, err := c.EraseBatch(connectortest.Ctx(t), subjects(f, 1, 2, 2))
		if err != nil {
			t.Fatal(err)
		}
		out, states := connectortest.PollToEnd(t, c, items[1].Outcome, 10)
		if out.Status != connectors.StatusErased || !out.Uncounted || states[len(states)-1] != "mixpanel_task=t-0001: SUCCESS (task of 2 distinct_ids); " {
			t.Errorf("Poll of a batch ref ended %q after %v", out.Status, states)
		}
	})
	t.Run("old refs", func(t *testing.T) {
		// Refs stored before batches: {"task"} alone, polled together.
		f := mixpanelfake.Start(t, mixpanelfake.Options{})
		f.AddUser("user-1")
		f.AddUser("user-2")
		c := batcher(t, f)
		var refs []string
		for i := 1; i <= 2; i++ {
			out, err := c.Erase(connectortest.Ctx(t), connectortest.VendorSubject(i))
			if err != nil {
				t.Fatal(err)
			}
			refs = append(refs, out.JobRef)
		}
		if fmt.Sprint(refs) != `[{"task":"t-0001"} {"task":"t-0002"}]` {
			t.Fatalf("refs = %v", refs)
		}
		for i, it := range pollAll(t, c, f, refs, 2) {
			if it.Err != nil || it.Outcome.Status != connectors.StatusErased {
				t.Errorf("old ref %d: %q, %v", i, it.Outcome.Status, it.Err)
			}
		}
	})
}

// TestPollBatchFailures: a task ending badly fails each of its refs,
// classified as for one; a task gone or unreadable fails its refs alone;
// a call Mixpanel does not answer fails the whole PollBatch.
func TestPollBatchFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		final     string
		permanent bool
		want      string
	}{
		{"FAILURE", false, "t-0001 FAILURE"},
		{"REVOKED", true, "t-0001 was REVOKED"},
		{"UNKNOWN", false, `status "UNKNOWN"`},
		// "The deletion task cannot be found": never the people not found.
		{"NOT_FOUND", false, "cannot find deletion task t-0001"},
	} {
		t.Run(tc.final, func(t *testing.T) {
			t.Parallel()
			f := mixpanelfake.Start(t, mixpanelfake.Options{})
			f.EndTasksAs(tc.final)
			items, err := connectortest.EraseBatchAndWait(connectortest.Ctx(t), batcher(t, f), subjects(f, 1, 3, 3), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			for i, it := range items {
				if it.Err == nil || connectortest.IsPermanent(it.Err) != tc.permanent || !strings.Contains(it.Err.Error(), tc.want) {
					t.Errorf("subject %d: %q, %v; want %q, permanent %v", i, it.Outcome.Status, it.Err, tc.want, tc.permanent)
				}
				if got := connectortest.EvidenceText(it.Outcome.Evidence); got != "mixpanel_task=t-0001: "+tc.final+" (task of 3 distinct_ids); " {
					t.Errorf("subject %d: evidence %s", i, got)
				}
			}
		})
	}
	// One task gone, one answered unreadably, one fine: each fails or
	// ends on its own.
	t.Run("a task gone, a task unreadable", func(t *testing.T) {
		t.Parallel()
		f := mixpanelfake.Start(t, mixpanelfake.Options{})
		c := batcher(t, f)
		items, err := c.EraseBatch(connectortest.Ctx(t), subjects(f, 1, 2, 2)) // t-0001
		if err != nil {
			t.Fatal(err)
		}
		good := connectortest.RunningRefs(t, items)
		items, err = c.EraseBatch(connectortest.Ctx(t), subjects(f, 5, 2, 2)) // t-0002
		if err != nil {
			t.Fatal(err)
		}
		unreadable := connectortest.RunningRefs(t, items)
		refs := []string{`{"task":"t-9999","of":2}`, unreadable[0], good[0], unreadable[1], `{"task":"t-9999","of":2}`, good[1]}
		// Tasks are asked about in the order refs first name them.
		f.Inject(1, f.PassThrough()) // t-9999, answered as the fake does: 404
		f.Inject(1, func(w http.ResponseWriter, r *http.Request) {
			fakevendor.JSON(w, http.StatusOK, map[string]any{"status": "ok", "results": map[string]any{}})
		})
		got, err := c.PollBatch(connectortest.Ctx(t), refs)
		if err != nil {
			t.Fatal(err)
		}
		if n := callsTo(f, http.MethodGet); n != 3 {
			t.Errorf("%d status calls for 3 tasks", n)
		}
		for _, i := range []int{0, 4} {
			if err := got[i].Err; err == nil || !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), "t-9999 not found") {
				t.Errorf("ref %d of a task gone: %v", i, err)
			}
		}
		for _, i := range []int{1, 3} {
			if err := got[i].Err; err == nil || connectortest.IsPermanent(err) {
				t.Errorf("ref %d of a task answered unreadably: %v; want retryable", i, err)
			}
		}
		for _, i := range []int{2, 5} {
			if got[i].Err != nil || got[i].Outcome.Status != connectors.StatusRunning {
				t.Errorf("ref %d of a task running: %q, %v", i, got[i].Outcome.Status, got[i].Err)
			}
		}
	})
	for _, tc := range []struct {
		name      string
		fault     fakevendor.Fault
		permanent bool
		after     time.Duration
	}{
		{"503", fakevendor.Status(http.StatusServiceUnavailable), false, 0},
		{"429", mixpanelfake.TooMany, false, time.Second},
		{"401", mixpanelfake.Refused, true, 0},
	} {
		t.Run("whole call "+tc.name, func(t *testing.T) {
			t.Parallel()
			f := mixpanelfake.Start(t, mixpanelfake.Options{})
			c := batcher(t, f)
			var refs []string
			for i := range 2 {
				items, err := c.EraseBatch(connectortest.Ctx(t), subjects(f, 1+10*i, 2, 2))
				if err != nil {
					t.Fatal(err)
				}
				refs = append(refs, connectortest.RunningRefs(t, items)...)
			}
			f.Always(tc.fault)
			items, err := c.PollBatch(connectortest.Ctx(t), refs)
			perm, after := connectors.Classify(err)
			if err == nil || items != nil || perm != tc.permanent || after != tc.after {
				t.Errorf("PollBatch = %d items, %v (permanent %v, after %v); want the whole call to fail, permanent %v, after %v",
					len(items), err, perm, after, tc.permanent, tc.after)
			}
			if n := callsTo(f, http.MethodGet); n != 1 {
				t.Errorf("%d status calls after Mixpanel refused the first", n)
			}
		})
	}
}

// TestBatchCarriesNoPersonalData: refs, evidence and errors of a batch
// hold no distinct_id, and not the requesting admin Mixpanel names.
func TestBatchCarriesNoPersonalData(t *testing.T) {
	t.Parallel()
	f := mixpanelfake.Start(t, mixpanelfake.Options{})
	f.AnswerCreateAsList()
	ss := subjects(f, 1, 3, 3)
	items, err := connectortest.EraseBatchAndWait(connectortest.Ctx(t), batcher(t, f), ss, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range items {
		text := it.Outcome.JobRef + connectortest.EvidenceText(it.Outcome.Evidence)
		if it.Err != nil {
			text += it.Err.Error()
		}
		for _, v := range append(ss[i].Values(), "user-", mixpanelfake.RequestingUser) {
			if strings.Contains(text, v) {
				t.Errorf("subject %d: %q carries %q", i, text, v)
			}
		}
	}
}
