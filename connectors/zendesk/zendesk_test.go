package zendesk_test

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
	"github.com/lethe-dev/lethe/connectors/zendesk/zendeskfake"
)

// kept is why a fault met after the first deletion may not end the
// erasure: Zendesk lists deleted tickets by no requester and deleted users
// by no external_id, so a fresh lookup could not find them again; Poll
// keeps the job reference and retries the step instead.
const kept = "after the first deletion the job reference is all that finds the deleted tickets and users: Poll retries the step"

func TestVendor(t *testing.T) {
	t.Parallel()
	unread := map[string]string{}
	for _, name := range []string{"unavailable", "status_500", "status_502", "rate_limited", "retry_after", "timeout", "malformed", "refused", "forbidden"} {
		unread[name] = kept
	}
	connectortest.RunVendor(t, connectortest.VendorSuite{
		VendorCases: connectortest.VendorCases{
			Type:  "zendesk",
			Start: connectortest.StartFake(zendeskfake.Start),
			// Zendesk's 429 carries Retry-After in seconds (the fake's: 1).
			MinRetryAfter: time.Second, MaxRetryAfter: time.Second, Credential: "token",
			Unread: unread,
		},
		Misconfigured: "base_url: {url}/not-zendesk", // 404s that must not pass for "no such user"
		Hostile: []connectors.Subject{{Email: `subject1@example.com" email:"subject600@example.com`}, {Email: "subject6*"},
			connectortest.VendorUserID("user-600/../user-601"), connectortest.VendorUserID("user-60*")},
	})
}

// erase runs an erasure to its end.
func erase(t *testing.T, c connectors.Connector, s connectors.Subject) connectors.Outcome {
	t.Helper()
	out, err := connectortest.EraseAndWait(connectortest.Ctx(t), c, s, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTicketsPurged: requested tickets are deleted, then permanently
// deleted, in batches of 100, before the user is.
func TestTicketsPurged(t *testing.T) {
	t.Parallel()
	f := zendeskfake.Start(t, zendeskfake.Options{})
	s := connectortest.VendorSubject(1)
	f.SeedTickets(s, 150)
	c := connectortest.Build(t, "zendesk", "zd", f.Config())
	out := erase(t, c, s)
	if out.Status != connectors.StatusErased || out.Records != 151 || f.Count(s) != 0 || f.SoftDeletedTickets() != 0 {
		t.Fatalf("erase = %q, %d records; %d left, %d tickets restorable", out.Status, out.Records, f.Count(s), f.SoftDeletedTickets())
	}
	var jobs []string
	for _, call := range f.Calls() {
		if call.Method == "DELETE" && strings.HasSuffix(call.Path, "/destroy_many") {
			q, _ := url.ParseQuery(call.Query)
			jobs = append(jobs, call.Path+"="+strconv.Itoa(len(strings.Split(q.Get("ids"), ","))))
		}
	}
	want := "/api/v2/tickets/destroy_many=100 /api/v2/deleted_tickets/destroy_many=100 /api/v2/tickets/destroy_many=50 /api/v2/deleted_tickets/destroy_many=50"
	if strings.Join(jobs, " ") != want {
		t.Errorf("bulk deletes %v, want %s", jobs, want)
	}
	if ev := connectortest.EvidenceText(out.Evidence); !strings.Contains(ev, "150 requested tickets permanently deleted") || !strings.Contains(ev, "not covered") {
		t.Errorf("evidence %q", ev)
	}
	if out := erase(t, c, s); out.Status != connectors.StatusNotFound {
		t.Errorf("second erase = %q, want not found", out.Status)
	}
}

// TestJobStates: failed or killed jobs are started again from the job
// reference; a job that keeps failing gives up with a permanent error
// that says what is still restorable.
func TestJobStates(t *testing.T) {
	t.Parallel()
	f := zendeskfake.Start(t, zendeskfake.Options{})
	s := connectortest.VendorSubject(2)
	want := f.Seed(s)
	f.FailJobs("failed", "", "killed") // the bulk delete fails, then the permanent delete
	c := connectortest.Build(t, "zendesk", "zd", f.Config())
	out, err := c.Erase(connectortest.Ctx(t), s)
	if err != nil || out.Status != connectors.StatusRunning {
		t.Fatalf("erase = %+v, %v", out, err)
	}
	out, states := connectortest.PollToEnd(t, c, out, 20)
	if out.Status != connectors.StatusErased || out.Records != want || f.Count(s) != 0 {
		t.Fatalf("after %v: %q, %d records, %d left", states, out.Status, out.Records, f.Count(s))
	}
	joined := strings.Join(states, "|")
	for _, st := range []string{"working", "trash failed; started again", "purge killed; started again"} {
		if !strings.Contains(joined, st) {
			t.Errorf("polls %q do not show %q", joined, st)
		}
	}

	s = connectortest.VendorSubject(3)
	f.Seed(s)
	f.FailJobs("", "failed", "failed", "failed", "failed", "failed", "failed", "failed", "failed", "failed")
	out, err = connectortest.EraseAndWait(connectortest.Ctx(t), c, s, 10*time.Second)
	if !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), "Deleted tickets") {
		t.Fatalf("a purge that keeps failing: %+v, %v; want a permanent error naming Deleted tickets", out, err)
	}
}

// TestSoftDeletedUserPurged: a user already deleted (still in deleted
// users, holding the email) is found on a later page and permanently
// deleted; Verify counts it until then.
func TestSoftDeletedUserPurged(t *testing.T) {
	t.Parallel()
	f := zendeskfake.Start(t, zendeskfake.Options{})
	f.DeletedUsersPageSize(2)
	for i := 10; i < 15; i++ {
		f.SeedRecoverable(connectortest.VendorSubject(i))
	}
	s := connectortest.VendorSubject(20)
	f.SeedRecoverable(s)
	c := connectortest.Build(t, "zendesk", "zd", f.Config())
	v, err := c.(connectors.Verifier).Verify(connectortest.Ctx(t), connectors.Subject{Email: s.Email})
	if err != nil || v.Remaining != 1 {
		t.Fatalf("verify before = %+v, %v; want 1 remaining", v, err)
	}
	if out := erase(t, c, connectors.Subject{Email: s.Email}); out.Status != connectors.StatusErased || out.Records != 1 || f.Count(s) != 0 {
		t.Fatalf("erase = %q %d, %d left", out.Status, out.Records, f.Count(s))
	}
	if n := f.Count(connectortest.VendorSubject(12)); n != 1 {
		t.Errorf("another soft-deleted user was touched: %d left", n)
	}
	few := connectortest.Build(t, "zendesk", "zd", fakevendor.MergeYAML(f.Config(), "deleted_user_pages: 2"))
	if _, err := few.Erase(connectortest.Ctx(t), connectors.Subject{Email: "nobody@example.com"}); !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), "deleted_user_pages") {
		t.Errorf("more deleted users than deleted_user_pages: %v; want a permanent error naming the key", err)
	}
}

// TestUserDeletionKept: a user deleted whose permanent deletion fails is
// kept in the job reference (a deleted user carries no external_id to be
// found by again).
func TestUserDeletionKept(t *testing.T) {
	t.Parallel()
	f := zendeskfake.Start(t, zendeskfake.Options{})
	s := connectortest.VendorSubject(4)
	f.SeedTickets(s, 0)
	c := connectortest.Build(t, "zendesk", "zd", f.Config())
	byID := connectors.Subject{UserIDs: s.UserIDs}
	f.Inject(3, f.PassThrough()) // search by external_id, requested tickets, delete user
	f.Inject(1, fakevendor.Status(503))
	out, err := c.Erase(connectortest.Ctx(t), byID)
	if err != nil || out.Status != connectors.StatusRunning || strings.Contains(out.JobRef, "user-4") {
		t.Fatalf("erase = %+v, %v; want running, the ref holding no identifier", out, err)
	}
	if out, _ = connectortest.PollToEnd(t, c, out, 5); out.Status != connectors.StatusErased || out.Records != 1 || f.Count(s) != 0 {
		t.Fatalf("poll = %q %d, %d left", out.Status, out.Records, f.Count(s))
	}
}

// TestPollRidesOutFailures: once tickets are being deleted, a failure
// keeps the job reference, waits as long as Zendesk asks, and after
// repeated failures gives up naming what is still restorable.
func TestPollRidesOutFailures(t *testing.T) {
	t.Parallel()
	f := zendeskfake.Start(t, zendeskfake.Options{})
	s := connectortest.VendorSubject(5)
	f.Seed(s)
	c := connectortest.Build(t, "zendesk", "zd", f.Config())
	out, err := c.Erase(connectortest.Ctx(t), s)
	if err != nil || out.Status != connectors.StatusRunning {
		t.Fatalf("erase = %+v, %v", out, err)
	}
	f.Inject(1, fakevendor.TooMany(7*time.Second))
	out, err = c.(connectors.Poller).Poll(connectortest.Ctx(t), out.JobRef)
	if err != nil || out.Status != connectors.StatusRunning || out.PollAfter < 7*time.Second {
		t.Fatalf("poll meeting a 429 = %+v, %v; want running, polled again after 7s", out, err)
	}
	f.Always(zendeskfake.Refused)
	for range 20 {
		if out, err = c.(connectors.Poller).Poll(connectortest.Ctx(t), out.JobRef); err != nil || out.Status != connectors.StatusRunning {
			break
		}
	}
	if !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), "token") || !strings.Contains(err.Error(), "restorable") {
		t.Fatalf("poll refused again and again = %v; want a permanent error naming the token and what is restorable", err)
	}
}

// TestOAuth: an OAuth access token is sent as a Bearer token instead.
func TestOAuth(t *testing.T) {
	t.Parallel()
	f := zendeskfake.Start(t, zendeskfake.Options{})
	s := connectortest.VendorSubject(6)
	want := f.Seed(s)
	cfg := strings.NewReplacer("email: \""+zendeskfake.DefaultEmail+"\"\n", "", "api_token: \""+zendeskfake.DefaultToken+"\"\n", "oauth_token: "+zendeskfake.DefaultOAuthToken+"\n").Replace(f.Config())
	if out := erase(t, connectortest.Build(t, "zendesk", "zd", cfg), s); out.Records != want || f.Count(s) != 0 {
		t.Fatalf("erase with OAuth = %q %d, %d left", out.Status, out.Records, f.Count(s))
	}
	connectortest.CallsCarry(t, f, "Authorization", "Bearer "+zendeskfake.DefaultOAuthToken)
}

// TestAgentsRefused: an agent or admin is not deleted as a data subject.
func TestAgentsRefused(t *testing.T) {
	t.Parallel()
	f := zendeskfake.Start(t, zendeskfake.Options{})
	s := connectortest.VendorSubject(7)
	f.SeedAgent(s)
	_, err := connectortest.Build(t, "zendesk", "zd", f.Config()).Erase(connectortest.Ctx(t), s)
	if !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), "end users only") || f.Count(s) != 1 {
		t.Fatalf("erase of an agent = %v, %d left; want a permanent refusal, nothing deleted", err, f.Count(s))
	}
}

func TestPollRefusesForeignRefs(t *testing.T) {
	t.Parallel()
	f := zendeskfake.Start(t, zendeskfake.Options{})
	c := connectortest.Build(t, "zendesk", "zd", f.Config()).(connectors.Poller)
	for _, ref := range []string{"", "{", `{"Forgotten":2}`, `{"step":"list"}`, `{"users":[1],"step":"nope"}`,
		`{"users":[1],"step":"trash","job":"../x","batch":[2]}`, `{"users":[1],"step":"purge","job":"j1"}`, `{"users":[-1],"step":"users"}`} {
		if _, err := c.Poll(connectortest.Ctx(t), ref); !connectortest.IsPermanent(err) {
			t.Errorf("Poll(%q) = %v, want a permanent error", ref, err)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	base := "subdomain: acme\nemail: agent@acme.example\napi_token: t\n"
	connectortest.RunVendorConfigCases(t, "zendesk", base, "base_url", "user_id_system", "poll_interval")
	connectortest.RunConfigCases(t, "zendesk", map[string]string{"ZENDESK_TOKEN": "s3cret"}, []string{"s3cret"}, connectortest.ConfigCases{
		{"no account", "email: a@b.example\napi_token: t\n", "subdomain: required"},
		{"bad subdomain", "subdomain: https://acme.zendesk.com\nemail: a@b.example\napi_token: t\n", "subdomain: must be"},
		{"no token", "subdomain: acme\nemail: a@b.example\n", "api_token: required"},
		{"no email", "subdomain: acme\napi_token: s3cret\n", "email: required"},
		{"both auths", base + "oauth_token: s3cret\n", "oauth_token: set oauth_token, or email and api_token"},
		{"plain http", "base_url: http://acme.zendesk.com\nemail: a@b.example\napi_token: t\n", "base_url: must use https"},
		{"with /api/v2", "base_url: https://acme.zendesk.com/api/v2\nemail: a@b.example\napi_token: t\n", "base_url: leave out /api/v2"},
		{"negative pages", base + "deleted_user_pages: -1\n", "deleted_user_pages: must not be negative"},
		{"ok oauth", "subdomain: acme\noauth_token: s3cret\n", ""},
		{"ok base_url", "base_url: https://help.acme.example\nemail: a@b.example\napi_token: {env: ZENDESK_TOKEN}\n", ""},
	})
	p := connectortest.Plan(t, "zendesk", "support", base)
	if len(p.Keys) != 1 || len(p.Keys[0]) != 2 || p.Keys[0][1] != connectors.UserIDKind("support") {
		t.Errorf("plan = %+v; want email or user_ids.support", p)
	}
}

// TestDefaultBaseURL: a subdomain is Zendesk's own host, with the API
// token as Basic "<email>/token".
func TestDefaultBaseURL(t *testing.T) {
	t.Parallel()
	client, sent := connectortest.OfflineClient(200, `{"users":[],"next_page":null}`)
	c := connectortest.BuildWith(t, "zendesk", "zd", "subdomain: acme\nemail: a@b.example\napi_token: t\nuser_id_system: app\n", connectors.Deps{HTTPClient: client})
	if _, err := c.Erase(connectortest.Ctx(t), connectortest.VendorUserID("u1")); err != nil {
		t.Fatal(err)
	}
	if got := sent(); len(got) != 1 || !strings.HasPrefix(got[0], "GET https://acme.zendesk.com/api/v2/users/search?external_id=u1") {
		t.Errorf("sent %v", got)
	}
}

// TestUserRefused: Zendesk's 422 on deleting the user (a ticket-sharing
// placeholder, a legacy Chat user, a requester of an unclosed ticket) is
// permanent before anything was deleted, and nothing is.
func TestUserRefused(t *testing.T) {
	t.Parallel()
	f := zendeskfake.Start(t, zendeskfake.Options{})
	s := connectortest.VendorSubject(8)
	f.SeedTickets(s, 0)
	c := connectortest.Build(t, "zendesk", "zd", f.Config())
	f.Inject(4, f.PassThrough()) // both searches, deleted users, requested tickets
	f.Inject(1, fakevendor.Status(422))
	_, err := c.Erase(connectortest.Ctx(t), s)
	if !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), "cannot be deleted") || f.Count(s) != 1 {
		t.Fatalf("erase meeting a 422 = %v, %d left; want a permanent error saying why, nothing deleted", err, f.Count(s))
	}
}

// TestExternalIDOnly: without an email the soft-deleted users cannot be
// searched (they carry no external_id); the evidence says so rather than
// claim they were.
func TestExternalIDOnly(t *testing.T) {
	t.Parallel()
	f := zendeskfake.Start(t, zendeskfake.Options{})
	s := connectortest.VendorSubject(9)
	f.SeedRecoverable(s)
	c := connectortest.Build(t, "zendesk", "zd", f.Config())
	byID := connectors.Subject{UserIDs: s.UserIDs}
	out, err := c.Erase(connectortest.Ctx(t), byID)
	if err != nil || out.Status != connectors.StatusNotFound || !strings.Contains(connectortest.EvidenceText(out.Evidence), "not searched") {
		t.Fatalf("erase by external_id = %+v, %v; want not found, the evidence saying soft-deleted users were not searched", out, err)
	}
	v, err := c.(connectors.Verifier).Verify(connectortest.Ctx(t), byID)
	if err != nil || !strings.Contains(connectortest.EvidenceText(v.Evidence), "not searched") {
		t.Fatalf("verify by external_id = %+v, %v; want the evidence saying soft-deleted users were not searched", v, err)
	}
}
