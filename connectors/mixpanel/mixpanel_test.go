package mixpanel

import (
	"context"
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

// yaml is a config for an instance against f, reading distinct_ids under
// the instance's name (the connector's default), with extra lines set.
func yaml(f *mixpanelfake.Fake, extra ...string) string {
	return f.ConfigWith(append([]string{"user_id_system:"}, extra...)...)
}

func subject(i int) connectors.Subject {
	return connectors.Subject{Email: fmt.Sprintf("subject%d@example.com", i), UserIDs: map[string]string{"mp": fmt.Sprintf("user-%d", i)}}
}

func withUserID(id string) connectors.Subject {
	return connectors.Subject{UserIDs: map[string]string{"mp": id}}
}

func TestConformance(t *testing.T) {
	f := mixpanelfake.Start(t, mixpanelfake.Options{})
	h := connectortest.VendorHarness("mixpanel", f)
	hostile := func(id string) connectors.Subject {
		return connectors.Subject{UserIDs: map[string]string{connectortest.UserIDSystem: id}}
	}
	h.Hostile = []connectors.Subject{
		hostile("user-60%"), hostile("*"), hostile("../t-0001"), hostile("user-600?token=x"),
		hostile("user-600' OR '1'='1"), hostile("user-600\",\"user-601"),
	}
	h.Faulty = func(t *testing.T, fault connectortest.Fault) connectors.Connector {
		g := mixpanelfake.Start(t, mixpanelfake.Options{})
		g.AddUser("user-800")
		cfg := g.Config()
		switch fault {
		case connectortest.FaultUnavailable:
			g.Always(fakevendor.Status(http.StatusBadGateway))
		case connectortest.FaultRateLimited:
			g.Always(mixpanelfake.TooMany)
		case connectortest.FaultUnauthorized:
			cfg = g.ConfigWith("token: expired")
		case connectortest.FaultMisconfigured:
			cfg = g.ConfigWith("base_url: " + g.URL() + "/api/2.0")
		}
		return connectortest.Build(t, "mixpanel", "mp", cfg)
	}
	connectortest.Run(t, h)
}

func TestConformanceByEmail(t *testing.T) {
	f := mixpanelfake.Start(t, mixpanelfake.Options{})
	connectortest.Run(t, connectortest.Harness{
		New: func(t *testing.T) connectors.Connector {
			return connectortest.Build(t, "mixpanel", "mp", yaml(f, "identify_by: email"))
		},
		Seed:  func(t *testing.T, s connectors.Subject) int64 { f.AddUser(s.Email); return 1 },
		Count: func(t *testing.T, s connectors.Subject) int64 { return f.CountUser(s.Email) },
	})
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"no tokens", "base_url: https://mixpanel.com\n", "project_token: required"},
		{"no gdpr token", "project_token: p\n", "token: required"},
		{"bad base url", "project_token: p\ntoken: t\nbase_url: mixpanel.com\n", "base_url: must be an http(s) URL"},
		{"bad compliance", "project_token: p\ntoken: t\ncompliance_type: LGPD\n", "compliance_type:"},
		{"bad identify_by", "project_token: p\ntoken: t\nidentify_by: phone\n", "identify_by:"},
		{"system with email", "project_token: p\ntoken: t\nidentify_by: email\nuser_id_system: app\n", "user_id_system: not used"},
		{"bad system", "project_token: p\ntoken: t\nuser_id_system: App!\n", "user_id_system:"},
		{"negative poll", "project_token: p\ntoken: t\npoll_interval: -5m\n", "poll_interval:"},
		{"unknown key", "project_token: p\ntoken: t\napi_secret: s\n", "api_secret"},
		{"token from empty env", "project_token: p\ntoken: {env: LETHE_TEST_UNSET_MIXPANEL}\n", "token: environment variable LETHE_TEST_UNSET_MIXPANEL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := connectortest.TryBuild("mixpanel", "mp", tc.yaml)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		var cfg Config
		cfg.ProjectToken.Value, cfg.Token.Value = "p", "t"
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		if cfg.BaseURL != defaultBaseURL || cfg.ComplianceType != "GDPR" || cfg.IdentifyBy != "user_id" || cfg.PollInterval != 12*time.Hour {
			t.Errorf("defaults = %+v", cfg)
		}
	})
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func evidence(ev []connectors.Evidence) string {
	var b strings.Builder
	for _, e := range ev {
		fmt.Fprintf(&b, "%s=%s; ", e.Kind, e.Value)
	}
	return b.String()
}

func isPermanent(err error) bool { p, _ := connectors.Classify(err); return p }

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
			c := connectortest.Build(t, "mixpanel", "mp", yaml(f, "poll_interval: 3h"))
			ctx := ctxFor(t)
			out, err := c.Erase(ctx, subject(1))
			if err != nil {
				t.Fatal(err)
			}
			if out.Status != connectors.StatusRunning || out.PollAfter != 3*time.Hour || out.JobRef != `{"task":"t-0001"}` {
				t.Fatalf("Erase = %q %q after %v", out.Status, out.JobRef, out.PollAfter)
			}
			if got := evidence(out.Evidence); got != "mixpanel_task=t-0001: created (GDPR); " {
				t.Errorf("evidence = %s", got)
			}
			var states []string
			for out.Status == connectors.StatusRunning && len(states) < 10 {
				if out, err = c.(connectors.Poller).Poll(ctx, out.JobRef); err != nil {
					t.Fatal(err)
				}
				states = append(states, evidence(out.Evidence))
			}
			want := "mixpanel_task=t-0001: PENDING; |mixpanel_task=t-0001: STAGING; |mixpanel_task=t-0001: STARTED; |mixpanel_task=t-0001: SUCCESS; "
			if strings.Join(states, "|") != want {
				t.Errorf("states = %s", strings.Join(states, "|"))
			}
			if out.Status != connectors.StatusErased || out.Records != 1 || f.CountUser("user-1") != 0 {
				t.Errorf("final = %q %d, %d left", out.Status, out.Records, f.CountUser("user-1"))
			}
		})
	}
}

func TestSubjectWithoutDistinctIDIsNotFound(t *testing.T) {
	t.Parallel()
	f := mixpanelfake.Start(t, mixpanelfake.Options{})
	for _, tc := range []struct {
		extra string
		s     connectors.Subject
		why   string
	}{
		{"", connectors.Subject{Email: "a@example.com"}, "no user id for mp"},
		{"identify_by: email", connectors.Subject{UserIDs: map[string]string{"mp": "1"}}, "no email"},
	} {
		out, err := connectortest.Build(t, "mixpanel", "mp", yaml(f, tc.extra)).Erase(ctxFor(t), tc.s)
		if err != nil || out.Status != connectors.StatusNotFound || !strings.Contains(evidence(out.Evidence), tc.why) {
			t.Errorf("Erase = %q %s, %v", out.Status, evidence(out.Evidence), err)
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
			c := connectortest.Build(t, "mixpanel", "mp", yaml(f))
			out, err := connectortest.EraseAndWait(ctxFor(t), c, subject(2), 5*time.Second)
			if err == nil {
				t.Fatalf("a %s task was reported as %q", tc.final, out.Status)
			}
			if isPermanent(err) != tc.permanent || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v (permanent %v), want %q permanent %v", err, isPermanent(err), tc.want, tc.permanent)
			}
			if got := evidence(out.Evidence); got != "mixpanel_task=t-0001: "+tc.final+"; " {
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
		_, err := connectortest.Build(t, "mixpanel", "mp", yaml(f)).(connectors.Poller).Poll(ctxFor(t), `{"task":"t-9999"}`)
		if err == nil || !isPermanent(err) || !strings.Contains(err.Error(), "t-9999 not found") {
			t.Errorf("Poll = %v", err)
		}
	})
}

func TestMalformedAnswersAreRetryable(t *testing.T) {
	t.Parallel()
	f := mixpanelfake.Start(t, mixpanelfake.Options{})
	c := connectortest.Build(t, "mixpanel", "mp", yaml(f))
	ctx := ctxFor(t)
	for name, fault := range map[string]fakevendor.Fault{
		"not json": fakevendor.Malformed(),
		"no task id": func(w http.ResponseWriter, r *http.Request) {
			fakevendor.JSON(w, 201, map[string]any{"status": "ok", "results": map[string]any{}})
		},
		"empty list": func(w http.ResponseWriter, r *http.Request) {
			fakevendor.JSON(w, 200, map[string]any{"status": "ok", "results": []any{}})
		},
	} {
		f.Inject(1, fault)
		if _, err := c.Erase(ctx, subject(3)); err == nil || isPermanent(err) {
			t.Errorf("%s: Erase = %v; want a retryable error", name, err)
		}
	}
	out, err := c.Erase(ctx, subject(3))
	if err != nil {
		t.Fatal(err)
	}
	for name, fault := range map[string]fakevendor.Fault{
		"not json":  fakevendor.Malformed(),
		"no status": func(w http.ResponseWriter, r *http.Request) { fakevendor.JSON(w, 200, map[string]any{"status": "ok"}) },
	} {
		f.Inject(1, fault)
		if _, err := c.(connectors.Poller).Poll(ctx, out.JobRef); err == nil || isPermanent(err) {
			t.Errorf("%s: Poll = %v; want a retryable error", name, err)
		}
	}
	if _, err := c.(connectors.Poller).Poll(ctx, "t-0001"); err == nil || !isPermanent(err) {
		t.Errorf("malformed job ref: %v; want a permanent error", err)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	t.Run("storm then success", func(t *testing.T) {
		t.Parallel()
		f := mixpanelfake.Start(t, mixpanelfake.Options{})
		c := connectortest.Build(t, "mixpanel", "mp", yaml(f))
		f.Inject(4, mixpanelfake.TooMany)
		for i := range 4 {
			_, err := c.Erase(ctxFor(t), subject(4))
			if perm, after := connectors.Classify(err); err == nil || perm || after != time.Second {
				t.Fatalf("429 #%d: %v (retry after %v); want retryable after 1s", i+1, err, after)
			}
		}
		if out, err := c.Erase(ctxFor(t), subject(4)); err != nil || out.Status != connectors.StatusRunning {
			t.Fatalf("after the storm: %q, %v", out.Status, err)
		}
	})
	t.Run("one a second", func(t *testing.T) {
		t.Parallel()
		f := mixpanelfake.Start(t, mixpanelfake.Options{RateLimit: 1, Burst: 1})
		c := connectortest.Build(t, "mixpanel", "mp", yaml(f))
		if _, err := c.Erase(ctxFor(t), subject(5)); err != nil {
			t.Fatal(err)
		}
		_, err := c.Erase(ctxFor(t), subject(5))
		if perm, after := connectors.Classify(err); err == nil || perm || after != time.Second {
			t.Fatalf("second call within a second: %v; want a retryable 429 after 1s", err)
		}
		if f.Limited() != 1 {
			t.Errorf("the fake limited %d calls, want 1", f.Limited())
		}
	})
	t.Run("Retry-After wins", func(t *testing.T) {
		t.Parallel()
		f := mixpanelfake.Start(t, mixpanelfake.Options{})
		c := connectortest.Build(t, "mixpanel", "mp", yaml(f))
		f.Inject(1, fakevendor.TooMany(7*time.Second))
		_, err := c.Erase(ctxFor(t), subject(5))
		if _, after := connectors.Classify(err); after != 7*time.Second {
			t.Errorf("retry after %v, want the 7s Mixpanel named", after)
		}
	})
}

func TestTimeoutIsRetryable(t *testing.T) {
	t.Parallel()
	f := mixpanelfake.Start(t, mixpanelfake.Options{})
	c := connectortest.Build(t, "mixpanel", "mp", yaml(f))
	f.Inject(1, fakevendor.Hang(5*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Erase(ctx, subject(6))
	if err == nil || isPermanent(err) || time.Since(start) > 2*time.Second {
		t.Fatalf("Erase against a hanging Mixpanel = %v after %v; want a quick retryable error", err, time.Since(start))
	}
}

func TestTwoInstancesSideBySide(t *testing.T) {
	t.Parallel()
	us, eu := mixpanelfake.Start(t, mixpanelfake.Options{}), mixpanelfake.Start(t, mixpanelfake.Options{})
	eu.SetTokens("proj_eu", "gdpr_eu")
	us.AddUser("user-7")
	eu.AddUser("user-7")
	a := connectortest.Build(t, "mixpanel", "mixpanel-us", yaml(us, "user_id_system: mp"))
	b := connectortest.Build(t, "mixpanel", "mixpanel-eu", yaml(eu, "user_id_system: mp", "compliance_type: CCPA"))
	if _, err := connectortest.EraseAndWait(ctxFor(t), a, subject(7), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if us.CountUser("user-7") != 0 || eu.CountUser("user-7") != 1 {
		t.Fatalf("after the US erase: us %d, eu %d", us.CountUser("user-7"), eu.CountUser("user-7"))
	}
	if _, err := connectortest.EraseAndWait(ctxFor(t), b, subject(7), 5*time.Second); err != nil {
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
	c := connectortest.Build(t, "mixpanel", "mp", yaml(f))
	if out, err := connectortest.EraseAndWait(ctxFor(t), c, withUserID("user/8"), 5*time.Second); err != nil || out.Status != connectors.StatusErased {
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
