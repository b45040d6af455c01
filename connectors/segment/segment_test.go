package segment

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// fakeSegment is Segment's Public API (regulations) and Profile API as
// documented: POST /regulations → {"data":{"regulateId"}}, GET
// /regulations/{id} → data.regulation with overallStatus and per
// destination statuses advancing INITIALIZED → RUNNING → final over polls,
// 600 requests a minute answered by 429 with X-RateLimit-Reset as an RFC
// 5322 date, and profiles looked up by user_id:<id> (404 when none).
type fakeSegment struct {
	*fakevendor.Server                             // the Public API
	prof                        *fakevendor.Server // the Profile API, another host
	token, profilesToken, space string

	mu           sync.Mutex
	users        map[string]int64 // userId → records held (profile and events)
	regs         map[string]*fakeRegulation
	next         int
	destinations []string
	failAt       string // a destination whose deletion fails
	refuseAt     string // a destination that cannot delete (NOT_SUPPORTED)
	overall      string // a final overall status forced for every regulation
}

type fakeRegulation struct {
	typ   string
	ids   []string
	polls int
}

// newFake starts a fake with Segment's rate (10 a second) and the given
// burst; the conformance suite needs a large one, rate-limit tests 10.
func newFake(t *testing.T, burst int) *fakeSegment {
	f := &fakeSegment{Server: fakevendor.New(t), prof: fakevendor.New(t), token: "sgp_token", profilesToken: "prof_token", space: "spa_1",
		users: map[string]int64{}, regs: map[string]*fakeRegulation{}, destinations: []string{"Amplitude", "Braze"}}
	f.RateLimit(10, burst, tooMany)
	f.RequireAuth(func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer "+f.token },
		func(w http.ResponseWriter, r *http.Request) {
			fakevendor.JSON(w, http.StatusUnauthorized, errorsBody("unauthorized", "Unauthorized"))
		})
	f.Handle("POST /regulations", f.createRegulation)
	f.Handle("GET /regulations/{id}", f.getRegulation)
	// The Profile API allows 100 requests a second; its 429 names no delay.
	f.prof.RateLimit(100, burst, profilesTooMany)
	f.prof.RequireAuth(func(r *http.Request) bool {
		user, pass, ok := r.BasicAuth()
		return ok && user == f.profilesToken && pass == ""
	}, func(w http.ResponseWriter, r *http.Request) {
		fakevendor.JSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]string{"code": "unauthorized", "message": "Unauthorized"}})
	})
	f.prof.Handle("GET /v1/spaces/{space}/collections/users/profiles/{ext}/traits", f.profileTraits)
	return f
}

func profilesTooMany(w http.ResponseWriter, r *http.Request) {
	fakevendor.JSON(w, http.StatusTooManyRequests, map[string]any{"error": map[string]string{"code": "too_many_requests", "message": "Too Many Requests"}})
}

// tooMany is Segment's 429: the reset is an RFC 5322 date.
func tooMany(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-RateLimit-Remaining", "0")
	w.Header().Set("X-RateLimit-Reset", time.Now().Add(3*time.Second).UTC().Format(time.RFC1123Z))
	fakevendor.JSON(w, http.StatusTooManyRequests, errorsBody("too-many-requests", "Too many requests"))
}

func errorsBody(typ, msg string) map[string]any {
	return map[string]any{"errors": []map[string]string{{"type": typ, "message": msg}}}
}

var acceptedTypes = []string{"DELETE_INTERNAL", "DELETE_ONLY", "SUPPRESS_ONLY", "SUPPRESS_WITH_DELETE", "SUPPRESS_WITH_DELETE_INTERNAL", "UNSUPPRESS"}

func (f *fakeSegment) createRegulation(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != mediaType && ct != "application/json" {
		fakevendor.JSON(w, http.StatusUnsupportedMediaType, errorsBody("unsupported-media-type", "Unsupported content type"))
		return
	}
	var body struct {
		RegulationType string   `json:"regulationType"`
		SubjectType    string   `json:"subjectType"`
		SubjectIDs     []string `json:"subjectIds"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		fakevendor.JSON(w, http.StatusBadRequest, errorsBody("bad-request", "Invalid JSON"))
		return
	}
	if !contains(acceptedTypes, body.RegulationType) || (body.SubjectType != "USER_ID" && body.SubjectType != "OBJECT_ID") ||
		len(body.SubjectIDs) == 0 || len(body.SubjectIDs) > 5000 {
		fakevendor.JSON(w, http.StatusUnprocessableEntity, errorsBody("validation", "Validation failure"))
		return
	}
	f.mu.Lock()
	f.next++
	id := fmt.Sprintf("reg%04d", f.next)
	f.regs[id] = &fakeRegulation{typ: body.RegulationType, ids: body.SubjectIDs}
	f.mu.Unlock()
	fakevendor.JSON(w, http.StatusOK, map[string]any{"data": map[string]string{"regulateId": id}})
}

func (f *fakeSegment) getRegulation(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	reg, ok := f.regs[r.PathValue("id")]
	if !ok {
		fakevendor.JSON(w, http.StatusNotFound, errorsBody("not-found", "Resource not found"))
		return
	}
	reg.polls++
	state := "INITIALIZED"
	switch {
	case reg.polls == 2:
		state = "RUNNING"
	case reg.polls >= 3:
		state = "FINISHED"
	}
	overall := state
	var dests []map[string]string
	if state == "FINISHED" && f.overall != "" {
		overall = f.overall // forced statuses carry no destinations
	} else {
		for _, name := range f.destinations {
			d := map[string]string{"id": "dst_" + name, "name": name, "status": state, "errString": "", "finishedAt": ""}
			if state == "FINISHED" {
				d["finishedAt"] = "2026-01-02T03:04:05Z"
				switch name {
				case f.failAt:
					d["status"] = "FAILED"
					// Partners' messages can echo the user: the connector must not repeat them.
					d["errString"] = "user " + strings.Join(reg.ids, ",") + " could not be deleted"
					overall = "PARTIAL_SUCCESS"
				case f.refuseAt:
					d["status"] = "NOT_SUPPORTED"
					overall = "PARTIAL_SUCCESS"
				}
			}
			dests = append(dests, d)
		}
	}
	if state == "FINISHED" && overall != "INVALID" && overall != "NOT_SUPPORTED" && strings.Contains(reg.typ, "DELETE") {
		for _, id := range reg.ids {
			delete(f.users, id)
		}
	}
	rg := map[string]any{"id": r.PathValue("id"), "workspaceId": "ws_1", "overallStatus": overall,
		"createdAt": "2026-01-01T00:00:00Z", "streamStatus": []map[string]any{{"id": "st_1", "status": overall, "destinationStatus": dests}}}
	if state == "FINISHED" {
		rg["finishedAt"] = "2026-01-02T03:04:05Z"
	}
	fakevendor.JSON(w, http.StatusOK, map[string]any{"data": map[string]any{"regulation": rg}})
}

func (f *fakeSegment) profileTraits(w http.ResponseWriter, r *http.Request) {
	notFound := map[string]any{"error": map[string]string{"code": "not_found", "message": "Profile not found"}}
	id, ok := strings.CutPrefix(r.PathValue("ext"), "user_id:")
	f.mu.Lock()
	n := f.users[id]
	f.mu.Unlock()
	if r.PathValue("space") != f.space || !ok || n == 0 {
		fakevendor.JSON(w, http.StatusNotFound, notFound)
		return
	}
	fakevendor.JSON(w, http.StatusOK, map[string]any{"traits": map[string]string{"plan": "pro"}, "cursor": map[string]any{"has_more": false}})
}

func (f *fakeSegment) seed(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[id] = 1
}

func (f *fakeSegment) count(id string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.users[id]
}

func (f *fakeSegment) set(fn func(f *fakeSegment)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// yaml is a config for an instance against the fake, with a profile
// lookup unless noProfiles; extra lines are appended.
func (f *fakeSegment) yaml(noProfiles bool, extra ...string) string {
	y := fmt.Sprintf("token: %s\nbase_url: %s\n", f.token, f.URL)
	if !noProfiles {
		y += fmt.Sprintf("profiles:\n  space_id: %s\n  token: %s\n  base_url: %s\n", f.space, f.profilesToken, f.prof.URL)
	}
	if !strings.Contains(strings.Join(extra, "\n"), "poll_interval:") {
		y += "poll_interval: 2ms\n"
	}
	return y + strings.Join(extra, "\n")
}

func subject(i int) connectors.Subject {
	return connectors.Subject{Email: fmt.Sprintf("subject%d@example.com", i), UserIDs: map[string]string{"app": fmt.Sprintf("user-%d", i)}}
}

func withUserID(id string) connectors.Subject {
	return connectors.Subject{UserIDs: map[string]string{"app": id}}
}

func TestConformance(t *testing.T) {
	f := newFake(t, 10000)
	connectortest.Run(t, connectortest.Harness{
		New: func(t *testing.T) connectors.Connector {
			return connectortest.Build(t, "segment", "app", f.yaml(false))
		},
		Seed:    func(t *testing.T, s connectors.Subject) int64 { f.seed(s.UserIDs["app"]); return 1 },
		Count:   func(t *testing.T, s connectors.Subject) int64 { return f.count(s.UserIDs["app"]) },
		Subject: subject,
		Hostile: []connectors.Subject{
			withUserID("user-60%"), withUserID("*"), withUserID("user_id:user-600"), withUserID("../regulations"),
			withUserID("user-600/../user-601"), withUserID("user-600' OR '1'='1"), withUserID("user-600\",\"user-601"),
		},
		Faulty: func(t *testing.T, fault connectortest.Fault) connectors.Connector {
			g := newFake(t, 10000)
			g.seed("user-800")
			cfg := g.yaml(false)
			switch fault {
			case connectortest.FaultUnavailable:
				g.Always(fakevendor.Status(http.StatusServiceUnavailable))
			case connectortest.FaultRateLimited:
				g.Always(tooMany)
			case connectortest.FaultUnauthorized:
				cfg = strings.Replace(cfg, "token: "+g.token, "token: revoked", 1)
			case connectortest.FaultMisconfigured:
				cfg = strings.Replace(cfg, "base_url: "+g.URL+"\n", "base_url: "+g.URL+"/v1beta/workspaces/acme\n", 1)
			}
			return connectortest.Build(t, "segment", "app", cfg)
		},
	})
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"no token", "base_url: https://api.segmentapis.com\n", "token: required"},
		{"bad base url", "token: x\nbase_url: ftp://example.com\n", "base_url: must be an http(s) URL"},
		{"base url with query", "token: x\nbase_url: https://example.com/?a=b\n", "base_url:"},
		{"bad system", "token: x\nuser_id_system: Shop DB\n", "user_id_system:"},
		{"bad regulation type", "token: x\nregulation_type: UNSUPPRESS\n", "regulation_type:"},
		{"negative poll", "token: x\npoll_interval: -1h\n", "poll_interval:"},
		{"poll not a duration", "token: x\npoll_interval: often\n", "often"},
		{"unknown key", "token: x\napi_key: y\n", "api_key"},
		{"profiles without space", "token: x\nprofiles:\n  token: y\n", "profiles.space_id: required"},
		{"profiles without token", "token: x\nprofiles:\n  space_id: spa_1\n", "profiles.token: required"},
		{"profiles bad space", "token: x\nprofiles:\n  space_id: ../x\n  token: y\n", "profiles.space_id"},
		{"token from empty env", "token: {env: LETHE_TEST_UNSET_SEGMENT}\n", "token: environment variable LETHE_TEST_UNSET_SEGMENT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := connectortest.TryBuild("segment", "app", tc.yaml)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		cfg := Config{Token: secret("x")}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		if cfg.BaseURL != defaultBaseURL || cfg.PollInterval != 6*time.Hour || cfg.RegulationType != "SUPPRESS_WITH_DELETE" {
			t.Errorf("defaults = %q %v %q", cfg.BaseURL, cfg.PollInterval, cfg.RegulationType)
		}
		c, err := connectortest.TryBuild("segment", "app", "token: x\nbase_url: https://eu1.api.segmentapis.com/\n")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := c.(connectors.Verifier); ok {
			t.Error("an instance without profiles claims it can verify")
		}
	})
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// evidence joins an outcome's evidence for assertions.
func evidence(ev []connectors.Evidence) string {
	var b strings.Builder
	for _, e := range ev {
		fmt.Fprintf(&b, "%s=%s; ", e.Kind, e.Value)
	}
	return b.String()
}

func TestRegulationPolledToCompletion(t *testing.T) {
	t.Parallel()
	f := newFake(t, 100)
	f.seed("user-1")
	c := connectortest.Build(t, "segment", "app", f.yaml(false, "poll_interval: 90m"))
	ctx := ctxFor(t)
	out, err := c.Erase(ctx, subject(1))
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != connectors.StatusRunning || out.PollAfter != 90*time.Minute {
		t.Fatalf("Erase = %q after %v, want running after 90m", out.Status, out.PollAfter)
	}
	if strings.Contains(out.JobRef, "user-1") {
		t.Errorf("job ref %q holds the user id", out.JobRef)
	}
	if got := evidence(out.Evidence); !strings.Contains(got, "before erasure: a profile was found") || !strings.Contains(got, "reg0001: created (SUPPRESS_WITH_DELETE)") {
		t.Errorf("evidence = %s", got)
	}
	p := c.(connectors.Poller)
	var states []string
	for out.Status == connectors.StatusRunning {
		if len(states) > 5 {
			t.Fatal("the regulation never finished")
		}
		if out, err = p.Poll(ctx, out.JobRef); err != nil {
			t.Fatal(err)
		}
		states = append(states, out.Evidence[0].Value)
	}
	if want := "reg0001: INITIALIZED|reg0001: RUNNING|reg0001: FINISHED at 2026-01-02T03:04:05Z"; strings.Join(states, "|") != want {
		t.Errorf("states = %s, want %s", strings.Join(states, "|"), want)
	}
	if out.Status != connectors.StatusErased || out.Records != 1 {
		t.Errorf("final = %q with %d records, want erased 1", out.Status, out.Records)
	}
	if got := evidence(out.Evidence); !strings.Contains(got, "segment_destination=Amplitude: FINISHED at 2026-01-02T03:04:05Z") ||
		!strings.Contains(got, "segment_destination=Braze: FINISHED") {
		t.Errorf("evidence = %s", got)
	}
	v, err := c.(connectors.Verifier).Verify(ctx, subject(1))
	if err != nil || v.Remaining != 0 || evidence(v.Evidence) != "segment_profile=after erasure: no profile; " {
		t.Errorf("Verify = %+v, %v", v, err)
	}
}

func TestWithoutProfilesEveryFinishedRegulationIsErased(t *testing.T) {
	t.Parallel()
	f := newFake(t, 100)
	c := connectortest.Build(t, "segment", "app", f.yaml(true))
	// Segment does not say whether it held anything: a finished regulation
	// for a userId it never saw looks the same.
	out, err := connectortest.EraseAndWait(ctxFor(t), c, subject(2), 5*time.Second)
	if err != nil || out.Status != connectors.StatusErased || out.Records != 1 {
		t.Fatalf("EraseAndWait = %q %d, %v; want erased 1", out.Status, out.Records, err)
	}
	if n := len(f.prof.Calls()); n != 0 {
		t.Errorf("an instance without profiles looked profiles up %d times", n)
	}
}

func TestSubjectWithoutUserIDIsNotFound(t *testing.T) {
	t.Parallel()
	f := newFake(t, 100)
	c := connectortest.Build(t, "segment", "app", f.yaml(false))
	out, err := c.Erase(ctxFor(t), connectors.Subject{Email: "a@example.com", UserIDs: map[string]string{"crm": "7"}})
	if err != nil || out.Status != connectors.StatusNotFound {
		t.Fatalf("Erase = %q, %v; want not_found", out.Status, err)
	}
	if got := evidence(out.Evidence); !strings.Contains(got, "no user id for app") {
		t.Errorf("evidence = %s", got)
	}
	if n := len(f.Calls()) + len(f.prof.Calls()); n != 0 {
		t.Errorf("%d calls to Segment for a subject it cannot know", n)
	}
}

func TestUserIDSystem(t *testing.T) {
	t.Parallel()
	f := newFake(t, 100)
	f.seed("42")
	c := connectortest.Build(t, "segment", "segment-eu", f.yaml(false, "user_id_system: app"))
	out, err := connectortest.EraseAndWait(ctxFor(t), c, withUserID("42"), 5*time.Second)
	if err != nil || out.Status != connectors.StatusErased || f.count("42") != 0 {
		t.Fatalf("EraseAndWait = %q, %v; %d left", out.Status, err, f.count("42"))
	}
}

func TestFailedJobs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		setup     func(f *fakeSegment)
		permanent bool
		want      string
	}{
		{"a destination failed", func(f *fakeSegment) { f.failAt = "Braze" }, false, "PARTIAL_SUCCESS: deletion failed at Braze"},
		{"a destination cannot delete", func(f *fakeSegment) { f.refuseAt = "Amplitude" }, true, "Amplitude cannot delete users through Segment"},
		{"regulation failed", func(f *fakeSegment) { f.overall = "FAILED" }, false, "FAILED"},
		{"regulation invalid", func(f *fakeSegment) { f.overall = "INVALID" }, true, "is INVALID: Segment refused it"},
		{"regulation not supported", func(f *fakeSegment) { f.overall = "NOT_SUPPORTED" }, true, "is NOT_SUPPORTED"},
		{"unknown status", func(f *fakeSegment) { f.overall = "EXPLODED" }, false, `unknown status "EXPLODED"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, 100)
			f.set(tc.setup)
			f.seed("user-3")
			c := connectortest.Build(t, "segment", "app", f.yaml(false))
			_, err := connectortest.EraseAndWait(ctxFor(t), c, subject(3), 5*time.Second)
			if err == nil {
				t.Fatal("a failed regulation was reported as success")
			}
			if perm, _ := connectors.Classify(err); perm != tc.permanent {
				t.Errorf("permanent = %v, want %v: %v", perm, tc.permanent, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "user-3") {
				t.Errorf("error carries the user id: %v", err)
			}
		})
	}
	t.Run("evidence kept with the error", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, 100)
		f.set(func(f *fakeSegment) { f.failAt = "Braze" })
		c := connectortest.Build(t, "segment", "app", f.yaml(true))
		out, err := c.(connectors.Poller).Poll(ctxFor(t), `{"regulation":"reg0001"}`)
		if err == nil || !strings.Contains(err.Error(), "not found") {
			t.Fatalf("Poll of an unknown regulation = %v", err)
		}
		if perm, _ := connectors.Classify(err); !perm {
			t.Errorf("unknown regulation classified retryable: %v", err)
		}
		out, err = connectortest.EraseAndWait(ctxFor(t), c, subject(4), 5*time.Second)
		if err == nil || !strings.Contains(evidence(out.Evidence), "segment_destination=Braze: FAILED") {
			t.Errorf("evidence with the failure = %s (%v)", evidence(out.Evidence), err)
		}
		if strings.Contains(evidence(out.Evidence), "user-4") {
			t.Errorf("evidence carries the user id: %s", evidence(out.Evidence))
		}
	})
}

func TestMalformedAnswersAreRetryable(t *testing.T) {
	t.Parallel()
	f := newFake(t, 100)
	c := connectortest.Build(t, "segment", "app", f.yaml(true))
	ctx := ctxFor(t)
	f.Inject(1, fakevendor.Malformed())
	if _, err := c.Erase(ctx, subject(5)); err == nil || func() bool { p, _ := connectors.Classify(err); return p }() {
		t.Fatalf("malformed create answer: %v; want a retryable error", err)
	}
	out, err := c.Erase(ctx, subject(5))
	if err != nil {
		t.Fatal(err)
	}
	f.Inject(1, fakevendor.Malformed())
	if _, err := c.(connectors.Poller).Poll(ctx, out.JobRef); err == nil || func() bool { p, _ := connectors.Classify(err); return p }() {
		t.Fatalf("malformed status answer: %v; want a retryable error", err)
	}
	f.Inject(1, func(w http.ResponseWriter, r *http.Request) {
		fakevendor.JSON(w, http.StatusOK, map[string]any{"data": map[string]any{}})
	})
	if _, err := c.Erase(ctx, subject(5)); err == nil || func() bool { p, _ := connectors.Classify(err); return p }() {
		t.Fatalf("answer without regulateId: %v; want a retryable error", err)
	}
	if _, err := c.(connectors.Poller).Poll(ctx, "reg0001"); err == nil || func() bool { p, _ := connectors.Classify(err); return !p }() {
		t.Fatalf("malformed job ref: %v; want a permanent error", err)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	t.Run("storm then success", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, 100)
		c := connectortest.Build(t, "segment", "app", f.yaml(true))
		f.Inject(3, tooMany)
		for i := range 3 {
			_, err := c.Erase(ctxFor(t), subject(6))
			perm, after := connectors.Classify(err)
			if err == nil || perm || after <= 0 || after > 3*time.Second {
				t.Fatalf("429 #%d: %v (permanent %v, retry after %v); want retryable after the reset date", i+1, err, perm, after)
			}
		}
		if out, err := c.Erase(ctxFor(t), subject(6)); err != nil || out.Status != connectors.StatusRunning {
			t.Fatalf("after the storm: %q, %v", out.Status, err)
		}
	})
	t.Run("600 a minute", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, 10)
		c := connectortest.Build(t, "segment", "app", f.yaml(true))
		var limited error
		for range 15 {
			if _, err := c.Erase(ctxFor(t), subject(7)); err != nil {
				limited = err
				break
			}
		}
		if perm, after := connectors.Classify(limited); limited == nil || perm || after <= 0 || after > 3*time.Second {
			t.Fatalf("15 calls at once: %v; want a retryable 429 with the reset delay", limited)
		}
		if f.Limited() == 0 {
			t.Error("the fake's rate limit never refused a call")
		}
	})
	t.Run("profile API 429 without a delay", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, 100)
		c := connectortest.Build(t, "segment", "app", f.yaml(false))
		f.prof.Inject(1, profilesTooMany)
		_, err := c.(connectors.Verifier).Verify(ctxFor(t), subject(7))
		if perm, after := connectors.Classify(err); err == nil || perm || after != time.Second {
			t.Fatalf("Verify = %v (retry after %v); want retryable after 1s", err, after)
		}
	})
}

func TestTimeoutIsRetryable(t *testing.T) {
	t.Parallel()
	f := newFake(t, 100)
	c := connectortest.Build(t, "segment", "app", f.yaml(true))
	f.Inject(1, fakevendor.Hang(5*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Erase(ctx, subject(8))
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("Erase against a hanging Segment = %v after %v", err, time.Since(start))
	}
	if perm, _ := connectors.Classify(err); perm {
		t.Errorf("timeout classified permanent: %v", err)
	}
}

func TestTwoInstancesSideBySide(t *testing.T) {
	t.Parallel()
	us, eu := newFake(t, 100), newFake(t, 100)
	eu.token, eu.profilesToken = "sgp_eu", "prof_eu"
	us.seed("user-9")
	eu.seed("user-9")
	a := connectortest.Build(t, "segment", "segment-us", us.yaml(false, "user_id_system: app"))
	b := connectortest.Build(t, "segment", "segment-eu", eu.yaml(false, "user_id_system: app"))
	if _, err := connectortest.EraseAndWait(ctxFor(t), a, subject(9), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if us.count("user-9") != 0 || eu.count("user-9") != 1 {
		t.Fatalf("after erasing in the US instance: us %d, eu %d", us.count("user-9"), eu.count("user-9"))
	}
	if _, err := connectortest.EraseAndWait(ctxFor(t), b, subject(9), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if eu.count("user-9") != 0 {
		t.Error("the EU instance did not erase")
	}
	for _, call := range eu.Calls() {
		if call.Status == http.StatusUnauthorized {
			t.Errorf("the EU fake refused credentials: %s %s", call.Method, call.Path)
		}
	}
}

func TestRequestsFollowTheContract(t *testing.T) {
	t.Parallel()
	f := newFake(t, 100)
	f.seed("user/10")
	c := connectortest.Build(t, "segment", "app", f.yaml(false, "regulation_type: DELETE_ONLY"))
	// The slash must stay inside one path segment of the profile lookup.
	if out, err := connectortest.EraseAndWait(ctxFor(t), c, withUserID("user/10"), 5*time.Second); err != nil || out.Status != connectors.StatusErased {
		t.Fatalf("EraseAndWait = %q, %v; want erased", out.Status, err)
	}
	calls, lookups := f.Calls(), f.prof.Calls()
	if len(calls) < 2 || len(lookups) != 1 {
		t.Fatalf("%d calls, %d lookups", len(calls), len(lookups))
	}
	lookup, create, poll := lookups[0], calls[0], calls[1]
	if lookup.Method != http.MethodGet || lookup.Path != "/v1/spaces/spa_1/collections/users/profiles/user_id:user/10/traits" || lookup.Query != "limit=1" {
		t.Errorf("lookup = %s %s?%s", lookup.Method, lookup.Path, lookup.Query)
	}
	if u, p, ok := (&http.Request{Header: lookup.Header}).BasicAuth(); !ok || u != "prof_token" || p != "" {
		t.Errorf("lookup auth = %q %q %v", u, p, ok)
	}
	if create.Method != http.MethodPost || create.Path != "/regulations" || create.Status != http.StatusOK {
		t.Errorf("create = %s %s → %d", create.Method, create.Path, create.Status)
	}
	if got := create.Header.Get("Authorization"); got != "Bearer sgp_token" {
		t.Errorf("Authorization = %q", got)
	}
	if got := create.Header.Get("Content-Type"); got != "application/vnd.segment.v1+json" {
		t.Errorf("Content-Type = %q", got)
	}
	var body map[string]any
	if err := json.Unmarshal(create.Body, &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"regulationType": "DELETE_ONLY", "subjectType": "USER_ID", "subjectIds": []any{"user/10"}}
	if fmt.Sprint(body) != fmt.Sprint(want) {
		t.Errorf("body = %v, want %v", body, want)
	}
	if poll.Method != http.MethodGet || poll.Path != "/regulations/reg0001" || poll.Header.Get("Authorization") != "Bearer sgp_token" {
		t.Errorf("poll = %s %s", poll.Method, poll.Path)
	}
}

func secret(v string) config.Secret { return config.Secret{Value: v} }
