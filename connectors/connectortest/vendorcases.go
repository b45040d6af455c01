package connectortest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// FaultyVendor is a fake vendor faults can be injected into: every
// <vendor>fake is one (it embeds fakevendor.Controls).
type FaultyVendor interface {
	Vendor
	Inject(n int, f fakevendor.Fault)
	Always(f fakevendor.Fault)
	PassThrough() fakevendor.Fault
	Calls() []fakevendor.Call
	Refused() int
	OtherAccount() int
	Answers() fakevendor.Answers
}

// VendorCases are the cases every vendor connector runs against its fake,
// table-driven, so that a connector's own test file holds only what is its
// own. RunVendorCases first erases a subject with no fault to learn the
// requests an erasure makes (polls included), then, for each of those
// requests in turn, erases again from a fresh fake with that request
// meeting each fault:
//
//   - unavailable (the vendor's own 5xx, a 500, a 502), a 429 naming no
//     delay (the vendor's own), a 429 with Retry-After, a timeout, a
//     malformed body: the erasure fails with a retryable error; a 429
//     asks for the delay named, or the one the vendor's headers or
//     documented rate imply;
//   - refused credentials (the vendor's own refusal, a 403): a permanent
//     error naming the credential;
//   - an erasure that stops at a fault at its first request erases
//     nothing; after each fault, an erasure without faults removes the
//     subject; no error quotes the subject's identifiers (or Derived
//     values), a credential or the fake's address.
//
// Then a storm of 429s followed by success; for vendors with
// asynchronous jobs, what a job reference may hold; and two instances side
// by side, each against its own account of the vendor (the second fake's
// OtherAccount): each erases at its own account only, sends its own
// credentials, and the first's credentials are refused at the second's.
//
//	connectortest.RunVendorCases(t, connectortest.VendorCases{
//		Type:    "sendgrid",
//		Start:   func(t testing.TB) connectortest.FaultyVendor { return sendgridfake.Start(t, sendgridfake.Options{}) },
//		TooMany: sendgridfake.TooMany, MinRetryAfter: time.Second, MaxRetryAfter: 3 * time.Second,
//		Refused: sendgridfake.Refused, Credential: "API key", Secrets: []string{sendgridfake.DefaultKey},
//	})
type VendorCases struct {
	// Type is the connector type; instances are named after it and built
	// from the fake's Config.
	Type string
	// Start starts a fresh fake.
	Start func(t testing.TB) FaultyVendor
	// Subject is the i-th subject seeded; default VendorSubject.
	Subject func(i int) connectors.Subject

	// Unavailable is how the vendor answers when it fails; default a 503.
	Unavailable fakevendor.Fault
	// TooMany is the vendor's own rate-limit answer; default the one the
	// fake's rate limit sends (fakevendor.Vendor.TooMany).
	TooMany fakevendor.Fault
	// MinRetryAfter and MaxRetryAfter bound the pause the connector asks
	// for after TooMany (MaxRetryAfter 0: no upper bound). A vendor that
	// names no delay and documents a rate needs MinRetryAfter > 0, or
	// the runtime retries at once.
	MinRetryAfter, MaxRetryAfter time.Duration
	// Refused is how the vendor refuses credentials; default the fake's
	// (fakevendor.Auth.Refuse), or a 401.
	Refused fakevendor.Fault
	// Credential is what a refused-credentials error must name ("API
	// key", "token").
	Credential string
	// Forbidden is what the error of a 403 must name; default Credential
	// (a vendor whose 403 means a missing scope names the scopes).
	Forbidden string
	// Secrets are strings no error may quote; default the credentials the
	// fake accepts (fakevendor.Auth.Keys).
	Secrets []string
	// Derived, if set, lists values made from a subject that identify
	// them as well (a hash of the email in a URL); no error may quote
	// them either.
	Derived func(connectors.Subject) []string

	// Answers are the vendor's own answers an erasure must classify
	// (its error formats, a proxy's page, an unfinished export), each a
	// case "answer/<Name>".
	Answers []VendorAnswer
	// BatchAnswers, for a connector.BatchEraser, are the answers that
	// must fail a whole EraseBatch of three subjects, classified as one
	// erasure's would be (so the runtime can split it), each a case
	// "batch_answer/<Name>": no item is answered, nothing is quoted, and
	// an answer at the first request leaves every record.
	BatchAnswers []VendorAnswer

	// Except leaves cases out, each with the reason: the key is a case
	// name ("malformed"), or a case at one request ("malformed/2": the
	// third request's body is not read).
	Except map[string]string
	// Unread names cases (as Except does, each with the reason) where the
	// erasure may go on: the answer's body is not read (a 204, a 201). The
	// other checks still run: above all, an erasure that ends erased or
	// not found with records left must have a Verify that reports them.
	Unread map[string]string
}

// VendorAnswer is one of the vendor's own answers: the erasure's request
// after Pass others (let through) meets Fault, and the erasure must fail,
// permanently or not as Permanent says, with an error saying Says and
// quoting nothing it must not. An answer at the first request leaves
// every record; after a retryable one, a retry without faults erases.
//
//	Answers: []connectortest.VendorAnswer{
//		{Name: "missing scopes", Fault: hubspotfake.MissingScopes, Permanent: true, Says: "crm.objects.contacts.write"},
//		{Name: "delete queued", Pass: 2, Fault: answer(202, `{"message":"queued"}`), Says: "no acknowledgement"},
//	}
type VendorAnswer struct {
	Name      string
	Pass      int
	Fault     fakevendor.Fault
	Permanent bool
	Says      string
	// After and AfterMax bound the pause a retryable error asks for
	// (AfterMax 0: no bound).
	After, AfterMax time.Duration
}

// vendorFault is one fault of RunVendorCases and what it must lead to.
type vendorFault struct {
	name  string
	fault fakevendor.Fault
	// check judges the error of the erasure that met the fault; err is
	// nil when the erasure went on.
	check func(t *testing.T, err error)
}

// RunVendorCases runs the vendor cases of vc as subtests of t.
func RunVendorCases(t *testing.T, vc VendorCases) {
	t.Helper()
	vc = vc.withDefaults(t)
	steps := vc.countSteps(t)
	for _, vf := range vc.faults() {
		for step := range steps {
			name := fmt.Sprintf("%s/%d", vf.name, step)
			t.Run(name, func(t *testing.T) {
				if why := vc.except(vf.name, name); why != "" {
					t.Skip(why)
				}
				t.Parallel()
				_, unread := vc.Unread[vf.name]
				if _, ok := vc.Unread[name]; ok {
					unread = true
				}
				vc.faultAt(t, vf, step, unread)
			})
		}
	}
	t.Run("rate_limit_storm", func(t *testing.T) {
		if why := vc.except("rate_limit_storm", ""); why != "" {
			t.Skip(why)
		}
		t.Parallel()
		vc.storm(t)
	})
	t.Run("job_reference", func(t *testing.T) {
		t.Parallel()
		vc.jobRef(t)
	})
	t.Run("side_by_side", func(t *testing.T) {
		t.Parallel()
		vc.sideBySide(t)
	})
	for i, a := range vc.Answers {
		t.Run("answer/"+a.Name, func(t *testing.T) {
			t.Parallel()
			vc.answer(t, a, vc.Subject(980+i))
		})
	}
	for i, a := range vc.BatchAnswers {
		t.Run("batch_answer/"+a.Name, func(t *testing.T) {
			t.Parallel()
			vc.batchAnswer(t, a, 1000+3*i)
		})
	}
}

// classified checks that err is a's.
func (a VendorAnswer) classified(t *testing.T, err error) {
	t.Helper()
	perm, after := connectors.Classify(err)
	if perm != a.Permanent || !strings.Contains(err.Error(), a.Says) || !perm && (after < a.After || a.AfterMax > 0 && after > a.AfterMax) {
		t.Errorf("error %v (permanent %v, after %v); want permanent %v, after %v to %v, saying %q", err, perm, after, a.Permanent, a.After, a.AfterMax, a.Says)
	}
}

// batchAnswer erases three subjects from the from-th in one batch, meeting a.
func (vc VendorCases) batchAnswer(t *testing.T, a VendorAnswer, from int) {
	f := vc.Start(t)
	b, ok := vc.build(t, f, 0).(connectors.BatchEraser)
	if !ok {
		t.Fatal("BatchAnswers for a connector that is not a BatchEraser")
	}
	ss := []connectors.Subject{vc.Subject(from), vc.Subject(from + 1), vc.Subject(from + 2)}
	held := make([]int64, len(ss))
	for i, s := range ss {
		held[i] = f.Seed(s)
	}
	if a.Pass > 0 {
		f.Inject(a.Pass, f.PassThrough())
	}
	f.Inject(1, a.Fault)
	items, err := b.EraseBatch(Ctx(t), ss)
	if err == nil || items != nil {
		t.Fatalf("EraseBatch = %d items, %v; want the call to fail whole", len(items), err)
	}
	a.classified(t, err)
	for i, s := range ss {
		vc.quotesNothing(t, f, s, err)
		if a.Pass == 0 && f.Count(s) != held[i] {
			t.Errorf("subject %d: %d of %d records left by a refused call", i, f.Count(s), held[i])
		}
	}
}

// answer erases s meeting a.
func (vc VendorCases) answer(t *testing.T, a VendorAnswer, s connectors.Subject) {
	f := vc.Start(t)
	held := f.Seed(s)
	c := vc.build(t, f, 0)
	if a.Pass > 0 {
		f.Inject(a.Pass, f.PassThrough())
	}
	f.Inject(1, a.Fault)
	out, err := erase(Ctx(t), c, s)
	if err == nil {
		t.Fatalf("erasure = %q; want an error (permanent %v) saying %q", out.Status, a.Permanent, a.Says)
	}
	a.classified(t, err)
	vc.quotesNothing(t, f, s, err)
	if a.Pass == 0 && f.Count(s) != held {
		t.Errorf("an answer at the first request left %d of %d records", f.Count(s), held)
	}
	if !a.Permanent {
		if _, err := erase(Ctx(t), c, s); err != nil || f.Count(s) != 0 {
			t.Errorf("retry without faults: %v, %d left", err, f.Count(s))
		}
	}
}

// sideBySide runs two instances, each against its own account.
func (vc VendorCases) sideBySide(t *testing.T) {
	a, b := vc.Start(t), vc.Start(t)
	if b.OtherAccount() == 0 {
		t.Fatal("the fake lists no credentials (fakevendor.Auth.Keys): it cannot be another account")
	}
	s := vc.Subject(970)
	a.Seed(s)
	held := b.Seed(s)
	ca := Build(t, vc.Type, vc.Type+"-a", a.Config())
	cb := Build(t, vc.Type, vc.Type+"-b", b.Config())
	if _, err := EraseAndWait(Ctx(t), ca, s, 10*time.Second); err != nil {
		t.Fatalf("erase at A: %v", err)
	}
	if a.Count(s) != 0 || b.Count(s) != held || b.Requests() != 0 {
		t.Fatalf("after erasing at A: A holds %d, B holds %d of %d and got %d requests", a.Count(s), b.Count(s), held, b.Requests())
	}
	if _, err := EraseAndWait(Ctx(t), cb, s, 10*time.Second); err != nil || b.Count(s) != 0 {
		t.Fatalf("erase at B: %v, %d left", err, b.Count(s))
	}
	if a.Refused()+b.Refused() != 0 {
		t.Errorf("credentials refused: %d at A, %d at B", a.Refused(), b.Refused())
	}
	// A's credentials at B's address: refused, permanently, naming them.
	crossed := Build(t, vc.Type, vc.Type+"-crossed", strings.ReplaceAll(a.Config(), a.URL(), b.URL()))
	b.Seed(s)
	_, err := erase(Ctx(t), crossed, s)
	if !IsPermanent(err) || !strings.Contains(err.Error(), vc.Credential) || b.Refused() == 0 || b.Count(s) != held {
		t.Errorf("A's credentials at B: %v (%d refused, %d of %d left); want a permanent error naming the %s", err, b.Refused(), b.Count(s), held, vc.Credential)
	}
}

// withDefaults fills what vc leaves out from how a fresh fake answers.
func (vc VendorCases) withDefaults(t *testing.T) VendorCases {
	t.Helper()
	if vc.Start == nil {
		t.Fatal("VendorCases needs Start")
	}
	if vc.Subject == nil {
		vc.Subject = VendorSubject
	}
	fromFake(vc.Start(t).Answers(), &vc.TooMany, &vc.Refused, &vc.Secrets)
	vc.Unavailable, vc.Refused = vc.unavailable(), vc.refused()
	if vc.TooMany == nil || vc.Credential == "" || len(vc.Secrets) == 0 {
		t.Fatal("VendorCases needs Credential, and TooMany and Secrets where the fake has none (fakevendor.Vendor.TooMany, Auth.Keys)")
	}
	return vc
}

// fromFake sets what a case leaves out (nil) to how the fake answers;
// secrets may be nil.
func fromFake(a fakevendor.Answers, tooMany, refused *fakevendor.Fault, secrets *[]string) {
	if *tooMany == nil {
		*tooMany = a.TooMany
	}
	if *refused == nil {
		*refused = a.Refused
	}
	if secrets != nil && *secrets == nil {
		*secrets = a.Secrets
	}
}

func (vc VendorCases) except(names ...string) string {
	for _, n := range names {
		if why, ok := vc.Except[n]; ok && n != "" {
			if why == "" {
				return "left out without a reason"
			}
			return why
		}
	}
	return ""
}

func (vc VendorCases) faults() []vendorFault {
	retryable := func(want string) func(t *testing.T, err error) {
		return func(t *testing.T, err error) {
			if perm, _ := connectors.Classify(err); err == nil || perm {
				t.Errorf("%s: the erasure ended with %v, want a retryable error", want, err)
			}
		}
	}
	refused := func(names string) func(t *testing.T, err error) {
		return func(t *testing.T, err error) {
			if perm, _ := connectors.Classify(err); err == nil || !perm || !strings.Contains(err.Error(), names) {
				t.Errorf("refused credentials: %v, want a permanent error naming the %s", err, names)
			}
		}
	}
	forbidden := vc.Forbidden
	if forbidden == "" {
		forbidden = vc.Credential
	}
	faults := []vendorFault{
		{"unavailable", vc.Unavailable, retryable("the vendor failing")},
		{"status_500", fakevendor.Status(http.StatusInternalServerError), retryable("a 500")},
		{"status_502", fakevendor.Status(http.StatusBadGateway), retryable("a 502")},
		{"rate_limited", vc.TooMany, func(t *testing.T, err error) {
			perm, after := connectors.Classify(err)
			if err == nil || perm || after < vc.MinRetryAfter || (vc.MaxRetryAfter > 0 && after > vc.MaxRetryAfter) {
				t.Errorf("the vendor's 429: %v (permanent %v, retry after %v); want retryable after %v to %v", err, perm, after, vc.MinRetryAfter, vc.MaxRetryAfter)
			}
		}},
		{"retry_after", fakevendor.TooMany(7 * time.Second), func(t *testing.T, err error) {
			if perm, after := connectors.Classify(err); err == nil || perm || after != 7*time.Second {
				t.Errorf("a 429 with Retry-After: 7: %v (permanent %v, retry after %v); want retryable after 7s", err, perm, after)
			}
		}},
		{"timeout", fakevendor.Hang(5 * time.Second), retryable("a vendor that does not answer")},
		{"malformed", fakevendor.Malformed(), retryable("a malformed body")},
		{"refused", vc.Refused, refused(vc.Credential)},
		{"forbidden", fakevendor.Status(http.StatusForbidden), refused(forbidden)},
	}
	return faults
}

// build builds an instance against f; with a timeout (not 0), its HTTP
// client gives up after it. Only the timeout case sets one: on a loaded
// machine a short timeout would fail requests the fake answers.
func (vc VendorCases) build(t *testing.T, f FaultyVendor, timeout time.Duration) connectors.Connector {
	t.Helper()
	var deps connectors.Deps
	if timeout > 0 {
		deps.HTTPClient = &http.Client{Timeout: timeout}
	}
	c, err := TryBuildWith(vc.Type, vc.Type, f.Config(), deps)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// countSteps erases one subject without faults and counts its requests.
func (vc VendorCases) countSteps(t *testing.T) int {
	t.Helper()
	f := vc.Start(t)
	s := vc.Subject(900)
	want := f.Seed(s)
	out, err := EraseAndWait(ctxFor(t), vc.build(t, f, 0), s, 10*time.Second)
	if err != nil || out.Status != connectors.StatusErased || (!out.Uncounted && out.Records != want) || f.Count(s) != 0 {
		t.Fatalf("an erasure without faults: %q with %d records, %v; %d left; want erased with %d", out.Status, out.Records, err, f.Count(s), want)
	}
	// The requests to the server faults are injected into (a fake may
	// count others in Requests, such as a second API's).
	n := len(f.Calls())
	if n == 0 {
		t.Fatal("an erasure sent the fake no request")
	}
	return n
}

// erase runs an erasure (polls included) to its end, the first error or
// the deadline.
func erase(ctx context.Context, c connectors.Connector, s connectors.Subject) (connectors.Outcome, error) {
	return EraseAndWait(ctx, c, s, 10*time.Second)
}

func (vc VendorCases) faultAt(t *testing.T, vf vendorFault, step int, unread bool) {
	f := vc.Start(t)
	s := vc.Subject(step)
	seeded := f.Seed(s)
	var timeout time.Duration
	if vf.name == "timeout" {
		timeout = time.Second
	}
	c := vc.build(t, f, timeout)
	if step > 0 {
		f.Inject(step, f.PassThrough())
	}
	var met atomic.Bool
	f.Inject(1, func(w http.ResponseWriter, r *http.Request) { met.Store(true); vf.fault(w, r) })
	out, err := erase(ctxFor(t), c, s)
	if !met.Load() {
		t.Fatalf("the erasure stopped before request %d: the fault was never met", step)
	}
	if err != nil || !unread {
		vf.check(t, err)
	}
	vc.quotesNothing(t, f, s, err)
	if n := f.Count(s); step == 0 && err != nil && len(f.Calls()) == 1 && n != seeded {
		t.Errorf("an erasure that stopped at a fault at its first request left %d of %d records", n, seeded)
	}
	if err == nil && (out.Status == connectors.StatusErased || out.Status == connectors.StatusNotFound) && f.Count(s) > 0 {
		// It claimed an erasure the fake did not make, or that the fake
		// held nothing: its Verify must say so, or the certificate would
		// claim more than was done.
		v, ok := c.(connectors.Verifier)
		if !ok {
			t.Fatalf("%s with %d records left, and no Verify to notice", out.Status, f.Count(s))
		}
		if r, err := v.Verify(ctxFor(t), s); err == nil && r.Remaining == 0 {
			t.Fatalf("%s with %d records left, and Verify finds none", out.Status, f.Count(s))
		}
	}
	// Retried without faults, the erasure completes.
	if out, err := erase(ctxFor(t), c, s); err != nil || out.Status != connectors.StatusErased && out.Status != connectors.StatusNotFound {
		t.Fatalf("retried after the fault: %q, %v", out.Status, err)
	}
	if n := f.Count(s); n != 0 {
		t.Fatalf("retried after the fault: %d records left", n)
	}
}

// quotesNothing fails if err quotes the subject, a credential or the
// fake's address.
func (vc VendorCases) quotesNothing(t *testing.T, f FaultyVendor, s connectors.Subject, err error) {
	t.Helper()
	if err == nil {
		return
	}
	secrets := append(append([]string{f.URL()}, vc.Secrets...), s.Values()...)
	if vc.Derived != nil {
		secrets = append(secrets, vc.Derived(s)...)
	}
	for _, v := range secrets {
		if v != "" && containsFold(err.Error(), v) {
			t.Errorf("the error quotes %q: %v", v, err)
		}
	}
}

// storm: three of the vendor's 429s in a row, each failing an attempt
// retryably; the fourth attempt erases.
func (vc VendorCases) storm(t *testing.T) {
	f := vc.Start(t)
	s := vc.Subject(950)
	want := f.Seed(s)
	c := vc.build(t, f, 0)
	f.Inject(3, vc.TooMany)
	for attempt := 1; ; attempt++ {
		out, err := erase(ctxFor(t), c, s)
		if err == nil {
			if attempt != 4 || out.Status != connectors.StatusErased || (!out.Uncounted && out.Records != want) {
				t.Fatalf("attempt %d: %q with %d records; want erased with %d on attempt 4", attempt, out.Status, out.Records, want)
			}
			break
		}
		if perm, _ := connectors.Classify(err); perm || attempt >= 4 {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
	}
	if n := f.Count(s); n != 0 {
		t.Fatalf("%d records left", n)
	}
}

// jobRef: a job reference (stored and logged by the runtime) holds none
// of the subject's identifiers, asks for a later poll, and a garbled one
// is a permanent error.
func (vc VendorCases) jobRef(t *testing.T) {
	f := vc.Start(t)
	s := vc.Subject(960)
	f.Seed(s)
	c := vc.build(t, f, 0)
	out, err := c.Erase(ctxFor(t), s)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := c.(connectors.Poller)
	if out.Status != connectors.StatusRunning {
		if ok {
			t.Skip("the vendor answered at once")
		}
		t.Skip("the vendor has no asynchronous jobs")
	}
	for _, v := range s.Values() {
		if containsFold(out.JobRef, v) {
			t.Errorf("the job reference %q holds an identifier of the subject", out.JobRef)
		}
	}
	if out.PollAfter <= 0 {
		t.Errorf("a running job asks to be polled after %v", out.PollAfter)
	}
	for _, bad := range []string{"", "{", "not a reference"} {
		_, err := p.Poll(ctxFor(t), bad)
		if perm, _ := connectors.Classify(err); err == nil || !perm {
			t.Errorf("Poll(%q) = %v, want a permanent error", bad, err)
		}
	}
}

// VendorSuite is everything a vendor connector's test runs against its
// fake in one call: the conformance suite (Run, with the harness of
// VendorHarness and faults made from the vendor cases' answers) and the
// vendor cases.
//
//	connectortest.RunVendor(t, connectortest.VendorSuite{
//		VendorCases:   connectortest.VendorCases{Type: "sendgrid", Start: …, TooMany: …, Refused: …, Credential: "API key"},
//		Misconfigured: "base_url: {url}/sendgrid",
//	})
type VendorSuite struct {
	VendorCases
	// Misconfigured is a config line (or block) merged into the fake's
	// Config that points the instance where the vendor's API is not
	// ("base_url: {url}/proxy", {url} standing for the fake's address);
	// the erasure must fail permanently. Empty: the vendor cannot be
	// misconfigured in a way it reports.
	Misconfigured string
	// Hostile are subjects whose identifiers try to break out of a URL,
	// a query or a body (Harness.Hostile).
	Hostile []connectors.Subject
	// Resolves, for an instance that resolves, is what the resolver must
	// find for a seeded subject (Harness.Resolves).
	Resolves func(connectors.Subject) map[connectors.Kind][]string
	// ResolvesIn is Resolves for what only the fake knows (the record ids
	// it issued); set one of the two.
	ResolvesIn func(f FaultyVendor, s connectors.Subject) map[connectors.Kind][]string
	// PollTimeout bounds an asynchronous erasure (Harness.PollTimeout).
	PollTimeout time.Duration
}

// RunVendor runs the conformance suite and the vendor cases of vs.
func RunVendor(t *testing.T, vs VendorSuite) {
	t.Helper()
	vs.VendorCases = vs.withDefaults(t)
	t.Run("conformance", func(t *testing.T) {
		f := vs.Start(t)
		h := VendorHarness(vs.Type, f)
		h.Hostile, h.Resolves, h.PollTimeout = vs.Hostile, vs.Resolves, vs.PollTimeout
		if vs.ResolvesIn != nil {
			h.Resolves = func(s connectors.Subject) map[connectors.Kind][]string { return vs.ResolvesIn(f, s) }
		}
		h.Faulty = vs.faulty
		Run(t, h)
	})
	t.Run("cases", func(t *testing.T) { RunVendorCases(t, vs.VendorCases) })
}

// faulty is a Harness.Faulty made of the vendor's own answers.
func (vs VendorSuite) faulty(t *testing.T, fault Fault) connectors.Connector {
	f := vs.Start(t)
	cfg := f.Config()
	switch fault {
	case FaultUnavailable:
		f.Always(vs.unavailable())
	case FaultRateLimited:
		if vs.MinRetryAfter > 0 {
			f.Always(vs.TooMany)
		} else {
			// The vendor's 429 names no delay: the suite wants one that
			// does (a proxy's, or a future API's), and its delay honoured.
			f.Always(fakevendor.TooMany(3 * time.Second))
		}
	case FaultUnauthorized:
		f.Always(vs.refused())
	case FaultMisconfigured:
		if vs.Misconfigured == "" {
			return nil
		}
		cfg = fakevendor.MergeYAML(cfg, strings.ReplaceAll(vs.Misconfigured, "{url}", f.URL()))
	}
	return Build(t, vs.Type, vs.Type, cfg)
}

func (vc VendorCases) unavailable() fakevendor.Fault {
	if vc.Unavailable != nil {
		return vc.Unavailable
	}
	return fakevendor.Status(http.StatusServiceUnavailable)
}

func (vc VendorCases) refused() fakevendor.Fault {
	if vc.Refused != nil {
		return vc.Refused
	}
	return fakevendor.Status(http.StatusUnauthorized)
}
