package amplitude

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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
			MinRetryAfter: time.Second, MaxRetryAfter: time.Second, Credential: "API key",
			// Amplitude refusing a deletion request fails the whole call,
			// classified as for one subject, so the runtime can split it.
			BatchAnswers: []connectortest.VendorAnswer{
				{Name: "400", Fault: func(w http.ResponseWriter, r *http.Request) {
					// Amplitude names the ids it refuses: none may be quoted.
					body, _ := io.ReadAll(r.Body)
					fakevendor.JSON(w, http.StatusBadRequest, map[string]string{"error": "Invalid user ids: " + string(body)})
				}, Permanent: true},
				{Name: "401", Fault: amplitudefake.Refused, Permanent: true},
				{Name: "404", Fault: fakevendor.Status(http.StatusNotFound), Permanent: true},
				{Name: "500", Fault: fakevendor.Status(http.StatusInternalServerError), AfterMax: time.Nanosecond},
				{Name: "429", Fault: amplitudefake.TooMany, After: time.Second, AfterMax: time.Second},
				{Name: "malformed", Fault: fakevendor.Malformed(), AfterMax: time.Nanosecond},
			},
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

// TestRequester: the requester configured is the one Amplitude is told of.
// (Two instances side by side, each at its own account, are a vendor
// case.)
func TestRequester(t *testing.T) {
	t.Parallel()
	f := amplitudefake.Start(t, amplitudefake.Options{})
	f.AddUser("user-9")
	c := connectortest.Build(t, "amplitude", "amplitude-eu", f.ConfigWith("requester: dpo@example.com"))
	if _, err := connectortest.EraseAndWait(connectortest.Ctx(t), c, connectortest.VendorSubject(9), 5*time.Second); err != nil || f.CountUser("user-9") != 0 {
		t.Fatalf("EraseAndWait: %v, %d left", err, f.CountUser("user-9"))
	}
	if got := f.Calls()[0]; !strings.Contains(string(got.Body), `"requester":"dpo@example.com"`) {
		t.Errorf("schedule = %s", got.Body)
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

// batcher is instance as the batch eraser and poller it is.
func batcher(t *testing.T, f *amplitudefake.Fake, extra ...string) connectortest.Batcher {
	t.Helper()
	return connectortest.AsBatcher(t, instance(t, f, extra...))
}

// calls counts the fake's calls of method since the first skip ones.
func calls(f *amplitudefake.Fake, method string, skip int) int {
	n := 0
	for _, c := range f.Calls()[skip:] {
		if c.Method == method {
			n++
		}
	}
	return n
}

// posts are the bodies of the deletion requests the fake received.
func posts(t *testing.T, f *amplitudefake.Fake) []map[string]json.RawMessage {
	t.Helper()
	var out []map[string]json.RawMessage
	for _, c := range f.Calls() {
		if c.Method != http.MethodPost {
			continue
		}
		var body map[string]json.RawMessage
		if err := json.Unmarshal(c.Body, &body); err != nil {
			t.Fatal(err)
		}
		if c.Status != http.StatusOK {
			t.Errorf("the fake refused a deletion request: %d", c.Status)
		}
		out = append(out, body)
	}
	return out
}

func idsIn(t *testing.T, body map[string]json.RawMessage) int {
	t.Helper()
	var users []string
	var amps []uint64
	if raw, ok := body["user_ids"]; ok {
		if err := json.Unmarshal(raw, &users); err != nil {
			t.Fatal(err)
		}
	}
	if raw, ok := body["amplitude_ids"]; ok {
		if err := json.Unmarshal(raw, &amps); err != nil {
			t.Fatal(err)
		}
	}
	return len(users) + len(amps)
}

// TestBatchCalls: a batch costs one deletion request per 100 ids (user
// ids and Amplitude IDs together), more subjects than BatchLimit are sent
// in chunks, and every subject gets their own Amplitude ID.
func TestBatchCalls(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		n        int
		both     bool // each subject has a user_id and an Amplitude ID
		requests int
		oneFirst bool // but the first has a user_id only
	}{
		{"one", 1, false, 1, false},
		{"two", 2, false, 1, false},
		{"at the limit", 100, false, 1, false},
		{"one past the limit", 101, false, 2, false},
		{"two and a half limits", 250, false, 3, false},
		{"both ids, half the limit", 50, true, 1, false},
		{"both ids, the limit", 100, true, 2, false},
		// 1 + 49×2 ids fill 99 places: the 51st subject's two go to a second request.
		{"one id, then both ids", 51, true, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := amplitudefake.Start(t, amplitudefake.Options{})
			b := batcher(t, f, "amplitude_id_system: amplitude")
			if b.BatchLimit() != 100 {
				t.Fatalf("BatchLimit() = %d, want Amplitude's 100", b.BatchLimit())
			}
			subjects := make([]connectors.Subject, tc.n)
			amps := make([]int64, tc.n)
			for i := range subjects {
				subjects[i] = connectortest.VendorSubject(100 + i)
				amps[i] = f.AddUser(subjects[i].UserIDs["app"])
				if tc.both && (i > 0 || !tc.oneFirst) {
					subjects[i].UserIDs["amplitude"] = strconv.FormatInt(amps[i], 10)
				}
			}
			items, err := b.EraseBatch(connectortest.Ctx(t), subjects)
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != tc.n {
				t.Fatalf("%d items for %d subjects", len(items), tc.n)
			}
			bodies := posts(t, f)
			if len(bodies) != tc.requests || f.Requests() != tc.requests {
				t.Errorf("%d subjects: %d deletion requests (%d calls), want %d", tc.n, len(bodies), f.Requests(), tc.requests)
			}
			for _, body := range bodies {
				if n := idsIn(t, body); n > 100 {
					t.Errorf("a deletion request of %d ids", n)
				}
				var users []string
				_ = json.Unmarshal(body["user_ids"], &users)
				if asked := string(body["include_mapped_user_ids"]) == `"true"`; asked != (len(users) > 1) {
					t.Errorf("include_mapped_user_ids sent %v with %d user ids", asked, len(users))
				}
			}
			for i, it := range items {
				if it.Err != nil || it.Outcome.Status != connectors.StatusRunning {
					t.Fatalf("subject %d: %q, %v", i, it.Outcome.Status, it.Err)
				}
				ref, err := decodeRef(it.Outcome.JobRef)
				if err != nil || ref.V != 2 || ref.Shared || len(ref.IDs) != 1 {
					t.Fatalf("subject %d: ref %s, %v", i, it.Outcome.JobRef, err)
				}
				if want := (&connector{refKey: refKey(amplitudefake.DefaultSecretKey)}).refHash(2, ampID(strconv.FormatInt(amps[i], 10))); ref.IDs[0] != want {
					t.Errorf("subject %d: the ref holds another's Amplitude ID", i)
				}
				if strings.Contains(it.Outcome.JobRef, "user-") || strings.Contains(it.Outcome.JobRef, strconv.FormatInt(amps[i], 10)) {
					t.Errorf("subject %d: ref %s holds an identifier", i, it.Outcome.JobRef)
				}
			}
		})
	}
}

// TestBatchAttribution: each subject's outcome is what Amplitude's answer
// says of them. With each Amplitude ID's user_id (include_mapped_user_ids)
// every subject is counted; without it, an Amplitude ID that only one
// subject of the request can own is theirs, and ids several can own are
// shared: erased, count unknown, never guessed. Not found only when the
// answer excludes the subject.
func TestBatchAttribution(t *testing.T) {
	t.Parallel()
	type want struct {
		status    connectors.Status
		records   int64
		uncounted bool
	}
	erased := func(n int64) want { return want{connectors.StatusErased, n, false} }
	notFound := want{status: connectors.StatusNotFound}
	uncounted := want{connectors.StatusErased, 0, true}
	for _, tc := range []struct {
		name string
		// known[i]: subject i is an Amplitude user; amp[i]: it is sent
		// by Amplitude ID only.
		known, amp []bool
		unmapped   bool // the answer leaves out each Amplitude ID's user_id
		noInvalid  bool // and the ids it did not find
		want       []want
	}{
		{name: "mapped", known: []bool{true, false, true, true},
			want: []want{erased(1), notFound, erased(1), erased(1)}},
		{name: "unmapped, invalid ids listed", known: []bool{true, false, true}, unmapped: true,
			want: []want{uncounted, notFound, uncounted}},
		{name: "unmapped, nothing said of unknown ids", known: []bool{true, false, true}, unmapped: true, noInvalid: true,
			want: []want{uncounted, uncounted, uncounted}},
		{name: "unmapped, one user id among Amplitude IDs", known: []bool{true, true, true, false}, amp: []bool{false, true, true, true},
			unmapped: true, noInvalid: true, want: []want{erased(1), erased(1), erased(1), notFound}},
		{name: "unmapped, one user id known of two", known: []bool{true, false}, unmapped: true,
			want: []want{erased(1), notFound}},
		{name: "nothing known", known: []bool{false, false}, unmapped: true, noInvalid: true,
			want: []want{notFound, notFound}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := amplitudefake.Start(t, amplitudefake.Options{})
			if tc.unmapped {
				f.Unmapped()
			}
			if tc.noInvalid {
				f.NoInvalidIDs()
			}
			b := batcher(t, f, "amplitude_id_system: amplitude")
			subjects := make([]connectors.Subject, len(tc.known))
			for i := range subjects {
				s := connectortest.VendorSubject(200 + i)
				id := int64(1)
				if tc.known[i] {
					id = f.AddUser(s.UserIDs["app"])
				}
				if tc.amp != nil && tc.amp[i] {
					s = connectors.Subject{UserIDs: map[string]string{"amplitude": strconv.FormatInt(id, 10)}}
				}
				subjects[i] = s
			}
			items, err := connectortest.EraseBatchAndWait(connectortest.Ctx(t), b, subjects, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if n := calls(f, http.MethodPost, 0); n != 1 {
				t.Errorf("%d deletion requests, want 1", n)
			}
			for i, it := range items {
				got := want{it.Outcome.Status, it.Outcome.Records, it.Outcome.Uncounted}
				if it.Err != nil || got != tc.want[i] {
					t.Errorf("subject %d: %+v, %v; want %+v", i, got, it.Err, tc.want[i])
				}
				if tc.known[i] && f.CountUser(subjects[i].UserIDs["app"]) != 0 {
					t.Errorf("subject %d: still in Amplitude", i)
				}
				if it.Outcome.Uncounted && !strings.Contains(connectortest.EvidenceText(it.Outcome.Evidence), "Amplitude did not say which are this person's") {
					t.Errorf("subject %d: uncounted without saying why: %s", i, connectortest.EvidenceText(it.Outcome.Evidence))
				}
			}
		})
	}
	t.Run("the same person twice", func(t *testing.T) {
		t.Parallel()
		f := amplitudefake.Start(t, amplitudefake.Options{})
		f.AddUser("user-210")
		f.AddUser("user-211")
		b := batcher(t, f)
		s := []connectors.Subject{connectortest.VendorSubject(210), connectortest.VendorSubject(211), connectortest.VendorSubject(210)}
		items, err := connectortest.EraseBatchAndWait(connectortest.Ctx(t), b, s, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var users []string
		_ = json.Unmarshal(posts(t, f)[0]["user_ids"], &users)
		if len(users) != 2 {
			t.Errorf("user_ids sent = %v, want each once", users)
		}
		for i, it := range items {
			if it.Err != nil || it.Outcome.Status != connectors.StatusErased || it.Outcome.Records != 1 {
				t.Errorf("subject %d: %q %d, %v", i, it.Outcome.Status, it.Outcome.Records, it.Err)
			}
		}
	})
}

// TestBatchSubjectsFailAlone: a subject without ids or with an Amplitude
// ID that is not a number fails on its own, permanently, and is not sent.
func TestBatchSubjectsFailAlone(t *testing.T) {
	t.Parallel()
	f := amplitudefake.Start(t, amplitudefake.Options{})
	f.AddUser("user-220")
	b := batcher(t, f, "amplitude_id_system: amplitude")
	bad := connectors.Subject{UserIDs: map[string]string{"app": "user-221", "amplitude": "12ab"}}
	items, err := b.EraseBatch(connectortest.Ctx(t), []connectors.Subject{{}, connectortest.VendorSubject(220), bad})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 2} {
		if items[i].Err == nil || !connectortest.IsPermanent(items[i].Err) || strings.Contains(items[i].Err.Error(), "12ab") {
			t.Errorf("subject %d: %v; want a permanent error of its own, without the id", i, items[i].Err)
		}
	}
	if items[1].Err != nil || items[1].Outcome.Status != connectors.StatusRunning {
		t.Errorf("the usable subject: %q, %v", items[1].Outcome.Status, items[1].Err)
	}
	if body := posts(t, f); len(body) != 1 || string(body[0]["user_ids"]) != `["user-220"]` || body[0]["amplitude_ids"] != nil {
		t.Errorf("sent %v", body)
	}
	f2 := amplitudefake.Start(t, amplitudefake.Options{})
	if items, err := batcher(t, f2).EraseBatch(connectortest.Ctx(t), []connectors.Subject{{}, {}}); err != nil || items[0].Err == nil || items[1].Err == nil || f2.Requests() != 0 {
		t.Errorf("a batch of unusable subjects: %v, %d requests", err, f2.Requests())
	}
}

// TestBatchRefused: a second request of a batch failing fails the whole
// call, retryably (the first request's refusals are vendor cases).
func TestBatchRefused(t *testing.T) {
	t.Parallel()
	t.Run("past the limit in a second request", func(t *testing.T) {
		t.Parallel()
		f := amplitudefake.Start(t, amplitudefake.Options{})
		b := batcher(t, f)
		subjects := make([]connectors.Subject, 101)
		for i := range subjects {
			subjects[i] = connectortest.VendorSubject(300 + i)
			f.AddUser(subjects[i].UserIDs["app"])
		}
		f.Inject(1, f.PassThrough())
		f.Inject(1, fakevendor.Status(http.StatusServiceUnavailable))
		if _, err := b.EraseBatch(connectortest.Ctx(t), subjects); err == nil || connectortest.IsPermanent(err) {
			t.Errorf("a second request failing: %v; want the whole call to fail, retryably", err)
		}
	})
}

// TestPollBatch: refs of one job day cost one listing however many there
// are and whatever made them (a batch, a single erase, a version 1 ref);
// refs of two days cost two; a malformed ref fails alone; the single Poll
// reads a batch's ref.
func TestPollBatch(t *testing.T) {
	t.Parallel()
	f := amplitudefake.Start(t, amplitudefake.Options{})
	b := batcher(t, f)
	ctx := connectortest.Ctx(t)
	amps := map[int]int64{}
	for i := 240; i < 247; i++ {
		amps[i] = f.AddUser(fmt.Sprintf("user-%d", i))
	}
	batch, err := b.EraseBatch(ctx, []connectors.Subject{connectortest.VendorSubject(240), connectortest.VendorSubject(241), connectortest.VendorSubject(242)})
	if err != nil {
		t.Fatal(err)
	}
	refs := []string{batch[0].Outcome.JobRef, batch[1].Outcome.JobRef, batch[2].Outcome.JobRef}
	single, err := b.Erase(ctx, connectortest.VendorSubject(243))
	if err != nil {
		t.Fatal(err)
	}
	refs = append(refs, single.JobRef)
	// A version 1 ref, as Erase made them before refs were keyed.
	old, err := b.Erase(ctx, connectortest.VendorSubject(244))
	if err != nil {
		t.Fatal(err)
	}
	oldRef, _ := decodeRef(old.JobRef)
	refs = append(refs, vendorkit.EncodeRef(jobRef{Day: oldRef.Day, IDs: []string{idHash(ampID(strconv.FormatInt(amps[244], 10)))}}))
	refs = append(refs, `{"day":"2026-03-11","ids":[]}`)
	poll := func(refs []string) ([]connectors.Item, int) {
		t.Helper()
		before := len(f.Calls())
		items, err := b.PollBatch(ctx, refs)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != len(refs) {
			t.Fatalf("%d items for %d refs", len(items), len(refs))
		}
		if !connectortest.IsPermanent(items[len(items)-1].Err) {
			t.Errorf("the malformed ref: %v; want a permanent error of its own", items[len(items)-1].Err)
		}
		return items[:len(items)-1], calls(f, http.MethodGet, before)
	}
	for round, stage := range []string{"staging", "submitted"} {
		items, lists := poll(refs)
		if lists != 1 {
			t.Errorf("round %d: %d listings for refs of one day, want 1", round, lists)
		}
		for i, it := range items {
			if it.Err != nil || it.Outcome.Status != connectors.StatusRunning ||
				connectortest.EvidenceText(it.Outcome.Evidence) != "amplitude_deletion=job of 2026-03-11: "+stage+", 1 Amplitude ID; " {
				t.Errorf("round %d, ref %d: %q %s, %v", round, i, it.Outcome.Status, connectortest.EvidenceText(it.Outcome.Evidence), it.Err)
			}
		}
	}
	// The first job is submitted: a new request goes to the next day's.
	later, err := b.EraseBatch(ctx, []connectors.Subject{connectortest.VendorSubject(245), connectortest.VendorSubject(246)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(later[0].Outcome.JobRef, `"day":"2026-03-12"`) {
		t.Fatalf("later ref %s: want the next job's day", later[0].Outcome.JobRef)
	}
	refs = append([]string{later[0].Outcome.JobRef}, refs...)
	refs = append(refs[:2], append([]string{later[1].Outcome.JobRef}, refs[2:]...)...)
	items, lists := poll(refs)
	if lists != 2 {
		t.Errorf("%d listings for refs of two days, want 2", lists)
	}
	for i, it := range items {
		want := connectors.StatusErased
		if i == 0 || i == 2 {
			want = connectors.StatusRunning
		}
		if it.Err != nil || it.Outcome.Status != want || (want == connectors.StatusErased && it.Outcome.Records != 1) {
			t.Errorf("ref %d: %q %d, %v; want %q", i, it.Outcome.Status, it.Outcome.Records, it.Err, want)
		}
	}
	for i := 240; i < 245; i++ {
		if f.CountUser(fmt.Sprintf("user-%d", i)) != 0 {
			t.Errorf("user-%d still in Amplitude", i)
		}
	}
	// The single Poll reads a batch's ref.
	out, err := b.Poll(ctx, later[0].Outcome.JobRef)
	if err != nil || out.Status != connectors.StatusRunning {
		t.Errorf("Poll of a batch ref = %q, %v", out.Status, err)
	}
}

// TestPollBatchShared: a shared ref reports the job done without a count,
// through PollBatch and Poll alike.
func TestPollBatchShared(t *testing.T) {
	t.Parallel()
	f := amplitudefake.Start(t, amplitudefake.Options{})
	f.Unmapped()
	f.NoInvalidIDs()
	f.AddUser("user-250")
	f.AddUser("user-251")
	b := batcher(t, f)
	ctx := connectortest.Ctx(t)
	items, err := b.EraseBatch(ctx, []connectors.Subject{connectortest.VendorSubject(250), connectortest.VendorSubject(251)})
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range items {
		ref, err := decodeRef(it.Outcome.JobRef)
		if err != nil || !ref.Shared || len(ref.IDs) != 2 || ref.V != 2 {
			t.Fatalf("subject %d: ref %s, %v; want a shared version 2 ref of the call's 2 ids", i, it.Outcome.JobRef, err)
		}
		if got := connectortest.EvidenceText(it.Outcome.Evidence); got != "amplitude_deletion=job of 2026-03-11: staging, 2 Amplitude IDs scheduled for 2 people together; Amplitude did not say which are this person's; " {
			t.Errorf("subject %d: evidence %s", i, got)
		}
	}
	out, _ := connectortest.PollToEnd(t, b, items[0].Outcome, 10)
	if out.Status != connectors.StatusErased || !out.Uncounted || out.Records != 0 {
		t.Errorf("Poll of a shared ref ended %q %d uncounted %v", out.Status, out.Records, out.Uncounted)
	}
	got, err := b.PollBatch(ctx, []string{items[1].Outcome.JobRef})
	if err != nil || got[0].Err != nil || got[0].Outcome.Status != connectors.StatusErased || !got[0].Outcome.Uncounted {
		t.Errorf("PollBatch of a shared ref = %+v, %v", got, err)
	}
	if ev := connectortest.EvidenceText(got[0].Outcome.Evidence); ev != "amplitude_deletion=job of 2026-03-11: done, 2 Amplitude IDs of several people's; Amplitude did not say which are this person's; " {
		t.Errorf("evidence %s", ev)
	}
}

// TestPollBatchFailures: a job failing, or removed from staging, fails
// each of its refs; a listing Amplitude refuses fails the refs of its day
// alone, classified as for one ref.
func TestPollBatchFailures(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T) (*amplitudefake.Fake, connectortest.Batcher, []string) {
		f := amplitudefake.Start(t, amplitudefake.Options{})
		f.AddUser("user-260")
		f.AddUser("user-261")
		b := batcher(t, f)
		items, err := b.EraseBatch(connectortest.Ctx(t), []connectors.Subject{connectortest.VendorSubject(260), connectortest.VendorSubject(261)})
		if err != nil {
			t.Fatal(err)
		}
		return f, b, []string{items[0].Outcome.JobRef, items[1].Outcome.JobRef}
	}
	t.Run("job failed", func(t *testing.T) {
		t.Parallel()
		f, b, refs := setup(t)
		f.EndJobsAs("failed")
		var items []connectors.Item
		for range 5 {
			var err error
			if items, err = b.PollBatch(connectortest.Ctx(t), refs); err != nil {
				t.Fatal(err)
			}
			if items[0].Err != nil {
				break
			}
		}
		for i, it := range items {
			if it.Err == nil || connectortest.IsPermanent(it.Err) || !strings.Contains(it.Err.Error(), `status "failed"`) ||
				connectortest.EvidenceText(it.Outcome.Evidence) != "amplitude_deletion=job of 2026-03-11: failed, 1 Amplitude ID; " {
				t.Errorf("ref %d: %v (%s); want a retryable error naming the status", i, it.Err, connectortest.EvidenceText(it.Outcome.Evidence))
			}
		}
	})
	t.Run("removed from staging", func(t *testing.T) {
		t.Parallel()
		f, b, refs := setup(t)
		f.Unstage()
		items, err := b.PollBatch(connectortest.Ctx(t), refs)
		if err != nil {
			t.Fatal(err)
		}
		for i, it := range items {
			if !connectortest.IsPermanent(it.Err) || !strings.Contains(it.Err.Error(), "removed from staging") {
				t.Errorf("ref %d: %v; want a permanent error", i, it.Err)
			}
		}
	})
	for _, tc := range []struct {
		name      string
		fault     fakevendor.Fault
		permanent bool
		after     time.Duration
	}{
		{"listing 500", fakevendor.Status(http.StatusInternalServerError), false, 0},
		{"listing 429", amplitudefake.TooMany, false, time.Second},
		{"listing 401", amplitudefake.Refused, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, b, refs := setup(t)
			before := len(f.Calls())
			f.Inject(1, tc.fault)
			items, err := b.PollBatch(connectortest.Ctx(t), refs)
			if err != nil {
				t.Fatal(err)
			}
			if n := calls(f, http.MethodGet, before); n != 1 {
				t.Errorf("%d listings, want 1", n)
			}
			for i, it := range items {
				perm, after := connectors.Classify(it.Err)
				if it.Err == nil || perm != tc.permanent || after != tc.after {
					t.Errorf("ref %d: %v (permanent %v after %v)", i, it.Err, perm, after)
				}
			}
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		t.Parallel()
		f, b, refs := setup(t)
		before := f.Requests()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := b.PollBatch(ctx, refs); err == nil || connectortest.IsPermanent(err) || f.Requests() != before {
			t.Errorf("PollBatch with a cancelled context: %v, %d requests", err, f.Requests()-before)
		}
	})
}

// TestFakeTakesAtMost100IDs: the fake refuses a deletion request of more
// than 100 ids, both lists together, as Amplitude documents the limit.
func TestFakeTakesAtMost100IDs(t *testing.T) {
	t.Parallel()
	f := amplitudefake.Start(t, amplitudefake.Options{})
	for _, tc := range []struct {
		users, amps int
		status      int
	}{{100, 0, 200}, {0, 100, 200}, {101, 0, 400}, {60, 41, 400}, {50, 50, 200}} {
		body := map[string]any{"requester": "t", "ignore_invalid_id": "true"}
		var users []string
		var amps []int64
		for i := range tc.users {
			users = append(users, fmt.Sprintf("u%d", i))
		}
		for i := range tc.amps {
			amps = append(amps, int64(i+1))
		}
		body["user_ids"], body["amplitude_ids"] = users, amps
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, f.URL()+"/api/2/deletions/users", strings.NewReader(string(raw)))
		req.SetBasicAuth(f.Keys())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%d user ids and %d Amplitude IDs: %d, want %d", tc.users, tc.amps, resp.StatusCode, tc.status)
		}
	}
}
