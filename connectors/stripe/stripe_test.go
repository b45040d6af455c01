package stripe_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
	_ "github.com/lethe-dev/lethe/connectors/stripe"
	"github.com/lethe-dev/lethe/connectors/stripe/stripefake"
)

// redacting is a fake whose instances run in mode redact.
type redacting struct{ *stripefake.Fake }

func (r redacting) Config() string { return fakevendor.MergeYAML(r.Fake.Config(), "mode: redact") }

func startRedacting(t testing.TB) connectortest.FaultyVendor {
	return redacting{stripefake.Start(t, stripefake.Options{})}
}

func suite(start func(testing.TB) connectortest.FaultyVendor) connectortest.VendorSuite {
	return connectortest.VendorSuite{
		VendorCases: connectortest.VendorCases{
			Type:  "stripe",
			Start: start,
			// Stripe's 429 names no delay.
			MinRetryAfter: time.Second, MaxRetryAfter: time.Second, Credential: "API key",
		},
		Misconfigured: "base_url: {url}/not-stripe", // 404s that must not pass for "no such customer"
		Hostile: []connectors.Subject{{Email: "subject1@example.com&email=subject2@example.com"},
			connectortest.VendorUserID("user-2/../user-3"), connectortest.VendorUserID("user-2?x=1"), connectortest.VendorUserID("..")},
		Resolves: connectortest.ResolvesUserID,
	}
}

func TestVendor(t *testing.T) {
	t.Parallel()
	connectortest.RunVendor(t, suite(connectortest.StartFake(stripefake.Start)))
}

func TestVendorRedact(t *testing.T) {
	t.Parallel()
	connectortest.RunVendor(t, suite(startRedacting))
}

func TestResolve(t *testing.T) {
	t.Parallel()
	connectortest.RunResolveCases(t, connectortest.ResolveCases{
		Start: connectortest.StartFake(stripefake.Start),
		New: func(t *testing.T, f connectortest.FaultyVendor) connectors.Resolver {
			return connectortest.Build(t, "stripe", "billing", f.Config()).(connectors.Resolver)
		},
		TooManyAfter:   time.Second,
		NobodyEvidence: "lookup=0 customers found by email; ",
	})
}

// TestEvidenceSaysWhatHappened: a deletion says the customer was deleted
// and what Stripe still holds; a redaction that personal data was
// redacted from the objects Stripe keeps.
func TestEvidenceSaysWhatHappened(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode string
		want []string
	}{
		{"delete", []string{"1 customer deleted", "customer deleted, not redacted", "invoices"}},
		{"redact", []string{"personal data redacted from objects Stripe must keep", "1 customer", "succeeded"}},
	} {
		f := stripefake.Start(t, stripefake.Options{})
		s := connectortest.VendorSubject(1)
		f.Seed(s)
		c := connectortest.Build(t, "stripe", "billing", fakevendor.MergeYAML(f.Config(), "mode: "+tc.mode))
		out, err := connectortest.EraseAndWait(connectortest.Ctx(t), c, s, 5*time.Second)
		if err != nil || out.Status != connectors.StatusErased || out.Records != 1 {
			t.Fatalf("%s: %+v, %v", tc.mode, out, err)
		}
		ev := connectortest.EvidenceText(out.Evidence)
		for _, w := range tc.want {
			if !strings.Contains(ev, w) {
				t.Errorf("%s: evidence %q lacks %q", tc.mode, ev, w)
			}
		}
		if (tc.mode == "redact") != f.Redacted("user-1") {
			t.Errorf("%s: customer redacted = %v", tc.mode, f.Redacted("user-1"))
		}
	}
}

// TestRedactionJobStates: validating, then run once ready, redacting,
// succeeded; the ref names the job, never the customer.
func TestRedactionJobStates(t *testing.T) {
	t.Parallel()
	f := stripefake.Start(t, stripefake.Options{Polls: 2})
	s := connectortest.VendorSubject(2)
	f.Seed(s)
	c := connectortest.Build(t, "stripe", "billing", fakevendor.MergeYAML(f.Config(), "mode: redact", "validation_behavior: fix"))
	out, err := c.Erase(connectortest.Ctx(t), s)
	if err != nil || out.Status != connectors.StatusRunning || strings.Contains(out.JobRef, "user-2") {
		t.Fatalf("Erase = %+v, %v", out, err)
	}
	out, states := connectortest.PollToEnd(t, c, out, 10)
	want := "redaction_job=prj_fake1: validating; |redaction_job=prj_fake1: validating; |redaction_job=prj_fake1: redacting; |" +
		"redaction_job=prj_fake1: redacting; |redaction_job=prj_fake1: redacting; |"
	if got := strings.Join(states[:len(states)-1], "|") + "|"; got != want {
		t.Errorf("polls:\n%s\nwant\n%s", got, want)
	}
	if out.Status != connectors.StatusErased || out.Records != 1 || !f.Redacted("user-2") {
		t.Fatalf("final %+v, redacted %v", out, f.Redacted("user-2"))
	}
	for _, call := range f.Calls() {
		if call.Method == "POST" && call.Path == "/v1/privacy/redaction_jobs" &&
			(!strings.Contains(string(call.Body), "validation_behavior=fix") || call.Header.Get("Content-Type") != "application/x-www-form-urlencoded") {
			t.Errorf("create job body %q (%s)", call.Body, call.Header.Get("Content-Type"))
		}
	}
}

// TestRedactionValidationFails: a job Stripe cannot run fails
// permanently, naming the codes and not the person, and is canceled so
// that a later attempt can start a new one.
func TestRedactionValidationFails(t *testing.T) {
	t.Parallel()
	f := stripefake.Start(t, stripefake.Options{})
	s := connectortest.VendorSubject(3)
	f.Seed(s)
	f.Block("user-3", "invalid_state")
	c := connectortest.Build(t, "stripe", "billing", fakevendor.MergeYAML(f.Config(), "mode: redact"))
	_, err := connectortest.EraseAndWait(connectortest.Ctx(t), c, s, 5*time.Second)
	if !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), "invalid_state ×1") || strings.Contains(err.Error(), "user-3") {
		t.Fatalf("Erase = %v; want a permanent error naming invalid_state, not the customer", err)
	}
	if f.Count(s) != 1 || strings.Join(f.JobStatuses(), ",") != "canceling" {
		t.Fatalf("left %d, jobs %v; want the customer kept and the job canceled", f.Count(s), f.JobStatuses())
	}
	f.Block("user-3", "")
	if out, err := connectortest.EraseAndWait(connectortest.Ctx(t), c, s, 5*time.Second); err != nil || out.Status != connectors.StatusErased || f.Count(s) != 0 {
		t.Fatalf("erase again = %+v, %v, %d left", out, err, f.Count(s))
	}
}

// TestRedactionCarriesOnWithEarlierJob: a job an earlier attempt left
// open (its answer lost) holds the customer; the next attempt runs it
// instead of starting one Stripe would refuse.
func TestRedactionCarriesOnWithEarlierJob(t *testing.T) {
	t.Parallel()
	f := stripefake.Start(t, stripefake.Options{})
	s := connectortest.VendorSubject(4)
	f.Seed(s)
	c := connectortest.Build(t, "stripe", "billing", fakevendor.MergeYAML(f.Config(), "mode: redact"))
	if _, err := c.Erase(connectortest.Ctx(t), s); err != nil { // the ref is lost
		t.Fatal(err)
	}
	out, err := c.Erase(connectortest.Ctx(t), s)
	if err != nil || !strings.Contains(connectortest.EvidenceText(out.Evidence), "prj_fake1: validating (started earlier)") {
		t.Fatalf("second Erase = %+v, %v", out, err)
	}
	if out, _ = connectortest.PollToEnd(t, c, out, 10); out.Status != connectors.StatusErased || len(f.JobStatuses()) != 1 {
		t.Fatalf("final %+v, jobs %v", out, f.JobStatuses())
	}
}

// TestPaginatesAndDeletesEveryCustomer: one email on several customers,
// over pages, all deleted; another's customer stays.
func TestPaginatesAndDeletesEveryCustomer(t *testing.T) {
	t.Parallel()
	f := stripefake.Start(t, stripefake.Options{})
	f.PageSize.Set(2)
	s := connectortest.VendorSubject(5)
	for range 5 {
		f.Seed(connectors.Subject{Email: s.Email})
	}
	other := connectortest.VendorSubject(6)
	f.Seed(other)
	c := connectortest.Build(t, "stripe", "billing", f.Config())
	out, err := c.Erase(connectortest.Ctx(t), connectors.Subject{Email: s.Email})
	if err != nil || out.Records != 5 || f.Count(s) != 0 || f.Count(other) != 1 {
		t.Fatalf("Erase = %+v, %v; left %d, other %d", out, err, f.Count(s), f.Count(other))
	}
	lists := 0
	for _, call := range f.Calls() {
		if call.Path == "/v1/customers" {
			lists++
		}
	}
	if lists != 3 {
		t.Errorf("%d list pages, want 3", lists)
	}
}

// TestByCustomerID: a subject known only by a customer id is erased by
// it; an id Stripe could not issue is refused unsent.
func TestByCustomerID(t *testing.T) {
	t.Parallel()
	f := stripefake.Start(t, stripefake.Options{})
	s := connectortest.VendorSubject(7)
	f.Seed(s)
	c := connectortest.Build(t, "stripe", "billing", fakevendor.MergeYAML(f.Config(), "stripe_version: 2025-09-30.clover"))
	out, err := c.Erase(connectortest.Ctx(t), connectortest.VendorUserID("user-7"))
	if err != nil || out.Records != 1 || f.Count(s) != 0 {
		t.Fatalf("Erase = %+v, %v", out, err)
	}
	connectortest.CallsCarry(t, f, "Stripe-Version", "2025-09-30.clover")
	connectortest.RefusedUnsent(t, c, connectortest.VendorUserID("cus 1"), "not an id Stripe issues", f.Requests)
	connectortest.RefusedUnsent(t, c, connectors.Subject{Phone: "+15550100"}, "nothing was searched", f.Requests)
}

func TestPollRefusesForeignRefs(t *testing.T) {
	t.Parallel()
	f := stripefake.Start(t, stripefake.Options{})
	c := connectortest.Build(t, "stripe", "billing", f.Config()).(connectors.Poller)
	for _, ref := range []string{"", "{", `{"jobs":[],"customers":1}`, `{"jobs":["prj_1"],"customers":0}`, `{"jobs":["../x"],"customers":1}`, "contacts-delete:1"} {
		if _, err := c.Poll(connectortest.Ctx(t), ref); !connectortest.IsPermanent(err) {
			t.Errorf("Poll(%q) = %v, want a permanent error", ref, err)
		}
	}
	if _, err := c.Poll(connectortest.Ctx(t), `{"jobs":["prj_other"],"customers":1}`); err == nil || connectortest.IsPermanent(err) {
		t.Errorf("Poll of a job Stripe does not know = %v, want a retryable error", err)
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	connectortest.RunVendorConfigCases(t, "stripe", "api_key: sk_test_x\n", "base_url", "user_id_system", "poll_interval")
	connectortest.RunConfigCases(t, "stripe", map[string]string{"STRIPE_KEY": "rk_test_x"}, []string{"pk_live_secret"}, connectortest.ConfigCases{
		{"no api key", "mode: delete\n", "api_key: required"},
		{"publishable key", "api_key: pk_live_secret\n", "api_key: is a publishable key"},
		{"plain http", "api_key: k\nbase_url: http://api.stripe.com\n", "base_url: must use https"},
		{"with /v1", "api_key: k\nbase_url: https://api.stripe.com/v1\n", "base_url: leave out /v1"},
		{"bad mode", "api_key: k\nmode: anonymise\n", "mode: must be delete or redact"},
		{"bad validation behavior", "api_key: k\nvalidation_behavior: ignore\n", "validation_behavior: must be error or fix"},
		{"bad version", "api_key: k\nstripe_version: latest\n", "stripe_version: must be a Stripe API version"},
		{"ok redact", "api_key: {env: STRIPE_KEY}\nmode: redact\nvalidation_behavior: fix\nstripe_version: 2025-05-28.preview\nuser_id_system: stripe\n", ""},
	})
	connectortest.RunPlanCases(t, "stripe", connectortest.PlanCases{
		{Name: "default", Instance: "billing", YAML: "api_key: {env: NEVER_SET}\n",
			Keys: "[email|user_ids.billing]", Uses: "[email user_ids.billing]", ResolveBy: "[email]", Gives: "[user_ids.billing]"},
		{Name: "user_id_system", Instance: "billing", YAML: "api_key: {env: NEVER_SET}\nmode: redact\nuser_id_system: stripe\n",
			Keys: "[email|user_ids.stripe]", Uses: "[email user_ids.stripe]", ResolveBy: "[email]", Gives: "[user_ids.stripe]"},
	})
}

// TestStripeAnswers: a 409 is retried (as Stripe's SDKs do) unless
// Stripe-Should-Retry says false, and a list that ignores the email filter deletes nobody else.
func TestStripeAnswers(t *testing.T) {
	t.Parallel()
	conflict := func(retry string) fakevendor.Fault {
		return func(w http.ResponseWriter, r *http.Request) {
			if retry != "" {
				w.Header().Set("Stripe-Should-Retry", retry)
			}
			stripefake.Error(http.StatusConflict, "invalid_request_error", "lock_timeout", "busy")(w, r)
		}
	}
	f := stripefake.Start(t, stripefake.Options{})
	s, other := connectortest.VendorSubject(8), connectortest.VendorSubject(9)
	f.Seed(s)
	f.Seed(other)
	c := connectortest.Build(t, "stripe", "billing", f.Config())
	for retry, permanent := range map[string]bool{"true": false, "": false, "false": true} {
		f.Inject(1, conflict(retry))
		if _, err := c.Erase(connectortest.Ctx(t), s); err == nil || connectortest.IsPermanent(err) != permanent {
			t.Errorf("409 with Stripe-Should-Retry: %s = %v, want permanent %v", retry, err, permanent)
		}
	}
	f.Inject(1, func(w http.ResponseWriter, _ *http.Request) { // the filter ignored
		fakevendor.JSON(w, http.StatusOK, map[string]any{"object": "list", "has_more": false,
			"data": []map[string]any{{"id": "user-9", "object": "customer", "email": other.Email}}})
	})
	if out, err := c.Erase(connectortest.Ctx(t), connectors.Subject{Email: s.Email}); err != nil || out.Status != connectors.StatusNotFound || f.Count(other) != 1 {
		t.Fatalf("Erase = %+v, %v; other left %d: a customer with another email must not be deleted", out, err, f.Count(other))
	}
}

// TestRedactionTenCustomersAJob: Stripe takes at most ten object ids a
// job, so twelve customers with one email make two jobs, all redacted.
func TestRedactionTenCustomersAJob(t *testing.T) {
	t.Parallel()
	f := stripefake.Start(t, stripefake.Options{})
	s := connectortest.VendorSubject(10)
	for range 12 {
		f.Seed(connectors.Subject{Email: s.Email})
	}
	c := connectortest.Build(t, "stripe", "billing", fakevendor.MergeYAML(f.Config(), "mode: redact"))
	out, err := connectortest.EraseAndWait(connectortest.Ctx(t), c, connectors.Subject{Email: s.Email}, 5*time.Second)
	if err != nil || out.Status != connectors.StatusErased || out.Records != 12 || f.Count(s) != 0 || len(f.JobStatuses()) != 2 {
		t.Fatalf("Erase = %+v, %v; left %d, jobs %v", out, err, f.Count(s), f.JobStatuses())
	}
}
