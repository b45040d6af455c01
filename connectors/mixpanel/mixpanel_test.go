package mixpanel

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// fakeMixpanel is Mixpanel's GDPR API v3 as documented: POST
// /api/app/data-deletions/v3.0/?token=<project token> with a Bearer token
// and {"distinct_ids","compliance_type"}, answered in either documented
// shape; GET /api/app/data-deletions/v3.0/{id}?token= with results.status
// advancing PENDING → STAGING → STARTED → SUCCESS (NOT_FOUND when it held
// nothing) over polls; one request a second, then 429.
type fakeMixpanel struct {
	*fakevendor.Server
	project, token string

	mu        sync.Mutex
	users     map[string]int64 // distinct_id → records
	tasks     map[string]*fakeTask
	next      int
	listShape bool   // answer a create with the guide's [{tracking_id, status}]
	final     string // a final status forced for every task
}

type fakeTask struct {
	ids        []string
	compliance string
	held       bool // some distinct_id had data when the task was filed
	polls      int
}

// newFake starts a fake with Mixpanel's rate (1 a second) and the given
// burst; the conformance suite needs a large one, rate-limit tests 1.
func newFake(t *testing.T, burst int) *fakeMixpanel {
	f := &fakeMixpanel{Server: fakevendor.New(t), project: "proj_token", token: "gdpr_token",
		users: map[string]int64{}, tasks: map[string]*fakeTask{}}
	f.RateLimit(1, burst, tooMany)
	f.RequireAuth(func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer "+f.token },
		func(w http.ResponseWriter, r *http.Request) {
			fakevendor.JSON(w, http.StatusUnauthorized, map[string]string{"status": "error", "error": "Unauthorized"})
		})
	f.Handle("POST /api/app/data-deletions/v3.0/{$}", f.create)
	f.Handle("GET /api/app/data-deletions/v3.0/{id}", f.status)
	return f
}

// tooMany is Mixpanel's 429; it names no delay.
func tooMany(w http.ResponseWriter, r *http.Request) {
	fakevendor.JSON(w, http.StatusTooManyRequests, map[string]string{"status": "error", "error": "Too many requests"})
}

func (f *fakeMixpanel) projectOK(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Query().Get("token") != f.project {
		fakevendor.JSON(w, http.StatusBadRequest, map[string]string{"status": "error", "error": "invalid project token"})
		return false
	}
	return true
}

func (f *fakeMixpanel) create(w http.ResponseWriter, r *http.Request) {
	if !f.projectOK(w, r) {
		return
	}
	var body struct {
		DistinctIDs    []string `json:"distinct_ids"`
		ComplianceType string   `json:"compliance_type"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || len(body.DistinctIDs) == 0 || len(body.DistinctIDs) > 1999 ||
		(body.ComplianceType != "" && body.ComplianceType != "GDPR" && body.ComplianceType != "CCPA") {
		fakevendor.JSON(w, http.StatusBadRequest, map[string]string{"status": "error", "error": "invalid request"})
		return
	}
	f.mu.Lock()
	f.next++
	id := fmt.Sprintf("t-%04d", f.next)
	task := &fakeTask{ids: body.DistinctIDs, compliance: body.ComplianceType}
	for _, d := range body.DistinctIDs {
		task.held = task.held || f.users[d] > 0
	}
	f.tasks[id] = task
	list := f.listShape
	f.mu.Unlock()
	if list {
		fakevendor.JSON(w, http.StatusOK, map[string]any{"status": "ok", "results": []map[string]string{{"tracking_id": id, "status": "PENDING"}}})
		return
	}
	fakevendor.JSON(w, http.StatusCreated, map[string]any{"status": "ok", "results": map[string]string{"task_id": id}})
}

func (f *fakeMixpanel) status(w http.ResponseWriter, r *http.Request) {
	if !f.projectOK(w, r) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	task, ok := f.tasks[r.PathValue("id")]
	if !ok {
		fakevendor.JSON(w, http.StatusNotFound, map[string]string{"status": "error", "error": "task not found"})
		return
	}
	task.polls++
	running := []string{"PENDING", "STAGING", "STARTED"}
	st := "SUCCESS"
	switch {
	case task.polls <= len(running):
		st = running[task.polls-1]
	case f.final != "":
		st = f.final
	case !task.held:
		st = "NOT_FOUND"
	}
	if st == "SUCCESS" {
		for _, d := range task.ids {
			delete(f.users, d)
		}
	}
	fakevendor.JSON(w, http.StatusOK, map[string]any{"status": "ok", "results": map[string]string{"status": st, "result": ""}})
}

func (f *fakeMixpanel) seed(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[id] = 1
}

func (f *fakeMixpanel) count(id string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.users[id]
}

func (f *fakeMixpanel) set(fn func(f *fakeMixpanel)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeMixpanel) yaml(extra ...string) string {
	y := fmt.Sprintf("project_token: %s\ntoken: %s\nbase_url: %s\n", f.project, f.token, f.URL)
	if !strings.Contains(strings.Join(extra, "\n"), "poll_interval:") {
		y += "poll_interval: 2ms\n"
	}
	return y + strings.Join(extra, "\n")
}

func subject(i int) connectors.Subject {
	return connectors.Subject{Email: fmt.Sprintf("subject%d@example.com", i), UserIDs: map[string]string{"mp": fmt.Sprintf("user-%d", i)}}
}

func withUserID(id string) connectors.Subject {
	return connectors.Subject{UserIDs: map[string]string{"mp": id}}
}

func TestConformance(t *testing.T) {
	f := newFake(t, 10000)
	connectortest.Run(t, connectortest.Harness{
		New:     func(t *testing.T) connectors.Connector { return connectortest.Build(t, "mixpanel", "mp", f.yaml()) },
		Seed:    func(t *testing.T, s connectors.Subject) int64 { f.seed(s.UserIDs["mp"]); return 1 },
		Count:   func(t *testing.T, s connectors.Subject) int64 { return f.count(s.UserIDs["mp"]) },
		Subject: subject,
		Hostile: []connectors.Subject{
			withUserID("user-60%"), withUserID("*"), withUserID("../t-0001"), withUserID("user-600?token=x"),
			withUserID("user-600' OR '1'='1"), withUserID("user-600\",\"user-601"),
		},
		Faulty: func(t *testing.T, fault connectortest.Fault) connectors.Connector {
			g := newFake(t, 10000)
			g.seed("user-800")
			cfg := g.yaml()
			switch fault {
			case connectortest.FaultUnavailable:
				g.Always(fakevendor.Status(http.StatusBadGateway))
			case connectortest.FaultRateLimited:
				g.Always(tooMany)
			case connectortest.FaultUnauthorized:
				cfg = strings.Replace(cfg, "token: "+g.token, "token: expired", 1)
			case connectortest.FaultMisconfigured:
				cfg = strings.Replace(cfg, "base_url: "+g.URL+"\n", "base_url: "+g.URL+"/api/2.0\n", 1)
			}
			return connectortest.Build(t, "mixpanel", "mp", cfg)
		},
	})
}

func TestConformanceByEmail(t *testing.T) {
	f := newFake(t, 10000)
	connectortest.Run(t, connectortest.Harness{
		New: func(t *testing.T) connectors.Connector {
			return connectortest.Build(t, "mixpanel", "mp", f.yaml("identify_by: email"))
		},
		Seed:  func(t *testing.T, s connectors.Subject) int64 { f.seed(s.Email); return 1 },
		Count: func(t *testing.T, s connectors.Subject) int64 { return f.count(s.Email) },
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
			f := newFake(t, 100)
			f.set(func(f *fakeMixpanel) { f.listShape = list })
			f.seed("user-1")
			c := connectortest.Build(t, "mixpanel", "mp", f.yaml("poll_interval: 3h"))
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
			if out.Status != connectors.StatusErased || out.Records != 1 || f.count("user-1") != 0 {
				t.Errorf("final = %q %d, %d left", out.Status, out.Records, f.count("user-1"))
			}
		})
	}
}

func TestSubjectWithoutDistinctIDIsNotFound(t *testing.T) {
	t.Parallel()
	f := newFake(t, 100)
	for _, tc := range []struct {
		extra string
		s     connectors.Subject
		why   string
	}{
		{"", connectors.Subject{Email: "a@example.com"}, "no user id for mp"},
		{"identify_by: email", connectors.Subject{UserIDs: map[string]string{"mp": "1"}}, "no email"},
	} {
		out, err := connectortest.Build(t, "mixpanel", "mp", f.yaml(tc.extra)).Erase(ctxFor(t), tc.s)
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
			f := newFake(t, 100)
			f.set(func(f *fakeMixpanel) { f.final = tc.final })
			f.seed("user-2")
			c := connectortest.Build(t, "mixpanel", "mp", f.yaml())
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
		f := newFake(t, 100)
		_, err := connectortest.Build(t, "mixpanel", "mp", f.yaml()).(connectors.Poller).Poll(ctxFor(t), `{"task":"t-9999"}`)
		if err == nil || !isPermanent(err) || !strings.Contains(err.Error(), "t-9999 not found") {
			t.Errorf("Poll = %v", err)
		}
	})
}

func TestMalformedAnswersAreRetryable(t *testing.T) {
	t.Parallel()
	f := newFake(t, 100)
	c := connectortest.Build(t, "mixpanel", "mp", f.yaml())
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
		f := newFake(t, 100)
		c := connectortest.Build(t, "mixpanel", "mp", f.yaml())
		f.Inject(4, tooMany)
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
		f := newFake(t, 1)
		c := connectortest.Build(t, "mixpanel", "mp", f.yaml())
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
		f := newFake(t, 100)
		c := connectortest.Build(t, "mixpanel", "mp", f.yaml())
		f.Inject(1, fakevendor.TooMany(7*time.Second))
		_, err := c.Erase(ctxFor(t), subject(5))
		if _, after := connectors.Classify(err); after != 7*time.Second {
			t.Errorf("retry after %v, want the 7s Mixpanel named", after)
		}
	})
}

func TestTimeoutIsRetryable(t *testing.T) {
	t.Parallel()
	f := newFake(t, 100)
	c := connectortest.Build(t, "mixpanel", "mp", f.yaml())
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
	us, eu := newFake(t, 100), newFake(t, 100)
	eu.project, eu.token = "proj_eu", "gdpr_eu"
	us.seed("user-7")
	eu.seed("user-7")
	a := connectortest.Build(t, "mixpanel", "mixpanel-us", us.yaml("user_id_system: mp"))
	b := connectortest.Build(t, "mixpanel", "mixpanel-eu", eu.yaml("user_id_system: mp", "compliance_type: CCPA"))
	if _, err := connectortest.EraseAndWait(ctxFor(t), a, subject(7), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if us.count("user-7") != 0 || eu.count("user-7") != 1 {
		t.Fatalf("after the US erase: us %d, eu %d", us.count("user-7"), eu.count("user-7"))
	}
	if _, err := connectortest.EraseAndWait(ctxFor(t), b, subject(7), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if eu.count("user-7") != 0 {
		t.Error("the EU instance did not erase")
	}
	if got := eu.Calls()[0]; got.Query != "token=proj_eu" || got.Header.Get("Authorization") != "Bearer gdpr_eu" || !strings.Contains(string(got.Body), `"CCPA"`) {
		t.Errorf("EU create = ?%s %q %s", got.Query, got.Header.Get("Authorization"), got.Body)
	}
}

func TestRequestsFollowTheContract(t *testing.T) {
	t.Parallel()
	f := newFake(t, 100)
	f.project = "proj&x=1"
	f.seed("user/8")
	c := connectortest.Build(t, "mixpanel", "mp", f.yaml())
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
