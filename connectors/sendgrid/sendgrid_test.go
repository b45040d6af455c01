package sendgrid_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
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
			MinRetryAfter: time.Millisecond, MaxRetryAfter: 3 * time.Second, Credential: "API key",
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
	// SendGrid answers for every address asked; a search that leaves one
	// out is not "not found" for it.
	client, sent := connectortest.OfflineClient(http.StatusOK, `{"result":{"subject1@example.com":{"error":"contact not found"}}}`)
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

// TestJobsAreTheAccounts: an instance polls its own jobs on its own
// account; another account's job is unknown there. (Two instances side by
// side, each at its own account, are a vendor case.)
func TestJobsAreTheAccounts(t *testing.T) {
	t.Parallel()
	a, b := sendgridfake.Start(t, sendgridfake.Options{}), sendgridfake.Start(t, sendgridfake.Options{})
	b.OtherAccount()
	s := subject(10)
	a.Add(s.Email)
	out, err := newConnector(t, a).Erase(connectortest.Ctx(t), s)
	if err != nil || out.Status != connectors.StatusRunning {
		t.Fatalf("Erase at A = %q, %v", out.Status, err)
	}
	cb := connectortest.Build(t, "sendgrid", "mailing-eu", b.Config())
	if _, err := cb.(connectors.Poller).Poll(connectortest.Ctx(t), out.JobRef); err == nil {
		t.Error("instance B knew instance A's job")
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

func newBatch(t testing.TB, f *sendgridfake.Fake) connectortest.Batcher {
	t.Helper()
	return connectortest.AsBatcher(t, newConnector(t, f))
}

// calls counts the fake's requests by kind, and the most addresses or ids
// any one search or delete carried.
type calls struct {
	searches, deletes, statuses, counts int
	maxEmails, maxIDs                   int
	deleted                             [][]string // the ids of each delete, in order
}

func countCalls(t *testing.T, f *sendgridfake.Fake) calls {
	t.Helper()
	var c calls
	for _, call := range f.Calls() {
		switch {
		case call.Method == http.MethodPost && call.Path == "/v3/marketing/contacts/search/emails":
			c.searches++
			var body struct{ Emails []string }
			if err := json.Unmarshal(call.Body, &body); err != nil {
				t.Errorf("search body: %v", err)
			}
			c.maxEmails = max(c.maxEmails, len(body.Emails))
		case call.Method == http.MethodDelete && call.Path == "/v3/marketing/contacts":
			c.deletes++
			ids := strings.Split(strings.TrimPrefix(call.Query, "ids="), "%2C")
			if !strings.Contains(call.Query, "%2C") {
				ids = strings.Split(strings.TrimPrefix(call.Query, "ids="), ",")
			}
			c.maxIDs = max(c.maxIDs, len(ids))
			c.deleted = append(c.deleted, ids)
		case call.Method == http.MethodGet && strings.HasPrefix(call.Path, "/v3/marketing/contacts/imports/"):
			c.statuses++
		case call.Method == http.MethodGet && call.Path == "/v3/marketing/contacts/count":
			c.counts++
		default:
			t.Errorf("unexpected request %s %s", call.Method, call.Path)
		}
	}
	return c
}

// jobOf is the SendGrid job id a ref names.
func jobOf(ref string) string {
	job, _, _ := strings.Cut(strings.TrimPrefix(ref, "contacts-delete:"), ":")
	return job
}

func TestBatchLimitIsTheSearchMaximum(t *testing.T) {
	t.Parallel()
	f := sendgridfake.Start(t, sendgridfake.Options{})
	if got := newBatch(t, f).BatchLimit(); got != 100 {
		t.Errorf("BatchLimit() = %d, want the 100 addresses a search takes", got)
	}
}

// A batch costs one search and one delete per 100 subjects, and polling
// all of it together one status request per job; past the limit (which
// the runtime never passes) EraseBatch takes 100 at a time.
func TestBatchCallsPerBatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                      string
		seeded, unknown           int
		searches, deletes, counts int
	}{
		{"one", 1, 0, 1, 1, 0},
		{"two", 2, 0, 1, 1, 0},
		{"some unknown", 3, 2, 1, 1, 0},
		{"nobody known", 0, 3, 1, 0, 1}, // the search's 404 is checked once
		{"at the limit", 100, 0, 1, 1, 0},
		{"one past the limit", 101, 0, 2, 2, 0},
		{"two and a half batches", 180, 70, 3, 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := sendgridfake.Start(t, sendgridfake.Options{Polls: -1})
			var subjects []connectors.Subject
			for i := range tt.seeded + tt.unknown {
				s := subject(2000 + i)
				if i < tt.seeded {
					f.Seed(s)
				}
				subjects = append(subjects, s)
			}
			// Unknown subjects among the known ones, not all at the end.
			slices.Reverse(subjects[tt.seeded/2:])
			bystander := subject(1999)
			f.Seed(bystander)
			b := newBatch(t, f)
			items, err := b.EraseBatch(connectortest.Ctx(t), subjects)
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != len(subjects) {
				t.Fatalf("%d items for %d subjects", len(items), len(subjects))
			}
			got := countCalls(t, f)
			if got.searches != tt.searches || got.deletes != tt.deletes || got.counts != tt.counts {
				t.Errorf("searches %d, deletes %d, count probes %d; want %d, %d, %d",
					got.searches, got.deletes, got.counts, tt.searches, tt.deletes, tt.counts)
			}
			if got.maxEmails > 100 || got.maxIDs > 100 {
				t.Errorf("a call carried %d addresses, %d ids; SendGrid takes 100", got.maxEmails, got.maxIDs)
			}
			var refs []string
			var idx []int
			jobs := map[string]bool{}
			for i, it := range items {
				known := f.Count(subjects[i]) == 1
				switch {
				case it.Err != nil:
					t.Fatalf("subject %d: %v", i, it.Err)
				case !known && it.Outcome.Status != connectors.StatusNotFound:
					t.Errorf("unknown subject %d: %q, want not_found", i, it.Outcome.Status)
				case known && it.Outcome.Status != connectors.StatusRunning:
					t.Errorf("subject %d: %q, want running", i, it.Outcome.Status)
				case known:
					refs, idx = append(refs, it.Outcome.JobRef), append(idx, i)
					jobs[jobOf(it.Outcome.JobRef)] = true
				}
			}
			if len(jobs) != tt.deletes {
				t.Errorf("refs name %d jobs, %d deletes were made", len(jobs), tt.deletes)
			}
			polled, err := b.PollBatch(connectortest.Ctx(t), refs)
			if err != nil {
				t.Fatal(err)
			}
			if n := countCalls(t, f).statuses; n != len(jobs) {
				t.Errorf("polling %d refs of %d jobs made %d status requests, want %d", len(refs), len(jobs), n, len(jobs))
			}
			for j, it := range polled {
				if it.Err != nil || it.Outcome.Status != connectors.StatusErased || it.Outcome.Records != 1 || it.Outcome.Uncounted {
					t.Errorf("subject %d: %q with %d records (uncounted %v), %v; want erased 1",
						idx[j], it.Outcome.Status, it.Outcome.Records, it.Outcome.Uncounted, it.Err)
				}
				if f.Count(subjects[idx[j]]) != 0 {
					t.Errorf("subject %d still has a contact", idx[j])
				}
			}
			if f.Count(bystander) != 1 {
				t.Error("a subject outside the batch lost their contact")
			}
		})
	}
}

// SendGrid answers per address: each subject's part is exactly theirs,
// whoever else is in the batch; a subject the answer leaves out is not
// "not found".
func TestBatchAttributesEachSubject(t *testing.T) {
	t.Parallel()
	f := sendgridfake.Start(t, sendgridfake.Options{Polls: -1})
	ann, bob, eve := subject(40), subject(41), subject(42)
	annID := f.Add(ann.Email)
	bobID := f.Add(bob.Email, eve.Email) // eve's address is an alternate of bob's contact
	subjects := []connectors.Subject{
		ann,                      // 0: found
		subject(43),              // 1: never a contact
		{Phone: "+447700900123"}, // 2: no email
		{Email: " " + strings.ToUpper(bob.Email)}, // 3: bob, as typed
		ann, // 4: ann again (two requests for one person)
		eve, // 5: found by an alternate address
	}
	b := newBatch(t, f)
	items, err := b.EraseBatch(connectortest.Ctx(t), subjects)
	if err != nil {
		t.Fatal(err)
	}
	got := countCalls(t, f)
	if got.searches != 1 || got.deletes != 1 {
		t.Fatalf("searches %d, deletes %d; want 1 and 1", got.searches, got.deletes)
	}
	if ids := got.deleted[0]; len(ids) != 2 || !slices.Contains(ids, annID) || !slices.Contains(ids, bobID) {
		t.Errorf("deleted %v, want each contact once: %s and %s", ids, annID, bobID)
	}
	if items[1].Err != nil || items[1].Outcome.Status != connectors.StatusNotFound {
		t.Errorf("unknown subject: %q, %v; want not_found", items[1].Outcome.Status, items[1].Err)
	}
	if perm, _ := connectors.Classify(items[2].Err); items[2].Err == nil || !perm {
		t.Errorf("subject without email: %q, %v; want a permanent error of its own", items[2].Outcome.Status, items[2].Err)
	}
	var refs []string
	for _, i := range []int{0, 3, 4, 5} {
		out := items[i].Outcome
		if items[i].Err != nil || out.Status != connectors.StatusRunning {
			t.Fatalf("subject %d: %q, %v; want running", i, out.Status, items[i].Err)
		}
		if !strings.HasSuffix(out.JobRef, ":1/2") {
			t.Errorf("subject %d: ref %q, want the shared job with 1 of its 2 contacts theirs", i, out.JobRef)
		}
		refs = append(refs, out.JobRef)
	}
	polled, err := b.PollBatch(connectortest.Ctx(t), refs)
	if err != nil {
		t.Fatal(err)
	}
	for j, it := range polled {
		if it.Err != nil || it.Outcome.Status != connectors.StatusErased || it.Outcome.Records != 1 {
			t.Errorf("ref %d: %q with %d records, %v; want erased 1", j, it.Outcome.Status, it.Outcome.Records, it.Err)
		}
		if ev := fmt.Sprint(it.Outcome.Evidence); !strings.Contains(ev, "requested 2, deleted 2, errored 0") || !strings.Contains(ev, "1 of them this subject's") {
			t.Errorf("ref %d: evidence %s lacks the job's counts and the subject's part", j, ev)
		}
	}
	for _, s := range []connectors.Subject{ann, bob, eve} {
		if f.Count(s) != 0 {
			t.Errorf("a contact remains")
		}
	}

	// The vendor answers for only some of the addresses asked: the others
	// are not "not found" (nothing, or something else, was said about
	// them) but retried.
	f2 := sendgridfake.Start(t, sendgridfake.Options{Polls: -1})
	known, left := subject(50), subject(51)
	f2.Add(known.Email)
	f2.Add(left.Email)
	f2.Inject(1, func(w http.ResponseWriter, r *http.Request) {
		fakevendor.JSON(w, http.StatusOK, map[string]any{"result": map[string]any{
			known.Email:                map[string]any{"contact": map[string]any{"id": "c0ffee00-only", "email": known.Email}},
			"someone-else@example.com": map[string]any{"contact": map[string]any{"id": "c0ffee00-stranger"}},
			subject(52).Email:          map[string]any{"error": "lookup unavailable"},
		}})
	})
	items, err = newBatch(t, f2).EraseBatch(connectortest.Ctx(t), []connectors.Subject{known, left, subject(52)})
	if err != nil {
		t.Fatal(err)
	}
	if items[0].Err != nil || items[0].Outcome.Status != connectors.StatusRunning {
		t.Errorf("the subject answered for: %q, %v; want running", items[0].Outcome.Status, items[0].Err)
	}
	for _, i := range []int{1, 2} {
		if perm, _ := connectors.Classify(items[i].Err); items[i].Err == nil || perm {
			t.Errorf("subject %d, left out of the answer: %q, %v; want a retryable error of its own", i, items[i].Outcome.Status, items[i].Err)
		}
	}
	if d := countCalls(t, f2).deleted; len(d) != 1 || fmt.Sprint(d[0]) != "[c0ffee00-only]" {
		t.Errorf("deleted %v, want only the contact answered for the subject asked about", d)
	}
	for _, it := range items {
		if it.Err != nil && strings.Contains(it.Err.Error(), "example.com") {
			t.Errorf("an error carries an address: %v", it.Err)
		}
	}
}

// A vendor refusal of the search or the delete fails the whole call,
// classified as a single call's would be: the runtime splits the batch and
// retries, so one address SendGrid refuses never holds up the others.
func TestBatchRefusedAsAWhole(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		pass      int // requests let through before the fault
		fault     fakevendor.Fault
		hostile   bool // a batch holding an address SendGrid calls invalid
		permanent bool
		limited   bool
	}{
		{"search 400", 0, fakevendor.Status(http.StatusBadRequest), false, true, false},
		{"search of an invalid address", 0, nil, true, true, false},
		{"search 500", 0, fakevendor.Status(http.StatusInternalServerError), false, false, false},
		{"search 503", 0, fakevendor.Status(http.StatusServiceUnavailable), false, false, false},
		{"search 429", 0, sendgridfake.TooMany, false, false, true},
		{"search 401", 0, sendgridfake.Refused, false, true, false},
		{"search malformed", 0, fakevendor.Malformed(), false, false, false},
		{"delete 400", 1, fakevendor.Status(http.StatusBadRequest), false, true, false},
		{"delete 500", 1, fakevendor.Status(http.StatusInternalServerError), false, false, false},
		{"delete 429", 1, sendgridfake.TooMany, false, false, true},
		{"delete without a job id", 1, fakevendor.Status(http.StatusAccepted), false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := sendgridfake.Start(t, sendgridfake.Options{})
			subjects := []connectors.Subject{subject(60), subject(61), subject(62)}
			for _, s := range subjects {
				f.Seed(s)
			}
			if tt.hostile {
				subjects = append(subjects, connectors.Subject{Email: "not an address"})
			}
			if tt.pass > 0 {
				f.Inject(tt.pass, f.PassThrough())
			}
			if tt.fault != nil {
				f.Inject(1, tt.fault)
			}
			items, err := newBatch(t, f).EraseBatch(connectortest.Ctx(t), subjects)
			if err == nil {
				t.Fatalf("EraseBatch succeeded: %v", items)
			}
			perm, after := connectors.Classify(err)
			if perm != tt.permanent {
				t.Errorf("permanent = %v, want %v: %v", perm, tt.permanent, err)
			}
			if tt.limited && (!errors.Is(err, connectors.ErrRateLimited) || after <= 0) {
				t.Errorf("a 429 is not signalled as a rate limit with a delay: %v (after %v)", err, after)
			}
			if strings.Contains(err.Error(), "example.com") || strings.Contains(err.Error(), "c0ffee00") {
				t.Errorf("the error carries an address or a contact id: %v", err)
			}
			for i, s := range subjects[:3] {
				if f.Count(s) != 1 {
					t.Errorf("subject %d lost a contact in a refused call", i)
				}
			}
		})
	}
}

// A shared job's report is totals only: how each ref is judged from it.
func TestSharedJobJudgement(t *testing.T) {
	t.Parallel()
	const job = "5ee1ab00-0001-4000-8000-000000000001"
	shared, whole := "contacts-delete:"+job+":2/3", "contacts-delete:"+job
	tests := []struct {
		name, status              string
		requested, deleted, erred int
		ref                       string
		want                      connectors.Status // "" for a retryable error
		records                   int64
		uncounted                 bool
	}{
		{"completed", "completed", 3, 3, 0, shared, connectors.StatusErased, 2, false},
		{"fewer deleted, none errored", "completed", 3, 2, 0, shared, connectors.StatusErased, 0, true},
		{"none deleted, none errored", "completed", 3, 0, 0, shared, connectors.StatusErased, 0, true},
		{"completed with errors", "completed", 3, 2, 1, shared, "", 0, false},
		{"fewer requested than sent", "completed", 2, 2, 0, shared, "", 0, false},
		{"errored", "errored", 3, 2, 1, shared, "", 0, false},
		{"failed", "failed", 3, 0, 3, shared, "", 0, false},
		{"pending", "pending", 3, 0, 0, shared, connectors.StatusRunning, 0, false},
		{"unknown status", "exploded", 3, 0, 0, shared, "", 0, false},
		{"whole job: its deleted_count", "completed", 3, 2, 0, whole, connectors.StatusErased, 2, false},
		{"whole job: nothing deleted", "completed", 1, 0, 0, whole, connectors.StatusNotFound, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := sendgridfake.Start(t, sendgridfake.Options{})
			f.Inject(1, func(w http.ResponseWriter, r *http.Request) {
				fakevendor.JSON(w, http.StatusOK, map[string]any{"id": job, "status": tt.status, "job_type": "delete",
					"results": map[string]any{"requested_count": tt.requested, "deleted_count": tt.deleted, "errored_count": tt.erred}})
			})
			items, err := newBatch(t, f).PollBatch(connectortest.Ctx(t), []string{tt.ref})
			if err != nil {
				t.Fatal(err)
			}
			it := items[0]
			if tt.want == "" {
				if perm, _ := connectors.Classify(it.Err); it.Err == nil || perm {
					t.Fatalf("%q with %d records, %v; want a retryable error", it.Outcome.Status, it.Outcome.Records, it.Err)
				}
				if !strings.Contains(it.Err.Error(), job) {
					t.Errorf("the error does not name the job: %v", it.Err)
				}
				return
			}
			if it.Err != nil {
				t.Fatal(it.Err)
			}
			out := it.Outcome
			if out.Status != tt.want || out.Records != tt.records || out.Uncounted != tt.uncounted {
				t.Errorf("%q with %d records (uncounted %v); want %q with %d (uncounted %v)",
					out.Status, out.Records, out.Uncounted, tt.want, tt.records, tt.uncounted)
			}
			if out.Status == connectors.StatusRunning && out.JobRef != tt.ref {
				t.Errorf("a pending job's ref became %q", out.JobRef)
			}
		})
	}
}

// Refs naming one job cost one status request, however many; refs of
// old single erases are read as they always were; a ref that is not ours
// fails alone.
func TestPollBatchAsksEachJobOnce(t *testing.T) {
	t.Parallel()
	f := sendgridfake.Start(t, sendgridfake.Options{Polls: 2})
	subjects := []connectors.Subject{subject(70), subject(71), subject(72)}
	for _, s := range subjects {
		f.Seed(s)
	}
	// A job started as the old Erase did (before batches): two contacts
	// of one person, its ref stored as "contacts-delete:<job id>".
	old := subject(73)
	legacyRef := startLegacyJob(t, f, f.Add(old.Email), f.Add(old.Email))
	b := newBatch(t, f)
	items, err := b.EraseBatch(connectortest.Ctx(t), subjects)
	if err != nil {
		t.Fatal(err)
	}
	refs := []string{items[0].Outcome.JobRef, "contacts-delete:../../count", items[1].Outcome.JobRef, legacyRef, items[2].Outcome.JobRef, items[0].Outcome.JobRef}
	before := countCalls(t, f).statuses
	for round := 1; ; round++ {
		got, err := b.PollBatch(connectortest.Ctx(t), refs)
		if err != nil {
			t.Fatal(err)
		}
		if n := countCalls(t, f).statuses - before; n != 2*round {
			t.Fatalf("round %d: %d status requests in all, want 2 a round (two jobs)", round, n)
		}
		if perm, _ := connectors.Classify(got[1].Err); got[1].Err == nil || !perm {
			t.Errorf("a ref that is not ours: %q, %v; want a permanent error of its own", got[1].Outcome.Status, got[1].Err)
		}
		if got[0].Outcome.Status == connectors.StatusRunning {
			if round > 5 {
				t.Fatal("the jobs never finished")
			}
			for _, i := range []int{0, 2, 3, 4, 5} {
				if got[i].Err != nil || got[i].Outcome.Status != connectors.StatusRunning || got[i].Outcome.JobRef != refs[i] {
					t.Errorf("round %d, ref %d: %q %q, %v; want running with its ref", round, i, got[i].Outcome.Status, got[i].Outcome.JobRef, got[i].Err)
				}
			}
			continue
		}
		if round != 3 {
			t.Errorf("the jobs finished in round %d, want 3 (pending twice)", round)
		}
		for _, i := range []int{0, 2, 4, 5} {
			if got[i].Err != nil || got[i].Outcome.Status != connectors.StatusErased || got[i].Outcome.Records != 1 {
				t.Errorf("ref %d: %q with %d records, %v; want erased 1", i, got[i].Outcome.Status, got[i].Outcome.Records, got[i].Err)
			}
		}
		if got[3].Err != nil || got[3].Outcome.Status != connectors.StatusErased || got[3].Outcome.Records != 2 {
			t.Errorf("the old single-erase ref: %q with %d records, %v; want erased 2 (its job's deleted_count)", got[3].Outcome.Status, got[3].Outcome.Records, got[3].Err)
		}
		break
	}
	// Poll alone reads a shared ref too, and the old one.
	p := newConnector(t, f).(connectors.Poller)
	for _, ref := range []string{refs[2], legacyRef} {
		if out, err := p.Poll(connectortest.Ctx(t), ref); err != nil || out.Status != connectors.StatusErased {
			t.Errorf("Poll(%q) = %q, %v; want erased", ref, out.Status, err)
		}
	}
	if f.Count(old) != 0 {
		t.Error("the old job's contacts remain")
	}
}

// startLegacyJob starts a delete job for ids as the connector did before
// batches, and returns the ref it stored.
func startLegacyJob(t *testing.T, f *sendgridfake.Fake, ids ...string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodDelete, f.URL()+"/v3/marketing/contacts?ids="+strings.Join(ids, ","), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+f.Key())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var job struct {
		JobID string `json:"job_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&job); err != nil || job.JobID == "" {
		t.Fatalf("delete: status %d, %v", resp.StatusCode, err)
	}
	return "contacts-delete:" + job.JobID
}

// A shared job that errored or failed fails everyone in it, retryably:
// SendGrid reports totals only, so nobody in it can be told apart. The
// retry searches again and starts a new job for whoever is left.
func TestBatchJobFailing(t *testing.T) {
	t.Parallel()
	for _, outcome := range []string{"failed", "errored", "partial"} {
		t.Run(outcome, func(t *testing.T) {
			t.Parallel()
			f := sendgridfake.Start(t, sendgridfake.Options{Polls: -1})
			f.EndJobsAs(outcome)
			subjects := []connectors.Subject{subject(80), subject(81), subject(82)}
			for _, s := range subjects {
				f.Seed(s)
			}
			b := newBatch(t, f)
			items, err := b.EraseBatch(connectortest.Ctx(t), subjects)
			if err != nil {
				t.Fatal(err)
			}
			refs := make([]string, len(items))
			for i, it := range items {
				refs[i] = it.Outcome.JobRef
			}
			polled, err := b.PollBatch(connectortest.Ctx(t), refs)
			if err != nil {
				t.Fatal(err)
			}
			for i, it := range polled {
				if perm, _ := connectors.Classify(it.Err); it.Err == nil || perm {
					t.Errorf("subject %d in a %s job: %q with %d records, %v; want a retryable error", i, outcome, it.Outcome.Status, it.Outcome.Records, it.Err)
					continue
				}
				if !strings.Contains(it.Err.Error(), jobOf(refs[i])) || strings.Contains(it.Err.Error(), "example.com") {
					t.Errorf("subject %d: the error must name the job and no address: %v", i, it.Err)
				}
			}
			f.EndJobsAs("completed")
			items, err = connectortest.EraseBatchAndWait(connectortest.Ctx(t), b, subjects, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			for i, it := range items {
				if it.Err != nil || f.Count(subjects[i]) != 0 {
					t.Errorf("subject %d after the retry: %q, %v, %d contacts left", i, it.Outcome.Status, it.Err, f.Count(subjects[i]))
				}
			}
		})
	}
}

// A shared job that deleted fewer contacts than it was sent, with none
// errored (someone deleted one in SendGrid's UI meanwhile): everyone in it
// is erased, their counts unknown; nobody is given a share of the total.
func TestSharedJobDeletingFewerIsUncounted(t *testing.T) {
	t.Parallel()
	f := sendgridfake.Start(t, sendgridfake.Options{Polls: -1})
	a, b := subject(90), subject(91)
	gone := f.Add(a.Email)
	f.Add(b.Email)
	c := newBatch(t, f)
	items, err := c.EraseBatch(connectortest.Ctx(t), []connectors.Subject{a, b})
	if err != nil {
		t.Fatal(err)
	}
	f.Remove(gone)
	polled, err := c.PollBatch(connectortest.Ctx(t), []string{items[0].Outcome.JobRef, items[1].Outcome.JobRef})
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range polled {
		out := it.Outcome
		if it.Err != nil || out.Status != connectors.StatusErased || !out.Uncounted || out.Records != 0 {
			t.Errorf("subject %d: %q with %d records (uncounted %v), %v; want erased, uncounted", i, out.Status, out.Records, out.Uncounted, it.Err)
		}
		if ev := fmt.Sprint(out.Evidence); !strings.Contains(ev, "requested 2, deleted 1, errored 0") {
			t.Errorf("subject %d: evidence lacks the job's totals: %s", i, ev)
		}
	}
}

func TestMalformedRefsFailAlone(t *testing.T) {
	t.Parallel()
	f := sendgridfake.Start(t, sendgridfake.Options{Polls: -1})
	s := subject(95)
	f.Seed(s)
	b := newBatch(t, f)
	items, err := b.EraseBatch(connectortest.Ctx(t), []connectors.Subject{s})
	if err != nil {
		t.Fatal(err)
	}
	good := items[0].Outcome.JobRef
	job := jobOf(good)
	bad := []string{
		"", "contacts-delete:", "contacts-delete:" + job + ":", "contacts-delete:" + job + ":0/3",
		"contacts-delete:" + job + ":4/3", "contacts-delete:" + job + ":1/x", "contacts-delete:" + job + ":1/3/4",
		"contacts-delete:" + job + ":-1/3", "contacts-delete:" + job + ":01/3", "contacts-delete:../x:1/2",
		"contacts-delete:" + job + ":1/2?x=1", "other:" + job,
	}
	refs := append(append([]string{}, bad...), good)
	got, err := b.PollBatch(connectortest.Ctx(t), refs)
	if err != nil {
		t.Fatal(err)
	}
	for i, ref := range bad {
		if perm, _ := connectors.Classify(got[i].Err); got[i].Err == nil || !perm {
			t.Errorf("ref %q: %q, %v; want a permanent error of its own", ref, got[i].Outcome.Status, got[i].Err)
		}
	}
	if last := got[len(bad)]; last.Err != nil || last.Outcome.Status != connectors.StatusErased {
		t.Errorf("the good ref beside bad ones: %q, %v; want erased", last.Outcome.Status, last.Err)
	}
	if n := countCalls(t, f).statuses; n != 1 {
		t.Errorf("%d status requests, want 1 (for the good ref only)", n)
	}
}

// A status request the vendor refuses fails the whole PollBatch, as Poll's
// would; an unknown job fails its own refs only.
func TestPollBatchErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		fault     fakevendor.Fault
		permanent bool
	}{
		{"server error", fakevendor.Status(500), false},
		{"rate limited", sendgridfake.TooMany, false},
		{"refused key", sendgridfake.Refused, true},
		{"malformed body", fakevendor.Malformed(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := sendgridfake.Start(t, sendgridfake.Options{Polls: -1})
			s := subject(96)
			f.Seed(s)
			b := newBatch(t, f)
			items, err := b.EraseBatch(connectortest.Ctx(t), []connectors.Subject{s})
			if err != nil {
				t.Fatal(err)
			}
			unknown := "contacts-delete:00000000-0000-4000-8000-000000000000:1/2"
			f.Inject(1, f.PassThrough()) // the unknown job's 404
			f.Inject(1, tt.fault)
			_, err = b.PollBatch(connectortest.Ctx(t), []string{unknown, items[0].Outcome.JobRef})
			if err == nil {
				t.Fatal("PollBatch succeeded")
			}
			if perm, _ := connectors.Classify(err); perm != tt.permanent {
				t.Errorf("permanent = %v, want %v: %v", perm, tt.permanent, err)
			}
			got, err := b.PollBatch(connectortest.Ctx(t), []string{unknown, items[0].Outcome.JobRef})
			if err != nil {
				t.Fatal(err)
			}
			if perm, _ := connectors.Classify(got[0].Err); got[0].Err == nil || perm {
				t.Errorf("unknown job: %q, %v; want a retryable error of its own", got[0].Outcome.Status, got[0].Err)
			}
			if got[1].Err != nil || got[1].Outcome.Status != connectors.StatusErased {
				t.Errorf("the known job beside it: %q, %v; want erased", got[1].Outcome.Status, got[1].Err)
			}
		})
	}
}

// SendGrid answers one contact per address; a search answering more than
// one delete takes is not SendGrid as documented, and nothing is deleted.
func TestSearchAnsweringTooManyContactsDeletesNothing(t *testing.T) {
	t.Parallel()
	f := sendgridfake.Start(t, sendgridfake.Options{})
	subjects := make([]connectors.Subject, 60)
	result := map[string]any{}
	for i := range subjects {
		subjects[i] = subject(3000 + i)
		f.Seed(subjects[i])
		// Each address twice, in two cases, each with a contact of its own.
		result[subjects[i].Email] = map[string]any{"contact": map[string]any{"id": fmt.Sprintf("c0ffee00-a%d", i)}}
		result[strings.ToUpper(subjects[i].Email)] = map[string]any{"contact": map[string]any{"id": fmt.Sprintf("c0ffee00-b%d", i)}}
	}
	f.Inject(1, func(w http.ResponseWriter, r *http.Request) {
		fakevendor.JSON(w, http.StatusOK, map[string]any{"result": result})
	})
	_, err := newBatch(t, f).EraseBatch(connectortest.Ctx(t), subjects)
	if perm, _ := connectors.Classify(err); err == nil || perm {
		t.Errorf("EraseBatch = %v; want a retryable error", err)
	}
	if got := countCalls(t, f); got.deletes != 0 {
		t.Errorf("%d deletes made", got.deletes)
	}
}

// The fake refuses what SendGrid would (101 addresses a search) and what
// the connector promises never to send (101 ids a delete), so the call
// counts above are honest.
func TestFakeRefusesPastTheLimits(t *testing.T) {
	t.Parallel()
	f := sendgridfake.Start(t, sendgridfake.Options{})
	emails, ids := make([]string, 101), make([]string, 101)
	for i := range emails {
		emails[i] = subject(4000 + i).Email
		ids[i] = f.Add(emails[i])
	}
	body, _ := json.Marshal(map[string][]string{"emails": emails})
	for _, req := range []*http.Request{
		mustRequest(t, http.MethodPost, f.URL()+"/v3/marketing/contacts/search/emails", string(body)),
		mustRequest(t, http.MethodDelete, f.URL()+"/v3/marketing/contacts?ids="+strings.Join(ids, ","), ""),
	} {
		req.Header.Set("Authorization", "Bearer "+f.Key())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s of 101: status %d, want 400", req.Method, resp.StatusCode)
		}
	}
	if f.Count(subject(4000)) != 1 {
		t.Error("a refused delete deleted")
	}
}

func mustRequest(t *testing.T, method, url, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}
