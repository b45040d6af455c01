package console_test

import (
	"encoding/csv"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/erasure"
)

// TestListWaitingSortAndCSV: the list keeps the requests waiting for a
// person (a manual system waiting for staff), orders by deadline with
// paging, and exports the filtered list, every page of it, as CSV with no
// personal data.
func TestListWaitingSortAndCSV(t *testing.T) {
	e := setup(t)
	day := 24 * time.Hour
	var reqs []erasure.Request // oldest first: soonest deadline first
	for i := range 53 {
		reqs = append(reqs, e.file("list"+string(rune('a'+i%26))+strings.Repeat("x", i/26)+"@example.com", ""))
		e.clock.Advance(time.Hour)
	}
	manual := reqs[7]
	paper := e.tasks(manual.ID)["paper"]
	e.apply(bus.Result{V: 1, Kind: bus.KindErase, TaskID: paper.ID, RequestID: manual.ID, Connector: "paper",
		Attempt: paper.Attempt, Status: bus.ResultRunning, JobRef: "awaiting-person",
		Evidence: []erasure.Evidence{{Kind: "instructions", Value: "Shred it."}}})
	e.result(e.tasks(manual.ID)["crm"], bus.ResultErased, false)
	e.clock.Advance(2 * day)

	b := e.browser()
	b.login("cyd", auditorPW)
	w := b.get("/console?waiting=1")
	sameIDs(t, "waiting for a person", ids(w.body), manual)
	if !strings.Contains(w.body, "1 of 3 systems done") || !strings.Contains(w.body, "Waiting for a person</strong>") {
		t.Error("the waiting request does not show its progress and what it waits for")
	}

	first := b.get("/console?sort=due")
	sameIDs(t, "by deadline, page 1", ids(first.body), reqs[:50]...)
	m := regexp.MustCompile(`href="([^"]+)" rel="next"`).FindStringSubmatch(first.body)
	if m == nil {
		t.Fatal("no link to the next page by deadline")
	}
	second := b.get(html.UnescapeString(m[1]))
	sameIDs(t, "by deadline, page 2", ids(second.body), reqs[50:]...)
	if !strings.Contains(first.body, "soonest deadline first") {
		t.Error("the table does not say its order")
	}

	// The CSV holds the whole filtered list, not one page.
	link := regexp.MustCompile(`<a href="(/console/requests\.csv[^"]*)" download>`).FindStringSubmatch(first.body)
	if link == nil || !strings.Contains(html.UnescapeString(link[1]), "sort=due") {
		t.Fatalf("no CSV link keeping the filter: %v", link)
	}
	p := b.get(html.UnescapeString(link[1]))
	if p.status != http.StatusOK || !strings.HasPrefix(p.header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(p.header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("CSV: %d %s %s", p.status, p.header.Get("Content-Type"), p.header.Get("Content-Disposition"))
	}
	records, err := csv.NewReader(strings.NewReader(p.body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != 54 || records[0][0] != "request_id" {
		t.Fatalf("CSV has %d lines, want a header and 53 requests", len(records))
	}
	var got []string
	for _, r := range records[1:] {
		got = append(got, r[0])
	}
	var want []string
	for _, r := range reqs {
		want = append(want, r.ID)
	}
	if !slices.Equal(got, want) {
		t.Error("the CSV is not in the list's order")
	}
	row := records[8] // manual
	if row[0] != manual.ID || row[9] != "3" || row[10] != "1" || row[11] != "1" || row[6] != "26" {
		t.Errorf("CSV row of the waiting request: %v", row)
	}
	if strings.Contains(p.body, "@example.com") {
		t.Error("the CSV holds an email address")
	}
	waiting := b.get("/console/requests.csv?waiting=1")
	if n := strings.Count(strings.TrimSpace(waiting.body), "\n"); n != 1 {
		t.Errorf("CSV of the waiting filter has %d requests, want 1", n)
	}
	if bad := b.get("/console/requests.csv?status=completed&overdue=1"); bad.status != http.StatusBadRequest ||
		!strings.Contains(bad.body, "has no deadline left to meet") {
		t.Errorf("CSV of an invalid filter: %d", bad.status)
	}
}

// TestBulkActions: agents select requests in the list and approve, retry
// or extend them together; each request is acted on by itself and the
// page says, request by request, what was done or why not. Bad input
// changes nothing; auditors cannot act.
func TestBulkActions(t *testing.T) {
	e := setup(t)
	p1 := e.file("bulk1@example.com", erasure.RequestPendingApproval)
	p2 := e.file("bulk2@example.com", erasure.RequestPendingApproval)
	running := e.file("bulk3@example.com", "")
	dead := e.file("bulk4@example.com", "")
	e.result(e.tasks(dead.ID)["crm"], bus.ResultFailed, true)
	e.result(e.tasks(dead.ID)["shop-db"], bus.ResultFailed, true)

	b := e.browser()
	b.login("bob", agentPW)
	list := b.get("/console?status=pending_approval")
	for _, want := range []string{`action="/console/bulk"`, `form="bulk" aria-label="Select request ` + p1.ID + `"`, `name="back" value="status=pending_approval"`} {
		if !strings.Contains(list.body, want) {
			t.Errorf("the list lacks %q", want)
		}
	}
	bulk := func(v url.Values) page {
		v.Set("csrf", b.csrf())
		return b.post("/console/bulk", v)
	}

	// Bad input: refused, nothing changed.
	before := e.events(p1.ID)
	for _, tc := range []struct {
		form url.Values
		msg  string
	}{
		{url.Values{"action": {"approve"}, "reason": {"ok"}}, "select at least one request"},
		{url.Values{"action": {"burn"}, "id": {p1.ID}, "reason": {"ok"}}, "choose what to do"},
		{url.Values{"action": {"approve"}, "id": {p1.ID}}, "Reason: is required"},
		{url.Values{"action": {"approve"}, "id": {"../x"}, "reason": {"ok"}}, "not valid"},
		{url.Values{"action": {"extend"}, "id": {p1.ID}, "reason": {"ok"}, "days": {"0"}}, "from 1 to 92"},
		{url.Values{"action": {"approve"}, "id": slices.Repeat([]string{p1.ID}, 201), "reason": {"ok"}}, "at most 200"},
	} {
		p := bulk(tc.form)
		if p.status != http.StatusUnprocessableEntity || !strings.Contains(html.UnescapeString(p.body), tc.msg) || !strings.Contains(p.body, `role="alert"`) {
			t.Errorf("%v: %d, want 422 saying %q", tc.form, p.status, tc.msg)
		}
	}
	if e.events(p1.ID) != before || e.request(p1.ID).Status != erasure.RequestPendingApproval {
		t.Fatal("a refused bulk action changed a request")
	}

	// Approve two pending requests and one that is not pending (twice
	// selected): two approved, one refused with the reason, no duplicate.
	p := bulk(url.Values{"action": {"approve"}, "id": {p1.ID, p2.ID, running.ID, p1.ID}, "reason": {"identity checked"},
		"back": {"status=pending_approval"}})
	body := html.UnescapeString(p.body)
	if p.status != http.StatusOK || !strings.Contains(body, "2 of 3 requests approved.") {
		t.Fatalf("bulk approve: %d\n%s", p.status, p.body)
	}
	if !strings.Contains(body, running.ID+"</code></a>: Not done: ") {
		t.Error("the request that could not be approved is not listed with the reason")
	}
	for _, r := range []erasure.Request{p1, p2} {
		if st := e.request(r.ID).Status; st != erasure.RequestInProgress {
			t.Errorf("after bulk approve: %s", st)
		}
	}
	// The list shown is the filter it came from: nothing pending is left.
	if got := ids(p.body); len(got) != 0 {
		t.Errorf("the list after approving shows %d pending requests", len(got))
	}

	// Retry every system that gave up; a request with none is refused.
	p = bulk(url.Values{"action": {"retry"}, "id": {dead.ID, running.ID}, "reason": {"credentials rotated"}})
	body = html.UnescapeString(p.body)
	if !strings.Contains(body, "1 of 2 requests sent again to every system that gave up.") || !strings.Contains(body, "nothing to retry") {
		t.Errorf("bulk retry says:\n%s", body)
	}
	for name, task := range e.tasks(dead.ID) {
		if name != "paper" && (task.Status != erasure.TaskQueued || task.Attempt != 2) {
			t.Errorf("after bulk retry %s is %s, try %d", name, task.Status, task.Attempt)
		}
	}

	// Extend by 30 days with the GDPR category; once only.
	due := e.request(running.ID).DueAt
	p = bulk(url.Values{"action": {"extend"}, "id": {running.ID}, "reason": {"Many requests this month."}, "days": {"30"}, "category": {"number_of_requests"}})
	if !strings.Contains(html.UnescapeString(p.body), "1 of 1 request deadline extended.") {
		t.Errorf("bulk extend says:\n%s", p.body)
	}
	if got := e.request(running.ID).DueAt; !got.Equal(due.AddDate(0, 0, 30)) {
		t.Errorf("due %s after extending %s by 30 days", got, due)
	}
	p = bulk(url.Values{"action": {"extend"}, "id": {running.ID}, "reason": {"again"}, "days": {"5"}, "category": {"number_of_requests"}})
	if !strings.Contains(html.UnescapeString(p.body), "0 of 1 request deadline extended.") || !strings.Contains(p.body, "already extended once") {
		t.Errorf("a second bulk extension says:\n%s", p.body)
	}

	// An auditor sees no selection and cannot post.
	a := e.browser()
	a.login("cyd", auditorPW)
	if strings.Contains(a.get("/console").body, `action="/console/bulk"`) {
		t.Error("an auditor is offered bulk actions")
	}
	if p := a.post("/console/bulk", url.Values{"csrf": {a.csrf()}, "action": {"approve"}, "id": {p1.ID}, "reason": {"x"}}); p.status != http.StatusForbidden {
		t.Errorf("an auditor's bulk action: %d", p.status)
	}
}
