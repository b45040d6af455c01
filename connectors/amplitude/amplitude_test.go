package amplitude

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// fakeAmplitude is Amplitude's User Privacy API (v1) as documented: POST
// /api/2/deletions/users with Basic api_key:secret_key and {"user_ids",
// "amplitude_ids","requester","ignore_invalid_id"} (booleans as strings)
// puts the users into the staging job of a day 10 days ahead and answers
// {"day","status":"staging","amplitude_ids":[…]}; GET with start_day and
// end_day lists jobs, each moving staging → submitted → done as it is
// listed (done erases its users); GET /api/2/usersearch?user= finds users;
// one request a second, then 429.
type fakeAmplitude struct {
	*fakevendor.Server
	apiKey, secretKey string

	mu     sync.Mutex
	users  map[string]int64 // user_id → Amplitude ID
	nextID int64
	jobs   []*fakeJob
	today  time.Time
	final  string // a final job status forced instead of done
}

type fakeJob struct {
	day     string
	status  string
	lists   int
	entries []fakeEntry
}

type fakeEntry struct {
	AmplitudeID    int64  `json:"amplitude_id"`
	RequestedOnDay string `json:"requested_on_day"`
	Requester      string `json:"requester"`
	userID         string
}

func newFake(t *testing.T, burst int) *fakeAmplitude {
	f := &fakeAmplitude{Server: fakevendor.New(t), apiKey: "amp_key", secretKey: "amp_secret",
		users: map[string]int64{}, nextID: 356896327775, today: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	f.RateLimit(1, burst, tooMany)
	f.RequireAuth(func(r *http.Request) bool {
		u, p, ok := r.BasicAuth()
		return ok && u == f.apiKey && p == f.secretKey
	}, func(w http.ResponseWriter, r *http.Request) {
		fakevendor.JSON(w, http.StatusUnauthorized, map[string]string{"error": "Invalid API key or secret key"})
	})
	f.Handle("POST /api/2/deletions/users", f.schedule)
	f.Handle("GET /api/2/deletions/users", f.list)
	f.Handle("GET /api/2/usersearch", f.search)
	return f
}

// tooMany is Amplitude's 429; it names no delay.
func tooMany(w http.ResponseWriter, r *http.Request) {
	fakevendor.JSON(w, http.StatusTooManyRequests, map[string]string{"error": "Too many requests"})
}

func badRequest(w http.ResponseWriter, msg string) {
	fakevendor.JSON(w, http.StatusBadRequest, map[string]string{"error": msg})
}

// stringBool reads a boolean Amplitude wants as a string ("true", "True").
func stringBool(raw json.RawMessage) (value, ok bool) {
	if raw == nil {
		return false, true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return false, false
	}
	switch strings.ToLower(s) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

func (f *fakeAmplitude) schedule(w http.ResponseWriter, r *http.Request) {
	var raw map[string]json.RawMessage
	if json.NewDecoder(r.Body).Decode(&raw) != nil {
		badRequest(w, "Invalid JSON body")
		return
	}
	var userIDs []string
	var ampIDs []int64
	var requester string
	for k, v := range raw {
		var err error
		switch k {
		case "user_ids":
			err = json.Unmarshal(v, &userIDs)
		case "amplitude_ids":
			err = json.Unmarshal(v, &ampIDs)
		case "requester":
			err = json.Unmarshal(v, &requester)
		case "ignore_invalid_id", "ignore_invalid_ids", "delete_from_org", "include_mapped_user_ids":
			if _, ok := stringBool(v); !ok {
				badRequest(w, k+" must be the string True or False")
				return
			}
		default:
			badRequest(w, "Unknown parameter "+k)
			return
		}
		if err != nil {
			badRequest(w, "Invalid "+k)
			return
		}
	}
	ignore, _ := stringBool(raw["ignore_invalid_id"])
	if alt, _ := stringBool(raw["ignore_invalid_ids"]); alt {
		ignore = true
	}
	if len(userIDs)+len(ampIDs) == 0 || len(userIDs) > 100 || len(ampIDs) > 100 || requester == "" {
		badRequest(w, "Invalid request")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	type found struct {
		id   int64
		user string
	}
	var ids []found
	for _, u := range userIDs {
		id, ok := f.users[u]
		if !ok && !ignore {
			badRequest(w, "Invalid user ids")
			return
		}
		if ok {
			ids = append(ids, found{id, u})
		}
	}
	for _, a := range ampIDs {
		user := ""
		for u, id := range f.users {
			if id == a {
				user = u
			}
		}
		if user == "" && !ignore {
			badRequest(w, "Invalid amplitude ids")
			return
		}
		if user != "" {
			ids = append(ids, found{a, user})
		}
	}
	// Requests join the staging job; once it is submitted, a new one.
	var jb *fakeJob
	if n := len(f.jobs); n > 0 && f.jobs[n-1].status == "staging" {
		jb = f.jobs[n-1]
	} else {
		jb = &fakeJob{day: f.today.AddDate(0, 0, 10+n).Format(dayLayout), status: "staging"}
		f.jobs = append(f.jobs, jb)
	}
	answer := []fakeEntry{}
	for _, id := range ids {
		i := slices.IndexFunc(jb.entries, func(e fakeEntry) bool { return e.AmplitudeID == id.id })
		if i < 0 {
			jb.entries = append(jb.entries, fakeEntry{AmplitudeID: id.id, RequestedOnDay: f.today.Format(dayLayout), Requester: requester, userID: id.user})
			i = len(jb.entries) - 1
		}
		if !slices.ContainsFunc(answer, func(e fakeEntry) bool { return e.AmplitudeID == id.id }) {
			answer = append(answer, jb.entries[i])
		}
	}
	fakevendor.JSON(w, http.StatusOK, map[string]any{"day": jb.day, "status": jb.status, "amplitude_ids": answer})
}

func (f *fakeAmplitude) list(w http.ResponseWriter, r *http.Request) {
	start, err1 := time.Parse(dayLayout, r.URL.Query().Get("start_day"))
	end, err2 := time.Parse(dayLayout, r.URL.Query().Get("end_day"))
	if err1 != nil || err2 != nil || end.Before(start) || end.After(start.AddDate(0, 6, 0)) {
		badRequest(w, "start_day and end_day are required (YYYY-MM-DD, at most six months apart)")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []map[string]any{}
	for _, jb := range f.jobs {
		day, _ := time.Parse(dayLayout, jb.day)
		if day.Before(start) || day.After(end) {
			continue
		}
		jb.lists++
		switch {
		case jb.lists == 2:
			jb.status = "submitted"
		case jb.lists >= 3 && f.final != "":
			jb.status = f.final
		case jb.lists >= 3 && jb.status != "done":
			jb.status = "done"
			for _, e := range jb.entries {
				delete(f.users, e.userID)
			}
		}
		out = append(out, map[string]any{"day": jb.day, "status": jb.status, "amplitude_ids": jb.entries})
	}
	fakevendor.JSON(w, http.StatusOK, out)
}

func (f *fakeAmplitude) search(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query().Get("user")
	if q == "" {
		badRequest(w, "user is required")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	matches := []map[string]any{}
	for u, id := range f.users {
		if u == q || strconv.FormatInt(id, 10) == q {
			matches = append(matches, map[string]any{"user_id": u, "amplitude_id": id, "platform": "Web", "country": "Germany", "last_seen": "2026-02-27"})
		}
	}
	typ := "match_user_or_device_id"
	if len(matches) == 0 {
		typ = "nomatch"
	}
	fakevendor.JSON(w, http.StatusOK, map[string]any{"matches": matches, "type": typ})
}

func (f *fakeAmplitude) seed(user string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	f.users[user] = f.nextID
	return f.nextID
}

func (f *fakeAmplitude) count(user string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.users[user]; ok {
		return 1
	}
	return 0
}

func (f *fakeAmplitude) set(fn func(f *fakeAmplitude)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeAmplitude) yaml(extra ...string) string {
	y := fmt.Sprintf("api_key: %s\nsecret_key: %s\nbase_url: %s\n", f.apiKey, f.secretKey, f.URL)
	if !strings.Contains(strings.Join(extra, "\n"), "poll_interval:") {
		y += "poll_interval: 2ms\n"
	}
	return y + strings.Join(extra, "\n")
}

func subject(i int) connectors.Subject {
	return connectors.Subject{Email: fmt.Sprintf("subject%d@example.com", i), UserIDs: map[string]string{"amp": fmt.Sprintf("user-%d", i)}}
}

func withUserID(id string) connectors.Subject {
	return connectors.Subject{UserIDs: map[string]string{"amp": id}}
}

func TestConformance(t *testing.T) {
	f := newFake(t, 10000)
	connectortest.Run(t, connectortest.Harness{
		New:     func(t *testing.T) connectors.Connector { return connectortest.Build(t, "amplitude", "amp", f.yaml()) },
		Seed:    func(t *testing.T, s connectors.Subject) int64 { f.seed(s.UserIDs["amp"]); return 1 },
		Count:   func(t *testing.T, s connectors.Subject) int64 { return f.count(s.UserIDs["amp"]) },
		Subject: subject,
		Hostile: []connectors.Subject{
			withUserID("user-60%"), withUserID("*"), withUserID("user-600&user=user-601"), withUserID("../deletions/users"),
			withUserID("user-600' OR '1'='1"), withUserID("user-600\",\"user-601"), withUserID("356896327776"),
		},
		Faulty: func(t *testing.T, fault connectortest.Fault) connectors.Connector {
			g := newFake(t, 10000)
			g.seed("user-800")
			cfg := g.yaml()
			switch fault {
			case connectortest.FaultUnavailable:
				g.Always(fakevendor.Status(http.StatusInternalServerError))
			case connectortest.FaultRateLimited:
				g.Always(tooMany)
			case connectortest.FaultUnauthorized:
				cfg = strings.Replace(cfg, "secret_key: "+g.secretKey, "secret_key: rotated", 1)
			case connectortest.FaultMisconfigured:
				cfg = strings.Replace(cfg, "base_url: "+g.URL+"\n", "base_url: "+g.URL+"/analytics\n", 1)
			}
			return connectortest.Build(t, "amplitude", "amp", cfg)
		},
	})
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"no keys", "base_url: https://amplitude.com\n", "api_key: required"},
		{"no secret", "api_key: k\n", "secret_key: required"},
		{"bad base url", "api_key: k\nsecret_key: s\nbase_url: https://\n", "base_url: must be an http(s) URL"},
		{"bad system", "api_key: k\nsecret_key: s\nuser_id_system: A B\n", "user_id_system:"},
		{"bad amplitude id system", "api_key: k\nsecret_key: s\namplitude_id_system: ../x\n", "amplitude_id_system:"},
		{"same systems", "api_key: k\nsecret_key: s\nuser_id_system: app\namplitude_id_system: app\n", "amplitude_id_system: must differ"},
		{"long requester", "api_key: k\nsecret_key: s\nrequester: " + strings.Repeat("r", 300) + "\n", "requester:"},
		{"negative poll", "api_key: k\nsecret_key: s\npoll_interval: -1s\n", "poll_interval:"},
		{"unknown key", "api_key: k\nsecret_key: s\ndelete_from_org: true\n", "delete_from_org"},
		{"key from empty env", "api_key: {env: LETHE_TEST_UNSET_AMPLITUDE}\nsecret_key: s\n", "api_key: environment variable LETHE_TEST_UNSET_AMPLITUDE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := connectortest.TryBuild("amplitude", "amp", tc.yaml)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		var cfg Config
		cfg.APIKey.Value, cfg.SecretKey.Value = "k", "s"
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		if cfg.BaseURL != defaultBaseURL || cfg.Requester != "lethe" || cfg.PollInterval != 24*time.Hour {
			t.Errorf("defaults = %+v", cfg)
		}
	})
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func evidence(ev []connectors.Evidence) string {
	var b strings.Builder
	for _, e := range ev {
		fmt.Fprintf(&b, "%s=%s; ", e.Kind, e.Value)
	}
	return b.String()
}

func isPermanent(err error) bool { p, _ := connectors.Classify(err); return p }

func TestJobPolledToCompletion(t *testing.T) {
	t.Parallel()
	f := newFake(t, 100)
	ampID := f.seed("user-1")
	c := connectortest.Build(t, "amplitude", "amp", f.yaml("poll_interval: 36h"))
	ctx := ctxFor(t)
	out, err := c.Erase(ctx, subject(1))
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != connectors.StatusRunning || out.PollAfter != 36*time.Hour {
		t.Fatalf("Erase = %q after %v", out.Status, out.PollAfter)
	}
	if strings.Contains(out.JobRef, strconv.FormatInt(ampID, 10)) || strings.Contains(out.JobRef, "user-1") {
		t.Errorf("job ref %s holds an identifier", out.JobRef)
	}
	if !strings.Contains(out.JobRef, `"day":"2026-03-11"`) {
		t.Errorf("job ref %s does not hold the job's day", out.JobRef)
	}
	if got := evidence(out.Evidence); got != "amplitude_deletion=job of 2026-03-11: staging, 1 Amplitude ID scheduled; " {
		t.Errorf("evidence = %s", got)
	}
	var states []string
	for out.Status == connectors.StatusRunning && len(states) < 10 {
		if out, err = c.(connectors.Poller).Poll(ctx, out.JobRef); err != nil {
			t.Fatal(err)
		}
		states = append(states, evidence(out.Evidence))
	}
	want := "amplitude_deletion=job of 2026-03-11: staging, 1 Amplitude ID; |" +
		"amplitude_deletion=job of 2026-03-11: submitted, 1 Amplitude ID; |" +
		"amplitude_deletion=job of 2026-03-11: done, 1 Amplitude ID; "
	if strings.Join(states, "|") != want {
		t.Errorf("states = %s", strings.Join(states, "|"))
	}
	if out.Status != connectors.StatusErased || out.Records != 1 || f.count("user-1") != 0 {
		t.Errorf("final = %q %d, %d left", out.Status, out.Records, f.count("user-1"))
	}
	v, err := c.(connectors.Verifier).Verify(ctx, subject(1))
	if err != nil || v.Remaining != 0 || evidence(v.Evidence) != "amplitude_search=after erasure: 0 matching users; " {
		t.Errorf("Verify = %+v, %v", v, err)
	}
}

func TestAmplitudeIDs(t *testing.T) {
	t.Parallel()
	f := newFake(t, 100)
	id := f.seed("user-2")
	c := connectortest.Build(t, "amplitude", "amp", f.yaml("amplitude_id_system: amplitude"))
	s := subject(2)
	s.UserIDs["amplitude"] = strconv.FormatInt(id, 10)
	ctx := ctxFor(t)
	if v, err := c.(connectors.Verifier).Verify(ctx, s); err != nil || v.Remaining != 1 {
		t.Fatalf("Verify before = %+v, %v; want the user and their Amplitude ID counted once", v, err)
	}
	out, err := connectortest.EraseAndWait(ctx, c, s, 5*time.Second)
	if err != nil || out.Status != connectors.StatusErased || out.Records != 1 {
		t.Fatalf("EraseAndWait = %q %d, %v", out.Status, out.Records, err)
	}
	var body map[string]json.RawMessage
	for _, call := range f.Calls() {
		if call.Method == http.MethodPost {
			if err := json.Unmarshal(call.Body, &body); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if string(body["amplitude_ids"]) != fmt.Sprintf("[%d]", id) {
		t.Errorf("amplitude_ids sent = %s", body["amplitude_ids"])
	}
	// Only an Amplitude ID, and one that is not a number.
	only := connectors.Subject{UserIDs: map[string]string{"amplitude": "abc"}}
	if _, err := c.Erase(ctx, only); err == nil || !isPermanent(err) || strings.Contains(err.Error(), "abc") {
		t.Errorf("non-numeric Amplitude ID: %v; want a permanent error without the value", err)
	}
	none := connectors.Subject{Email: "a@example.com"}
	if out, err := c.Erase(ctx, none); err != nil || out.Status != connectors.StatusNotFound ||
		!strings.Contains(evidence(out.Evidence), "no user id for amp or amplitude") {
		t.Errorf("no ids: %q %s, %v", out.Status, evidence(out.Evidence), err)
	}
}

func TestFailedJobs(t *testing.T) {
	t.Parallel()
	t.Run("unknown status", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, 100)
		f.set(func(f *fakeAmplitude) { f.final = "failed" })
		f.seed("user-3")
		c := connectortest.Build(t, "amplitude", "amp", f.yaml())
		out, err := connectortest.EraseAndWait(ctxFor(t), c, subject(3), 5*time.Second)
		if err == nil || isPermanent(err) || !strings.Contains(err.Error(), `status "failed"`) {
			t.Fatalf("EraseAndWait = %q, %v; want a retryable error naming the status", out.Status, err)
		}
		if got := evidence(out.Evidence); got != "amplitude_deletion=job of 2026-03-11: failed, 1 Amplitude ID; " {
			t.Errorf("evidence = %s", got)
		}
	})
	t.Run("removed from staging", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, 100)
		f.seed("user-4")
		c := connectortest.Build(t, "amplitude", "amp", f.yaml())
		out, err := c.Erase(ctxFor(t), subject(4))
		if err != nil {
			t.Fatal(err)
		}
		// What DELETE /api/2/deletions/users/{amplitude_id}/{day} does.
		f.set(func(f *fakeAmplitude) { f.jobs[0].entries = nil })
		_, err = c.(connectors.Poller).Poll(ctxFor(t), out.JobRef)
		if err == nil || !isPermanent(err) || !strings.Contains(err.Error(), "removed from staging") {
			t.Fatalf("Poll = %v; want a permanent error", err)
		}
	})
	t.Run("malformed job ref", func(t *testing.T) {
		t.Parallel()
		c := connectortest.Build(t, "amplitude", "amp", newFake(t, 100).yaml())
		for _, ref := range []string{"2026-03-11", `{"day":"yesterday","ids":["x"]}`, `{"day":"2026-03-11","ids":[]}`} {
			if _, err := c.(connectors.Poller).Poll(ctxFor(t), ref); err == nil || !isPermanent(err) {
				t.Errorf("Poll(%s) = %v; want a permanent error", ref, err)
			}
		}
	})
}

func TestMalformedAnswersAreRetryable(t *testing.T) {
	t.Parallel()
	f := newFake(t, 100)
	f.seed("user-5")
	c := connectortest.Build(t, "amplitude", "amp", f.yaml())
	ctx := ctxFor(t)
	for name, fault := range map[string]fakevendor.Fault{
		"not json": fakevendor.Malformed(),
		"no day": func(w http.ResponseWriter, r *http.Request) {
			fakevendor.JSON(w, 200, map[string]any{"status": "staging", "amplitude_ids": []map[string]any{{"amplitude_id": 1}}})
		},
	} {
		f.Inject(1, fault)
		if _, err := c.Erase(ctx, subject(5)); err == nil || isPermanent(err) {
			t.Errorf("%s: Erase = %v; want a retryable error", name, err)
		}
	}
	out, err := c.Erase(ctx, subject(5))
	if err != nil {
		t.Fatal(err)
	}
	f.Inject(1, fakevendor.Malformed())
	if _, err := c.(connectors.Poller).Poll(ctx, out.JobRef); err == nil || isPermanent(err) {
		t.Errorf("Poll = %v; want a retryable error", err)
	}
	f.Inject(1, func(w http.ResponseWriter, r *http.Request) {
		fakevendor.JSON(w, 200, map[string]any{"type": "nomatch"})
	})
	if _, err := c.(connectors.Verifier).Verify(ctx, subject(5)); err == nil || isPermanent(err) {
		t.Errorf("Verify without matches = %v; want a retryable error", err)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	t.Run("storm then success", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, 100)
		f.seed("user-6")
		c := connectortest.Build(t, "amplitude", "amp", f.yaml())
		f.Inject(5, tooMany)
		for i := range 5 {
			_, err := c.Erase(ctxFor(t), subject(6))
			if perm, after := connectors.Classify(err); err == nil || perm || after != time.Second {
				t.Fatalf("429 #%d: %v (retry after %v); want retryable after 1s", i+1, err, after)
			}
		}
		if out, err := c.Erase(ctxFor(t), subject(6)); err != nil || out.Status != connectors.StatusRunning {
			t.Fatalf("after the storm: %q, %v", out.Status, err)
		}
	})
	t.Run("one a second", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, 1)
		c := connectortest.Build(t, "amplitude", "amp", f.yaml())
		if _, err := c.(connectors.Verifier).Verify(ctxFor(t), subject(7)); err != nil {
			t.Fatal(err)
		}
		_, err := c.(connectors.Verifier).Verify(ctxFor(t), subject(7))
		if perm, after := connectors.Classify(err); err == nil || perm || after != time.Second || f.Limited() != 1 {
			t.Fatalf("second call within a second: %v (limited %d); want a retryable 429 after 1s", err, f.Limited())
		}
	})
}

func TestTimeoutIsRetryable(t *testing.T) {
	t.Parallel()
	f := newFake(t, 100)
	c := connectortest.Build(t, "amplitude", "amp", f.yaml())
	f.Inject(1, fakevendor.Hang(5*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Erase(ctx, subject(8))
	if err == nil || isPermanent(err) || time.Since(start) > 2*time.Second {
		t.Fatalf("Erase against a hanging Amplitude = %v after %v; want a quick retryable error", err, time.Since(start))
	}
}

func TestTwoInstancesSideBySide(t *testing.T) {
	t.Parallel()
	us, eu := newFake(t, 100), newFake(t, 100)
	eu.apiKey, eu.secretKey = "eu_key", "eu_secret"
	us.seed("user-9")
	eu.seed("user-9")
	a := connectortest.Build(t, "amplitude", "amplitude-us", us.yaml("user_id_system: amp"))
	b := connectortest.Build(t, "amplitude", "amplitude-eu", eu.yaml("user_id_system: amp", "requester: dpo@example.com"))
	if _, err := connectortest.EraseAndWait(ctxFor(t), a, subject(9), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if us.count("user-9") != 0 || eu.count("user-9") != 1 {
		t.Fatalf("after the US erase: us %d, eu %d", us.count("user-9"), eu.count("user-9"))
	}
	if _, err := connectortest.EraseAndWait(ctxFor(t), b, subject(9), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if eu.count("user-9") != 0 {
		t.Error("the EU instance did not erase")
	}
	got := eu.Calls()[0]
	if u, p, _ := (&http.Request{Header: got.Header}).BasicAuth(); u != "eu_key" || p != "eu_secret" || !strings.Contains(string(got.Body), `"requester":"dpo@example.com"`) {
		t.Errorf("EU schedule = %q:%q %s", u, p, got.Body)
	}
}

func TestRequestsFollowTheContract(t *testing.T) {
	t.Parallel()
	f := newFake(t, 100)
	f.seed("user 10&x")
	c := connectortest.Build(t, "amplitude", "amp", f.yaml())
	s := withUserID("user 10&x")
	ctx := ctxFor(t)
	if out, err := connectortest.EraseAndWait(ctx, c, s, 5*time.Second); err != nil || out.Status != connectors.StatusErased {
		t.Fatalf("EraseAndWait = %q, %v", out.Status, err)
	}
	if _, err := c.(connectors.Verifier).Verify(ctx, s); err != nil {
		t.Fatal(err)
	}
	calls := f.Calls()
	post, list, search := calls[0], calls[1], calls[len(calls)-1]
	if post.Method != http.MethodPost || post.Path != "/api/2/deletions/users" || post.Status != http.StatusOK ||
		post.Header.Get("Content-Type") != "application/json" {
		t.Errorf("schedule = %s %s → %d", post.Method, post.Path, post.Status)
	}
	if u, p, ok := (&http.Request{Header: post.Header}).BasicAuth(); !ok || u != "amp_key" || p != "amp_secret" {
		t.Errorf("auth = %q %q %v", u, p, ok)
	}
	var body map[string]any
	if err := json.Unmarshal(post.Body, &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"user_ids": []any{"user 10&x"}, "requester": "lethe", "ignore_invalid_id": "true"}
	if fmt.Sprint(body) != fmt.Sprint(want) {
		t.Errorf("body = %v, want %v", body, want)
	}
	if list.Method != http.MethodGet || list.Path != "/api/2/deletions/users" || list.Query != "end_day=2026-03-11&start_day=2026-03-11" {
		t.Errorf("list = %s %s?%s", list.Method, list.Path, list.Query)
	}
	if search.Method != http.MethodGet || search.Path != "/api/2/usersearch" || search.Query != "user=user+10%26x" {
		t.Errorf("search = %s %s?%s", search.Method, search.Path, search.Query)
	}
}
