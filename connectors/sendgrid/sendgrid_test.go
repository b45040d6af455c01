package sendgrid_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
	_ "github.com/lethe-dev/lethe/connectors/sendgrid"
	"github.com/lethe-dev/lethe/connectors/sendgrid/sendgridfake"
)

const (
	testKey  = sendgridfake.DefaultKey
	instance = "mailing"
)

func newConnector(t testing.TB, f *sendgridfake.Fake) connectors.Connector {
	t.Helper()
	return connectortest.Build(t, "sendgrid", instance, f.Config())
}

// subject is the i-th test subject; SendGrid reads only its email.
var subject = connectortest.VendorSubject

// TestVendor runs the conformance suite and the vendor cases against the
// fake.
func TestVendor(t *testing.T) {
	t.Parallel()
	connectortest.RunVendor(t, connectortest.VendorSuite{
		VendorCases: connectortest.VendorCases{
			Type:  "sendgrid",
			Start: connectortest.StartFake(sendgridfake.Start),
			Unavailable: func(w http.ResponseWriter, r *http.Request) {
				sendgridfake.WriteError(w, http.StatusServiceUnavailable, "", "service unavailable")
			},
			// SendGrid names the reset time (X-RateLimit-Reset, 2s ahead in
			// the fake), never a Retry-After.
			TooMany: sendgridfake.TooMany, MinRetryAfter: time.Millisecond, MaxRetryAfter: 3 * time.Second,
			Refused: sendgridfake.Refused, Credential: "API key", Secrets: []string{testKey},
		},
		Misconfigured: "base_url: {url}/sendgrid", // 404s that must not pass for "no such contact"
	})
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	env := map[string]string{"SENDGRID_KEY_SET": testKey}
	connectortest.RunVendorConfigCases(t, "sendgrid", "api_key: k\n", "base_url", "poll_interval")
	connectortest.RunConfigCases(t, "sendgrid", env, []string{testKey}, connectortest.ConfigCases{
		{"no api key", "base_url: https://api.sendgrid.com\n", "api_key: required"},
		{"empty", "", "api_key: required"},
		{"base url with version", "api_key: k\nbase_url: https://api.sendgrid.com/v3\n", "base_url: leave out /v3"},
		{"env key unset", "api_key: {env: SENDGRID_KEY}\n", "api_key: environment variable SENDGRID_KEY is empty"},
		{"secret both ways", "api_key: {env: A, file: /b}\n", "a secret is a string"},
		{"ok eu", "api_key: {env: SENDGRID_KEY_SET}\nbase_url: https://api.eu.sendgrid.com\npoll_interval: 5m\n", ""},
	})
}

func TestDefaultBaseURL(t *testing.T) {
	t.Parallel()
	client, sent := connectortest.OfflineClient(http.StatusOK, `{"result":{}}`)
	c, err := connectortest.TryBuildWith("sendgrid", instance, "api_key: k\n", connectors.Deps{HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Erase(connectortest.Ctx(t), subject(1)); err != nil {
		t.Fatal(err)
	}
	want := "POST https://api.sendgrid.com/v3/marketing/contacts/search/emails"
	if got := sent(); len(got) != 1 || got[0] != want {
		t.Errorf("requests = %q, want [%q]", got, want)
	}
}

func TestEraseStartsAJobThatIsPolledToCompletion(t *testing.T) {
	t.Parallel()
	f := sendgridfake.Start(t, sendgridfake.Options{Polls: 3})
	s := subject(2)
	f.Add(s.Email)
	f.Add(subject(3).Email)
	out, err := newConnector(t, f).Erase(connectortest.Ctx(t), s)
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != connectors.StatusRunning || out.JobRef == "" || out.PollAfter != 10*time.Millisecond {
		t.Fatalf("Erase = %q, job %q, poll after %v; want running with a job and the configured interval", out.Status, out.JobRef, out.PollAfter)
	}
	if f.Count(s) != 1 {
		t.Fatal("the contact went before the job ran; the fake must be asynchronous")
	}
	// The ref is stored and polled later, perhaps by another process: a
	// fresh instance must be able to poll it.
	p := newConnector(t, f).(connectors.Poller)
	var pending int
	for {
		out, err = p.Poll(connectortest.Ctx(t), out.JobRef)
		if err != nil {
			t.Fatal(err)
		}
		if out.Status != connectors.StatusRunning {
			break
		}
		if pending++; pending > 10 {
			t.Fatal("job never finished")
		}
	}
	if pending != 3 {
		t.Errorf("job reported pending %d times, want 3", pending)
	}
	if out.Status != connectors.StatusErased || out.Records != 1 {
		t.Errorf("final Poll = %q with %d records, want erased 1", out.Status, out.Records)
	}
	if f.Count(s) != 0 || f.Count(subject(3)) != 1 {
		t.Errorf("after the job: subject holds %d, bystander %d; want 0 and 1", f.Count(s), f.Count(subject(3)))
	}
	ev := fmt.Sprint(out.Evidence)
	if !regexp.MustCompile(`completed, requested 1, deleted 1, errored 0, finished \d{4}-`).MatchString(ev) {
		t.Errorf("evidence lacks the job's final counts: %s", ev)
	}
	if !strings.Contains(ev, strings.TrimPrefix(out.JobRef, "contacts-delete:")) {
		t.Errorf("evidence lacks the job id: %s", ev)
	}
}

func TestFailedJobsAreRetryableErrors(t *testing.T) {
	t.Parallel()
	for _, outcome := range []string{"failed", "errored", "partial"} {
		t.Run(outcome, func(t *testing.T) {
			t.Parallel()
			f := sendgridfake.Start(t, sendgridfake.Options{Polls: -1})
			f.EndJobsAs(outcome)
			s := subject(4)
			f.Add(s.Email)
			c := newConnector(t, f)
			out, err := c.Erase(connectortest.Ctx(t), s)
			if err != nil || out.Status != connectors.StatusRunning {
				t.Fatalf("Erase = %q, %v; want running", out.Status, err)
			}
			jobID := strings.TrimPrefix(out.JobRef, "contacts-delete:")
			out, err = c.(connectors.Poller).Poll(connectortest.Ctx(t), out.JobRef)
			if err == nil {
				t.Fatalf("a %s job was reported as %q", outcome, out.Status)
			}
			if perm, _ := connectors.Classify(err); perm {
				t.Errorf("a %s job is permanent; a new attempt can succeed: %v", outcome, err)
			}
			if !strings.Contains(err.Error(), jobID) {
				t.Errorf("error does not name job %q: %v", jobID, err)
			}
			if strings.Contains(err.Error(), s.Email) {
				t.Errorf("error carries the subject: %v", err)
			}
			// The runtime retries with a new Erase: it searches again and
			// starts a fresh job, which now succeeds.
			f.EndJobsAs("completed")
			out, err = connectortest.EraseAndWait(connectortest.Ctx(t), c, s, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if f.Count(s) != 0 {
				t.Errorf("the retry left the contact (outcome %q)", out.Status)
			}
		})
	}
}

func TestPollErrors(t *testing.T) {
	t.Parallel()
	f := sendgridfake.Start(t, sendgridfake.Options{})
	c := newConnector(t, f).(connectors.Poller)
	tests := []struct {
		name, ref string
		fault     fakevendor.Fault
		permanent bool
	}{
		{"unknown job", "contacts-delete:00000000-0000-4000-8000-000000000000", nil, false},
		{"not our ref", "something-else:1", nil, true},
		{"ref escaping the path", "contacts-delete:../../count", nil, true},
		{"malformed body", "contacts-delete:00000000-0000-4000-8000-000000000000", fakevendor.Malformed(), false},
		{"server error", "contacts-delete:00000000-0000-4000-8000-000000000000", fakevendor.Status(500), false},
		{"rate limited", "contacts-delete:00000000-0000-4000-8000-000000000000", sendgridfake.TooMany, false},
	}
	for _, tt := range tests {
		if tt.fault != nil {
			f.Inject(1, tt.fault)
		}
		_, err := c.Poll(connectortest.Ctx(t), tt.ref)
		if err == nil {
			t.Errorf("%s: Poll succeeded", tt.name)
			continue
		}
		if perm, _ := connectors.Classify(err); perm != tt.permanent {
			t.Errorf("%s: permanent = %v, want %v: %v", tt.name, perm, tt.permanent, err)
		}
	}
	for _, call := range f.Calls() {
		if call.Path != "/v3/marketing/contacts/imports/00000000-0000-4000-8000-000000000000" {
			t.Errorf("unexpected request %s %s", call.Method, call.Path)
		}
	}
}

func TestVendorRateLimitIsSignalledWithItsResetTime(t *testing.T) {
	t.Parallel()
	f := sendgridfake.Start(t, sendgridfake.Options{RateLimit: 1, Burst: 2})
	c := newConnector(t, f)
	var limited error
	for i := range 5 {
		if _, err := c.Erase(connectortest.Ctx(t), subject(20+i)); err != nil {
			limited = err
			break
		}
	}
	if limited == nil {
		t.Fatal("five quick calls were all allowed; the fake's rate limit did not bite")
	}
	if perm, after := connectors.Classify(limited); perm || after <= 0 {
		t.Errorf("rate limit = permanent %v, retry after %v; want retryable with a delay: %v", perm, after, limited)
	}
	if f.Limited() == 0 {
		t.Error("the fake counted no refusals")
	}
}

func TestRequestsFollowTheDocumentedContract(t *testing.T) {
	t.Parallel()
	f := sendgridfake.Start(t, sendgridfake.Options{})
	s := connectors.Subject{Email: "Mixed.Case@Example.com"}
	id := f.Add(s.Email)
	c := newConnector(t, f)
	out, err := connectortest.EraseAndWait(connectortest.Ctx(t), c, s, 5*time.Second)
	if err != nil || out.Records != 1 {
		t.Fatalf("Erase = %d records, %v", out.Records, err)
	}
	if v, err := c.(connectors.Verifier).Verify(connectortest.Ctx(t), s); err != nil || v.Remaining != 0 {
		t.Fatalf("Verify = %d remaining, %v", v.Remaining, err)
	}
	var searches, deletes, polls, counts int
	for _, call := range f.Calls() {
		if got := call.Header.Get("Authorization"); got != "Bearer "+testKey {
			t.Errorf("%s %s: Authorization is not the Bearer API key", call.Method, call.Path)
		}
		switch {
		case call.Method == http.MethodPost && call.Path == "/v3/marketing/contacts/search/emails":
			searches++
			if ct := call.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("search Content-Type = %q", ct)
			}
			var body map[string][]string
			if err := json.Unmarshal(call.Body, &body); err != nil || len(body) != 1 || fmt.Sprint(body["emails"]) != "[mixed.case@example.com]" {
				t.Errorf("search body = %s, want {\"emails\":[\"mixed.case@example.com\"]}", call.Body)
			}
		case call.Method == http.MethodDelete && call.Path == "/v3/marketing/contacts":
			deletes++
			if call.Query != "ids="+id {
				t.Errorf("delete query = %q, want ids=%s", call.Query, id)
			}
			if len(call.Body) != 0 {
				t.Errorf("delete sent a body: %s", call.Body)
			}
			if call.Status != http.StatusAccepted {
				t.Errorf("delete answered %d, want 202", call.Status)
			}
		case call.Method == http.MethodGet && strings.HasPrefix(call.Path, "/v3/marketing/contacts/imports/"):
			polls++
		case call.Method == http.MethodGet && call.Path == "/v3/marketing/contacts/count":
			counts++
		default:
			t.Errorf("unexpected request %s %s?%s", call.Method, call.Path, call.Query)
		}
		if strings.Contains(strings.ToLower(call.Path+call.Query), "example.com") {
			t.Errorf("%s %s: the address is in the URL", call.Method, call.Path)
		}
	}
	// search + verify search; one delete; pending twice then completed;
	// the verify's 404 is trusted after the first search reached the API.
	if searches != 2 || deletes != 1 || polls != 3 || counts != 0 {
		t.Errorf("searches %d, deletes %d, polls %d, counts %d; want 2, 1, 3, 0", searches, deletes, polls, counts)
	}
}

func TestWrongBaseURLIsCheckedOnceThenTrusted(t *testing.T) {
	t.Parallel()
	f := sendgridfake.Start(t, sendgridfake.Options{})
	c := newConnector(t, f)
	for i := range 3 {
		out, err := c.Erase(connectortest.Ctx(t), subject(30+i))
		if err != nil || out.Status != connectors.StatusNotFound {
			t.Fatalf("Erase of an unknown subject = %q, %v", out.Status, err)
		}
	}
	var counts int
	for _, call := range f.Calls() {
		if call.Path == "/v3/marketing/contacts/count" {
			counts++
		}
	}
	if counts != 1 {
		t.Errorf("the API was probed %d times, want once", counts)
	}

	wrong := connectortest.Build(t, "sendgrid", instance, sendgridfake.ConfigFor(f.URL()+"/proxy", testKey))
	_, err := wrong.Erase(connectortest.Ctx(t), subject(30))
	if perm, _ := connectors.Classify(err); err == nil || !perm || !strings.Contains(err.Error(), "base_url") {
		t.Errorf("wrong base_url: Erase = %v, want a permanent error naming base_url", err)
	}
}

func TestTwoInstancesSideBySide(t *testing.T) {
	t.Parallel()
	const keyB = "SG.other-account.fedcba"
	a, b := sendgridfake.Start(t, sendgridfake.Options{}), sendgridfake.Start(t, sendgridfake.Options{})
	b.SetKey(keyB)
	s := subject(10)
	a.Add(s.Email)
	b.Add(s.Email)
	ca := newConnector(t, a)
	cb := connectortest.Build(t, "sendgrid", "mailing-eu", b.Config())
	outA, err := connectortest.EraseAndWait(connectortest.Ctx(t), ca, s, 5*time.Second)
	if err != nil || outA.Records != 1 {
		t.Fatalf("instance A: %d records, %v", outA.Records, err)
	}
	if a.Count(s) != 0 || b.Count(s) != 1 {
		t.Fatalf("after A: A holds %d, B holds %d; want 0 and 1", a.Count(s), b.Count(s))
	}
	// Each instance polls its own job on its own account.
	if _, err := cb.(connectors.Poller).Poll(connectortest.Ctx(t), outA.JobRef); err == nil {
		t.Error("instance B knew instance A's job")
	}
	if out, err := connectortest.EraseAndWait(connectortest.Ctx(t), cb, s, 5*time.Second); err != nil || out.Records != 1 {
		t.Fatalf("instance B: %d records, %v", out.Records, err)
	}
	for name, fk := range map[string]*sendgridfake.Fake{"A": a, "B": b} {
		for _, call := range fk.Calls() {
			if call.Header.Get("Authorization") != "Bearer "+fk.Key() {
				t.Errorf("instance %s's server received another key", name)
			}
		}
	}
}

// The plan makes the runtime wait for an email; a subject without one (the
// instance's keys were changed) is refused: nothing was searched, which is
// never "not found" or "clean".
func TestSubjectWithoutEmailIsRefused(t *testing.T) {
	t.Parallel()
	f := sendgridfake.Start(t, sendgridfake.Options{})
	c := newConnector(t, f)
	connectortest.RefusedUnsent(t, c, connectors.Subject{Phone: "+447700900123"}, "no email", f.Requests)
}

func TestPlan(t *testing.T) {
	t.Parallel()
	// Read without building: the key's variable is unset and never read.
	connectortest.RunPlanCases(t, "sendgrid", connectortest.PlanCases{
		{Name: "email only", Instance: instance, YAML: "api_key: {env: SG_NEVER_READ}\n", Keys: "[email]", Uses: "[email]"},
	})
}
