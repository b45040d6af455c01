package segment

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
	"github.com/lethe-dev/lethe/connectors/segment/segmentfake"
)

// instance is an instance named connectortest.UserIDSystem against f,
// with the profile lookup, reading user ids under its name (the
// connector's default), with extra lines set: connectortest.VendorSubject
// is one of its subjects.
func instance(t *testing.T, f *segmentfake.Fake, extra ...string) connectors.Connector {
	t.Helper()
	return connectortest.Build(t, "segment", connectortest.UserIDSystem, f.ConfigWith(append([]string{"user_id_system:"}, extra...)...))
}

// instanceWithoutProfiles is instance without the profile lookup.
func instanceWithoutProfiles(t *testing.T, f *segmentfake.Fake, extra ...string) connectors.Connector {
	t.Helper()
	return instance(t, f, append([]string{"profiles:"}, extra...)...)
}

// TestVendor runs the conformance suite and the vendor cases against the
// fake.
func TestVendor(t *testing.T) {
	t.Parallel()
	connectortest.RunVendor(t, connectortest.VendorSuite{
		VendorCases: connectortest.VendorCases{
			Type:  "segment",
			Start: connectortest.StartFake(segmentfake.Start),
			// The Public API names the reset as a date (3s ahead in the fake).
			MinRetryAfter: time.Millisecond, MaxRetryAfter: 3 * time.Second, Credential: "token",
		},
		Misconfigured: "base_url: {url}/v1beta/workspaces/acme",
		Hostile: []connectors.Subject{
			connectortest.VendorUserID("user-60%"), connectortest.VendorUserID("*"), connectortest.VendorUserID("user_id:user-600"), connectortest.VendorUserID("../regulations"),
			connectortest.VendorUserID("user-600/../user-601"), connectortest.VendorUserID("user-600' OR '1'='1"), connectortest.VendorUserID("user-600\",\"user-601"),
		},
		// It resolves: the Profile API finds the userId by email.
		Resolves: connectortest.ResolvesUserID,
	})
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	connectortest.RunVendorConfigCases(t, "segment", "token: x\n", "base_url", "user_id_system", "poll_interval")
	connectortest.RunConfigCases(t, "segment", nil, nil, connectortest.ConfigCases{
		{"no token", "base_url: https://api.segmentapis.com\n", "token: required"},
		{"bad regulation type", "token: x\nregulation_type: UNSUPPRESS\n", "regulation_type:"},
		{"profiles without space", "token: x\nprofiles:\n  token: y\n", "profiles.space_id: required"},
		{"profiles without token", "token: x\nprofiles:\n  space_id: spa_1\n", "profiles.token: required"},
		{"profiles bad space", "token: x\nprofiles:\n  space_id: ../x\n  token: y\n", "profiles.space_id"},
		{"token from empty env", "token: {env: LETHE_TEST_UNSET_SEGMENT}\n", "token: environment variable LETHE_TEST_UNSET_SEGMENT"},
	})
	t.Run("defaults", func(t *testing.T) {
		cfg := connectortest.Validated[Config](t, "token: x\n")
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

func TestRegulationPolledToCompletion(t *testing.T) {
	t.Parallel()
	f := segmentfake.Start(t, segmentfake.Options{})
	f.AddUser("user-1")
	c := instance(t, f, "poll_interval: 90m")
	ctx := connectortest.Ctx(t)
	out, err := c.Erase(ctx, connectortest.VendorSubject(1))
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != connectors.StatusRunning || out.PollAfter != 90*time.Minute {
		t.Fatalf("Erase = %q after %v, want running after 90m", out.Status, out.PollAfter)
	}
	if strings.Contains(out.JobRef, "user-1") {
		t.Errorf("job ref %q holds the user id", out.JobRef)
	}
	if got := connectortest.EvidenceText(out.Evidence); !strings.Contains(got, "before erasure: a profile was found") || !strings.Contains(got, "reg0001: created (SUPPRESS_WITH_DELETE)") {
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
	if out.Status != connectors.StatusErased || !out.Uncounted || out.Records != 0 {
		t.Errorf("final = %q with %d records (uncounted %v), want erased, uncounted: Segment reports no count", out.Status, out.Records, out.Uncounted)
	}
	if got := connectortest.EvidenceText(out.Evidence); !strings.Contains(got, "segment_destination=Amplitude: FINISHED at 2026-01-02T03:04:05Z") ||
		!strings.Contains(got, "segment_destination=Braze: FINISHED") {
		t.Errorf("evidence = %s", got)
	}
	v, err := c.(connectors.Verifier).Verify(ctx, connectortest.VendorSubject(1))
	if err != nil || v.Remaining != 0 || connectortest.EvidenceText(v.Evidence) != "segment_profile=after erasure: no profile; " {
		t.Errorf("Verify = %+v, %v", v, err)
	}
}

func TestWithoutProfilesEveryFinishedRegulationIsErasedUncounted(t *testing.T) {
	t.Parallel()
	f := segmentfake.Start(t, segmentfake.Options{})
	c := instanceWithoutProfiles(t, f)
	// Segment does not say whether it held anything: a finished regulation
	// for a userId it never saw looks the same. Lethe invents no count.
	out, err := connectortest.EraseAndWait(connectortest.Ctx(t), c, connectortest.VendorSubject(2), 5*time.Second)
	if err != nil || out.Status != connectors.StatusErased || !out.Uncounted || out.Records != 0 {
		t.Fatalf("EraseAndWait = %q %d (uncounted %v), %v; want erased, uncounted", out.Status, out.Records, out.Uncounted, err)
	}
	if n := len(f.ProfileCalls()); n != 0 {
		t.Errorf("an instance without profiles looked profiles up %d times", n)
	}
}

// The plan makes the runtime wait for a userId; a subject without one
// (the instance's keys were changed) is refused, never "not found":
// nothing was searched.
func TestSubjectWithoutUserIDIsRefused(t *testing.T) {
	t.Parallel()
	f := segmentfake.Start(t, segmentfake.Options{})
	c := instance(t, f)
	s := connectors.Subject{Email: "a@example.com", UserIDs: map[string]string{"crm": "7"}}
	connectortest.RefusedUnsent(t, c, s, "no user id for app", func() int { return len(f.Calls()) + len(f.ProfileCalls()) })
}

func TestPlan(t *testing.T) {
	t.Parallel()
	const base = "token: {env: SEGMENT_TOKEN_NEVER_READ}\n"
	profiles := "profiles:\n  space_id: spa_1\n  token: {env: SEGMENT_PROFILES_NEVER_READ}\n"
	// Plans are read without building the connector: the tokens'
	// variables are unset and never read.
	connectortest.RunPlanCases(t, "segment", connectortest.PlanCases{
		{Name: "user id under the instance name", Instance: "segment-eu", YAML: base, Keys: "[user_ids.segment-eu]", Uses: "[user_ids.segment-eu]"},
		{Name: "user_id_system", Instance: "segment", YAML: base + "user_id_system: app\n", Keys: "[user_ids.app]", Uses: "[user_ids.app]"},
		{Name: "profiles resolve by email", Instance: "segment", YAML: base + "user_id_system: app\n" + profiles,
			Keys: "[user_ids.app]", Uses: "[user_ids.app]", ResolveBy: "[email]", Gives: "[user_ids.app]"},
		{Name: "resolve_by_email off", Instance: "segment", YAML: base + profiles + "  resolve_by_email: false\n",
			Keys: "[user_ids.segment]", Uses: "[user_ids.segment]"},
	})
	f := segmentfake.Start(t, segmentfake.Options{})
	if _, ok := instanceWithoutProfiles(t, f).(connectors.Resolver); ok {
		t.Error("an instance without profiles is a Resolver")
	}
	off := strings.Replace(f.Config(), "  base_url:", "  resolve_by_email: false\n  base_url:", 1)
	c := connectortest.Build(t, "segment", "app", off)
	if _, ok := c.(connectors.Resolver); ok {
		t.Error("an instance with resolve_by_email: false is a Resolver")
	}
	if _, ok := c.(connectors.Verifier); !ok {
		t.Error("an instance with profiles cannot verify")
	}
}

func TestUserIDSystem(t *testing.T) {
	t.Parallel()
	f := segmentfake.Start(t, segmentfake.Options{})
	f.AddUser("42")
	c := connectortest.Build(t, "segment", "segment-eu", f.Config())
	out, err := connectortest.EraseAndWait(connectortest.Ctx(t), c, connectortest.VendorUserID("42"), 5*time.Second)
	if err != nil || out.Status != connectors.StatusErased || f.CountUser("42") != 0 {
		t.Fatalf("EraseAndWait = %q, %v; %d left", out.Status, err, f.CountUser("42"))
	}
}

func TestFailedJobs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		setup     func(f *segmentfake.Fake)
		permanent bool
		want      string
	}{
		{"a destination failed", func(f *segmentfake.Fake) { f.FailAt("Braze") }, false, "PARTIAL_SUCCESS: deletion failed at Braze"},
		{"a destination cannot delete", func(f *segmentfake.Fake) { f.RefuseAt("Amplitude") }, true, "Amplitude cannot delete users through Segment"},
		{"a destination cannot delete, the regulation finished", func(f *segmentfake.Fake) { f.RefuseAtYetFinish("Braze") }, true, "FINISHED: Braze cannot delete users through Segment"},
		{"regulation failed", func(f *segmentfake.Fake) { f.EndRegulationsAs("FAILED") }, false, "FAILED"},
		{"regulation invalid", func(f *segmentfake.Fake) { f.EndRegulationsAs("INVALID") }, true, "is INVALID: Segment refused it"},
		{"regulation not supported", func(f *segmentfake.Fake) { f.EndRegulationsAs("NOT_SUPPORTED") }, true, "is NOT_SUPPORTED"},
		{"unknown status", func(f *segmentfake.Fake) { f.EndRegulationsAs("EXPLODED") }, false, `unknown status "EXPLODED"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := segmentfake.Start(t, segmentfake.Options{})
			tc.setup(f)
			f.AddUser("user-3")
			c := instance(t, f)
			_, err := connectortest.EraseAndWait(connectortest.Ctx(t), c, connectortest.VendorSubject(3), 5*time.Second)
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
		f := segmentfake.Start(t, segmentfake.Options{})
		f.FailAt("Braze")
		c := instanceWithoutProfiles(t, f)
		out, err := c.(connectors.Poller).Poll(connectortest.Ctx(t), `{"regulation":"reg0001"}`)
		if err == nil || !strings.Contains(err.Error(), "not found") {
			t.Fatalf("Poll of an unknown regulation = %v", err)
		}
		if perm, _ := connectors.Classify(err); !perm {
			t.Errorf("unknown regulation classified retryable: %v", err)
		}
		out, err = connectortest.EraseAndWait(connectortest.Ctx(t), c, connectortest.VendorSubject(4), 5*time.Second)
		if err == nil || !strings.Contains(connectortest.EvidenceText(out.Evidence), "segment_destination=Braze: FAILED") {
			t.Errorf("evidence with the failure = %s (%v)", connectortest.EvidenceText(out.Evidence), err)
		}
		if strings.Contains(connectortest.EvidenceText(out.Evidence), "user-4") {
			t.Errorf("evidence carries the user id: %s", connectortest.EvidenceText(out.Evidence))
		}
	})
}

func TestMalformedAnswersAreRetryable(t *testing.T) {
	t.Parallel()
	f := segmentfake.Start(t, segmentfake.Options{})
	c := instanceWithoutProfiles(t, f)
	ctx := connectortest.Ctx(t)
	// Bodies that are not JSON at all are vendor cases (TestVendor/cases).
	f.Inject(1, func(w http.ResponseWriter, r *http.Request) {
		fakevendor.JSON(w, http.StatusOK, map[string]any{"data": map[string]any{}})
	})
	if _, err := c.Erase(ctx, connectortest.VendorSubject(5)); err == nil || connectortest.IsPermanent(err) {
		t.Fatalf("answer without regulateId: %v; want a retryable error", err)
	}
	if _, err := c.(connectors.Poller).Poll(ctx, "reg0001"); err == nil || !connectortest.IsPermanent(err) {
		t.Fatalf("malformed job ref: %v; want a permanent error", err)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	t.Run("600 a minute", func(t *testing.T) {
		t.Parallel()
		f := segmentfake.Start(t, segmentfake.Options{RateLimit: 10, Burst: 10})
		c := instanceWithoutProfiles(t, f)
		var limited error
		for range 15 {
			if _, err := c.Erase(connectortest.Ctx(t), connectortest.VendorSubject(7)); err != nil {
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
		f := segmentfake.Start(t, segmentfake.Options{})
		c := instance(t, f)
		f.InjectProfiles(1, segmentfake.ProfilesTooMany)
		_, err := c.(connectors.Verifier).Verify(connectortest.Ctx(t), connectortest.VendorSubject(7))
		if perm, after := connectors.Classify(err); err == nil || perm || after != time.Second {
			t.Fatalf("Verify = %v (retry after %v); want retryable after 1s", err, after)
		}
	})
}

func TestRequestsFollowTheContract(t *testing.T) {
	t.Parallel()
	f := segmentfake.Start(t, segmentfake.Options{})
	f.AddUser("user/10")
	c := instance(t, f, "regulation_type: DELETE_ONLY")
	// The slash must stay inside one path segment of the profile lookup.
	if out, err := connectortest.EraseAndWait(connectortest.Ctx(t), c, connectortest.VendorUserID("user/10"), 5*time.Second); err != nil || out.Status != connectors.StatusErased {
		t.Fatalf("EraseAndWait = %q, %v; want erased", out.Status, err)
	}
	calls, lookups := f.Calls(), f.ProfileCalls()
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

func TestResolveByEmail(t *testing.T) {
	t.Parallel()
	kind := connectors.UserIDKind(connectortest.UserIDSystem)
	t.Run("every userId of the profile, over pages", func(t *testing.T) {
		t.Parallel()
		f := segmentfake.Start(t, segmentfake.Options{})
		f.CapExternalIDsPage(1)
		for _, id := range []string{"u-1", "u-2", "u-3"} {
			f.AddUser(id)
			f.LinkEmail("ann+news@example.com", id)
		}
		f.AddUser("u-4")
		f.LinkEmail("ann news@example.com", "u-4") // what a bare '+' would find
		c := instance(t, f).(connectors.Resolver)
		connectortest.Resolves(t, c, connectors.Subject{Email: "ann+news@example.com"},
			map[connectors.Kind]string{kind: "[u-1 u-2 u-3]"}, "segment_lookup=profile found by email; 3 user ids read; ")
		calls := f.ProfileCalls()
		if len(calls) != 3 {
			t.Fatalf("%d lookups, want 3 pages", len(calls))
		}
		first := calls[0]
		if first.Method != http.MethodGet || first.Path != "/v1/spaces/spa_1/collections/users/profiles/email:ann+news@example.com/external_ids" ||
			first.Query != "include=user_id&limit=100" {
			t.Errorf("lookup = %s %s?%s", first.Method, first.Path, first.Query)
		}
		if !strings.Contains(calls[1].Query, "next=map_1") || !strings.Contains(calls[2].Query, "next=map_2") {
			t.Errorf("pages asked for with %q and %q", calls[1].Query, calls[2].Query)
		}
		if u, p, ok := (&http.Request{Header: first.Header}).BasicAuth(); !ok || u != "prof_token" || p != "" {
			t.Errorf("lookup auth = %q %q %v", u, p, ok)
		}
	})
	t.Run("a profile with an email but no userId", func(t *testing.T) {
		t.Parallel()
		f := segmentfake.Start(t, segmentfake.Options{})
		f.LinkEmail("anon@example.com", "") // identified by email only
		c := instance(t, f).(connectors.Resolver)
		got, err := c.Resolve(connectortest.Ctx(t), connectors.Subject{Email: "anon@example.com"})
		if err != nil || len(got.Found) != 0 {
			t.Errorf("Resolve = %v, %v; want nothing found", got.Found, err)
		}
	})
}

// TestResolveCases runs the look-up cases every resolver runs against
// the Profile API.
func TestResolveCases(t *testing.T) {
	t.Parallel()
	profiles := func(f connectortest.FaultyVendor) *segmentfake.Fake { return f.(*segmentfake.Fake) }
	connectortest.RunResolveCases(t, connectortest.ResolveCases{
		Start: connectortest.StartFake(segmentfake.Start),
		New: func(t *testing.T, f connectortest.FaultyVendor) connectors.Resolver {
			return instance(t, profiles(f)).(connectors.Resolver)
		},
		Inject:  func(f connectortest.FaultyVendor, fault fakevendor.Fault) { profiles(f).InjectProfiles(1, fault) },
		Lookups: func(f connectortest.FaultyVendor) int { return len(profiles(f).ProfileCalls()) },
		// The Profile API's 429 names no delay; a second waits it out.
		TooMany: segmentfake.ProfilesTooMany, TooManyAfter: time.Second,
		NobodyEvidence: "segment_lookup=no profile found by email; ",
		// The email is a path segment: what would climb out of it or add a query.
		Hostile: []string{"x/../../subject600@example.com", "%73ubject600@example.com", "subject600@example.com:user_id", "subject600@example.com?include=user_id"},
		AfterHostile: func(t *testing.T, f connectortest.FaultyVendor) {
			for _, call := range profiles(f).ProfileCalls() {
				if call.Status != http.StatusNotFound {
					t.Errorf("a hostile lookup reached a profile: %s → %d", call.Path, call.Status)
				}
			}
		},
	})
}

func TestResolveCredentials(t *testing.T) {
	t.Parallel()
	s := connectortest.VendorSubject(12)
	// Another workspace's token.
	f := segmentfake.Start(t, segmentfake.Options{})
	f.Seed(s)
	c := instance(t, f).(connectors.Resolver)
	f.SetTokens(segmentfake.DefaultToken, "rotated")
	if _, err := c.Resolve(connectortest.Ctx(t), s); err == nil || !connectortest.IsPermanent(err) {
		t.Errorf("Resolve with a refused token = %v; want permanent", err)
	}
}

// batchOf returns c as a batch eraser and poller.
// subjects are VendorSubject(from) … VendorSubject(from+n-1), each with
// a profile and events in f when seed is set.
func subjects(f *segmentfake.Fake, from, n int, seed bool) []connectors.Subject {
	ss := connectortest.Subjects(from, n)
	for _, s := range ss {
		if seed {
			f.AddUser(s.UserIDs[connectortest.UserIDSystem])
		}
	}
	return ss
}

// userIDs are the distinct userIds of ss, in order.
func userIDs(ss []connectors.Subject) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range ss {
		if id := s.UserIDs[connectortest.UserIDSystem]; id != "" && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// TestBatchCalls: a batch costs one regulation per 5,000 distinct userIds
// (one profile lookup per userId with profiles), and polled together one
// status call per regulation a round (the fake's regulations answer
// INITIALIZED, RUNNING, then FINISHED: three rounds).
func TestBatchCalls(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		n        int
		profiles bool
		edit     func([]connectors.Subject) []connectors.Subject
		want     []int // userIds per regulation
	}{
		{name: "one", n: 1, want: []int{1}},
		{name: "three", n: 3, want: []int{3}},
		{name: "120 with profiles", n: 120, profiles: true, want: []int{120}},
		{name: "at the limit", n: 5000, want: []int{5000}},
		{name: "past the limit", n: 5001, want: []int{5000, 1}},
		{name: "twice the limit and more", n: 10001, want: []int{5000, 5000, 1}},
		{name: "the same userId twice is sent once", n: 3, profiles: true, want: []int{2},
			edit: func(ss []connectors.Subject) []connectors.Subject {
				return append(ss[:2], connectortest.VendorSubject(0))
			}},
		{name: "a subject without userId is not sent", n: 3, want: []int{2},
			edit: func(ss []connectors.Subject) []connectors.Subject {
				ss[1] = connectors.Subject{Email: "x@example.com"}
				return ss
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := segmentfake.Start(t, segmentfake.Options{})
			ss := subjects(f, 0, tc.n, true)
			if tc.edit != nil {
				ss = tc.edit(ss)
			}
			c := instanceWithoutProfiles(t, f)
			if tc.profiles {
				c = instance(t, f)
			}
			items, err := connectortest.EraseBatchAndWait(connectortest.Ctx(t), connectortest.AsBatcher(t, c), ss, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			regs := f.Regulations()
			var sizes []int
			var sent []string
			for _, r := range regs {
				sizes = append(sizes, len(r))
				sent = append(sent, r...)
			}
			if fmt.Sprint(sizes) != fmt.Sprint(tc.want) {
				t.Errorf("regulations of %v userIds, want %v", sizes, tc.want)
			}
			distinct := userIDs(ss)
			if strings.Join(sent, ",") != strings.Join(distinct, ",") {
				t.Errorf("userIds sent out of order or not once each (%d sent, %d distinct)", len(sent), len(distinct))
			}
			creates, statuses := f.RegulationCalls()
			if creates != len(tc.want) || statuses != 3*len(tc.want) {
				t.Errorf("%d create and %d status calls, want %d and %d", creates, statuses, len(tc.want), 3*len(tc.want))
			}
			lookups, want := len(f.ProfileCalls()), 0
			if tc.profiles {
				want = len(distinct)
			}
			if lookups != want {
				t.Errorf("%d profile lookups, want %d", lookups, want)
			}
			for i, it := range items {
				if ss[i].UserIDs[connectortest.UserIDSystem] == "" {
					if it.Err == nil || !connectortest.IsPermanent(it.Err) {
						t.Errorf("subject %d without userId: %v, want a permanent error", i, it.Err)
					}
					continue
				}
				if it.Err != nil || it.Outcome.Status != connectors.StatusErased {
					t.Errorf("subject %d: %q, %v", i, it.Outcome.Status, it.Err)
				}
			}
		})
	}
}

// TestBatchAttribution: Segment says nothing per userId; only the profile
// lookup, made for each, tells who it never saw. Without it nobody is
// not_found.
func TestBatchAttribution(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		profiles bool
		want     []connectors.Status
	}{
		{"with profiles", true, []connectors.Status{connectors.StatusErased, connectors.StatusNotFound, connectors.StatusErased}},
		{"without profiles", false, []connectors.Status{connectors.StatusErased, connectors.StatusErased, connectors.StatusErased}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := segmentfake.Start(t, segmentfake.Options{})
			ss := subjects(f, 20, 3, false)
			f.Seed(ss[0])
			f.Seed(ss[2])
			c := instanceWithoutProfiles(t, f)
			if tc.profiles {
				c = instance(t, f)
			}
			b := connectortest.AsBatcher(t, c)
			first, err := b.EraseBatch(connectortest.Ctx(t), ss)
			if err != nil {
				t.Fatal(err)
			}
			for i, it := range first {
				for _, id := range userIDs(ss) {
					if strings.Contains(it.Outcome.JobRef, id) || strings.Contains(connectortest.EvidenceText(it.Outcome.Evidence), id) {
						t.Errorf("subject %d: job ref or evidence holds a userId", i)
					}
				}
				if !strings.Contains(connectortest.EvidenceText(it.Outcome.Evidence), "reg0001: created (SUPPRESS_WITH_DELETE) for 3 user ids") {
					t.Errorf("subject %d: evidence = %s", i, connectortest.EvidenceText(it.Outcome.Evidence))
				}
			}
			// The refs, polled together to the end.
			got := first
			for range 5 {
				refs := []string{got[0].Outcome.JobRef, got[1].Outcome.JobRef, got[2].Outcome.JobRef}
				if got, err = b.PollBatch(connectortest.Ctx(t), refs); err != nil {
					t.Fatal(err)
				}
				if got[0].Outcome.Status != connectors.StatusRunning {
					break
				}
			}
			for i, it := range got {
				out := it.Outcome
				if it.Err != nil || out.Status != tc.want[i] {
					t.Errorf("subject %d: %q, %v; want %q", i, out.Status, it.Err, tc.want[i])
				}
				if out.Status == connectors.StatusErased && (!out.Uncounted || out.Records != 0) {
					t.Errorf("subject %d: erased with %d records (uncounted %v): Segment counts nothing", i, out.Records, out.Uncounted)
				}
				if ev := connectortest.EvidenceText(out.Evidence); !strings.Contains(ev, "reg0001 holds 3 user ids: its statuses are for all of them together") {
					t.Errorf("subject %d: evidence = %s", i, ev)
				}
			}
		})
	}
}

// TestBatchRefusedAsAWhole: a create call Segment refuses fails the whole
// batch, classified as a single create is, so the runtime can split it;
// nothing is reported for anyone and no identifier is quoted.
func TestBatchRefusedAsAWhole(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		fault     fakevendor.Fault
		profile   bool // the fault meets the profile lookup
		permanent bool
		after     time.Duration // at least
	}{
		{name: "422 validation failure", fault: func(w http.ResponseWriter, r *http.Request) {
			fakevendor.JSON(w, http.StatusUnprocessableEntity, map[string]any{"errors": []map[string]string{{"type": "validation", "message": "invalid subjectIds: user-30"}}})
		}, permanent: true},
		{name: "400", fault: fakevendor.Status(http.StatusBadRequest), permanent: true},
		{name: "401", fault: segmentfake.Refused, permanent: true},
		{name: "500", fault: fakevendor.Status(http.StatusInternalServerError)},
		{name: "503", fault: fakevendor.Status(http.StatusServiceUnavailable)},
		{name: "429 with the reset date", fault: segmentfake.TooMany, after: time.Second},
		{name: "profile lookup 500", fault: fakevendor.Status(http.StatusInternalServerError), profile: true},
		{name: "profile lookup 429", fault: segmentfake.ProfilesTooMany, profile: true, after: time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := segmentfake.Start(t, segmentfake.Options{})
			ss := subjects(f, 30, 3, true)
			if tc.profile {
				f.InjectProfiles(1, f.PassThrough())
				f.InjectProfiles(1, tc.fault)
			} else {
				f.Inject(1, tc.fault)
			}
			items, err := connectortest.AsBatcher(t, instance(t, f)).EraseBatch(connectortest.Ctx(t), ss)
			if err == nil {
				t.Fatalf("EraseBatch = %d items, no error; want the call to fail", len(items))
			}
			if items != nil {
				t.Errorf("a failed call answered for %d subjects", len(items))
			}
			perm, after := connectors.Classify(err)
			if perm != tc.permanent || after < tc.after {
				t.Errorf("permanent %v after %v, want %v after at least %v: %v", perm, after, tc.permanent, tc.after, err)
			}
			for _, id := range userIDs(ss) {
				if strings.Contains(err.Error(), id) {
					t.Errorf("error carries a userId: %v", err)
				}
			}
			if n := len(f.Regulations()); n != 0 {
				t.Errorf("%d regulations filed by a failed call", n)
			}
		})
	}
	// Past the limit, the regulations already filed stand: a later chunk
	// that fails fails its own subjects.
	t.Run("second chunk fails", func(t *testing.T) {
		t.Parallel()
		f := segmentfake.Start(t, segmentfake.Options{})
		ss := subjects(f, 0, segmentfake.MaxSubjectIDs+2, false)
		f.Inject(1, f.PassThrough())
		f.Inject(1, fakevendor.Status(http.StatusBadGateway))
		items, err := connectortest.AsBatcher(t, instanceWithoutProfiles(t, f)).EraseBatch(connectortest.Ctx(t), ss)
		if err != nil {
			t.Fatalf("EraseBatch failed as a whole though a regulation was filed: %v", err)
		}
		for i, it := range items {
			switch {
			case i < segmentfake.MaxSubjectIDs && (it.Err != nil || it.Outcome.Status != connectors.StatusRunning):
				t.Fatalf("subject %d of the filed regulation: %q, %v", i, it.Outcome.Status, it.Err)
			case i >= segmentfake.MaxSubjectIDs && (it.Err == nil || connectortest.IsPermanent(it.Err)):
				t.Fatalf("subject %d of the failed chunk: %q, %v; want a retryable error", i, it.Outcome.Status, it.Err)
			}
		}
		if creates, _ := f.RegulationCalls(); creates != 2 || len(f.Regulations()) != 1 {
			t.Errorf("%d creates, %d regulations; want 2 and 1", creates, len(f.Regulations()))
		}
	})
	// The fake refuses more than 5,000 userIds as Segment does: the
	// connector never sends them.
	t.Run("the fake enforces the limit", func(t *testing.T) {
		t.Parallel()
		f := segmentfake.Start(t, segmentfake.Options{})
		ids := make([]string, segmentfake.MaxSubjectIDs+1)
		for i := range ids {
			ids[i] = fmt.Sprintf("u%d", i)
		}
		for n, want := range map[int]int{segmentfake.MaxSubjectIDs: http.StatusOK, segmentfake.MaxSubjectIDs + 1: http.StatusUnprocessableEntity} {
			b, _ := json.Marshal(map[string]any{"regulationType": "SUPPRESS_WITH_DELETE", "subjectType": "USER_ID", "subjectIds": ids[:n]})
			req, _ := http.NewRequest(http.MethodPost, f.URL()+"/regulations", strings.NewReader(string(b)))
			req.Header.Set("Authorization", "Bearer "+segmentfake.DefaultToken)
			req.Header.Set("Content-Type", "application/vnd.segment.v1+json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("%d subjectIds: %d, want %d", n, resp.StatusCode, want)
			}
		}
	})
}

// TestPollBatch: refs naming one regulation cost one status call, refs
// written by the single Erase before batches still poll, and a ref that
// cannot be read or names a regulation Segment no longer has fails alone.
func TestPollBatch(t *testing.T) {
	t.Parallel()
	f := segmentfake.Start(t, segmentfake.Options{Polls: -1})
	ss := subjects(f, 40, 4, true)
	f.AddUser("old-1")
	c := instance(t, f)
	b := connectortest.AsBatcher(t, c)
	ctx := connectortest.Ctx(t)
	// reg0001: the way the single Erase filed it before batches.
	if _, err := c.Erase(ctx, connectortest.VendorUserID("old-1")); err != nil {
		t.Fatal(err)
	}
	first, err := b.EraseBatch(ctx, ss[:2]) // reg0002
	if err != nil {
		t.Fatal(err)
	}
	second, err := b.EraseBatch(ctx, ss[2:]) // reg0003
	if err != nil {
		t.Fatal(err)
	}
	_, before := f.RegulationCalls()
	refs := []string{
		first[0].Outcome.JobRef,
		`{"regulation":"reg0001","profile":"found"}`, // as the single Erase wrote it
		second[0].Outcome.JobRef,
		"not a ref",
		first[1].Outcome.JobRef,
		`{"regulation":"reg0999","profile":"found"}`,
		second[1].Outcome.JobRef,
		`{"regulation":"reg0001","profile":"none"}`,
	}
	items, err := b.PollBatch(ctx, refs)
	if err != nil {
		t.Fatal(err)
	}
	if err := connectors.CheckItems(items, len(refs)); err != nil {
		t.Fatal(err)
	}
	if _, after := f.RegulationCalls(); after-before != 4 {
		t.Errorf("%d status calls for 4 regulations", after-before)
	}
	want := []connectors.Status{connectors.StatusErased, connectors.StatusErased, connectors.StatusErased, "", connectors.StatusErased, "", connectors.StatusErased, connectors.StatusNotFound}
	for i, it := range items {
		if want[i] == "" {
			if it.Err == nil || !connectortest.IsPermanent(it.Err) {
				t.Errorf("ref %d: %q, %v; want a permanent error of its own", i, it.Outcome.Status, it.Err)
			}
			continue
		}
		if it.Err != nil || it.Outcome.Status != want[i] {
			t.Errorf("ref %d: %q, %v; want %q", i, it.Outcome.Status, it.Err, want[i])
		}
	}
	if !strings.Contains(items[5].Err.Error(), "reg0999 not found") {
		t.Errorf("unknown regulation: %v", items[5].Err)
	}
	if ev := connectortest.EvidenceText(items[1].Outcome.Evidence); strings.Contains(ev, "holds") {
		t.Errorf("a single erasure's evidence speaks of several userIds: %s", ev)
	}
	// Poll alone still reads both kinds of ref.
	for _, ref := range []string{first[0].Outcome.JobRef, `{"regulation":"reg0001","profile":"found"}`} {
		if out, err := c.(connectors.Poller).Poll(ctx, ref); err != nil || out.Status != connectors.StatusErased {
			t.Errorf("Poll(%s) = %q, %v", ref, out.Status, err)
		}
	}
	t.Run("a failing status call fails the call", func(t *testing.T) {
		f.Inject(1, f.PassThrough())
		f.Inject(1, fakevendor.Status(http.StatusInternalServerError))
		items, err := b.PollBatch(ctx, refs)
		if err == nil || connectortest.IsPermanent(err) || items != nil {
			t.Errorf("PollBatch with a 500 = %d items, %v; want a retryable error for the call", len(items), err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		_, was := f.RegulationCalls()
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := b.PollBatch(cctx, refs); err == nil || connectortest.IsPermanent(err) {
			t.Errorf("PollBatch with a cancelled context: %v", err)
		}
		if _, now := f.RegulationCalls(); now != was {
			t.Errorf("a cancelled PollBatch made %d calls", now-was)
		}
	})
}

// TestBatchJobFails: a regulation reports for all its userIds together, so
// whatever fails it fails every subject of the batch, classified as for
// one, and never with the userIds a destination's message may quote.
func TestBatchJobFails(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		setup     func(f *segmentfake.Fake)
		permanent bool
		want      string
	}{
		{"a destination failed", func(f *segmentfake.Fake) { f.FailAt("Braze") }, false, "PARTIAL_SUCCESS: deletion failed at Braze"},
		{"a destination cannot delete", func(f *segmentfake.Fake) { f.RefuseAt("Amplitude") }, true, "Amplitude cannot delete users through Segment"},
		{"a destination cannot delete, the regulation finished", func(f *segmentfake.Fake) { f.RefuseAtYetFinish("Braze") }, true, "FINISHED: Braze cannot delete"},
		{"regulation failed", func(f *segmentfake.Fake) { f.EndRegulationsAs("FAILED") }, false, "reg0001 FAILED"},
		// Segment says it did not all succeed, though no destination says
		// where: never erased on the strength of it.
		{"partial success, no destination failing", func(f *segmentfake.Fake) { f.EndRegulationsAs("PARTIAL_SUCCESS") }, false, "reg0001 PARTIAL_SUCCESS, no destination named as failing"},
		{"regulation invalid", func(f *segmentfake.Fake) { f.EndRegulationsAs("INVALID") }, true, "is INVALID"},
		{"regulation not supported", func(f *segmentfake.Fake) { f.EndRegulationsAs("NOT_SUPPORTED") }, true, "is NOT_SUPPORTED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := segmentfake.Start(t, segmentfake.Options{})
			tc.setup(f)
			ss := subjects(f, 50, 3, true)
			items, err := connectortest.EraseBatchAndWait(connectortest.Ctx(t), connectortest.AsBatcher(t, instance(t, f)), ss, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			for i, it := range items {
				if it.Err == nil {
					t.Errorf("subject %d: %q; want the regulation's failure", i, it.Outcome.Status)
					continue
				}
				if perm, _ := connectors.Classify(it.Err); perm != tc.permanent {
					t.Errorf("subject %d: permanent %v, want %v: %v", i, perm, tc.permanent, it.Err)
				}
				if !strings.Contains(it.Err.Error(), tc.want) {
					t.Errorf("subject %d: error %q does not say %q", i, it.Err, tc.want)
				}
				text := it.Err.Error() + connectortest.EvidenceText(it.Outcome.Evidence)
				for _, id := range userIDs(ss) {
					if strings.Contains(text, id) {
						t.Errorf("subject %d: error or evidence carries a userId: %s", i, text)
					}
				}
			}
		})
	}
}

// TestBatchLimitWithProfiles: each subject of a batch costs a Profile API
// lookup first, so a batch with lookups is kept to what one call's timeout
// allows; without them it is Segment's 5,000.
func TestBatchLimitWithProfiles(t *testing.T) {
	f := segmentfake.Start(t, segmentfake.Options{})
	if got := instance(t, f).(connectors.BatchEraser).BatchLimit(); got != 200 {
		t.Errorf("with profiles: BatchLimit %d, want 200", got)
	}
	if got := instanceWithoutProfiles(t, f).(connectors.BatchEraser).BatchLimit(); got != 5000 {
		t.Errorf("without profiles: BatchLimit %d, want 5000", got)
	}
}
