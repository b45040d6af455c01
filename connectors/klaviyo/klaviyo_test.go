package klaviyo_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
	"github.com/lethe-dev/lethe/connectors/klaviyo"
	"github.com/lethe-dev/lethe/connectors/klaviyo/klaviyofake"
)

var appID = connectors.UserIDKind(connectortest.UserIDSystem)

func TestVendor(t *testing.T) {
	t.Parallel()
	connectortest.RunVendor(t, connectortest.VendorSuite{
		VendorCases: connectortest.VendorCases{
			Type:  "klaviyo",
			Start: connectortest.StartFake(klaviyofake.Start),
			// Klaviyo's 429 says Retry-After: 1 (the burst window).
			MinRetryAfter: time.Second, MaxRetryAfter: time.Second, Credential: "private API key",
		},
		Misconfigured: "base_url: {url}/not-the-api", // 404s that must not pass for "no such profile"
		Hostile: []connectors.Subject{
			{Email: `subject600@example.com"),equals(email,"subject601@example.com`},
			{Email: `subject600@example.com\`},
			connectortest.VendorUserID(`01KFAKE0000000000000000001"),equals(email,"subject601@example.com`),
			connectortest.VendorUserID("../profiles"), connectortest.VendorUserID("x&filter=equals(id,'y')"),
		},
		ResolvesIn: func(f connectortest.FaultyVendor, s connectors.Subject) map[connectors.Kind][]string {
			return map[connectors.Kind][]string{appID: {f.(*klaviyofake.Fake).ProfileID(s)}}
		},
	})
}

func TestResolve(t *testing.T) {
	t.Parallel()
	connectortest.RunResolveCases(t, connectortest.ResolveCases{
		Start: connectortest.StartFake(klaviyofake.Start),
		New: func(t *testing.T, f connectortest.FaultyVendor) connectors.Resolver {
			return connectortest.Build(t, "klaviyo", "crm", f.Config()).(connectors.Resolver)
		},
		TooManyAfter:   time.Second,
		Faults:         []connectortest.ResolveFault{{Name: "forbidden", Fault: klaviyofake.Forbidden, Permanent: true}},
		NobodyEvidence: "lookup=0 profiles found by email; ",
		Unsent:         []string{`subject600@example.com"),equals(email,"subject601@example.com`, `subject600\@example.com`},
	})
	f := klaviyofake.Start(t, klaviyofake.Options{})
	s := connectortest.VendorSubject(1)
	f.Seed(s)
	connectortest.Resolves(t, connectortest.Build(t, "klaviyo", "crm", f.Config()).(connectors.Resolver), connectors.Subject{Email: s.Email},
		map[connectors.Kind]string{appID: "[" + f.ProfileID(s) + "]"}, "lookup=1 profile found by email; ")
}

// TestErasesByEachIdentifier: a phone or a Klaviyo profile id alone finds
// the profile; the deletion request names it by id only, with the key,
// the revision and the JSON:API content type.
func TestErasesByEachIdentifier(t *testing.T) {
	t.Parallel()
	for _, by := range []string{"email", "phone", "id"} {
		f := klaviyofake.Start(t, klaviyofake.Options{})
		s := connectors.Subject{Email: "ann@example.com", Phone: "+447700900123"}
		f.Seed(s)
		f.Seed(connectors.Subject{Email: "bob@example.com", Phone: "+447700900999"})
		sub := map[string]connectors.Subject{"email": {Email: s.Email}, "phone": {Phone: s.Phone},
			"id": {UserIDs: map[string]string{connectortest.UserIDSystem: f.ProfileID(s)}}}[by]
		id := f.ProfileID(s)
		c := connectortest.Build(t, "klaviyo", "kl", f.Config())
		out, err := connectortest.EraseAndWait(connectortest.Ctx(t), c, sub, 5*time.Second)
		if err != nil || out.Status != connectors.StatusErased || out.Records != 1 || f.Count(s) != 0 {
			t.Fatalf("by %s: %+v, %v; %d left", by, out, err, f.Count(s))
		}
		if f.ProfileID(connectors.Subject{Email: "bob@example.com"}) == "" {
			t.Fatalf("by %s: another person's profile was deleted", by)
		}
		var posts int
		for _, call := range f.Calls() {
			if call.Header.Get("Authorization") != "Klaviyo-API-Key "+klaviyofake.DefaultKey || call.Header.Get("revision") != klaviyo.DefaultRevision {
				t.Errorf("by %s: %s sent Authorization %q, revision %q", by, call.Path, call.Header.Get("Authorization"), call.Header.Get("revision"))
			}
			if call.Method != http.MethodPost {
				continue
			}
			posts++
			want := fmt.Sprintf(`{"data":{"attributes":{"profile":{"data":{"attributes":{},"id":%q,"type":"profile"}}},"type":"data-privacy-deletion-job"}}`, id)
			if string(call.Body) != want || call.Header.Get("Content-Type") != "application/vnd.api+json" {
				t.Errorf("by %s: deletion request %s (%s), want %s", by, call.Body, call.Header.Get("Content-Type"), want)
			}
		}
		if posts != 1 {
			t.Errorf("by %s: %d deletion requests, want 1", by, posts)
		}
	}
}

// TestSeveralProfiles: profiles found by email and by phone are merged,
// one found by both counted once, and each deleted by its own request.
func TestSeveralProfiles(t *testing.T) {
	t.Parallel()
	f := klaviyofake.Start(t, klaviyofake.Options{})
	s := connectors.Subject{Email: "ann@example.com", Phone: "+447700900123"}
	for _, p := range []connectors.Subject{s, {Email: s.Email}, {Phone: s.Phone}, {Email: "bob@example.com"}} {
		f.Seed(p)
	}
	out, err := connectortest.EraseAndWait(connectortest.Ctx(t), connectortest.Build(t, "klaviyo", "kl", f.Config()), s, 5*time.Second)
	if err != nil || out.Status != connectors.StatusErased || out.Records != 3 || f.Count(s) != 0 {
		t.Fatalf("Erase = %+v, %v; %d left; want 3 erased", out, err, f.Count(s))
	}
	posts := 0
	for _, call := range f.Calls() {
		if call.Method == http.MethodPost {
			posts++
		}
	}
	if posts != 3 || f.Count(connectors.Subject{Email: "bob@example.com"}) != 1 {
		t.Errorf("%d deletion requests, want 3; bob's profile must stay", posts)
	}
}

// TestPendingDeletion: the task stays running while the profile is still
// found, then is erased with the count found; evidence says what Klaviyo
// only acknowledged and what it keeps.
func TestPendingDeletion(t *testing.T) {
	t.Parallel()
	f := klaviyofake.Start(t, klaviyofake.Options{Polls: 3})
	s := connectortest.VendorSubject(1)
	f.Seed(s)
	c := connectortest.Build(t, "klaviyo", "kl", f.Config())
	out, err := c.Erase(connectortest.Ctx(t), s)
	if err != nil || out.Status != connectors.StatusRunning || !strings.Contains(connectortest.EvidenceText(out.Evidence), "acknowledged") {
		t.Fatalf("Erase = %+v, %v; want running, acknowledged", out, err)
	}
	for i := 1; i <= 3; i++ {
		out, err = c.(connectors.Poller).Poll(connectortest.Ctx(t), out.JobRef)
		if err != nil || out.Status != connectors.StatusRunning || !strings.Contains(connectortest.EvidenceText(out.Evidence), "1 of 1 profiles still found") {
			t.Fatalf("poll %d = %+v, %v; want still running", i, out, err)
		}
		if !strings.Contains(out.JobRef, fmt.Sprintf(`"Looks":%d`, i)) {
			t.Errorf("poll %d: ref %s does not count the looks", i, out.JobRef)
		}
	}
	out, err = c.(connectors.Poller).Poll(connectortest.Ctx(t), out.JobRef)
	ev := connectortest.EvidenceText(out.Evidence)
	if err != nil || out.Status != connectors.StatusErased || out.Records != 1 || out.Uncounted || !strings.Contains(ev, "redacted") || f.Count(s) != 0 {
		t.Fatalf("last poll = %+v, %v; want 1 erased naming what Klaviyo keeps", out, err)
	}
}

// TestDeletionNeverDone: after MaxLooks looks the attempt fails
// retryably, so that the next one requests deletion again.
func TestDeletionNeverDone(t *testing.T) {
	t.Parallel()
	f := klaviyofake.Start(t, klaviyofake.Options{})
	s := connectortest.VendorSubject(1)
	f.Seed(s)
	p := connectortest.Build(t, "klaviyo", "kl", f.Config()).(connectors.Poller)
	ref := func(looks int) string { return fmt.Sprintf(`{"Profiles":[%q],"Looks":%d}`, f.ProfileID(s), looks) }
	out, err := p.Poll(connectortest.Ctx(t), ref(klaviyo.MaxLooks-2))
	if err != nil || out.Status != connectors.StatusRunning || out.JobRef != ref(klaviyo.MaxLooks-1) {
		t.Fatalf("Poll = %+v, %v; want running", out, err)
	}
	_, err = p.Poll(connectortest.Ctx(t), out.JobRef)
	if perm, _ := connectors.Classify(err); err == nil || perm || !strings.Contains(err.Error(), "requests deletion again") {
		t.Fatalf("Poll after %d looks = %v; want a retryable error", klaviyo.MaxLooks, err)
	}
}

func TestPollRefusesForeignRefs(t *testing.T) {
	t.Parallel()
	f := klaviyofake.Start(t, klaviyofake.Options{})
	p := connectortest.Build(t, "klaviyo", "kl", f.Config()).(connectors.Poller)
	for _, ref := range []string{"", `{"Profiles":[]}`, `{"Profiles":"x"}`, `{"Profiles":["a\")"]}`, `{"Profiles":["01K"],"Looks":-1}`, "sendgrid:1"} {
		if _, err := p.Poll(connectortest.Ctx(t), ref); !connectortest.IsPermanent(err) {
			t.Errorf("Poll(%q) = %v, want a permanent error", ref, err)
		}
	}
	if n := f.Requests(); n != 0 {
		t.Errorf("%d requests sent for refs that were refused", n)
	}
}

// TestAnswers: a 403 names the scopes, a 400 the key (older docs say an
// invalid key is a 400); a deletion request answered other
// than 202 is not taken for an acknowledgement, nor a 404 to it (the
// profile gone since the lookup) for a wrong base_url; a subject without
// an identifier sends nothing.
func TestAnswers(t *testing.T) {
	t.Parallel()
	f := klaviyofake.Start(t, klaviyofake.Options{})
	s := connectortest.VendorSubject(1)
	f.Seed(s)
	c := connectortest.Build(t, "klaviyo", "kl", f.Config())
	f.Inject(1, klaviyofake.Forbidden)
	if _, err := c.Erase(connectortest.Ctx(t), s); !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), "data-privacy:write") {
		t.Errorf("a 403: %v; want a permanent error naming the scopes", err)
	}
	f.Inject(1, klaviyofake.Answer(http.StatusBadRequest, "invalid", "Invalid input."))
	if _, err := c.Erase(connectortest.Ctx(t), s); !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), "api_key") {
		t.Errorf("a 400: %v; want a permanent error naming api_key", err)
	}
	f.Inject(2, f.PassThrough())
	f.Inject(1, func(w http.ResponseWriter, _ *http.Request) { fakevendor.JSON(w, http.StatusOK, map[string]any{}) })
	if _, err := c.Erase(connectortest.Ctx(t), s); err == nil || connectortest.IsPermanent(err) || f.Count(s) != 1 {
		t.Errorf("a 200 to the deletion request: %v; want a retryable error", err)
	}
	f.Inject(2, f.PassThrough())
	f.Inject(1, klaviyofake.Answer(http.StatusNotFound, "not_found", "Not found."))
	if _, err := c.Erase(connectortest.Ctx(t), s); err == nil || connectortest.IsPermanent(err) || strings.Contains(err.Error(), "base_url") {
		t.Errorf("a 404 to the deletion request after a lookup: %v; want a retryable error, not a base_url one", err)
	}
	connectortest.RefusedUnsent(t, c, connectortest.VendorUserID(""), "no email, phone", f.Requests)
}

func TestDefaultBaseURL(t *testing.T) {
	t.Parallel()
	client, sent := connectortest.OfflineClient(http.StatusOK, `{"data":[]}`)
	c, err := connectortest.TryBuildWith("klaviyo", "kl", "api_key: pk_x\n", connectors.Deps{HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.(connectors.Verifier).Verify(connectortest.Ctx(t), connectors.Subject{Email: "a+b@example.com"}); err != nil {
		t.Fatal(err)
	}
	want := "GET https://a.klaviyo.com/api/profiles?page%5Bsize%5D=100&filter=equals%28email%2C%22a%2Bb%40example.com%22%29"
	if got := sent(); len(got) != 1 || got[0] != want {
		t.Errorf("sent %q, want %q", got, want)
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	connectortest.RunPlanCases(t, "klaviyo", connectortest.PlanCases{
		{Name: "default namespace", Instance: "kl", YAML: "api_key: {env: NEVER_SET}\n",
			Keys: "[email|phone|user_ids.kl]", Uses: "[email phone user_ids.kl]", ResolveBy: "[email]", Gives: "[user_ids.kl]"},
		{Name: "user_id_system", Instance: "kl", YAML: "api_key: {env: NEVER_SET}\nuser_id_system: klaviyo\n",
			Keys: "[email|phone|user_ids.klaviyo]", Uses: "[email phone user_ids.klaviyo]", ResolveBy: "[email]", Gives: "[user_ids.klaviyo]"},
	})
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	connectortest.RunVendorConfigCases(t, "klaviyo", "api_key: k\n", "base_url", "user_id_system", "poll_interval")
	connectortest.RunConfigCases(t, "klaviyo", nil, nil, connectortest.ConfigCases{
		{"no api key", "revision: 2026-10-15\n", "api_key: required"},
		{"plain http", "api_key: k\nbase_url: http://a.klaviyo.com\n", "base_url: must use https"},
		{"with /api", "api_key: k\nbase_url: https://a.klaviyo.com/api\n", "base_url: leave out /api"},
		{"bad revision", "api_key: k\nrevision: latest\n", "revision: must be an API revision date"},
		{"revision with suffix", "api_key: k\nrevision: 2026-10-15.pre\n", ""},
		{"all at once", "revision: x\nuser_id_system: A\npoll_interval: -1s\n", "api_key: required"},
	})
	for _, key := range []string{"revision:", "user_id_system:", "poll_interval:"} {
		if _, err := connectortest.TryBuild("klaviyo", "kl", "revision: x\nuser_id_system: A\npoll_interval: -1s\n"); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("every problem at once: %v lacks %s", err, key)
		}
	}
	c := connectortest.Validated[klaviyo.Config](t, "api_key: k\n")
	if c.BaseURL != klaviyo.DefaultBaseURL || c.Revision != klaviyo.DefaultRevision || c.PollInterval != 10*time.Minute {
		t.Errorf("defaults: %+v", c)
	}
}
