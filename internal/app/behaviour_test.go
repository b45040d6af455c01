package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/testenv"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestRetriesPollsAndDeadTasks: transient failures are retried (in-process,
// then on the coordinator's schedule), Retry-After is honoured, an
// asynchronous job is polled to completion, and a permanent failure ends
// dead with the request needing attention, never dropped; staff can retry
// and cancel it.
func TestRetriesPollsAndDeadTasks(t *testing.T) {
	ns := testenv.NATS(t)
	in := newInstance(t, ns.ClientURL(), `
  - {name: flaky, type: test_script, config: {fail_times: 4}}
  - {name: slowdown, type: test_script, config: {fail_times: 1, retry_after: 1s}}
  - {name: vendor-job, type: test_script, config: {polls: 3}}`, "")
	logs := in.serve(t)
	base := "http://" + in.addr

	r := fileRequest(t, base, in.adminToken, "retry@example.com")
	defer func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	}()
	r = waitStatus(t, base, in.adminToken, r.ID, 30*time.Second, "completed")
	byName := map[string]int{}
	for i, task := range r.Tasks {
		byName[task.Connector] = i
	}
	// flaky: attempt 1 = 3 calls (1 + 2 quick retries) all fail; attempt 2
	// fails once more, then succeeds.
	if task := r.Tasks[byName["flaky"]]; task.Attempts != 2 || task.Status != "erased" {
		t.Errorf("flaky task = %+v, want erased on attempt 2", task)
	}
	if n := len(scriptFor("flaky").Calls()); n != 5 {
		t.Errorf("flaky was called %d times, want 5", n)
	}
	calls := scriptFor("slowdown").Calls()
	if len(calls) != 2 || calls[1].Sub(calls[0]) < time.Second {
		t.Errorf("slowdown calls %v: the second must wait out Retry-After (1s)", calls)
	}
	if task := r.Tasks[byName["vendor-job"]]; task.Status != "erased" || task.RecordsErased != 7 {
		t.Errorf("vendor-job task = %+v, want erased with the job's 7 records", task)
	}
	checkNoIdentifiers(t, logs.String(), []string{"retry@example.com"})
}

func TestPermanentFailureNeedsAttention(t *testing.T) {
	ns := testenv.NATS(t)
	in := newInstance(t, ns.ClientURL(), `
  - {name: ok, type: test_script, config: {}}
  - {name: broken, type: test_script, config: {permanent: true, leak: true}}`, "")
	logs := in.serve(t)
	base := "http://" + in.addr
	email := "attention@example.com"

	r := fileRequest(t, base, in.agentToken, email)
	r = waitStatus(t, base, in.agentToken, r.ID, 30*time.Second, "needs_attention")
	var broken = -1
	for i, task := range r.Tasks {
		if task.Connector == "broken" {
			broken = i
		}
	}
	if broken < 0 || r.Tasks[broken].Status != "dead" || r.Tasks[broken].Attempts != 1 {
		t.Fatalf("broken task = %+v, want dead after one attempt", r.Tasks)
	}
	if e := r.Tasks[broken].LastError; !strings.Contains(e, "[redacted]") || strings.Contains(e, email) {
		t.Errorf("last error %q must be kept, with the identifier redacted", e)
	}
	if code := call(t, "GET", base+"/v1/requests/"+r.ID+"/certificate", in.agentToken, "", nil); code != http.StatusNotFound {
		t.Errorf("certificate of an unfinished request = %d, want 404", code)
	}

	// Retrying needs a reason; a retry of a dead task runs it again.
	var e apiError
	if code := call(t, "POST", base+"/v1/requests/"+r.ID+"/tasks/broken/retry", in.agentToken, `{"reason":""}`, &e); code != 400 || e.Error.Field != "reason" {
		t.Errorf("retry without a reason = %d %+v", code, e)
	}
	if code := call(t, "POST", base+"/v1/requests/"+r.ID+"/tasks/ok/retry", in.agentToken, `{"reason":"x"}`, nil); code != http.StatusConflict {
		t.Errorf("retry of an erased task = %d, want 409", code)
	}
	if code := call(t, "POST", base+"/v1/requests/"+r.ID+"/tasks/nope/retry", in.agentToken, `{"reason":"x"}`, nil); code != http.StatusNotFound {
		t.Errorf("retry of an unknown connector = %d, want 404", code)
	}
	if code := call(t, "POST", base+"/v1/requests/"+r.ID+"/tasks/broken/retry", in.auditToken, `{"reason":"x"}`, nil); code != http.StatusForbidden {
		t.Errorf("auditor retry = %d, want 403", code)
	}
	if code := call(t, "POST", base+"/v1/requests/"+r.ID+"/tasks/broken/retry", in.agentToken, `{"reason":"token rotated"}`, nil); code != http.StatusAccepted {
		t.Fatalf("retry = %d, want 202", code)
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(scriptFor("broken").Calls()) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	r = waitStatus(t, base, in.agentToken, r.ID, 20*time.Second, "needs_attention")
	if task := r.Tasks[broken]; task.Attempts != 2 || task.Status != "dead" {
		t.Errorf("after retry the broken task = %+v, want dead on attempt 2", task)
	}

	// Cancel: needs a reason, works once.
	if code := call(t, "POST", base+"/v1/requests/"+r.ID+"/cancel", in.adminToken, `{"reason":"customer withdrew the request"}`, &r); code != 200 || r.Status != "cancelled" {
		t.Errorf("cancel = %d, %s", code, r.Status)
	}
	if code := call(t, "POST", base+"/v1/requests/"+r.ID+"/cancel", in.adminToken, `{"reason":"again"}`, nil); code != http.StatusConflict {
		t.Errorf("second cancel = %d, want 409", code)
	}
	checkNoIdentifiers(t, logs.String(), []string{email})
}

// TestBadInput: every malformed or unauthorised call gets a clear 4xx with
// a JSON error naming the field, and files nothing.
func TestBadInput(t *testing.T) {
	ns := testenv.NATS(t)
	tg := newTarget(t)
	in := newInstance(t, ns.ClientURL(), tg.connectorsYAML(), "")
	in.serve(t)
	base := "http://" + in.addr
	url := base + "/v1/requests"

	for _, tc := range []struct {
		name, body, ctype, token string
		status                   int
		code, field              string
	}{
		{"malformed JSON", `{"subject":`, "", in.adminToken, 400, "invalid", ""},
		{"not an object", `["a"]`, "", in.adminToken, 400, "invalid", ""},
		{"empty body", ``, "", in.adminToken, 400, "invalid", ""},
		{"two objects", `{"subject":{"email":"a@example.com"},"jurisdiction":"gdpr"} {}`, "", in.adminToken, 400, "invalid", ""},
		{"unknown field", `{"subject":{"email":"a@example.com"},"jurisdiction":"gdpr","priority":1}`, "", in.adminToken, 400, "invalid", "priority"},
		{"unknown subject field", `{"subject":{"emial":"a@example.com"},"jurisdiction":"gdpr"}`, "", in.adminToken, 400, "invalid", "subject.emial"},
		// A strict proxy and Lethe must never read one body differently.
		{"duplicate key, last would win", `{"subject":{"email":"a@example.com","email":"bob@example.com"},"jurisdiction":"gdpr"}`, "", in.adminToken, 400, "invalid", "subject.email"},
		{"key in another case", `{"subject":{"Email":"bob@example.com"},"jurisdiction":"gdpr"}`, "", in.adminToken, 400, "invalid", "subject.Email"},
		{"invalid UTF-8", "{\"subject\":{\"email\":\"b\xffob@example.com\"},\"jurisdiction\":\"gdpr\"}", "", in.adminToken, 400, "invalid", ""},
		{"no Content-Type", `{"subject":{"email":"bob@example.com"},"jurisdiction":"gdpr"}`, "-", in.adminToken, 415, "unsupported_media_type", ""},
		{"UTF-16 charset", `{"subject":{"email":"bob@example.com"},"jurisdiction":"gdpr"}`, "application/json; charset=utf-16", in.adminToken, 415, "unsupported_media_type", ""},
		{"subject not an object", `{"subject":"a@example.com","jurisdiction":"gdpr"}`, "", in.adminToken, 400, "invalid", "subject"},
		{"email not a string", `{"subject":{"email":42},"jurisdiction":"gdpr"}`, "", in.adminToken, 400, "invalid", "subject.email"},
		{"no subject", `{"jurisdiction":"gdpr"}`, "", in.adminToken, 400, "invalid", "subject"},
		{"empty subject", `{"subject":{},"jurisdiction":"gdpr"}`, "", in.adminToken, 400, "invalid", "subject"},
		{"bad email", `{"subject":{"email":"not-an-email"},"jurisdiction":"gdpr"}`, "", in.adminToken, 400, "invalid", "subject.email"},
		{"sql in email", `{"subject":{"email":"x'; DROP TABLE customers;--@example.com"},"jurisdiction":"gdpr"}`, "", in.adminToken, 400, "invalid", "subject.email"},
		{"bad phone", `{"subject":{"phone":"call me"},"jurisdiction":"gdpr"}`, "", in.adminToken, 400, "invalid", "subject.phone"},
		{"traversal as system name", `{"subject":{"user_ids":{"../../etc":"1"}},"jurisdiction":"gdpr"}`, "", in.adminToken, 400, "invalid", "subject.user_ids"},
		{"no jurisdiction", `{"subject":{"email":"a@example.com"}}`, "", in.adminToken, 400, "invalid", "jurisdiction"},
		{"unknown jurisdiction", `{"subject":{"email":"a@example.com"},"jurisdiction":"mars"}`, "", in.adminToken, 400, "invalid", "jurisdiction"},
		{"oversize", `{"subject":{"email":"a@example.com"},"jurisdiction":"gdpr","pad":"` + strings.Repeat("x", 100<<10) + `"}`, "", in.adminToken, 413, "too_large", ""},
		{"form body", `subject=a`, "application/x-www-form-urlencoded", in.adminToken, 415, "unsupported_media_type", ""},
		{"no token", `{"subject":{"email":"a@example.com"},"jurisdiction":"gdpr"}`, "", "", 401, "unauthorized", ""},
		{"wrong token", `{"subject":{"email":"a@example.com"},"jurisdiction":"gdpr"}`, "", "not-a-token", 401, "unauthorized", ""},
		{"auditor cannot file", `{"subject":{"email":"a@example.com"},"jurisdiction":"gdpr"}`, "", in.auditToken, 403, "forbidden", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", url, strings.NewReader(tc.body))
			switch tc.ctype {
			case "":
				req.Header.Set("Content-Type", "application/json")
			case "-": // none
			default:
				req.Header.Set("Content-Type", tc.ctype)
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e apiError
			if err := jsonDecode(resp, &e); err != nil {
				t.Fatalf("status %d, body not a JSON error: %v", resp.StatusCode, err)
			}
			if resp.StatusCode != tc.status || e.Error.Code != tc.code || e.Error.Field != tc.field || e.Error.Message == "" {
				t.Errorf("= %d %+v, want %d %s field %q", resp.StatusCode, e.Error, tc.status, tc.code, tc.field)
			}
		})
	}

	var list struct {
		Requests []apiRequest `json:"requests"`
	}
	if code := call(t, "GET", url, in.auditToken, "", &list); code != 200 || len(list.Requests) != 0 {
		t.Errorf("bad input filed requests: %d %+v", code, list)
	}
	for path, want := range map[string]int{
		"/v1/requests/not-an-id":                                   404,
		"/v1/requests/01a22443-36c8-7d8c-948f-ede22e74d95d":        404,
		"/v1/requests/01a22443-36c8-7d8c-948f-ede22e74d95d/events": 404,
		"/v1/requests?status=bogus":                                400,
		"/v1/requests?limit=0":                                     400,
		"/v1/requests?due_before=tomorrow":                         400,
		"/v1/nothing":                                              404,
	} {
		var e apiError
		if code := call(t, "GET", base+path, in.auditToken, "", &e); code != want || e.Error.Message == "" {
			t.Errorf("GET %s = %d %+v, want %d", path, code, e, want)
		}
	}

	// Identifiers crafted for injection reach the connectors as data only:
	// nothing of anyone else is erased.
	rows, files := tg.seed(t, "victim@example.com")
	for _, hostile := range []string{"x'or'1'='1@example.com", "%@example.com", "*@example.com", "victim@example.com'--@example.com"} {
		var r apiRequest
		code := call(t, "POST", url, in.adminToken, fmt.Sprintf(`{"subject":{"email":%q},"jurisdiction":"gdpr"}`, hostile), &r)
		if code == 400 {
			continue // refused up front is fine too
		}
		if code != 201 {
			t.Fatalf("hostile %q: %d", hostile, code)
		}
		waitStatus(t, base, in.adminToken, r.ID, 30*time.Second, "completed", "needs_attention")
	}
	if r, f := tg.remaining(t, "victim@example.com"); r != rows || f != files {
		t.Errorf("hostile identifiers erased someone else's data: %d/%d rows, %d/%d files left", r, rows, f, files)
	}

	// A full-width address is the person it reads as (NFKC), not a
	// second person whose data nobody holds.
	if r, f := tg.seed(t, "wide@example.com"); r == 0 || f == 0 {
		t.Fatalf("seeded %d rows and %d files", r, f)
	}
	var wide apiRequest
	if code := call(t, "POST", url, in.adminToken, `{"subject":{"email":"ｗｉｄｅ＠ｅｘａｍｐｌｅ．ｃｏｍ"},"jurisdiction":"gdpr"}`, &wide); code != 201 {
		t.Fatalf("full-width email: %d", code)
	}
	waitStatus(t, base, in.adminToken, wide.ID, 30*time.Second, "completed")
	if r, f := tg.remaining(t, "wide@example.com"); r != 0 || f != 0 {
		t.Errorf("a full-width request left %d rows and %d files of the person it names", r, f)
	}

	// An Idempotency-Key makes a retried submission return the first.
	body := `{"subject":{"email":"idem@example.com"},"jurisdiction":"ccpa"}`
	first, second := postWithKey(t, url, in.adminToken, body, "key-123"), postWithKey(t, url, in.adminToken, body, "key-123")
	if first.status != 201 || second.status != 200 || first.id != second.id {
		t.Errorf("idempotent filing: %+v then %+v", first, second)
	}
}

// TestDuplicateDeliveries: a task message delivered again after its task is
// done (a redelivery, a replayed stream) erases nothing new and changes
// nothing: no event, no second certificate.
func TestDuplicateDeliveries(t *testing.T) {
	ns := testenv.NATS(t)
	tg := newTarget(t)
	in := newInstance(t, ns.ClientURL(), tg.connectorsYAML(), "")
	in.serve(t)
	base := "http://" + in.addr
	tg.seed(t, "dup@example.com")
	r := fileRequest(t, base, in.adminToken, "dup@example.com")
	waitStatus(t, base, in.adminToken, r.ID, 30*time.Second, "completed")
	before := eventHashes(t, base, in.adminToken, r.ID)
	cert := getCertificate(t, base, in.adminToken, r.ID)

	// Replay every task message of the request, as JetStream would after
	// a lost acknowledgement, with fresh message ids so nothing dedupes them.
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	var tasks []struct {
		TaskID string `json:"task_id"`
		Data   struct {
			Connector string `json:"connector"`
		} `json:"data"`
		Type string `json:"type"`
	}
	var ev struct {
		Events json.RawMessage `json:"events"`
	}
	call(t, "GET", base+"/v1/requests/"+r.ID+"/events", in.adminToken, "", &ev)
	_ = json.Unmarshal(ev.Events, &tasks)
	replayed := 0
	for _, e := range tasks {
		if e.Type != "task.created" {
			continue
		}
		msg, _ := json.Marshal(bus.Task{V: bus.Version, Kind: bus.KindErase, TaskID: e.TaskID, RequestID: r.ID,
			Connector: e.Data.Connector, Attempt: 1, Jurisdiction: "gdpr", Subject: erasure.Subject{Email: "dup@example.com"}})
		for range 2 {
			if _, err := js.Publish(context.Background(), bus.TaskSubject(e.Data.Connector), msg, jetstream.WithMsgID(erasure.NewID())); err != nil {
				t.Fatal(err)
			}
			replayed++
		}
	}
	if replayed != 4 {
		t.Fatalf("replayed %d messages, want 4", replayed)
	}
	// Wait until every consumer has worked through its backlog.
	deadline := time.Now().Add(20 * time.Second)
	for !drained(t, js) {
		if time.Now().After(deadline) {
			t.Fatal("consumers did not drain the replayed messages")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if after := eventHashes(t, base, in.adminToken, r.ID); after != before {
		t.Errorf("replayed deliveries changed the event log")
	}
	if again := getCertificate(t, base, in.adminToken, r.ID); string(again) != string(cert) {
		t.Error("replayed deliveries changed the certificate")
	}
}

func eventHashes(t *testing.T, base, token, id string) string {
	t.Helper()
	var ev struct {
		Events []struct {
			Hash string `json:"hash"`
		} `json:"events"`
	}
	call(t, "GET", base+"/v1/requests/"+id+"/events", token, "", &ev)
	var hs []string
	for _, e := range ev.Events {
		hs = append(hs, e.Hash)
	}
	return strings.Join(hs, ",")
}

// drained reports whether every Lethe consumer has nothing pending or
// unacknowledged.
func drained(t *testing.T, js jetstream.JetStream) bool {
	t.Helper()
	ctx := context.Background()
	for _, stream := range []string{bus.TasksStream, bus.ResultsStream} {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		lister := s.ListConsumers(ctx)
		for info := range lister.Info() {
			if info.NumPending > 0 || info.NumAckPending > 0 {
				return false
			}
		}
		if err := lister.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return true
}

// eraseMany files n requests (prefixN@example.com) one after the other and
// waits for all of them to complete.
func eraseMany(t *testing.T, in *instance, prefix string, n int) {
	t.Helper()
	base := "http://" + in.addr
	var ids []string
	for i := range n {
		ids = append(ids, fileRequest(t, base, in.adminToken, fmt.Sprintf("%s%d@example.com", prefix, i)).ID)
	}
	for _, id := range ids {
		waitStatus(t, base, in.adminToken, id, 30*time.Second, "completed")
	}
}

// TestRateLimit: a connector's rate_per_second holds across all its tasks.
func TestRateLimit(t *testing.T) {
	ns := testenv.NATS(t)
	in := newInstance(t, ns.ClientURL(), `
  - {name: limited, type: test_script, concurrency: 8, rate_per_second: 10, burst: 1, config: {}}`, "")
	in.serve(t)
	eraseMany(t, in, "rate", 8)
	calls := scriptFor("limited").Calls()
	if len(calls) != 8 {
		t.Fatalf("%d calls, want 8", len(calls))
	}
	// 10 per second with a burst of 1: 8 calls span at least 0.7s.
	if span := calls[len(calls)-1].Sub(calls[0]); span < 700*time.Millisecond {
		t.Errorf("8 calls took %s; a 10/s limit needs at least 700ms", span)
	}
}

// TestRateLimitCountsVendorRequests: a connector making three vendor
// requests per erasure takes three turns under its rate limit, not one.
func TestRateLimitCountsVendorRequests(t *testing.T) {
	ns := testenv.NATS(t)
	in := newInstance(t, ns.ClientURL(), `
  - {name: chatty, type: test_script, concurrency: 4, rate_per_second: 10, burst: 1, config: {requests: 3}}`, "")
	in.serve(t)
	eraseMany(t, in, "chatty", 4)
	reqs := scriptFor("chatty").Requests()
	slices.SortFunc(reqs, func(x, y time.Time) int { return x.Compare(y) })
	if len(reqs) != 12 {
		t.Fatalf("%d vendor requests, want 12", len(reqs))
	}
	// 10 a second with a burst of 1: 12 requests span at least 1.1s
	// (1.0s with some slack for timers). Counting erasures instead of
	// requests, they would take 0.3s.
	if span := reqs[len(reqs)-1].Sub(reqs[0]); span < time.Second {
		t.Errorf("12 vendor requests took %s; a 10/s limit on requests needs at least 1.1s", span)
	}
}

// TestConcurrencyIsPerProcess: an instance's concurrency is how many tasks
// each process runs at once, so a second replica doubles the work in
// flight, and no process ever runs more than its share.
func TestConcurrencyIsPerProcess(t *testing.T) {
	forgetScripts("busy")
	ns := testenv.NATS(t)
	a := newInstance(t, ns.ClientURL(), `
  - {name: busy, type: test_script, concurrency: 1, config: {busy: 300ms}}`, "")
	b := a.replica(t)
	a.serve(t)
	b.serve(t)
	parallel(8, func(i int) {
		fileRequest(t, "http://"+[]*instance{a, b}[i%2].addr, a.adminToken, fmt.Sprintf("busy%d@example.com", i))
	})
	waitMetric(t, "http://"+a.addr, `lethe_requests{status="completed"} 8`)
	// overlap is the most erasures running at one instant; the busiest
	// instants include a start.
	overlap := func(spans [][2]time.Time) int {
		most := 0
		for _, s := range spans {
			n := 0
			for _, o := range spans {
				if !o[0].After(s[0]) && s[0].Before(o[1]) {
					n++
				}
			}
			most = max(most, n)
		}
		return most
	}
	var all [][2]time.Time
	for i, s := range scriptsFor("busy") {
		spans := s.Spans()
		if n := overlap(spans); n > 1 {
			t.Errorf("process %d ran %d tasks at once with concurrency 1", i, n)
		}
		all = append(all, spans...)
	}
	if len(all) != 8 {
		t.Fatalf("%d erasures, want 8", len(all))
	}
	if n := overlap(all); n != 2 {
		t.Errorf("two processes with concurrency 1 ran at most %d tasks at once, want 2", n)
	}
}

// TestRateLimitAcrossReplicas: two processes running the same connector
// instance share its rate limit; they do not get one each.
func TestRateLimitAcrossReplicas(t *testing.T) {
	forgetScripts("shared-limit")
	ns := testenv.NATS(t)
	a := newInstance(t, ns.ClientURL(), `
  - {name: shared-limit, type: test_script, concurrency: 8, rate_per_second: 10, burst: 1, config: {}}`, "")
	b := a.replica(t)
	a.serve(t)
	b.serve(t)
	// File them all at once, so the filing does not space the calls out.
	const n = 20
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base := "http://" + []*instance{a, b}[i%2].addr
			ids[i] = fileRequest(t, base, a.adminToken, fmt.Sprintf("shared%d@example.com", i)).ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		waitStatus(t, "http://"+a.addr, a.adminToken, id, 30*time.Second, "completed")
	}
	var calls []time.Time
	var per []int
	for _, s := range scriptsFor("shared-limit") {
		c := s.Calls()
		calls = append(calls, c...)
		per = append(per, len(c))
	}
	slices.SortFunc(calls, func(x, y time.Time) int { return x.Compare(y) })
	if len(calls) != n {
		t.Fatalf("%d calls, want %d (per process: %v)", len(calls), n, per)
	}
	if len(per) != 2 || slices.Contains(per, 0) {
		t.Fatalf("calls per process %v: both replicas should have worked", per)
	}
	// 10 per second with a burst of 1, shared: the calls are about 100ms
	// apart and 20 of them span about 1.9s. With a limit per process they
	// come in pairs (one from each replica) over half the time.
	bunched := 0
	for i := 1; i < len(calls); i++ {
		if calls[i].Sub(calls[i-1]) < 50*time.Millisecond {
			bunched++
		}
	}
	if span := calls[len(calls)-1].Sub(calls[0]); bunched > 2 || span < 1800*time.Millisecond {
		t.Errorf("%d calls over two replicas took %s, %d of them within 50ms of the one before; a shared 10/s limit spaces them 100ms apart (per process: %v)",
			n, span, bunched, per)
	}
}
