package console_test

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/coordinator"
	"github.com/lethe-dev/lethe/internal/erasure"
)

var rowRe = regexp.MustCompile(`<th scope="row"><a href="/console/requests/([0-9a-f-]{36})">`)

// ids lists the requests a list page shows, in order.
func ids(body string) []string {
	var out []string
	for _, m := range rowRe.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

func sameIDs(t *testing.T, what string, got []string, want ...erasure.Request) {
	t.Helper()
	var w []string
	for _, r := range want {
		w = append(w, r.ID)
	}
	if !slices.Equal(got, w) {
		t.Errorf("%s: got %v, want %v", what, got, w)
	}
}

func TestListFilters(t *testing.T) {
	e := setup(t)
	day := 24 * time.Hour
	old := e.file("old@example.com", "") // due 2026-07-01
	e.clock.Advance(10 * day)
	dead := e.file("dead@example.com", "") // due 2026-07-11
	e.result(e.tasks(dead.ID)["crm"], bus.ResultFailed, true)
	e.clock.Advance(10 * day)
	pending := e.file("pending@example.com", erasure.RequestPendingApproval) // due 2026-07-21
	cancelled := e.file("cancelled@example.com", "")
	if _, err := e.coord.Cancel(t.Context(), cancelled.ID, "api:test", "duplicate"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(15 * day) // 2026-07-06: old is overdue, dead is due in 5 days

	b := e.browser()
	b.login("cyd", auditorPW)
	all := b.get("/console")
	sameIDs(t, "all", ids(all.body), cancelled, pending, dead, old)
	for _, want := range []string{"5 days overdue</strong>", "5 days left", "15 days left", "0 of 3 systems done", "2026-07-01"} {
		if !strings.Contains(all.body, want) {
			t.Errorf("the list lacks %q (deadlines in days, progress)", want)
		}
	}
	for _, tc := range []struct {
		query string
		want  []erasure.Request
	}{
		{"status=needs_attention", []erasure.Request{dead}},
		{"status=pending_approval", []erasure.Request{pending}},
		{"status=cancelled", []erasure.Request{cancelled}},
		{"status=completed", nil},
		{"overdue=1", []erasure.Request{old}},
		{"within=7", []erasure.Request{dead, old}},
		{"within=30", []erasure.Request{pending, dead, old}},
		{"within=30&status=pending_approval", []erasure.Request{pending}},
		{"overdue=1&within=30", []erasure.Request{old}},
	} {
		p := b.get("/console?" + tc.query)
		if p.status != http.StatusOK {
			t.Errorf("%s: %d", tc.query, p.status)
		}
		sameIDs(t, tc.query, ids(p.body), tc.want...)
	}
	for q, msg := range map[string]string{
		"status=bogus": "is not a request status", "within=0": "from 1 to 366", "within=367": "from 1 to 366",
		"within=x": "from 1 to 366", "before=1": "is not a request id", "before=' OR 1=1": "is not a request id",
		"sort=oldest": "choose newest first or soonest deadline first", "sort=due&page=0": "page number",
		// A final request has no deadline left: said, not shown as an empty list.
		"overdue=1&status=cancelled": "a cancelled request has no deadline left to meet",
		"within=7&status=completed":  "a completed request has no deadline left to meet",
	} {
		p := b.get("/console?" + url.PathEscape(q))
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, `role="alert"`) || len(ids(p.body)) != 0 ||
			!strings.Contains(p.body, "This filter is not valid") || !strings.Contains(html.UnescapeString(p.body), msg) {
			t.Errorf("%s: %d, want 400 saying %q", q, p.status, msg)
		}
		if strings.Contains(p.body, "No requests match") {
			t.Errorf("%s: an invalid filter reads as an empty list", q)
		}
	}
}

func TestListPaging(t *testing.T) {
	e := setup(t)
	var reqs []erasure.Request
	for i := range 52 {
		reqs = append(reqs, e.file(fmt.Sprintf("p%d@example.com", i), ""))
	}
	slices.Reverse(reqs) // newest first
	b := e.browser()
	b.login("bob", agentPW)
	first := b.get("/console?status=in_progress")
	sameIDs(t, "page 1", ids(first.body), reqs[:50]...)
	m := regexp.MustCompile(`href="([^"]+)" rel="next"`).FindStringSubmatch(first.body)
	if m == nil {
		t.Fatal("no link to older requests")
	}
	next := html.UnescapeString(m[1])
	if !strings.Contains(next, "status=in_progress") {
		t.Errorf("the next page drops the filter: %s", next)
	}
	second := b.get(next)
	sameIDs(t, "page 2", ids(second.body), reqs[50:]...)
	if strings.Contains(second.body, `rel="next"`) {
		t.Error("the last page links to another")
	}
}

func TestSearch(t *testing.T) {
	e := setup(t)
	const email = "Searched.Person@Example.com"
	one := e.file(email, "")
	e.file("someone.else@example.com", "")
	e.addSecret("+447700900456", "7700 900456")
	phone, _, err := e.coord.File(t.Context(), coordinator.FileInput{Subject: erasure.Subject{Phone: "+447700900456"},
		Jurisdiction: "ccpa", Source: "cli", Actor: "cli:test"})
	if err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.login("cyd", auditorPW)
	search := func(q string) page {
		return b.post("/console/search", url.Values{"csrf": {b.csrf()}, "q": {q}})
	}
	p := search("  searched.person@EXAMPLE.com ")
	if p.status != http.StatusOK {
		t.Fatalf("search by email: %d", p.status)
	}
	sameIDs(t, "by email", ids(p.body), one)
	sameIDs(t, "by id", ids(search(one.ID).body), one)
	sameIDs(t, "by phone", ids(search("0044 7700 900456").body), phone)
	sameIDs(t, "unknown id", ids(search(erasure.NewID()).body))
	sameIDs(t, "unknown email", ids(search("nobody@example.com").body))
	for _, q := range []string{"", "not an email", "a@b", "12"} {
		if p := search(q); p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, `role="alert"`) {
			t.Errorf("search %q: %d", q, p.status)
		}
	}
	// Search without the CSRF token is refused.
	if p := b.post("/console/search", url.Values{"q": {email}}); p.status != http.StatusForbidden {
		t.Errorf("search without CSRF: %d", p.status)
	}
	// The email appears in no URL, redirect or page the browser received.
	for _, s := range b.seen {
		if strings.Contains(strings.ToLower(s), "searched.person") || strings.Contains(s, "900456") {
			t.Fatalf("the searched identifier came back to the browser: %.300s", s)
		}
	}
}
