package hubspot

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the time-zone test must not depend on the host's zoneinfo

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
	"github.com/lethe-dev/lethe/connectors/hubspot/hubspotfake"
)

const token = hubspotfake.DefaultToken

// TestVendor runs the conformance suite and the vendor cases against the
// fake.
func TestVendor(t *testing.T) {
	t.Parallel()
	connectortest.RunVendor(t, connectortest.VendorSuite{
		VendorCases: connectortest.VendorCases{
			Type:  "hubspot",
			Start: connectortest.StartFake(hubspotfake.Start),
			// HubSpot's SECONDLY 429 names no delay; a second waits it out.
			MinRetryAfter: time.Second, MaxRetryAfter: time.Second, Credential: "access_token", Forbidden: "scopes",
			Unread: map[string]string{"malformed/2": "the GDPR delete answers 204 No Content, whose body is not read"},
			// A bare 503, a malformed body and a timeout are vendor cases
			// of every vendor.
			Answers: []connectortest.VendorAnswer{
				{Name: "5xx", Fault: hubspotfake.Internal, Says: "502"},
				{Name: "revoked token", Fault: hubspotfake.Unauthorized, Permanent: true, Says: "check access_token"},
				{Name: "missing scopes", Fault: hubspotfake.MissingScopes, Permanent: true, Says: "crm.objects.contacts.write"},
				{Name: "not the HubSpot API", Fault: func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/html")
					w.WriteHeader(404)
					_, _ = w.Write([]byte("<h1>Not Found</h1>"))
				}, Permanent: true, Says: "check base_url"},
			},
			Except: map[string]string{
				// TestRateLimits: a short limit met after the lookups is
				// waited out, so that the lookups are not lost.
				"rate_limited/1": "waited out after the lookups (TestRateLimits)", "rate_limited/2": "waited out after the lookups (TestRateLimits)",
				"retry_after/1": "waited out after the lookups (TestRateLimits)", "retry_after/2": "waited out after the lookups (TestRateLimits)",
			},
		},
		Misconfigured: "base_url: {url}/hubspot-proxy", // 404s that are not HubSpot's "no such contact"
	})
}

// TestConformanceResolver runs the suite against an instance with a
// resolve block: it also looks people up.
func TestConformanceResolver(t *testing.T) {
	f := hubspotfake.Start(t, hubspotfake.Options{})
	h := connectortest.VendorHarness("hubspot", f)
	h.New = func(t *testing.T) connectors.Connector {
		return connectortest.Build(t, "hubspot", "crm", f.ConfigWith(hubspotfake.ResolveConfig))
	}
	h.Resolves = func(s connectors.Subject) map[connectors.Kind][]string {
		return map[connectors.Kind][]string{
			connectors.UserIDKind(connectortest.UserIDSystem): {s.UserIDs[connectortest.UserIDSystem]},
			connectors.UserIDKind(hubspotfake.UserIDSystem):   f.RecordIDs(s.Email),
		}
	}
	connectortest.Run(t, h)
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	connectortest.RunVendorConfigCases(t, "hubspot", "access_token: x\n", "base_url", "user_id_system")
	connectortest.RunConfigCases(t, "hubspot", nil, []string{"pat-secret-value"}, connectortest.ConfigCases{
		{"no token", "base_url: https://api.hubapi.com\n", "access_token: required"},
		{"relative base_url", "access_token: x\nbase_url: api.hubapi.com\n", "base_url: must be an http(s) URL"},
		{"plain http", "access_token: x\nbase_url: http://api.hubapi.com\n", "base_url: must use https"},
		{"time zone", "access_token: x\naccount_time_zone: Mars/Olympus\n", "account_time_zone:"},
		{"empty env", "access_token: {env: LETHE_TEST_UNSET_HUBSPOT}\n", "access_token: environment variable LETHE_TEST_UNSET_HUBSPOT"},
		{"secret both", "access_token: {env: A, file: B}\n", "secret is a string"},
		{"empty resolve", "access_token: x\nresolve: {}\n", "resolve: name properties"},
		{"resolve bad property", "access_token: x\nresolve:\n  properties: {\"user id,email\": user_ids.app}\n", "resolve.properties: \"user id,email\" is not"},
		{"resolve bad kind", "access_token: x\nresolve:\n  properties: {app_user_id: app}\n", "resolve.properties.app_user_id: \"app\" is not an identifier kind"},
		{"resolve unknown key", "access_token: x\nresolve:\n  fields: {a: email}\n", "fields"},
		{"token not in errors", "access_token: pat-secret-value\nbase_url: nope\n", "base_url: must be an http(s) URL"},
	})
	t.Run("defaults", func(t *testing.T) {
		c := connectortest.Build(t, "hubspot", "crm", "access_token: x\n").(*conn)
		if c.base != DefaultBaseURL || c.system != "crm" || c.loc != time.UTC {
			t.Errorf("defaults: base %q, system %q, zone %v", c.base, c.system, c.loc)
		}
		c = connectortest.Build(t, "hubspot", "crm", "access_token: x\nbase_url: http://127.0.0.1:8080/\naccount_time_zone: Europe/Berlin\nuser_id_system: hs\n").(*conn)
		if c.base != "http://127.0.0.1:8080" || c.system != "hs" || c.loc.String() != "Europe/Berlin" {
			t.Errorf("set: base %q, system %q, zone %v", c.base, c.system, c.loc)
		}
	})
}

// setup starts a fake holding a live contact for each of emails and
// builds a "crm" instance from its Config.
func setup(t *testing.T, opt hubspotfake.Options, emails ...string) (*hubspotfake.Fake, connectors.Connector) {
	t.Helper()
	f := hubspotfake.Start(t, opt)
	for _, e := range emails {
		f.Add(e)
	}
	return f, connectortest.Build(t, "hubspot", "crm", f.Config())
}

// TestRequestsMatchContract checks what HubSpot is sent, byte for byte
// where it matters.
func TestRequestsMatchContract(t *testing.T) {
	t.Parallel()
	s := connectors.Subject{Email: "jane.doe+news@example.com"}
	f, c := setup(t, hubspotfake.Options{}, s.Email)
	out, err := c.Erase(connectortest.Ctx(t), s)
	if err != nil || out.Status != connectors.StatusErased || out.Records != 1 {
		t.Fatalf("Erase = %+v, %v", out, err)
	}
	v, err := c.(connectors.Verifier).Verify(connectortest.Ctx(t), s)
	if err != nil || v.Remaining != 0 {
		t.Fatalf("Verify = %+v, %v", v, err)
	}
	calls := f.Calls()
	if len(calls) != 5 {
		t.Fatalf("%d calls, want two lookups, delete, two lookups: %+v", len(calls), calls)
	}
	// The lookups, the delete, and Verify's lookups after it.
	for i, want := range []struct {
		method, path, query string
		status              int
	}{
		{"GET", "/crm/v3/objects/contacts/jane.doe+news@example.com", "idProperty=email", 200},
		{"GET", "/crm/v3/objects/contacts/jane.doe+news@example.com", "archived=true&idProperty=email", 404},
		{"POST", "/crm/v3/objects/contacts/gdpr-delete", "", 204},
		{"GET", "/crm/v3/objects/contacts/jane.doe+news@example.com", "idProperty=email", 404},
		{"GET", "/crm/v3/objects/contacts/jane.doe+news@example.com", "archived=true&idProperty=email", 404},
	} {
		got := calls[i]
		if got.Method != want.method || got.Path != want.path || got.Query != want.query || got.Status != want.status {
			t.Errorf("call %d = %s %s?%s → %d, want %s %s?%s → %d", i, got.Method, got.Path, got.Query, got.Status, want.method, want.path, want.query, want.status)
		}
		if a := got.Header.Get("Authorization"); a != "Bearer "+token {
			t.Errorf("call %d Authorization = %q", i, a)
		}
	}
	if ct := calls[2].Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GDPR delete Content-Type = %q", ct)
	}
	var body map[string]any
	if err := json.Unmarshal(calls[2].Body, &body); err != nil {
		t.Fatal(err)
	}
	if len(body) != 2 || body["objectId"] != s.Email || body["idProperty"] != "email" {
		t.Errorf("GDPR delete body = %s", calls[2].Body)
	}
	// Evidence names counts, statuses and correlation ids, never the email.
	var sawDelete bool
	for _, ev := range out.Evidence {
		if strings.Contains(ev.Value, "jane") {
			t.Errorf("evidence %s quotes the email: %s", ev.Kind, ev.Value)
		}
		if ev.Kind == "gdpr_delete" && strings.HasPrefix(ev.Value, "204, correlationId ") {
			sawDelete = true
		}
	}
	if !sawDelete {
		t.Errorf("no gdpr_delete evidence with the correlation id: %+v", out.Evidence)
	}
}

func TestHostileEmailIsPathEscaped(t *testing.T) {
	t.Parallel()
	f, c := setup(t, hubspotfake.Options{}, "victim@example.com")
	// Unescaped, this would read /crm/v3/objects/contacts/1001 (the victim).
	hostile := connectors.Subject{Email: "../1001?x=@example.com"}
	out, err := c.Erase(connectortest.Ctx(t), hostile)
	if err != nil || out.Status != connectors.StatusNotFound {
		t.Fatalf("Erase = %+v, %v; want not_found", out, err)
	}
	if n := f.CountEmail("victim@example.com"); n != 1 {
		t.Fatalf("the victim lost their contact")
	}
	calls := f.Calls()
	if len(calls) != 2 {
		t.Fatalf("calls = %+v, want two lookups", calls)
	}
	for i, q := range []string{"idProperty=email", "archived=true&idProperty=email"} {
		if calls[i].Path != "/crm/v3/objects/contacts/../1001?x=@example.com" || calls[i].Query != q {
			t.Errorf("lookup %d = %s?%s", i, calls[i].Path, calls[i].Query)
		}
	}
}

func TestUnknownEmailIsNotBlocklisted(t *testing.T) {
	t.Parallel()
	f, c := setup(t, hubspotfake.Options{})
	out, err := c.Erase(connectortest.Ctx(t), connectors.Subject{Email: "never@example.com"})
	if err != nil || out.Status != connectors.StatusNotFound {
		t.Fatalf("Erase = %+v, %v", out, err)
	}
	for _, call := range f.Calls() {
		if call.Method == http.MethodPost {
			t.Errorf("a GDPR delete was sent for a person HubSpot does not hold")
		}
	}
	if b := f.Blocklisted(); len(b) != 0 {
		t.Errorf("blocklisted %v", b)
	}
}

func TestEraseByRecordID(t *testing.T) {
	t.Parallel()
	f := hubspotfake.Start(t, hubspotfake.Options{})
	c := connectortest.Build(t, "hubspot", "crm", f.ConfigWith("user_id_system: hs"))
	ctx := connectortest.Ctx(t)

	t.Run("id only", func(t *testing.T) {
		id := f.Add("by-id@example.com")
		out, err := c.Erase(ctx, connectors.Subject{UserIDs: map[string]string{"hs": id}})
		if err != nil || out.Status != connectors.StatusErased || out.Records != 1 {
			t.Fatalf("Erase = %+v, %v", out, err)
		}
		if f.CountEmail("by-id@example.com") != 0 {
			t.Fatal("contact remains")
		}
		calls := f.Calls()
		last := calls[len(calls)-3:]
		if last[0].Path != "/crm/v3/objects/contacts/"+id || last[0].Query != "" {
			t.Errorf("lookup = %s?%s", last[0].Path, last[0].Query)
		}
		if last[1].Path != "/crm/v3/objects/contacts/"+id || last[1].Query != "archived=true" {
			t.Errorf("archived lookup = %s?%s", last[1].Path, last[1].Query)
		}
		if string(last[2].Body) != `{"objectId":"`+id+`"}` {
			t.Errorf("GDPR delete body = %s", last[2].Body)
		}
		for _, ev := range out.Evidence {
			if strings.Contains(ev.Value, id) {
				t.Errorf("evidence quotes the record id: %+v", ev)
			}
		}
	})
	t.Run("id and email of one contact", func(t *testing.T) {
		id := f.Add("both@example.com")
		out, err := c.Erase(ctx, connectors.Subject{Email: "both@example.com", UserIDs: map[string]string{"hs": id}})
		if err != nil || out.Records != 1 {
			t.Fatalf("Erase = %+v, %v; want one contact deleted once", out, err)
		}
	})
	t.Run("id and email of two contacts", func(t *testing.T) {
		id := f.Add("old@example.com")
		f.Add("new@example.com")
		out, err := c.Erase(ctx, connectors.Subject{Email: "new@example.com", UserIDs: map[string]string{"hs": id}})
		if err != nil || out.Records != 2 || f.CountEmail("old@example.com")+f.CountEmail("new@example.com") != 0 {
			t.Fatalf("Erase = %+v, %v; want both contacts deleted", out, err)
		}
	})
	t.Run("not a record id", func(t *testing.T) {
		before := len(f.Calls())
		_, err := c.Erase(ctx, connectors.Subject{UserIDs: map[string]string{"hs": "12 OR 1=1"}})
		if perm, _ := connectors.Classify(err); !perm || strings.Contains(err.Error(), "OR 1=1") {
			t.Fatalf("err = %v; want permanent without the id", err)
		}
		if len(f.Calls()) != before {
			t.Error("a refused id was sent to HubSpot")
		}
	})
	t.Run("no identifiers", func(t *testing.T) {
		out, err := c.Erase(ctx, connectors.Subject{Phone: "+447700900123"})
		if err != nil || out.Status != connectors.StatusNotFound || len(out.Evidence) != 1 || out.Evidence[0].Kind != "skipped" {
			t.Fatalf("Erase = %+v, %v", out, err)
		}
	})
}

// eraseLikeRuntime retries retryable errors as the runtime does (without
// sleeping the delay), returning each error met.
func eraseLikeRuntime(t *testing.T, c connectors.Connector, s connectors.Subject, attempts int) (connectors.Outcome, []error) {
	t.Helper()
	var errs []error
	for range attempts {
		out, err := c.Erase(connectortest.Ctx(t), s)
		if err == nil {
			return out, errs
		}
		errs = append(errs, err)
		if perm, _ := connectors.Classify(err); perm {
			t.Fatalf("permanent error: %v", err)
		}
	}
	t.Fatalf("no success after %d attempts: %v", attempts, errs)
	return connectors.Outcome{}, nil
}

func TestRateLimits(t *testing.T) {
	t.Parallel()
	s := connectors.Subject{Email: "limited@example.com"}

	t.Run("429 storm then success", func(t *testing.T) {
		f, c := setup(t, hubspotfake.Options{}, s.Email)
		f.Inject(4, hubspotfake.TooMany("SECONDLY", 0))
		out, errs := eraseLikeRuntime(t, c, s, 6)
		if len(errs) != 4 || out.Records != 1 || f.CountEmail(s.Email) != 0 {
			t.Fatalf("after %d errors: %+v", len(errs), out)
		}
		for _, err := range errs {
			if _, after := connectors.Classify(err); after != time.Second {
				t.Errorf("SECONDLY 429 retry after %v, want 1s: %v", after, err)
			}
			if !strings.Contains(err.Error(), "policy SECONDLY") || !strings.Contains(err.Error(), "correlationId ") {
				t.Errorf("error lacks policy or correlation id: %v", err)
			}
		}
	})
	t.Run("a short limit mid-erasure is waited out", func(t *testing.T) {
		// Two requests a second, burst 2: the lookups pass, the delete
		// is refused. Returning then would lose the lookups and meet the
		// limit at the delete on every retry.
		f, c := setup(t, hubspotfake.Options{RateLimit: 2, Burst: 2}, s.Email)
		out, err := c.Erase(connectortest.Ctx(t), s)
		if err != nil || out.Records != 1 || f.CountEmail(s.Email) != 0 {
			t.Fatalf("Erase = %+v, %v", out, err)
		}
		if f.Limited() == 0 {
			t.Error("the fake's limit never refused a request")
		}
	})
	// midErasure erases s, whose contact the fake holds, with the two
	// lookups answered and the next n requests meeting limit; it returns
	// the fake, how long the erasure took and its error.
	midErasure := func(t *testing.T, n int, limit fakevendor.Fault) (*hubspotfake.Fake, time.Duration, error) {
		f, c := setup(t, hubspotfake.Options{}, s.Email)
		f.Inject(2, f.PassThrough())
		f.Inject(n, limit)
		start := time.Now()
		_, err := c.Erase(connectortest.Ctx(t), s)
		return f, time.Since(start), err
	}
	t.Run("a limit that lasts mid-erasure is returned", func(t *testing.T) {
		f, took, err := midErasure(t, 4, hubspotfake.TooMany("SECONDLY", 0))
		if perm, after := connectors.Classify(err); err == nil || perm || after != time.Second {
			t.Fatalf("err = %v; want retryable after 1s", err)
		}
		if took < 3*time.Second {
			t.Errorf("gave up after %v; three waits of 1s expected", took)
		}
		if f.CountEmail(s.Email) != 1 {
			t.Error("the contact went")
		}
	})
	t.Run("the daily limit mid-erasure is returned at once", func(t *testing.T) {
		if _, took, err := midErasure(t, 1, hubspotfake.TooMany("DAILY", 0)); err == nil || took > time.Second {
			t.Fatalf("err = %v after %v; want the daily limit at once", err, took)
		}
	})
	t.Run("Retry-After wins", func(t *testing.T) {
		f, c := setup(t, hubspotfake.Options{})
		f.Inject(1, hubspotfake.TooMany("SECONDLY", 7))
		_, err := c.Erase(connectortest.Ctx(t), s)
		if perm, after := connectors.Classify(err); perm || after != 7*time.Second {
			t.Fatalf("permanent %v, after %v: %v", perm, after, err)
		}
	})
	t.Run("daily limit waits for midnight in the account's zone", func(t *testing.T) {
		f := hubspotfake.Start(t, hubspotfake.Options{})
		f.Always(hubspotfake.TooMany("DAILY", 0))
		now := time.Date(2025, 3, 10, 22, 30, 0, 0, time.UTC)
		for zone, want := range map[string]time.Duration{
			"":                 1*time.Hour + 31*time.Minute, // midnight UTC, plus a minute
			"America/New_York": 5*time.Hour + 31*time.Minute, // 18:30 EDT: midnight is 04:00 UTC
			"Europe/Berlin":    31 * time.Minute,             // 23:30 CET
			"Asia/Kolkata":     20*time.Hour + time.Minute,   // 04:00 IST: the next midnight is 18:30 UTC
		} {
			cfg := f.Config()
			if zone != "" {
				cfg += "account_time_zone: " + zone + "\n"
			}
			c := connectortest.Build(t, "hubspot", "crm", cfg).(*conn)
			c.now = func() time.Time { return now }
			_, err := c.Erase(connectortest.Ctx(t), s)
			perm, after := connectors.Classify(err)
			if perm || after != want {
				t.Errorf("zone %q: permanent %v, after %v, want %v: %v", zone, perm, after, want, err)
			}
			if !strings.Contains(err.Error(), "daily API limit") {
				t.Errorf("zone %q: error does not say the daily limit: %v", zone, err)
			}
		}
	})
	t.Run("the fake's own limiter", func(t *testing.T) {
		f, c := setup(t, hubspotfake.Options{RateLimit: 1, Burst: 2})
		var limited int
		for range 5 {
			_, err := c.(connectors.Verifier).Verify(connectortest.Ctx(t), s)
			if err != nil {
				if perm, after := connectors.Classify(err); perm || after <= 0 {
					t.Errorf("429 classified permanent %v after %v", perm, after)
				}
				limited++
			}
		}
		if limited == 0 || f.Limited() != limited {
			t.Errorf("limited %d times, the fake says %d", limited, f.Limited())
		}
		// Options.RateLimit answers as HubSpot does, and every refusal
		// is counted.
		var refused int
		for _, call := range f.Calls() {
			if call.Status == http.StatusTooManyRequests {
				refused++
			}
		}
		if refused != f.Limited() || f.Requests() != len(f.Calls()) || f.Requests() < 5 {
			t.Errorf("%d calls answered 429, the fake counted %d refusals of %d requests (%d recorded)", refused, f.Limited(), f.Requests(), len(f.Calls()))
		}
	})
}

func TestFaults(t *testing.T) {
	t.Parallel()
	s := connectors.Subject{Email: "faults@example.com"}
	t.Run("gdpr delete fails after lookup", func(t *testing.T) {
		t.Parallel()
		f, c := setup(t, hubspotfake.Options{}, s.Email)
		// Let the lookups through, fail the delete.
		f.Inject(2, f.PassThrough())
		f.Inject(1, hubspotfake.Internal)
		_, err := c.Erase(connectortest.Ctx(t), s)
		if perm, _ := connectors.Classify(err); err == nil || perm {
			t.Fatalf("err = %v; want retryable", err)
		}
		var ce *connectors.Error
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "GDPR delete") {
			t.Errorf("error does not name the GDPR delete: %v", err)
		}
	})
}

func TestPlan(t *testing.T) {
	t.Parallel()
	connectortest.RunPlanCases(t, "hubspot", connectortest.PlanCases{
		{Name: "default", Instance: "crm", YAML: "access_token: x\n", Keys: "[email]", Uses: "[email user_ids.crm]"},
		{Name: "user_id_system", Instance: "crm", YAML: "access_token: x\nuser_id_system: hs\n",
			Keys: "[email|user_ids.hs]", Uses: "[email user_ids.hs]"},
		{Name: "resolver", Instance: "crm", YAML: "access_token: x\nuser_id_system: hs\nresolve:\n  properties: {app_user_id: user_ids.app, mobilephone: phone}\n  record_id: true\n",
			Keys: "[email|user_ids.hs]", Uses: "[email user_ids.hs]", ResolveBy: "[email]", Gives: "[phone user_ids.app user_ids.hs]"},
	})
	// Only an instance with a resolve block is a resolver.
	if _, ok := connectortest.Build(t, "hubspot", "crm", "access_token: x\n").(connectors.Resolver); ok {
		t.Error("an instance without resolve is a resolver")
	}
}

// TestArchivedContacts: a contact deleted the ordinary way sits in
// HubSpot's recycle bin for 90 days; it is found, GDPR-deleted by id and
// checked, or the task fails.
func TestArchivedContacts(t *testing.T) {
	t.Parallel()
	s := connectors.Subject{Email: "binned@example.com"}

	t.Run("purged with the live one", func(t *testing.T) {
		t.Parallel()
		f, c := setup(t, hubspotfake.Options{})
		// Two archived contacts and a live one, all with the email (the
		// recycle bin can hold several), and a bystander.
		f.Archive(f.Add(s.Email))
		f.Archive(f.Add(s.Email))
		f.Add(s.Email)
		f.Archive(f.Add("other@example.com"))
		v, err := c.(connectors.Verifier).Verify(connectortest.Ctx(t), s)
		if err != nil || v.Remaining != 2 { // one live, one archived seen by a lookup
			t.Fatalf("Verify before = %+v, %v", v, err)
		}
		out, err := c.Erase(connectortest.Ctx(t), s)
		if err != nil || out.Status != connectors.StatusErased || out.Records != 3 {
			t.Fatalf("Erase = %+v, %v; want 3 contacts", out, err)
		}
		if n := f.CountEmail(s.Email); n != 0 {
			t.Errorf("%d contacts left", n)
		}
		if n := f.CountArchived("other@example.com"); n != 1 {
			t.Errorf("the bystander's archived contact went")
		}
		var deletes []string
		for _, call := range f.Calls() {
			if call.Method == http.MethodPost {
				deletes = append(deletes, string(call.Body))
			}
		}
		want := []string{`{"idProperty":"email","objectId":"binned@example.com"}`, `{"objectId":"1001"}`, `{"objectId":"1002"}`}
		if fmt.Sprint(deletes) != fmt.Sprint(want) {
			t.Errorf("GDPR deletes = %v, want %v", deletes, want)
		}
		if v, err := c.(connectors.Verifier).Verify(connectortest.Ctx(t), s); err != nil || v.Remaining != 0 {
			t.Errorf("Verify after = %+v, %v", v, err)
		}
	})
	t.Run("found by record id", func(t *testing.T) {
		t.Parallel()
		f := hubspotfake.Start(t, hubspotfake.Options{})
		id := f.Add("id-only@example.com")
		f.Archive(id)
		c := connectortest.Build(t, "hubspot", "crm", f.ConfigWith("user_id_system: hs"))
		out, err := c.Erase(connectortest.Ctx(t), connectors.Subject{UserIDs: map[string]string{"hs": id}})
		if err != nil || out.Records != 1 || f.CountEmail("id-only@example.com") != 0 {
			t.Fatalf("Erase = %+v, %v", out, err)
		}
	})
	for _, reading := range []hubspotfake.ArchivedDelete{hubspotfake.ArchivedNotFound, hubspotfake.ArchivedIgnored} {
		t.Run("HubSpot keeps it: "+string(reading), func(t *testing.T) {
			t.Parallel()
			f, c := setup(t, hubspotfake.Options{})
			f.AnswerArchivedDelete(reading)
			f.Archive(f.Add(s.Email))
			_, err := c.Erase(connectortest.Ctx(t), s)
			if perm, _ := connectors.Classify(err); err == nil || !perm || !strings.Contains(err.Error(), "recycle bin") {
				t.Fatalf("err = %v; want permanent naming the recycle bin", err)
			}
			if strings.Contains(err.Error(), "binned") {
				t.Errorf("error quotes the email: %v", err)
			}
			if f.CountEmail(s.Email) != 1 {
				t.Fatal("the archived contact went")
			}
			if v, err := c.(connectors.Verifier).Verify(connectortest.Ctx(t), s); err != nil || v.Remaining != 1 {
				t.Errorf("Verify = %+v, %v; the archived contact remains", v, err)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	f := hubspotfake.Start(t, hubspotfake.Options{})
	s := connectors.Subject{Email: "resolve-me@example.com"}
	live := f.Add(s.Email)
	f.SetProperty(live, "app_user_id", "u-1")
	f.SetProperty(live, "hs_additional_emails", "old@example.com; work@example.com")
	binned := f.Add(s.Email)
	f.SetProperty(binned, "app_user_id", "u-2") // a second account: both are reported
	f.Archive(binned)
	other := f.Add("someone-else@example.com")
	f.SetProperty(other, "app_user_id", "u-3")
	c := connectortest.Build(t, "hubspot", "crm", f.ConfigWith(
		"resolve:\n  properties:\n    app_user_id: user_ids.app\n    hs_additional_emails: email\n  record_id: true"))
	r, err := c.(connectors.Resolver).Resolve(connectortest.Ctx(t), s)
	if err != nil {
		t.Fatal(err)
	}
	want := map[connectors.Kind][]string{
		"user_ids.app":     {"u-1", "u-2"},
		"user_ids.hubspot": {live, binned},
		connectors.Email:   {"old@example.com", "work@example.com"},
	}
	if fmt.Sprint(r.Found) != fmt.Sprint(want) {
		t.Errorf("Found = %v, want %v", r.Found, want)
	}
	if len(r.Evidence) != 1 || r.Evidence[0].Value != "by email: 1 contact found, 1 archived contact found; 3 property values read" {
		t.Errorf("evidence = %+v", r.Evidence)
	}
	for _, call := range f.Calls() {
		if !strings.Contains(call.Query, "properties=app_user_id%2Chs_additional_emails") {
			t.Errorf("lookup %s?%s does not ask for the properties", call.Path, call.Query)
		}
	}
}

// TestResolveCases runs the look-up cases every resolver runs.
func TestResolveCases(t *testing.T) {
	t.Parallel()
	connectortest.RunResolveCases(t, connectortest.ResolveCases{
		Start: connectortest.StartFake(hubspotfake.Start),
		New: func(t *testing.T, f connectortest.FaultyVendor) connectors.Resolver {
			return connectortest.Build(t, "hubspot", "crm", f.(*hubspotfake.Fake).ConfigWith(hubspotfake.ResolveConfig)).(connectors.Resolver)
		},
		// HubSpot's SECONDLY 429 names no delay.
		TooMany: hubspotfake.TooMany("SECONDLY", 0), Unavailable: hubspotfake.Internal, Refused: hubspotfake.Unauthorized,
		Faults: []connectortest.ResolveFault{{Name: "missing scopes", Fault: hubspotfake.MissingScopes, Permanent: true}},
	})
}
