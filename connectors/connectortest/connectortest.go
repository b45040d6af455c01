// Package connectortest is the conformance suite every connector runs. A
// connector's test builds a Harness around a real (or faithfully faked)
// system and calls Run:
//
//	func TestConformance(t *testing.T) {
//		connectortest.Run(t, connectortest.Harness{
//			New:   func(t *testing.T) connectors.Connector { return newTestConnector(t, db) },
//			Seed:  func(t *testing.T, s connectors.Subject) int64 { return insertRows(t, db, s) },
//			Count: func(t *testing.T, s connectors.Subject) int64 { return countRows(t, db, s) },
//		})
//	}
//
// A connector to a vendor API runs it against the vendor's fake (a
// Vendor, in connectors/<vendor>/<vendor>fake), which tests elsewhere can
// start too:
//
//	connectortest.Run(t, connectortest.VendorHarness("hubspot", hubspotfake.Start(t, hubspotfake.Options{})))
package connectortest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"go.uber.org/zap"
)

// Fault is a failure a harness can make the system produce.
type Fault string

// Faults the suite checks the classification of.
const (
	// FaultUnavailable: the system is down or answers 5xx. Must be retryable.
	FaultUnavailable Fault = "unavailable"
	// FaultRateLimited: the system says slow down (429 with Retry-After).
	// Must be retryable with the delay the system named.
	FaultRateLimited Fault = "rate_limited"
	// FaultUnauthorized: credentials refused (401/403). Must be permanent.
	FaultUnauthorized Fault = "unauthorized"
	// FaultMisconfigured: the config points at something that does not
	// exist (missing table, missing list). Must be permanent.
	FaultMisconfigured Fault = "misconfigured"
)

// Harness connects the suite to one connector and the system behind it.
type Harness struct {
	// New returns a connector against the system under test. Each call
	// may return a fresh one; they all see the same data.
	New func(t *testing.T) connectors.Connector
	// Seed stores records about s in the system, by a path other than the
	// connector, and returns how many records Erase should report.
	Seed func(t *testing.T, s connectors.Subject) int64
	// Count returns how many records about s the system still holds,
	// looked up by a path other than the connector.
	Count func(t *testing.T, s connectors.Subject) int64
	// Subject returns the i-th test subject; all distinct. Default: an
	// email "subject<i>@example.com".
	Subject func(i int) connectors.Subject
	// Hostile lists subjects whose identifiers are crafted to break out of
	// a query or a path (SQL injection, path traversal, wildcards). Erasing
	// them must remove nothing else; the connector may refuse them with a
	// permanent error. Default: a few such emails.
	Hostile []connectors.Subject
	// Faulty returns a connector whose next call will meet fault f, or nil
	// when the system cannot produce that fault (a local directory has no
	// rate limit). Optional.
	Faulty func(t *testing.T, f Fault) connectors.Connector
	// PollTimeout bounds how long an asynchronous erase may take in the
	// suite (default 10s).
	PollTimeout time.Duration
	// SeedRecoverable stores records about s in a state the system can
	// restore them from — a recycle bin, an archive, a trash folder, a
	// bucket's old versions, a soft-deleted row — by a path other than the
	// connector, and returns how many. Count must count them: they are
	// still held. The suite checks that such records never pass as erased,
	// not found or verified clean. Set it, or say in NoRecoverableState why
	// the system has no such state; a harness doing neither fails.
	SeedRecoverable    func(t *testing.T, s connectors.Subject) int64
	NoRecoverableState string
	// CannotTellAbsent, set for a system that reports a deletion done
	// without saying whether it held the person (Mixpanel: one status a
	// deletion task, no lookup), says why: a subject it never held (or
	// already erased) may then be reported erased with the count unknown —
	// never not_found, which would claim a search that did not happen, nor
	// a count.
	CannotTellAbsent string
	// Resolves says what a resolver (a connector implementing
	// connectors.Resolver) must find for a subject Seed stored: the values
	// by kind. Required for resolvers.
	Resolves func(s connectors.Subject) map[connectors.Kind][]string
}

func (h *Harness) defaults() {
	if h.Subject == nil {
		h.Subject = func(i int) connectors.Subject {
			return connectors.Subject{Email: fmt.Sprintf("subject%d@example.com", i)}
		}
	}
	if h.Hostile == nil {
		h.Hostile = []connectors.Subject{
			{Email: "o'brien'--@example.com"},
			{Email: "%@example.com"},
			{Email: "x'or'1'='1@example.com"},
			{Email: "*@example.com"},
		}
	}
	if h.PollTimeout == 0 {
		h.PollTimeout = 10 * time.Second
	}
}

// Run runs the whole suite.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil || h.Seed == nil || h.Count == nil {
		t.Fatal("connectortest: Harness needs New, Seed and Count")
	}
	h.defaults()
	// Subjects are numbered per subtest so subtests never share data.
	t.Run("EraseRemovesOnlyTheSubject", func(t *testing.T) { eraseRemovesOnlyTheSubject(t, h) })
	t.Run("EraseTwiceIsNotFound", func(t *testing.T) { eraseTwice(t, h) })
	t.Run("UnknownSubjectIsNotFound", func(t *testing.T) { unknownSubject(t, h) })
	t.Run("VerifyFindsDataThenNone", func(t *testing.T) { verify(t, h) })
	t.Run("CancelledContextErasesNothing", func(t *testing.T) { cancelled(t, h) })
	t.Run("HostileIdentifiersTouchNothingElse", func(t *testing.T) { hostile(t, h) })
	t.Run("ConcurrentErases", func(t *testing.T) { concurrent(t, h) })
	t.Run("RecoverableIsNotErased", func(t *testing.T) { recoverable(t, h) })
	if _, ok := h.New(t).(connectors.Resolver); ok {
		t.Run("ResolveFindsOnlyTheSubject", func(t *testing.T) { resolve(t, h) })
	}
	if b, ok := h.New(t).(connectors.BatchEraser); ok {
		t.Run("Batch", func(t *testing.T) { runBatch(t, h, b) })
	}
	if h.Faulty != nil {
		t.Run("FaultsAreClassified", func(t *testing.T) { faults(t, h) })
	}
}

// EraseAndWait erases s and, if the connector started an asynchronous job,
// polls it until it finishes or timeout passes.
func EraseAndWait(ctx context.Context, c connectors.Connector, s connectors.Subject, timeout time.Duration) (connectors.Outcome, error) {
	out, err := c.Erase(ctx, s)
	deadline := time.Now().Add(timeout)
	for err == nil && out.Status == connectors.StatusRunning {
		p, ok := c.(connectors.Poller)
		if !ok {
			return out, errors.New("connector returned running but does not implement Poller")
		}
		if out.JobRef == "" {
			return out, errors.New("connector returned running without a job reference")
		}
		if time.Now().After(deadline) {
			return out, fmt.Errorf("job %s still running after %s", out.JobRef, timeout)
		}
		wait := min(out.PollAfter, 200*time.Millisecond)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return out, ctx.Err()
		}
		out, err = p.Poll(ctx, out.JobRef)
	}
	return out, err
}

// untold says out is what a system that cannot tell an absent person
// (Harness.CannotTellAbsent) reports for one: erased, count unknown.
func (h *Harness) untold(out connectors.Outcome) bool {
	return h.CannotTellAbsent != "" && out.Status == connectors.StatusErased && out.Uncounted && out.Records == 0
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func eraseRemovesOnlyTheSubject(t *testing.T, h Harness) {
	target, bystander := h.Subject(100), h.Subject(101)
	want := h.Seed(t, target)
	keep := h.Seed(t, bystander)
	if want == 0 || keep == 0 {
		t.Fatalf("harness Seed must create records; got %d and %d", want, keep)
	}
	out, err := EraseAndWait(ctxFor(t), h.New(t), target, h.PollTimeout)
	if err != nil {
		t.Fatalf("Erase: %v", err)
	}
	if out.Status != connectors.StatusErased {
		t.Fatalf("Erase status = %q, want %q", out.Status, connectors.StatusErased)
	}
	if !out.Uncounted && out.Records != want {
		t.Errorf("Erase reported %d records, seeded %d", out.Records, want)
	}
	if out.Uncounted && out.Records != 0 {
		t.Errorf("Erase reported %d records and uncounted: an uncounted erasure carries no count", out.Records)
	}
	if n := h.Count(t, target); n != 0 {
		t.Errorf("%d records of the subject remain after Erase", n)
	}
	if n := h.Count(t, bystander); n != keep {
		t.Errorf("another subject lost data: %d records left of %d", n, keep)
	}
	checkEvidence(t, out, target)
}

func eraseTwice(t *testing.T, h Harness) {
	s := h.Subject(200)
	h.Seed(t, s)
	c := h.New(t)
	if _, err := EraseAndWait(ctxFor(t), c, s, h.PollTimeout); err != nil {
		t.Fatalf("first Erase: %v", err)
	}
	out, err := EraseAndWait(ctxFor(t), c, s, h.PollTimeout)
	if err != nil {
		t.Fatalf("second Erase: %v", err)
	}
	if h.untold(out) {
		return
	}
	if out.Status != connectors.StatusNotFound || out.Records != 0 {
		t.Errorf("second Erase = %q with %d records, want not_found with 0", out.Status, out.Records)
	}
}

func unknownSubject(t *testing.T, h Harness) {
	bystander := h.Subject(301)
	keep := h.Seed(t, bystander)
	out, err := EraseAndWait(ctxFor(t), h.New(t), h.Subject(300), h.PollTimeout)
	if err != nil {
		t.Fatalf("Erase of an unknown subject: %v", err)
	}
	if out.Status != connectors.StatusNotFound && !h.untold(out) {
		t.Errorf("Erase of an unknown subject = %q, want not_found", out.Status)
	}
	if n := h.Count(t, bystander); n != keep {
		t.Errorf("another subject lost data: %d records left of %d", n, keep)
	}
}

func verify(t *testing.T, h Harness) {
	c := h.New(t)
	v, ok := c.(connectors.Verifier)
	if !ok {
		t.Log("connector does not implement Verifier; post-erasure lookups are not available")
		return
	}
	s := h.Subject(400)
	h.Seed(t, s)
	ctx := ctxFor(t)
	before, err := v.Verify(ctx, s)
	if err != nil {
		t.Fatalf("Verify before erase: %v", err)
	}
	if before.Remaining == 0 {
		t.Errorf("Verify before erase found nothing; it must find the seeded records")
	}
	if _, err := EraseAndWait(ctx, c, s, h.PollTimeout); err != nil {
		t.Fatalf("Erase: %v", err)
	}
	after, err := v.Verify(ctx, s)
	if err != nil {
		t.Fatalf("Verify after erase: %v", err)
	}
	if after.Remaining != 0 {
		t.Errorf("Verify after erase found %d records", after.Remaining)
	}
}

func cancelled(t *testing.T, h Harness) {
	s := h.Subject(500)
	seeded := h.Seed(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan struct{})
	var err error
	var out connectors.Outcome
	go func() {
		defer close(done)
		out, err = h.New(t).Erase(ctx, s)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Erase ignored a cancelled context for 10s")
	}
	if err == nil {
		t.Fatalf("Erase with a cancelled context succeeded with %q; it must return an error", out.Status)
	}
	if perm, _ := connectors.Classify(err); perm {
		t.Errorf("a cancelled context was classified permanent: %v", err)
	}
	if n := h.Count(t, s); n != seeded {
		t.Errorf("Erase with a cancelled context removed data: %d of %d records left", n, seeded)
	}
}

func hostile(t *testing.T, h Harness) {
	bystanders := []connectors.Subject{h.Subject(600), h.Subject(601)}
	keep := make([]int64, len(bystanders))
	for i, b := range bystanders {
		keep[i] = h.Seed(t, b)
	}
	c := h.New(t)
	for _, s := range h.Hostile {
		out, err := c.Erase(ctxFor(t), s)
		if err != nil {
			if perm, _ := connectors.Classify(err); !perm {
				t.Errorf("hostile subject refused with a retryable error (retrying will not help): %v", err)
			}
			continue
		}
		if out.Status == connectors.StatusErased {
			t.Errorf("hostile subject erased %d records; nothing was seeded for it", out.Records)
		}
	}
	for i, b := range bystanders {
		if n := h.Count(t, b); n != keep[i] {
			t.Errorf("a hostile identifier removed another subject's data: %d of %d records left", n, keep[i])
		}
	}
}

func concurrent(t *testing.T, h Harness) {
	const n = 8
	subjects := make([]connectors.Subject, n)
	for i := range subjects {
		subjects[i] = h.Subject(700 + i)
		h.Seed(t, subjects[i])
	}
	c := h.New(t)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, s := range subjects {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = EraseAndWait(ctxFor(t), c, s, h.PollTimeout)
		}()
	}
	wg.Wait()
	for i, s := range subjects {
		if errs[i] != nil {
			t.Errorf("concurrent Erase %d: %v", i, errs[i])
		}
		if left := h.Count(t, s); left != 0 {
			t.Errorf("concurrent Erase %d left %d records", i, left)
		}
	}
}

func faults(t *testing.T, h Harness) {
	for _, f := range []Fault{FaultUnavailable, FaultRateLimited, FaultUnauthorized, FaultMisconfigured} {
		t.Run(string(f), func(t *testing.T) {
			c := h.Faulty(t, f)
			if c == nil {
				t.Logf("the system cannot produce %s; nothing to check", f)
				return
			}
			s := h.Subject(800)
			_, err := c.Erase(ctxFor(t), s)
			if err == nil {
				t.Fatalf("Erase succeeded under fault %s", f)
			}
			perm, after := connectors.Classify(err)
			switch f {
			case FaultUnavailable:
				if perm {
					t.Errorf("unavailable system classified permanent: %v", err)
				}
			case FaultRateLimited:
				if perm || after <= 0 {
					t.Errorf("rate limit = permanent %v, retry after %v; want retryable with the system's delay: %v", perm, after, err)
				}
			case FaultUnauthorized, FaultMisconfigured:
				if !perm {
					t.Errorf("%s classified retryable: %v", f, err)
				}
			}
			for _, v := range s.Values() {
				if containsFold(err.Error(), v) {
					t.Errorf("error message contains the subject's identifier: %v", err)
				}
			}
		})
	}
}

// recoverable: records the system can restore still count as held. An
// erase must purge them (or fail); a lookup must not call them clean.
func recoverable(t *testing.T, h Harness) {
	if h.SeedRecoverable == nil {
		if h.NoRecoverableState == "" {
			t.Fatal("the harness must set SeedRecoverable, or NoRecoverableState with the reason the system has no state records can be restored from")
		}
		t.Logf("no recoverable state: %s", h.NoRecoverableState)
		return
	}
	s, bystander := h.Subject(900), h.Subject(901)
	keep := h.Seed(t, bystander)
	seeded := h.SeedRecoverable(t, s)
	if seeded == 0 {
		t.Fatal("SeedRecoverable must create records")
	}
	if n := h.Count(t, s); n < seeded {
		t.Fatalf("Count finds %d of %d records in a recoverable state: it must count them, they are still held", n, seeded)
	}
	c := h.New(t)
	ctx := ctxFor(t)
	out, err := EraseAndWait(ctx, c, s, h.PollTimeout)
	left := h.Count(t, s)
	switch {
	case err != nil:
		t.Logf("Erase failed on recoverable records (acceptable: the task fails with evidence): %v", err)
		if left == 0 {
			t.Errorf("Erase failed but the records are gone: report what was purged")
		}
	case left > 0:
		t.Errorf("Erase reported %q (%d records) while %d records remain restorable: recoverable is not erased", out.Status, out.Records, left)
	case out.Status != connectors.StatusErased:
		t.Errorf("Erase purged the recoverable records but reported %q: they were held", out.Status)
	}
	if v, ok := c.(connectors.Verifier); ok && left > 0 {
		got, err := v.Verify(ctx, s)
		if err == nil && got.Remaining == 0 {
			t.Errorf("Verify calls the subject clean while %d records remain restorable", left)
		}
	}
	if n := h.Count(t, bystander); n != keep {
		t.Errorf("another subject lost data: %d records left of %d", n, keep)
	}
}

// resolve: a resolver finds what was seeded for the subject, and nothing
// for anyone else.
func resolve(t *testing.T, h Harness) {
	if h.Resolves == nil {
		t.Fatal("the connector is a Resolver: the harness must set Resolves")
	}
	c := h.New(t).(connectors.Resolver)
	target, bystander := h.Subject(1000), h.Subject(1001)
	h.Seed(t, target)
	h.Seed(t, bystander)
	ctx := ctxFor(t)
	got, err := c.Resolve(ctx, target)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	want := h.Resolves(target)
	if len(want) == 0 {
		t.Fatal("harness Resolves must expect something for a seeded subject")
	}
	for k, vs := range want {
		if fmt.Sprint(sorted(got.Found[k])) != fmt.Sprint(sorted(vs)) {
			t.Errorf("Resolve found %s = %q, want %q", k, got.Found[k], vs)
		}
	}
	for k := range got.Found {
		if _, ok := want[k]; !ok {
			t.Errorf("Resolve found kind %s the harness does not expect", k)
		}
	}
	other := map[string]bool{}
	for _, vs := range h.Resolves(bystander) {
		for _, v := range vs {
			other[v] = true
		}
	}
	for _, v := range got.Values() {
		if other[v] {
			t.Errorf("Resolve of one subject returned another's identifier")
		}
	}
	for _, ev := range got.Evidence {
		for _, v := range append(target.Values(), got.Values()...) {
			if containsFold(ev.Kind, v) || containsFold(ev.Value, v) {
				t.Errorf("resolution evidence %q carries an identifier", ev.Kind)
			}
		}
	}
	unknown, err := c.Resolve(ctx, h.Subject(1002))
	if err != nil {
		t.Fatalf("Resolve of an unknown subject: %v (finding nothing is not an error)", err)
	}
	if len(unknown.Found) != 0 {
		t.Errorf("Resolve of an unknown subject found %v", unknown.Found)
	}
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Resolve(cctx, target); err == nil {
		t.Error("Resolve with a cancelled context succeeded; it must return an error")
	} else if perm, _ := connectors.Classify(err); perm {
		t.Errorf("a cancelled Resolve was classified permanent: %v", err)
	}
	for _, s := range h.Hostile {
		r, err := c.Resolve(ctx, s)
		if err != nil {
			if perm, _ := connectors.Classify(err); !perm {
				t.Errorf("hostile subject refused with a retryable error: %v", err)
			}
			continue
		}
		if len(r.Found) != 0 {
			t.Errorf("Resolve of a hostile identifier found %v", r.Found)
		}
	}
}

func sorted(vs []string) []string {
	out := append([]string(nil), vs...)
	slices.Sort(out)
	return out
}

func checkEvidence(t *testing.T, out connectors.Outcome, s connectors.Subject) {
	t.Helper()
	for _, ev := range out.Evidence {
		for _, v := range s.Values() {
			if containsFold(ev.Kind, v) || containsFold(ev.Value, v) {
				t.Errorf("evidence %q carries the subject's identifier", ev.Kind)
			}
		}
	}
}

func containsFold(s, sub string) bool {
	return sub != "" && strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

// Build constructs a registered connector from a YAML config block, as the
// runtime would, failing the test on error.
func Build(t testing.TB, typ, name, yamlConfig string) connectors.Connector {
	t.Helper()
	return BuildWith(t, typ, name, yamlConfig, connectors.Deps{})
}

// TryBuild is Build returning the error, for testing config validation.
func TryBuild(typ, name, yamlConfig string) (connectors.Connector, error) {
	return TryBuildWith(typ, name, yamlConfig, connectors.Deps{})
}

// BuildWith builds like Build with the runtime's dependencies deps (an
// HTTP client, an environment), as Lethe does at start-up; a nil Logger
// or Getenv is filled in (Getenv: an empty environment).
func BuildWith(t testing.TB, typ, name, yamlConfig string, deps connectors.Deps) connectors.Connector {
	t.Helper()
	c, err := TryBuildWith(typ, name, yamlConfig, deps)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TryBuildWith is BuildWith returning the error.
func TryBuildWith(typ, name, yamlConfig string, deps connectors.Deps) (connectors.Connector, error) {
	def, ok := connectors.Lookup(typ)
	if !ok {
		return nil, fmt.Errorf("connector type %q is not registered", typ)
	}
	decode := func(v any) error { return config.DecodeYAML([]byte(yamlConfig), v) }
	if deps.Logger == nil {
		deps.Logger = zap.NewNop()
	}
	if deps.Getenv == nil {
		deps.Getenv = func(string) string { return "" }
	}
	return def.Build(context.Background(), name, decode, deps)
}

// ConfigCases are config blocks and what building an instance from each
// must say: an error containing Want, or none when Want is empty.
type ConfigCases []struct{ Name, YAML, Want string }

// RunConfigCases builds an instance of typ from each case, as subtests,
// with env as the environment ({env: NAME} secrets). No error may quote
// a value of secrets.
//
//	connectortest.RunConfigCases(t, "sendgrid", nil, []string{key}, connectortest.ConfigCases{
//		{"no api key", "base_url: https://api.sendgrid.com\n", "api_key: required"},
//		{"ok", "api_key: k\n", ""},
//	})
func RunConfigCases(t *testing.T, typ string, env map[string]string, secrets []string, cases ConfigCases) {
	t.Helper()
	deps := connectors.Deps{Getenv: func(k string) string { return env[k] }}
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			_, err := TryBuildWith(typ, typ, tc.YAML, deps)
			switch {
			case tc.Want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.Want != "" && err == nil:
				t.Fatalf("no error, want one containing %q", tc.Want)
			case tc.Want != "" && !strings.Contains(err.Error(), tc.Want):
				t.Fatalf("error %q does not contain %q", err, tc.Want)
			}
			for _, s := range secrets {
				if err != nil && strings.Contains(err.Error(), s) {
					t.Errorf("the error quotes a secret: %v", err)
				}
			}
		})
	}
}

// RunVendorConfigCases runs, as subtests named common/…, the config
// cases of the fields vendorkit validates for every vendor connector,
// built on base (a valid config block of typ holding none of keys): base
// itself builds, an unknown key is named, and for each of keys a bad
// value is refused naming it. keys are among "base_url",
// "user_id_system" and "poll_interval". A connector's own cases follow
// in RunConfigCases:
//
//	connectortest.RunVendorConfigCases(t, "segment", "token: x\n", "base_url", "user_id_system", "poll_interval")
func RunVendorConfigCases(t *testing.T, typ, base string, keys ...string) {
	t.Helper()
	cases := ConfigCases{
		{"common/ok", base, ""},
		{"common/unknown key", base + "lethe_no_such_key: x\n", "lethe_no_such_key"},
	}
	for _, k := range keys {
		switch k {
		case "base_url":
			cases = append(cases, ConfigCases{
				{"common/base_url not a URL", base + "base_url: ftp://example.com\n", "base_url: must be an http(s) URL"},
				{"common/base_url without a host", base + "base_url: https://\n", "base_url: must be an http(s) URL"},
				{"common/base_url with a query", base + "base_url: https://example.com/?a=b\n", "base_url: must not carry"},
				{"common/base_url with credentials", base + "base_url: https://u:p@example.com\n", "base_url: must not carry"},
			}...)
		case "user_id_system":
			cases = append(cases, ConfigCases{
				{"common/user_id_system not a key", base + "user_id_system: Shop DB\n", "user_id_system: must be lower-case"},
			}...)
		case "poll_interval":
			cases = append(cases, ConfigCases{
				{"common/poll_interval negative", base + "poll_interval: -1m\n", "poll_interval: must not be negative"},
				{"common/poll_interval not a duration", base + "poll_interval: often\n", "often"},
			}...)
		default:
			t.Fatalf("RunVendorConfigCases: no common cases for %q", k)
		}
	}
	RunConfigCases(t, typ, nil, nil, cases)
}

// Ctx is a context for one step of a connector test: it ends with the
// test, or after 20 seconds.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// IsPermanent reports whether err is classified permanent.
func IsPermanent(err error) bool { p, _ := connectors.Classify(err); return p }

// EvidenceText writes evidence as "kind=value; …", for comparisons.
func EvidenceText(ev []connectors.Evidence) string {
	var b strings.Builder
	for _, e := range ev {
		fmt.Fprintf(&b, "%s=%s; ", e.Kind, e.Value)
	}
	return b.String()
}

// TryPlan reads an instance's plan from its config as Lethe does (without
// building the connector or revealing its secrets).
func TryPlan(typ, name, yamlConfig string) (connectors.Plan, error) {
	def, ok := connectors.Lookup(typ)
	if !ok {
		return connectors.Plan{}, fmt.Errorf("connector type %q is not registered", typ)
	}
	return def.Plan(name, func(v any) error { return config.DecodeYAML([]byte(yamlConfig), v) })
}

// Plan is TryPlan failing the test on an error.
func Plan(t testing.TB, typ, name, yamlConfig string) connectors.Plan {
	t.Helper()
	p, err := TryPlan(typ, name, yamlConfig)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
