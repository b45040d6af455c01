package connectortest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// ResolveCases are the cases every connector that looks people up by
// email runs against its fake, table-driven like VendorCases, so that a
// connector's test file keeps only the look-ups that are its own (pages,
// several accounts, what its evidence says). RunResolveCases runs, each
// from a fresh fake holding VendorSubject(600) and VendorSubject(601):
//
//   - faults: the look-up meeting the vendor's 429 (retryable, after
//     TooManyAfter), a 429 with Retry-After (after what it names), the
//     vendor failing, a 502 and a malformed body (retryable), refused
//     credentials and a 400 (permanent), and Faults; no error quotes the
//     subject's email;
//   - hostile emails: wildcards, quotes and the vendor's own Hostile list
//     either find nothing or are refused permanently, never find a
//     seeded subject; those in Unsent are refused before any request,
//     and their refusal does not quote them;
//   - an email nobody holds finds nothing, without an error; a subject
//     without an email finds nothing and sends nothing; the evidence
//     says NobodyEvidence;
//   - erased: once the resolver (a Connector too) has erased
//     VendorSubject(600), a look-up finds nothing of them.
type ResolveCases struct {
	// New builds a resolving instance against f (a fake from Start).
	New func(t *testing.T, f FaultyVendor) connectors.Resolver
	// Start starts a fresh fake.
	Start func(t testing.TB) FaultyVendor
	// Inject makes the look-up's next request meet fault; default
	// f.Inject(1, fault) (a vendor whose look-up is another API of the
	// fake's names it).
	Inject func(f FaultyVendor, fault fakevendor.Fault)
	// Lookups counts the look-up requests f received; default
	// len(f.Calls()).
	Lookups func(f FaultyVendor) int

	// TooMany is the vendor's own 429 for a look-up (default the fake's,
	// fakevendor.Vendor.TooMany); TooManyAfter the pause the connector
	// must ask for after it (0: any).
	TooMany      fakevendor.Fault
	TooManyAfter time.Duration
	// Unavailable is the vendor failing; default a 503.
	Unavailable fakevendor.Fault
	// Refused is how the vendor refuses credentials; default the fake's
	// (fakevendor.Auth.Refuse), or a 401.
	Refused fakevendor.Fault
	// Faults are the vendor's own answers a look-up must classify.
	Faults []ResolveFault
	// Except leaves cases out, each with the reason ("retry_after").
	Except map[string]string

	// NobodyEvidence, if set, is what the evidence of a look-up that
	// found nobody says (EvidenceText).
	NobodyEvidence string

	// Hostile are emails of the vendor's own to try besides the common
	// ones; Unsent those of them that must be refused unsent (the
	// vendor's query language could be escaped by them).
	Hostile, Unsent []string
	// AfterHostile, if set, checks f after the hostile emails (what
	// reached the vendor).
	AfterHostile func(t *testing.T, f FaultyVendor)
}

// ResolveFault is one answer a look-up must classify: Permanent, or
// retryable (after After, when set).
type ResolveFault struct {
	Name      string
	Fault     fakevendor.Fault
	Permanent bool
	After     time.Duration
}

// commonHostileEmails are tried against every resolver: what a query
// language, a URL or a LIKE would read as more than one address.
var commonHostileEmails = []string{
	"*@example.com", "%@example.com", "subject60%@example.com", "subject60_@example.com",
	"o'brien'--@example.com", "subject600@example.com'", `subject600@example.com"`,
	"subject600@example.com/../subject601@example.com", "subject600@example.com?x=1", "subject600@example.com#x",
}

// RunResolveCases runs the resolve cases of rc as subtests of t.
func RunResolveCases(t *testing.T, rc ResolveCases) {
	t.Helper()
	if rc.New == nil || rc.Start == nil {
		t.Fatal("ResolveCases needs New and Start")
	}
	fromFake(rc.Start(t).Answers(), &rc.TooMany, &rc.Refused, nil)
	if rc.TooMany == nil {
		t.Fatal("ResolveCases needs TooMany where the fake has none")
	}
	if rc.Inject == nil {
		rc.Inject = func(f FaultyVendor, fault fakevendor.Fault) { f.Inject(1, fault) }
	}
	if rc.Lookups == nil {
		rc.Lookups = func(f FaultyVendor) int { return len(f.Calls()) }
	}
	if rc.Unavailable == nil {
		rc.Unavailable = fakevendor.Status(http.StatusServiceUnavailable)
	}
	if rc.Refused == nil {
		rc.Refused = fakevendor.Status(http.StatusUnauthorized)
	}
	faults := append([]ResolveFault{
		{"rate_limited", rc.TooMany, false, rc.TooManyAfter},
		{"retry_after", fakevendor.TooMany(9 * time.Second), false, 9 * time.Second},
		{"unavailable", rc.Unavailable, false, 0},
		{"status_502", fakevendor.Status(http.StatusBadGateway), false, 0},
		{"malformed", fakevendor.Malformed(), false, 0},
		{"refused", rc.Refused, true, 0},
		{"status_400", fakevendor.Status(http.StatusBadRequest), true, 0},
	}, rc.Faults...)
	for _, rf := range faults {
		t.Run("fault/"+rf.Name, func(t *testing.T) {
			if why, ok := rc.Except[rf.Name]; ok {
				t.Skip(why)
			}
			t.Parallel()
			f, c := rc.start(t)
			s := VendorSubject(600)
			rc.Inject(f, rf.Fault)
			_, err := c.Resolve(Ctx(t), s)
			perm, after := connectors.Classify(err)
			if err == nil || perm != rf.Permanent || (!perm && after < 0) || (rf.After > 0 && after != rf.After) {
				t.Fatalf("Resolve = %v (permanent %v, after %v); want permanent %v after %v", err, perm, after, rf.Permanent, rf.After)
			}
			if strings.Contains(err.Error(), s.Email) || strings.Contains(err.Error(), f.URL()) {
				t.Errorf("the error quotes the email or the vendor's address: %v", err)
			}
		})
	}
	t.Run("hostile", func(t *testing.T) {
		t.Parallel()
		f, c := rc.start(t)
		for _, email := range append(append([]string(nil), commonHostileEmails...), rc.Hostile...) {
			got, err := c.Resolve(Ctx(t), connectors.Subject{Email: email})
			if err != nil {
				if !IsPermanent(err) {
					t.Errorf("%q: refused with a retryable error: %v", email, err)
				}
				continue
			}
			if len(got.Found) != 0 {
				t.Errorf("%q found %v", email, got.Found)
			}
		}
		for _, email := range rc.Unsent {
			n := rc.Lookups(f)
			_, err := c.Resolve(Ctx(t), connectors.Subject{Email: email})
			if err == nil || !IsPermanent(err) {
				t.Errorf("%q: Resolve = %v; want a permanent refusal", email, err)
			}
			if rc.Lookups(f) != n {
				t.Errorf("%q was sent to the vendor", email)
			}
			if err != nil && strings.Contains(err.Error(), "subject600") {
				t.Errorf("the refusal quotes the email: %v", err)
			}
		}
		if rc.AfterHostile != nil {
			rc.AfterHostile(t, f)
		}
	})
	t.Run("nobody", func(t *testing.T) {
		t.Parallel()
		f, c := rc.start(t)
		got, err := c.Resolve(Ctx(t), connectors.Subject{Email: "nobody@example.com"})
		if err != nil || len(got.Found) != 0 {
			t.Errorf("an email nobody holds: Resolve = %v, %v; want nothing found", got.Found, err)
		}
		if e := EvidenceText(got.Evidence); rc.NobodyEvidence != "" && e != rc.NobodyEvidence {
			t.Errorf("an email nobody holds: evidence %q, want %q", e, rc.NobodyEvidence)
		}
		n := rc.Lookups(f)
		got, err = c.Resolve(Ctx(t), VendorUserID("user-600"))
		if err != nil || len(got.Found) != 0 || rc.Lookups(f) != n {
			t.Errorf("a subject without an email: Resolve = %v, %v after %d look-ups; want nothing found, nothing sent", got.Found, err, rc.Lookups(f)-n)
		}
	})
	t.Run("erased", func(t *testing.T) {
		if why, ok := rc.Except["erased"]; ok {
			t.Skip(why)
		}
		t.Parallel()
		_, c := rc.start(t)
		s := VendorSubject(600)
		if _, err := EraseAndWait(Ctx(t), c.(connectors.Connector), s, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if got, err := c.Resolve(Ctx(t), s); err != nil || len(got.Found) != 0 {
			t.Errorf("Resolve after erasure = %v, %v; want nothing found", got.Found, err)
		}
	})
}

// Resolves resolves s with c and fails t unless it finds exactly want
// (kind → the values as fmt.Sprint prints them, in the order found) and
// its evidence reads evidence (EvidenceText). It returns what was found.
//
//	connectortest.Resolves(t, c, connectors.Subject{Email: "ann@example.com"},
//		map[connectors.Kind]string{kind: "[u-1 u-2]"}, "crm_lookup=2 found; ")
func Resolves(t *testing.T, c connectors.Resolver, s connectors.Subject, want map[connectors.Kind]string, evidence string) connectors.Resolution {
	t.Helper()
	got, err := c.Resolve(Ctx(t), s)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	for k, w := range want {
		if fmt.Sprint(got.Found[k]) != w {
			t.Errorf("Found[%s] = %v, want %s", k, got.Found[k], w)
		}
	}
	if len(got.Found) != len(want) {
		t.Errorf("Found = %v, want only %v", got.Found, want)
	}
	if e := EvidenceText(got.Evidence); e != evidence {
		t.Errorf("evidence = %q, want %q", e, evidence)
	}
	return got
}

// start starts a fake holding subjects 600 and 601 and a resolver on it.
func (rc ResolveCases) start(t *testing.T) (FaultyVendor, connectors.Resolver) {
	f := rc.Start(t)
	f.Seed(VendorSubject(600))
	f.Seed(VendorSubject(601))
	return f, rc.New(t, f)
}
