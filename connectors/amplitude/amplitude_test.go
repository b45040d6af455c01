package amplitude

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/amplitude/amplitudefake"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
	"github.com/lethe-dev/lethe/connectors/vendorkit"
)

// instance is an instance named connectortest.UserIDSystem against f,
// reading user ids under its name (the connector's default), with extra
// lines set: connectortest.VendorSubject is one of its subjects.
func instance(t *testing.T, f *amplitudefake.Fake, extra ...string) connectors.Connector {
	t.Helper()
	return connectortest.Build(t, "amplitude", connectortest.UserIDSystem, f.ConfigWith(append([]string{"user_id_system:"}, extra...)...))
}

// TestVendor runs the conformance suite and the vendor cases against the
// fake.
func TestVendor(t *testing.T) {
	t.Parallel()
	connectortest.RunVendor(t, connectortest.VendorSuite{
		VendorCases: connectortest.VendorCases{
			Type:  "amplitude",
			Start: connectortest.StartFake(amplitudefake.Start),
			// Amplitude's 429 names no delay; its documented rate is one a second.
			TooMany: amplitudefake.TooMany, MinRetryAfter: time.Second, MaxRetryAfter: time.Second,
			Refused: amplitudefake.Refused, Credential: "API key", Secrets: []string{amplitudefake.DefaultAPIKey, amplitudefake.DefaultSecretKey},
		},
		Misconfigured: "base_url: {url}/analytics",
		Hostile: []connectors.Subject{
			connectortest.VendorUserID("user-60%"), connectortest.VendorUserID("*"), connectortest.VendorUserID("user-600&user=user-601"), connectortest.VendorUserID("../deletions/users"),
			connectortest.VendorUserID("user-600' OR '1'='1"), connectortest.VendorUserID("user-600\",\"user-601"), connectortest.VendorUserID("356896327776"),
		},
	})
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	connectortest.RunVendorConfigCases(t, "amplitude", "api_key: k\nsecret_key: s\n", "base_url", "user_id_system", "poll_interval")
	connectortest.RunConfigCases(t, "amplitude", nil, nil, connectortest.ConfigCases{
		{"no keys", "base_url: https://amplitude.com\n", "api_key: required"},
		{"no secret", "api_key: k\n", "secret_key: required"},
		{"bad amplitude id system", "api_key: k\nsecret_key: s\namplitude_id_system: ../x\n", "amplitude_id_system:"},
		{"same systems", "api_key: k\nsecret_key: s\nuser_id_system: app\namplitude_id_system: app\n", "amplitude_id_system: must differ"},
		{"long requester", "api_key: k\nsecret_key: s\nrequester: " + strings.Repeat("r", 300) + "\n", "requester:"},
		{"key from empty env", "api_key: {env: LETHE_TEST_UNSET_AMPLITUDE}\nsecret_key: s\n", "api_key: environment variable LETHE_TEST_UNSET_AMPLITUDE"},
	})
	t.Run("defaults", func(t *testing.T) {
		cfg := connectortest.Validated[Config](t, "api_key: k\nsecret_key: s\n")
		if cfg.BaseURL != defaultBaseURL || cfg.Requester != "lethe" || cfg.PollInterval != 24*time.Hour {
			t.Errorf("defaults = %+v", cfg)
		}
	})
}

func TestJobPolledToCompletion(t *testing.T) {
	t.Parallel()
	f := amplitudefake.Start(t, amplitudefake.Options{})
	amp := f.AddUser("user-1")
	c := instance(t, f, "poll_interval: 36h")
	ctx := connectortest.Ctx(t)
	out, err := c.Erase(ctx, connectortest.VendorSubject(1))
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != connectors.StatusRunning || out.PollAfter != 36*time.Hour {
		t.Fatalf("Erase = %q after %v", out.Status, out.PollAfter)
	}
	if strings.Contains(out.JobRef, strconv.FormatInt(amp, 10)) || strings.Contains(out.JobRef, "user-1") {
		t.Errorf("job ref %s holds an identifier", out.JobRef)
	}
	if !strings.Contains(out.JobRef, `"day":"2026-03-11"`) {
		t.Errorf("job ref %s does not hold the job's day", out.JobRef)
	}
	// An Amplitude ID is a near-sequential number: an unkeyed hash of it
	// in the ref would be reversed by trying every number.
	var ref jobRef
	if err := vendorkit.DecodeRef(out.JobRef, &ref, func() bool { return true }, "amplitude"); err != nil || ref.V != 2 || len(ref.IDs) != 1 {
		t.Fatalf("job ref %s: %+v, %v", out.JobRef, ref, err)
	}
	if ref.IDs[0] == idHash(ampID(strconv.FormatInt(amp, 10))) {
		t.Error("the job ref remembers the Amplitude ID by an unkeyed hash")
	}
	if other := (&connector{refKey: refKey("another secret")}).refHash(2, ampID(strconv.FormatInt(amp, 10))); other == ref.IDs[0] {
		t.Error("the job ref's hash does not depend on the instance's secret")
	}
	if got := connectortest.EvidenceText(out.Evidence); got != "amplitude_deletion=job of 2026-03-11: staging, 1 Amplitude ID scheduled; " {
		t.Errorf("evidence = %s", got)
	}
	out, states := connectortest.PollToEnd(t, c, out, 10)
	want := "amplitude_deletion=job of 2026-03-11: staging, 1 Amplitude ID; |" +
		"amplitude_deletion=job of 2026-03-11: submitted, 1 Amplitude ID; |" +
		"amplitude_deletion=job of 2026-03-11: done, 1 Amplitude ID; "
	if strings.Join(states, "|") != want {
		t.Errorf("states = %s", strings.Join(states, "|"))
	}
	if out.Status != connectors.StatusErased || out.Records != 1 || f.CountUser("user-1") != 0 {
		t.Errorf("final = %q %d, %d left", out.Status, out.Records, f.CountUser("user-1"))
	}
	v, err := c.(connectors.Verifier).Verify(ctx, connectortest.VendorSubject(1))
	if err != nil || v.Remaining != 0 || connectortest.EvidenceText(v.Evidence) != "amplitude_search=after erasure: 0 matching users; " {
		t.Errorf("Verify = %+v, %v", v, err)
	}
}

// TestVersion1RefsStillPoll: a job scheduled before refs were keyed
// (no version, unkeyed hashes) is still followed to its end.
func TestVersion1RefsStillPoll(t *testing.T) {
	t.Parallel()
	f := amplitudefake.Start(t, amplitudefake.Options{})
	amp := f.AddUser("user-1")
	c := instance(t, f)
	out, err := c.Erase(connectortest.Ctx(t), connectortest.VendorSubject(1))
	if err != nil {
		t.Fatal(err)
	}
	var ref jobRef
	if err := vendorkit.DecodeRef(out.JobRef, &ref, func() bool { return true }, "amplitude"); err != nil {
		t.Fatal(err)
	}
	old := jobRef{Day: ref.Day, IDs: []string{idHash(ampID(strconv.FormatInt(amp, 10)))}}
	out.JobRef = vendorkit.EncodeRef(old)
	out, _ = connectortest.PollToEnd(t, c, out, 10)
	if out.Status != connectors.StatusErased || out.Records != 1 {
		t.Errorf("a version 1 ref polled to %q %d", out.Status, out.Records)
	}
}

func TestAmplitudeIDs(t *testing.T) {
	t.Parallel()
	f := amplitudefake.Start(t, amplitudefake.Options{})
	id := f.AddUser("user-2")
	c := instance(t, f, "amplitude_id_system: amplitude")
	s := connectortest.VendorSubject(2)
	s.UserIDs["amplitude"] = strconv.FormatInt(id, 10)
	ctx := connectortest.Ctx(t)
	if v, err := c.(connectors.Verifier).Verify(ctx, s); err != nil || v.Remaining != 1 {
		t.Fatalf("Verify before = %+v, %v; want the user and their Amplitude ID counted once", v, err)
	}
	out, err := connectortest.EraseAndWait(ctx, c, s, 5*time.Second)
	if err != nil || out.Status != connectors.StatusErased || out.Records != 1 {
		t.Fatalf("EraseAndWait = %q %d, %v", out.Status, out.Records, err)
	}
	var body map[string]json.RawMessage
	for _, call := range f.Calls() {
		if call.Method == http.MethodPost {
			if err := json.Unmarshal(call.Body, &body); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if string(body["amplitude_ids"]) != fmt.Sprintf("[%d]", id) {
		t.Errorf("amplitude_ids sent = %s", body["amplitude_ids"])
	}
	// Only an Amplitude ID, and one that is not a number.
	only := connectors.Subject{UserIDs: map[string]string{"amplitude": "abc"}}
	if _, err := c.Erase(ctx, only); err == nil || !connectortest.IsPermanent(err) || strings.Contains(err.Error(), "abc") {
		t.Errorf("non-numeric Amplitude ID: %v; want a permanent error without the value", err)
	}
	// The plan makes the runtime wait for an id: without one nothing is
	// searched, and that is never "not found" or "clean".
	none := connectors.Subject{Email: "a@example.com"}
	if out, err := c.Erase(ctx, none); err == nil || !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), "no user id for app or amplitude") {
		t.Errorf("no ids: %q, %v; want a permanent error", out.Status, err)
	}
	if _, err := c.(connectors.Verifier).Verify(ctx, none); err == nil || !connectortest.IsPermanent(err) {
		t.Errorf("Verify without ids = %v; want a permanent error", err)
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	// Plans are read without building the connector: the keys' variables
	// are unset and never read.
	const base = "api_key: {env: AMP_NEVER_READ}\nsecret_key: {env: AMP_NEVER_READ}\n"
	connectortest.RunPlanCases(t, "amplitude", connectortest.PlanCases{
		{Name: "user_id under the instance name", Instance: "amplitude-eu", YAML: base, Keys: "[user_ids.amplitude-eu]", Uses: "[user_ids.amplitude-eu]"},
		{Name: "user_id_system", Instance: "amplitude", YAML: base + "user_id_system: app\n", Keys: "[user_ids.app]", Uses: "[user_ids.app]"},
		{Name: "either id", Instance: "amplitude", YAML: base + "user_id_system: app\namplitude_id_system: amp-id\n",
			Keys: "[user_ids.app|user_ids.amp-id]", Uses: "[user_ids.amp-id user_ids.app]"},
	})
}

func TestFailedJobs(t *testing.T) {
	t.Parallel()
	t.Run("unknown status", func(t *testing.T) {
		t.Parallel()
		f := amplitudefake.Start(t, amplitudefake.Options{})
		f.EndJobsAs("failed")
		f.AddUser("user-3")
		c := instance(t, f)
		out, err := connectortest.EraseAndWait(connectortest.Ctx(t), c, connectortest.VendorSubject(3), 5*time.Second)
		if err == nil || connectortest.IsPermanent(err) || !strings.Contains(err.Error(), `status "failed"`) {
			t.Fatalf("EraseAndWait = %q, %v; want a retryable error naming the status", out.Status, err)
		}
		if got := connectortest.EvidenceText(out.Evidence); got != "amplitude_deletion=job of 2026-03-11: failed, 1 Amplitude ID; " {
			t.Errorf("evidence = %s", got)
		}
	})
	t.Run("removed from staging", func(t *testing.T) {
		t.Parallel()
		f := amplitudefake.Start(t, amplitudefake.Options{})
		f.AddUser("user-4")
		c := instance(t, f)
		out, err := c.Erase(connectortest.Ctx(t), connectortest.VendorSubject(4))
		if err != nil {
			t.Fatal(err)
		}
		// What DELETE /api/2/deletions/users/{amplitude_id}/{day} does.
		f.Unstage()
		_, err = c.(connectors.Poller).Poll(connectortest.Ctx(t), out.JobRef)
		if err == nil || !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), "removed from staging") {
			t.Fatalf("Poll = %v; want a permanent error", err)
		}
	})
	t.Run("malformed job ref", func(t *testing.T) {
		t.Parallel()
		c := instance(t, amplitudefake.Start(t, amplitudefake.Options{}))
		for _, ref := range []string{"2026-03-11", `{"day":"yesterday","ids":["x"]}`, `{"day":"2026-03-11","ids":[]}`} {
			if _, err := c.(connectors.Poller).Poll(connectortest.Ctx(t), ref); err == nil || !connectortest.IsPermanent(err) {
				t.Errorf("Poll(%s) = %v; want a permanent error", ref, err)
			}
		}
	})
}

func TestMalformedAnswersAreRetryable(t *testing.T) {
	t.Parallel()
	f := amplitudefake.Start(t, amplitudefake.Options{})
	f.AddUser("user-5")
	c := instance(t, f)
	ctx := connectortest.Ctx(t)
	// A body that is not JSON at all is a vendor case (TestVendor/cases).
	for name, fault := range map[string]fakevendor.Fault{
		"no day": func(w http.ResponseWriter, r *http.Request) {
			fakevendor.JSON(w, 200, map[string]any{"status": "staging", "amplitude_ids": []map[string]any{{"amplitude_id": 1}}})
		},
	} {
		f.Inject(1, fault)
		if _, err := c.Erase(ctx, connectortest.VendorSubject(5)); err == nil || connectortest.IsPermanent(err) {
			t.Errorf("%s: Erase = %v; want a retryable error", name, err)
		}
	}
	out, err := c.Erase(ctx, connectortest.VendorSubject(5))
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != connectors.StatusRunning {
		t.Fatalf("Erase = %q, want running", out.Status)
	}
	f.Inject(1, func(w http.ResponseWriter, r *http.Request) {
		fakevendor.JSON(w, 200, map[string]any{"type": "nomatch"})
	})
	if _, err := c.(connectors.Verifier).Verify(ctx, connectortest.VendorSubject(5)); err == nil || connectortest.IsPermanent(err) {
		t.Errorf("Verify without matches = %v; want a retryable error", err)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	t.Run("one a second", func(t *testing.T) {
		t.Parallel()
		f := amplitudefake.Start(t, amplitudefake.Options{RateLimit: 1, Burst: 1})
		c := instance(t, f)
		if _, err := c.(connectors.Verifier).Verify(connectortest.Ctx(t), connectortest.VendorSubject(7)); err != nil {
			t.Fatal(err)
		}
		_, err := c.(connectors.Verifier).Verify(connectortest.Ctx(t), connectortest.VendorSubject(7))
		if perm, after := connectors.Classify(err); err == nil || perm || after != time.Second || f.Limited() != 1 {
			t.Fatalf("second call within a second: %v (limited %d); want a retryable 429 after 1s", err, f.Limited())
		}
	})
}

func TestTwoInstancesSideBySide(t *testing.T) {
	t.Parallel()
	us, eu := amplitudefake.Start(t, amplitudefake.Options{}), amplitudefake.Start(t, amplitudefake.Options{})
	eu.SetKeys("eu_key", "eu_secret")
	us.AddUser("user-9")
	eu.AddUser("user-9")
	a := connectortest.Build(t, "amplitude", "amplitude-us", us.Config())
	b := connectortest.Build(t, "amplitude", "amplitude-eu", eu.ConfigWith("requester: dpo@example.com"))
	if _, err := connectortest.EraseAndWait(connectortest.Ctx(t), a, connectortest.VendorSubject(9), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if us.CountUser("user-9") != 0 || eu.CountUser("user-9") != 1 {
		t.Fatalf("after the US erase: us %d, eu %d", us.CountUser("user-9"), eu.CountUser("user-9"))
	}
	if _, err := connectortest.EraseAndWait(connectortest.Ctx(t), b, connectortest.VendorSubject(9), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if eu.CountUser("user-9") != 0 {
		t.Error("the EU instance did not erase")
	}
	got := eu.Calls()[0]
	if u, p, _ := (&http.Request{Header: got.Header}).BasicAuth(); u != "eu_key" || p != "eu_secret" || !strings.Contains(string(got.Body), `"requester":"dpo@example.com"`) {
		t.Errorf("EU schedule = %q:%q %s", u, p, got.Body)
	}
}

func TestRequestsFollowTheContract(t *testing.T) {
	t.Parallel()
	f := amplitudefake.Start(t, amplitudefake.Options{})
	f.AddUser("user 10&x")
	c := instance(t, f)
	s := connectortest.VendorUserID("user 10&x")
	ctx := connectortest.Ctx(t)
	if out, err := connectortest.EraseAndWait(ctx, c, s, 5*time.Second); err != nil || out.Status != connectors.StatusErased {
		t.Fatalf("EraseAndWait = %q, %v", out.Status, err)
	}
	if _, err := c.(connectors.Verifier).Verify(ctx, s); err != nil {
		t.Fatal(err)
	}
	calls := f.Calls()
	post, list, search := calls[0], calls[1], calls[len(calls)-1]
	if post.Method != http.MethodPost || post.Path != "/api/2/deletions/users" || post.Status != http.StatusOK ||
		post.Header.Get("Content-Type") != "application/json" {
		t.Errorf("schedule = %s %s → %d", post.Method, post.Path, post.Status)
	}
	if u, p, ok := (&http.Request{Header: post.Header}).BasicAuth(); !ok || u != "amp_key" || p != "amp_secret" {
		t.Errorf("auth = %q %q %v", u, p, ok)
	}
	var body map[string]any
	if err := json.Unmarshal(post.Body, &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"user_ids": []any{"user 10&x"}, "requester": "lethe", "ignore_invalid_id": "true"}
	if fmt.Sprint(body) != fmt.Sprint(want) {
		t.Errorf("body = %v, want %v", body, want)
	}
	if list.Method != http.MethodGet || list.Path != "/api/2/deletions/users" || list.Query != "end_day=2026-03-11&start_day=2026-03-11" {
		t.Errorf("list = %s %s?%s", list.Method, list.Path, list.Query)
	}
	if search.Method != http.MethodGet || search.Path != "/api/2/usersearch" || search.Query != "user=user+10%26x" {
		t.Errorf("search = %s %s?%s", search.Method, search.Path, search.Query)
	}
}
