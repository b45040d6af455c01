package mailchimp_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	_ "github.com/lethe-dev/lethe/connectors/mailchimp"
	"github.com/lethe-dev/lethe/connectors/mailchimp/mailchimpfake"
)

const (
	testKey  = mailchimpfake.DefaultKey
	instance = "newsletter"
)

// audiences are those every fake starts with.
var audiences = mailchimpfake.Audiences()

func newConnector(t testing.TB, f *mailchimpfake.Fake, lists ...string) connectors.Connector {
	t.Helper()
	return connectortest.Build(t, "mailchimp", instance, mailchimpfake.ConfigFor(f.URL(), f.Key(), lists...))
}

// subject is the i-th test subject; Mailchimp reads only its email.
var subject = connectortest.VendorSubject

// erased erases s through c and fails the test unless s was erased from
// want audiences.
func erased(t *testing.T, c connectors.Connector, s connectors.Subject, want int64) connectors.Outcome {
	t.Helper()
	out, err := c.Erase(connectortest.Ctx(t), s)
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != connectors.StatusErased || out.Records != want {
		t.Fatalf("outcome = %q with %d records, want erased %d", out.Status, out.Records, want)
	}
	return out
}

// TestVendor runs the conformance suite and the vendor cases against the
// fake; the subject is in two of the three configured audiences.
func TestVendor(t *testing.T) {
	t.Parallel()
	connectortest.RunVendor(t, connectortest.VendorSuite{
		VendorCases: connectortest.VendorCases{
			Type:        "mailchimp",
			Start:       connectortest.StartFake(mailchimpfake.Start),
			Unavailable: mailchimpfake.Unavailable,
			// Mailchimp's 429 names no delay and documents no rate: the
			// runtime's backoff decides.
			Credential: "API key",
			Derived:    func(s connectors.Subject) []string { return []string{mailchimpfake.SubscriberHash(s.Email)} },
			Unread:     map[string]string{"malformed": "a permanent delete answers 204 No Content, whose body is not read"},
		},
		Misconfigured: "lists: [nosuchlist]",
	})
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	const secret = "0123456789abcdef0123456789abcdef"
	env := map[string]string{"SECRET": secret, "MAILCHIMP_KEY_SET": secret + "-us6"}
	connectortest.RunVendorConfigCases(t, "mailchimp", "api_key: k-us6\nlists: [a1b2c3d4e5]\n", "base_url")
	connectortest.RunConfigCases(t, "mailchimp", env, []string{secret}, connectortest.ConfigCases{
		{"no api key", "lists: [a1b2c3d4e5]\n", "api_key: required"},
		{"no lists", "api_key: k-us6\n", "lists: required"},
		{"empty lists", "api_key: k-us6\nlists: []\n", "lists: required"},
		{"lists and all_lists", "api_key: k-us6\nall_lists: true\nlists: [a1b2c3d4e5]\n", "lists: leave it out"},
		{"bad list id", "api_key: k-us6\nlists: [\"../x\"]\n", "lists[0]: \"../x\" is not an audience id"},
		{"duplicate list", "api_key: k-us6\nlists: [a1b2c3d4e5, a1b2c3d4e5]\n", "lists[1]: \"a1b2c3d4e5\" is listed twice"},
		{"key without data centre", "api_key: " + secret + "\nlists: [a1b2c3d4e5]\n", "api_key: does not end in a data centre"},
		{"base url without host", "api_key: k\nbase_url: /3.0\nlists: [a1b2c3d4e5]\n", "base_url: must be an http(s) URL"},
		{"base url with version", "api_key: k\nbase_url: https://us6.api.mailchimp.com/3.0/\nlists: [a1b2c3d4e5]\n", "base_url: leave out /3.0"},
		{"env key unset", "api_key: {env: MAILCHIMP_KEY}\nlists: [a1b2c3d4e5]\n", "api_key: environment variable MAILCHIMP_KEY is empty"},
		{"env key without data centre", "api_key: {env: SECRET}\nlists: [a1b2c3d4e5]\n", "api_key: does not end in a data centre"},
		{"ok all lists", "api_key: {env: MAILCHIMP_KEY_SET}\nall_lists: true\n", ""},
		{"ok base url without data centre", "api_key: " + secret + "\nbase_url: https://mailchimp-proxy.internal\nlists: [a1b2c3d4e5]\n", ""},
	})
}

func TestBaseURLComesFromTheKeysDataCentre(t *testing.T) {
	t.Parallel()
	client, sent := connectortest.OfflineClient(http.StatusNoContent, "")
	c, err := connectortest.TryBuildWith("mailchimp", instance, "api_key: {env: MC_KEY}\nlists: [a1b2c3d4e5]\n", connectors.Deps{
		HTTPClient: client,
		Getenv:     func(k string) string { return map[string]string{"MC_KEY": "0123456789abcdef-us21"}[k] },
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Erase(connectortest.Ctx(t), connectors.Subject{Email: "Alice@Example.com"})
	if err != nil {
		t.Fatal(err)
	}
	// md5("alice@example.com")
	want := "POST https://us21.api.mailchimp.com/3.0/lists/a1b2c3d4e5/members/c160f8cc69a4f0bf2b0362752353d060/actions/delete-permanent"
	if got := sent(); len(got) != 1 || got[0] != want {
		t.Errorf("requests = %q, want [%q]", got, want)
	}
	if out.Status != connectors.StatusErased || out.Records != 1 {
		t.Errorf("outcome = %q with %d records, want erased 1", out.Status, out.Records)
	}
}

var (
	deletePath = regexp.MustCompile(`^/3\.0/lists/[a-z0-9]+/members/[0-9a-f]{32}/actions/delete-permanent$`)
	memberPath = regexp.MustCompile(`^/3\.0/lists/[a-z0-9]+/members/[0-9a-f]{32}$`)
)

func TestRequestsFollowTheDocumentedContract(t *testing.T) {
	t.Parallel()
	f := mailchimpfake.Start(t, mailchimpfake.Options{})
	s := subject(1)
	f.Add(s.Email, audiences[0], audiences[2])
	c := newConnector(t, f, audiences...)
	out := erased(t, c, s, 2)
	for _, l := range []string{audiences[0], audiences[2]} {
		if !f.Forgotten(l, s.Email) {
			t.Errorf("audience %s: the member was not deleted permanently", l)
		}
	}
	v, err := c.(connectors.Verifier).Verify(connectortest.Ctx(t), s)
	if err != nil || v.Remaining != 0 {
		t.Fatalf("Verify = %d remaining, %v; want 0", v.Remaining, err)
	}
	hash := mailchimpfake.SubscriberHash(s.Email)
	var deletes, lookups int
	for _, call := range f.Calls() {
		user, pass, ok := (&http.Request{Header: call.Header}).BasicAuth()
		if !ok || user == "" || pass != testKey {
			t.Errorf("%s %s: not Basic auth with the API key as password", call.Method, call.Path)
		}
		if !strings.HasPrefix(call.Path, "/3.0/lists/") {
			t.Errorf("%s %s: not under /3.0/lists/", call.Method, call.Path)
		}
		switch {
		case call.Method == http.MethodPost && deletePath.MatchString(call.Path):
			deletes++
			if len(call.Body) != 0 {
				t.Errorf("delete-permanent sent a body: %q", call.Body)
			}
			if !strings.Contains(call.Path, "/members/"+hash+"/") {
				t.Errorf("delete-permanent path does not use the subscriber hash of the lower-cased address: %s", call.Path)
			}
		case call.Method == http.MethodGet && memberPath.MatchString(call.Path):
			lookups++
		case call.Method == http.MethodGet && regexp.MustCompile(`^/3\.0/lists/[a-z0-9]+$`).MatchString(call.Path):
			// the audience check after a 404
		case call.Method == http.MethodDelete:
			t.Errorf("plain DELETE %s only archives the member; delete-permanent is required", call.Path)
		default:
			t.Errorf("unexpected request %s %s", call.Method, call.Path)
		}
		if strings.Contains(call.Path+call.Query, "@") {
			t.Errorf("%s %s: the address itself is in the URL", call.Method, call.Path)
		}
	}
	if deletes != 3 || lookups != 3 {
		t.Errorf("%d delete-permanent and %d member lookups, want 3 of each (one per audience)", deletes, lookups)
	}
	for _, ev := range append(out.Evidence, v.Evidence...) {
		if strings.Contains(ev.Value, hash) || strings.Contains(ev.Kind, hash) {
			t.Errorf("evidence %q carries the subscriber hash", ev.Value)
		}
	}
}

func TestAllListsEnumeratesEveryAudience(t *testing.T) {
	t.Parallel()
	// 1,001 audiences: two pages of the documented maximum of 1,000.
	ids := make([]string, 1001)
	for i := range ids {
		ids[i] = fmt.Sprintf("aud%07d", i)
	}
	f := mailchimpfake.Start(t, mailchimpfake.Options{})
	for _, id := range ids {
		f.AddAudience(id)
	}
	s := subject(2)
	f.Add(s.Email, ids[3], ids[1000])
	f.Add(subject(3).Email, ids[3])
	erased(t, newConnector(t, f), s, 2) // all_lists: true
	if n := f.CountEmail(s.Email); n != 0 {
		t.Errorf("%d audiences still hold the subject", n)
	}
	if n := f.CountEmail(subject(3).Email); n != 1 {
		t.Errorf("another subject lost data: %d of 1 audiences left", n)
	}
	var pages []string
	for _, call := range f.Calls() {
		if call.Path == "/3.0/lists" {
			pages = append(pages, call.Method+" "+call.Query)
		}
	}
	want := []string{"GET count=1000&fields=lists.id", "GET count=1000&fields=lists.id&offset=1000"}
	if fmt.Sprint(pages) != fmt.Sprint(want) {
		t.Errorf("audience listing = %q, want %q", pages, want)
	}
}

func TestUnknownAudienceIsPermanentAndTheOthersAreStillErased(t *testing.T) {
	t.Parallel()
	f := mailchimpfake.Start(t, mailchimpfake.Options{})
	s := subject(4)
	f.Add(s.Email, audiences[0], audiences[1])
	c := newConnector(t, f, audiences[0], "nosuchlist", audiences[1])
	_, err := c.Erase(connectortest.Ctx(t), s)
	if perm, _ := connectors.Classify(err); err == nil || !perm {
		t.Fatalf("Erase = %v, want a permanent error", err)
	}
	if !strings.Contains(err.Error(), "nosuchlist") || !strings.Contains(err.Error(), "lists") {
		t.Errorf("error does not tell staff which audience to fix: %v", err)
	}
	if strings.Contains(err.Error(), s.Email) || strings.Contains(err.Error(), mailchimpfake.SubscriberHash(s.Email)) {
		t.Errorf("error carries the subject: %v", err)
	}
	if n := f.CountEmail(s.Email); n != 0 {
		t.Errorf("the existing audiences still hold the subject (%d)", n)
	}
}

func TestAudienceIsLookedUpOnceAfterA404(t *testing.T) {
	t.Parallel()
	f := mailchimpfake.Start(t, mailchimpfake.Options{})
	c := newConnector(t, f, audiences[0])
	for i := range 3 {
		out, err := c.Erase(connectortest.Ctx(t), subject(10+i))
		if err != nil || out.Status != connectors.StatusNotFound {
			t.Fatalf("Erase = %q, %v; want not_found", out.Status, err)
		}
	}
	var checks int
	for _, call := range f.Calls() {
		if call.Path == "/3.0/lists/"+audiences[0] {
			checks++
		}
	}
	if checks != 1 {
		t.Errorf("the audience was looked up %d times, want once", checks)
	}
}

// TestThrottlingNamesNoDelay: Mailchimp's 429 carries no Retry-After or
// rate-limit header, so the runtime's backoff decides (a storm of them
// then success is a vendor case).
func TestThrottlingNamesNoDelay(t *testing.T) {
	t.Parallel()
	f := mailchimpfake.Start(t, mailchimpfake.Options{})
	f.Inject(1, mailchimpfake.TooManyConnections)
	_, err := newConnector(t, f, audiences...).Erase(connectortest.Ctx(t), subject(6))
	if perm, after := connectors.Classify(err); err == nil || perm || after != 0 || !strings.Contains(err.Error(), "429") {
		t.Fatalf("429 without headers = %v (permanent %v, retry after %v); want retryable naming 429, no delay", err, perm, after)
	}
}

func TestSimultaneousConnectionLimit(t *testing.T) {
	t.Parallel()
	f := mailchimpfake.Start(t, mailchimpfake.Options{})
	f.SetLatency(100 * time.Millisecond)
	const n = 16
	for i := range n {
		f.Add(subject(100+i).Email, audiences[0])
	}
	c := newConnector(t, f, audiences[0])
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = c.Erase(connectortest.Ctx(t), subject(100+i)) })
	}
	wg.Wait()
	throttled := 0
	for i, err := range errs {
		if err == nil {
			continue
		}
		if perm, _ := connectors.Classify(err); perm {
			t.Errorf("erase %d: throttling classified permanent: %v", i, err)
		}
		throttled++
		if _, err := c.Erase(connectortest.Ctx(t), subject(100+i)); err != nil { // the runtime's retry
			t.Errorf("erase %d: retry failed: %v", i, err)
		}
	}
	if throttled == 0 {
		t.Errorf("%d simultaneous requests were all accepted; the fake must throttle above 10", n)
	}
	for i := range n {
		if left := f.CountEmail(subject(100 + i).Email); left != 0 {
			t.Errorf("subject %d: %d audiences left", i, left)
		}
	}
}

// TestSubjectWithoutEmailIsRefused: without an email nothing is looked
// up, which is never "not found" or "clean".
func TestSubjectWithoutEmailIsRefused(t *testing.T) {
	t.Parallel()
	f := mailchimpfake.Start(t, mailchimpfake.Options{})
	c := newConnector(t, f, audiences...)
	connectortest.RefusedUnsent(t, c, connectors.Subject{Phone: "+447700900123"}, "no email", f.Requests)
}

// TestArchivedMembersArePurged: a member archived before the request (a
// plain DELETE, or "Archive" in the app) keeps its data and can come back:
// it is held, so Erase deletes it permanently and Verify counts it until
// then.
func TestArchivedMembersArePurged(t *testing.T) {
	t.Parallel()
	f := mailchimpfake.Start(t, mailchimpfake.Options{})
	s := subject(1)
	f.Add(s.Email, audiences[0], audiences[1])
	f.Archive(s.Email, audiences[0])
	f.Add(subject(2).Email, audiences[0])
	f.Archive(subject(2).Email, audiences[0])
	c := newConnector(t, f, audiences...)
	v, err := c.(connectors.Verifier).Verify(connectortest.Ctx(t), s)
	if err != nil || v.Remaining != 2 {
		t.Fatalf("Verify before = %+v, %v; the archived member remains", v, err)
	}
	erased(t, c, s, 2)
	if f.CountEmail(s.Email) != 0 || !f.Forgotten(audiences[0], s.Email) {
		t.Errorf("the archived member was not deleted permanently")
	}
	if f.Status(subject(2).Email, audiences[0]) != "archived" {
		t.Errorf("another archived member was touched")
	}
	if v, err := c.(connectors.Verifier).Verify(connectortest.Ctx(t), s); err != nil || v.Remaining != 0 {
		t.Errorf("Verify after = %+v, %v", v, err)
	}
}

func TestPlanIsEmail(t *testing.T) {
	t.Parallel()
	connectortest.RunPlanCases(t, "mailchimp", connectortest.PlanCases{
		{Name: "lists", Instance: instance, YAML: mailchimpfake.ConfigFor("https://us6.api.mailchimp.com", testKey, audiences...),
			Keys: "[email]", Uses: "[email]"},
	})
}
