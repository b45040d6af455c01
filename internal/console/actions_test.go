package console_test

import (
	"context"
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
	"github.com/lethe-dev/lethe/internal/store"
)

// selectOptions lists the options of the select with this id, sorted.
func selectOptions(body, id string) []string {
	m := regexp.MustCompile(`<select id="` + id + `"[^>]*>(.*?)</select>`).FindStringSubmatch(body)
	if m == nil {
		return nil
	}
	var out []string
	for _, o := range regexp.MustCompile(`<option[^>]*>([^<]*)</option>`).FindAllStringSubmatch(m[1], -1) {
		out = append(out, o[1])
	}
	slices.Sort(out)
	return out
}

// done checks that an action went back to the request page with its
// message.
func done(t *testing.T, b *browser, p page, id, action, flash string) {
	t.Helper()
	want := "/console/requests/" + id + "?done=" + action
	if p.status != http.StatusSeeOther || p.location() != want {
		t.Fatalf("%s: %d → %q\n%s", action, p.status, p.location(), p.body)
	}
	if back := b.get(want); back.status != http.StatusOK || !strings.Contains(back.body, flash) {
		t.Errorf("%s: the request page does not say %q", action, flash)
	}
}

// refused checks that an action was refused with a readable message and
// changed nothing.
func refused(t *testing.T, e *env, p page, id string, events int, status int, msg string) {
	t.Helper()
	if p.status != status || !strings.Contains(p.body, `role="alert"`) || !strings.Contains(p.body, msg) {
		t.Errorf("want %d with %q, got %d:\n%s", status, msg, p.status, p.body)
	}
	if n := e.events(id); n != events {
		t.Errorf("a refused action changed the request: %d events, was %d", n, events)
	}
}

func TestApproveAndDeny(t *testing.T) {
	e := setup(t)
	b := e.browser()
	b.login("bob", agentPW)
	req := e.file("approve@example.com", erasure.RequestPendingApproval)
	page := b.get("/console/requests/" + req.ID)
	for _, form := range []string{"/approve", "/deny", "/cancel", "/extend"} {
		if !strings.Contains(page.body, `action="/console/requests/`+req.ID+form+`"`) {
			t.Errorf("no %s form for a pending request", form)
		}
	}
	if !strings.Contains(page.body, "Write it for the person (GDPR Art. 12(4))") {
		t.Error("the deny form does not say the reason is for the person") // who tells them: TestReasonReachesThePerson
	}
	for _, form := range []string{"/retry", "/complete", "/exempt"} {
		if strings.Contains(page.body, `action="/console/requests/`+req.ID+form+`"`) {
			t.Errorf("a pending request offers %s", form)
		}
	}
	n := e.events(req.ID)
	refused(t, e, b.act(req.ID, "approve", url.Values{"reason": {"  "}}), req.ID, n, http.StatusUnprocessableEntity, "Reason: is required")
	refused(t, e, b.act(req.ID, "approve", url.Values{"reason": {strings.Repeat("x", 2001)}}), req.ID, n, http.StatusUnprocessableEntity, "Reason: at most 2000")
	done(t, b, b.act(req.ID, "approve", url.Values{"reason": {"identity checked"}}), req.ID, "approve", "Approved")
	if r := e.request(req.ID); r.Status != erasure.RequestInProgress || len(e.tasks(req.ID)) != 3 {
		t.Fatalf("after approve: %s with %d tasks", r.Status, len(e.tasks(req.ID)))
	}
	// Approving twice, or denying once erasure started, is a conflict.
	n = e.events(req.ID)
	refused(t, e, b.act(req.ID, "approve", url.Values{"reason": {"again"}}), req.ID, n, http.StatusConflict, "Only a request pending approval can be approved")
	refused(t, e, b.act(req.ID, "deny", url.Values{"reason": {"too late"}}), req.ID, n, http.StatusConflict, "cannot be denied")

	other := e.file("deny@example.com", erasure.RequestPendingApproval)
	n = e.events(other.ID)
	refused(t, e, b.act(other.ID, "deny", url.Values{}), other.ID, n, http.StatusUnprocessableEntity, "Reason: is required")
	done(t, b, b.act(other.ID, "deny", url.Values{"reason": {"We could not confirm that you hold this account."}}), other.ID, "deny", "Denied")
	if r := e.request(other.ID); r.Status != erasure.RequestDenied {
		t.Fatalf("after deny: %s", r.Status)
	}
	p := b.get("/console/requests/" + other.ID)
	if !strings.Contains(p.body, "We could not confirm that you hold this account.") || !strings.Contains(p.body, "console:bob") {
		t.Error("the timeline does not show the reason and who denied")
	}
	if strings.Contains(p.body, `action="/console/requests/`+other.ID) || !strings.Contains(p.body, "The request is final") {
		t.Error("a denied request offers actions")
	}
}

func TestExtend(t *testing.T) {
	e := setup(t)
	b := e.browser()
	b.login("ada", adminPW)
	req := e.file("extend@example.com", "") // due 2026-07-01 09:00, at most 2026-09-01 09:00
	page := b.get("/console/requests/" + req.ID)
	if !strings.Contains(page.body, `min="2026-07-02" max="2026-09-01"`) {
		t.Errorf("the date input's bounds are wrong:\n%s", page.body)
	}
	if got := selectOptions(page.body, "extend-category"); len(got) != 2 || !strings.Contains(got[0], "Art. 12(3)") {
		t.Errorf("kinds of reason offered: %v", got)
	}
	n := e.events(req.ID)
	for _, tc := range []struct {
		due, reason, msg string
	}{
		{"2026-08-15", "", "Reason: is required"},
		{"", "busy", "New deadline: give a date"},
		{"15/08/2026", "busy", "New deadline: give a date"},
		{"2026-09-02", "busy", "New deadline: must be after the current deadline (2026-07-01) and no later than 2026-09-01"},
		{"2026-06-30", "busy", "New deadline: must be after"},
	} {
		refused(t, e, b.act(req.ID, "extend", url.Values{"due": {tc.due}, "reason": {tc.reason}, "category": {"complexity"}}), req.ID, n, http.StatusUnprocessableEntity, tc.msg)
	}
	refused(t, e, b.act(req.ID, "extend", url.Values{"due": {"2026-08-15"}, "reason": {"busy"}}), req.ID, n, http.StatusUnprocessableEntity, "Kind of reason: ")
	// The last allowed day is exactly the legal limit.
	done(t, b, b.act(req.ID, "extend", url.Values{"due": {"2026-09-01"}, "reason": {"The request covers 40 systems."}, "category": {"complexity"}}), req.ID, "extend", "extended")
	r := e.request(req.ID)
	if want := time.Date(2026, 9, 1, 9, 0, 0, 0, time.UTC); !r.DueAt.Equal(want) || r.ExtendedAt.IsZero() {
		t.Fatalf("after extend: due %s, extended %s", r.DueAt, r.ExtendedAt)
	}
	// Once only: the form is gone, and a second try says why.
	if p := b.get("/console/requests/" + req.ID); strings.Contains(p.body, "/extend\"") || !strings.Contains(p.body, "the law allows one extension") {
		t.Error("the page still offers an extension")
	}
	n = e.events(req.ID)
	refused(t, e, b.act(req.ID, "extend", url.Values{"due": {"2026-09-01"}, "reason": {"again"}, "category": {"complexity"}}), req.ID, n, http.StatusConflict, "already extended once")

	// After the deadline has passed, no extension.
	late := e.file("late@example.com", "")
	e.clock.Advance(31 * 24 * time.Hour)
	b.login("ada", adminPW) // the session expired meanwhile
	if p := b.get("/console/requests/" + late.ID); strings.Contains(p.body, "/extend\"") || !strings.Contains(p.body, "Overdue") {
		t.Error("an overdue request offers an extension or is not marked")
	}
	n = e.events(late.ID)
	refused(t, e, b.act(late.ID, "extend", url.Values{"due": {"2026-08-15"}, "reason": {"late"}, "category": {"complexity"}}), late.ID, n, http.StatusConflict, "The deadline has passed")
}

func TestExemptRetryCompleteAndCertificate(t *testing.T) {
	e := setup(t)
	b := e.browser()
	b.login("bob", agentPW)
	req := e.file("person@example.com", "")
	ts := e.tasks(req.ID)
	e.result(ts["shop-db"], bus.ResultFailed, true) // dead at once
	e.result(ts["crm"], bus.ResultFailed, false)    // failed: retried by itself
	if r := e.request(req.ID); r.Status != erasure.RequestNeedsAttention {
		t.Fatalf("request %s", r.Status)
	}
	page := b.get("/console/requests/" + req.ID)
	if !strings.Contains(page.body, "401 bad credentials") || !strings.Contains(page.body, "next try 2026-06-01 09:00 UTC") {
		t.Error("the tasks' last error or next try is not shown")
	}
	if got := selectOptions(page.body, "retry-connector"); !slices.Equal(got, []string{"shop-db"}) {
		t.Errorf("retry is offered for %v, want the dead task only", got)
	}
	if got := selectOptions(page.body, "complete-connector"); !slices.Equal(got, []string{"paper", "shop-db"}) {
		t.Errorf("complete is offered for %v, want the dead and the manual task", got)
	}
	if got := selectOptions(page.body, "exempt-connector"); !slices.Equal(got, []string{"crm", "paper", "shop-db"}) {
		t.Errorf("exempt is offered for %v, want every open task", got)
	}

	// Retry.
	n := e.events(req.ID)
	refused(t, e, b.act(req.ID, "retry", url.Values{"connector": {"shop-db"}}), req.ID, n, http.StatusUnprocessableEntity, "Reason: is required")
	refused(t, e, b.act(req.ID, "retry", url.Values{"connector": {"crm"}, "reason": {"try"}}), req.ID, n, http.StatusConflict, "Only a task that gave up can be retried; this one is failed")
	refused(t, e, b.act(req.ID, "retry", url.Values{"connector": {"../x"}, "reason": {"try"}}), req.ID, n, http.StatusUnprocessableEntity, "System: choose a system")
	refused(t, e, b.act(req.ID, "retry", url.Values{"connector": {"nope"}, "reason": {"try"}}), req.ID, n, http.StatusNotFound, "no task for connector")
	done(t, b, b.act(req.ID, "retry", url.Values{"connector": {"shop-db"}, "reason": {"rotated the password"}}), req.ID, "retry", "sent to its system again")
	if task := e.tasks(req.ID)["shop-db"]; task.Status != erasure.TaskQueued || task.Attempt != 2 {
		t.Fatalf("after retry: %s attempt %d", task.Status, task.Attempt)
	}
	e.result(e.tasks(req.ID)["shop-db"], bus.ResultErased, false)

	// Exempt.
	n = e.events(req.ID)
	p := b.act(req.ID, "exempt", url.Values{"connector": {"crm"}, "basis": {"1798.105-d-1"}, "reason": {"keep the invoice"}})
	refused(t, e, p, req.ID, n, http.StatusUnprocessableEntity, "Legal basis: not an exemption under gdpr")
	if !strings.Contains(p.body, ">keep the invoice</textarea>") {
		t.Error("the refused form lost the reason typed")
	}
	refused(t, e, b.act(req.ID, "exempt", url.Values{"connector": {"crm"}, "basis": {"art17-3-b"}}), req.ID, n, http.StatusUnprocessableEntity, "Reason: is required")
	refused(t, e, b.act(req.ID, "exempt", url.Values{"connector": {"shop-db"}, "basis": {"art17-3-b"}, "reason": {"x"}}), req.ID, n, http.StatusConflict, "The task is already erased")
	done(t, b, b.act(req.ID, "exempt", url.Values{"connector": {"crm"}, "basis": {"art17-3-b"}, "reason": {"Invoices are kept 10 years by law."}}), req.ID, "exempt", "exempted")
	if task := e.tasks(req.ID)["crm"]; task.Status != erasure.TaskExempted || task.ExemptionBasis != "art17-3-b" {
		t.Fatalf("after exempt: %s %q", task.Status, task.ExemptionBasis)
	}

	// Complete the manual task; the request completes and has a certificate.
	n = e.events(req.ID)
	refused(t, e, b.act(req.ID, "complete", url.Values{"connector": {"paper"}, "outcome": {"erased"}, "records": {"0"}, "reason": {"shredded"}}),
		req.ID, n, http.StatusUnprocessableEntity, "Records erased: must be positive")
	refused(t, e, b.act(req.ID, "complete", url.Values{"connector": {"paper"}, "outcome": {"burnt"}, "reason": {"x"}}),
		req.ID, n, http.StatusUnprocessableEntity, "Outcome: choose erased")
	refused(t, e, b.act(req.ID, "complete", url.Values{"connector": {"paper"}, "outcome": {"erased"}, "records": {"-3"}, "reason": {"x"}}),
		req.ID, n, http.StatusUnprocessableEntity, "Records erased: give a whole number")
	refused(t, e, b.act(req.ID, "complete", url.Values{"connector": {"paper"}, "outcome": {"erased"}, "records": {"2"}}),
		req.ID, n, http.StatusUnprocessableEntity, "Reason: is required")
	refused(t, e, b.act(req.ID, "complete", url.Values{"connector": {"paper"}, "outcome": {"erased"}, "records": {"2"}, "reason": {"x"}, "evidence": {": no kind"}}),
		req.ID, n, http.StatusUnprocessableEntity, "Evidence item 1: needs a kind")
	done(t, b, b.act(req.ID, "complete", url.Values{"connector": {"paper"}, "outcome": {"erased"}, "records": {"2"},
		"evidence": {"ticket: T-1234\r\n\r\nmailed person@example.com the confirmation\n"}, "reason": {"Shredded the paper file."}}),
		req.ID, "complete", "done by hand")
	r := e.request(req.ID)
	paper := e.tasks(req.ID)["paper"]
	if r.Status != erasure.RequestCompletedWithExemptions || paper.Status != erasure.TaskErased || paper.RecordsErased != 2 {
		t.Fatalf("after complete: request %s, task %s %d", r.Status, paper.Status, paper.RecordsErased)
	}
	cert, err := e.st.Certificate(t.Context(), req.ID)
	if err != nil {
		t.Fatal(err)
	}
	p = b.get("/console/requests/" + req.ID)
	for _, want := range []string{`href="/audit?certificate=` + cert.ID + `"`, "ticket: T-1234", "completed_by: console:bob", "Art. 17(3)(b)", "Invoices are kept 10 years by law."} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the request page lacks %q", want)
		}
	}
	// The console never shows the person's identifiers, even where staff
	// typed them into evidence.
	if strings.Contains(strings.ToLower(p.body), "person@example.com") {
		t.Error("the request page shows the subject's email")
	}
	if strings.Contains(p.body, `action="/console/requests/`+req.ID) {
		t.Error("a completed request offers actions")
	}
	n = e.events(req.ID)
	refused(t, e, b.act(req.ID, "cancel", url.Values{"reason": {"x"}}), req.ID, n, http.StatusConflict, "already completed_with_exemptions")
}

func TestCancelAndHostileReason(t *testing.T) {
	e := setup(t)
	b := e.browser()
	b.login("bob", agentPW)
	req := e.file("cancel@example.com", "")
	n := e.events(req.ID)
	refused(t, e, b.act(req.ID, "cancel", url.Values{"reason": {""}}), req.ID, n, http.StatusUnprocessableEntity, "Reason: is required")
	const hostile = `<script>alert("x")</script><img src=x onerror=alert(1)>`
	done(t, b, b.act(req.ID, "cancel", url.Values{"reason": {hostile}}), req.ID, "cancel", "cancelled")
	if r := e.request(req.ID); r.Status != erasure.RequestCancelled {
		t.Fatalf("after cancel: %s", r.Status)
	}
	p := b.get("/console/requests/" + req.ID)
	if strings.Contains(p.body, "<script") || strings.Contains(p.body, "<img") {
		t.Fatal("a reason is rendered as HTML")
	}
	if !strings.Contains(p.body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;") {
		t.Error("the escaped reason is not in the timeline")
	}
	n = e.events(req.ID)
	refused(t, e, b.act(req.ID, "cancel", url.Values{"reason": {"again"}}), req.ID, n, http.StatusConflict, "already cancelled")

	// Unknown actions and ids are not found; nothing reaches the store.
	for _, path := range []string{req.ID + "/delete", "not-an-id/cancel", erasure.NewID() + "/cancel"} {
		p := b.post("/console/requests/"+path, url.Values{"csrf": {b.csrf()}, "reason": {"x"}})
		if p.status != http.StatusNotFound {
			t.Errorf("POST %s: %d", path, p.status)
		}
	}
	for _, path := range []string{"/console/requests/not-an-id", "/console/requests/" + erasure.NewID()} {
		if p := b.get(path); p.status != http.StatusNotFound {
			t.Errorf("GET %s: %d", path, p.status)
		}
	}
}

func TestTaskOfARemovedConnector(t *testing.T) {
	e := setup(t)
	req := e.file("removed@example.com", "")
	e.result(e.tasks(req.ID)["crm"], bus.ResultFailed, true)
	// crm is taken out of the configuration: its dead task cannot be
	// retried (nothing would pick it up), only exempted or done by hand.
	e.connectors = []string{"shop-db", "paper"}
	b := e.browserOn(e.serve(consoleConfig(defaultRoles, false)))
	b.login("bob", agentPW)
	p := b.get("/console/requests/" + req.ID)
	if !strings.Contains(p.body, "no longer configured") {
		t.Error("the removed connector is not marked")
	}
	if strings.Contains(p.body, `id="retry-connector"`) {
		t.Error("retry is offered for a connector no longer configured")
	}
	if got := selectOptions(p.body, "complete-connector"); !slices.Equal(got, []string{"crm", "paper"}) {
		t.Errorf("complete is offered for %v", got)
	}
}

// TestIdentifierAndNotApplicable: a system waiting for an identifier
// shows what it needs; staff add it (never shown back), or declare the
// system not applicable with a reason.
func TestIdentifierAndNotApplicable(t *testing.T) {
	e := setup(t, func(o *options) { o.legacy = true })
	b := e.browser()
	b.login("bob", agentPW)
	req := e.file("legacy@example.com", "")
	p := b.get("/console/requests/" + req.ID)
	for _, want := range []string{"needs identifier: needs user_ids.legacy", `action="/console/requests/` + req.ID + `/identifiers"`,
		"Systems are waiting for: <strong>user_ids.legacy</strong>", "email (request)"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("request page lacks %q", want)
		}
	}
	if got := selectOptions(p.body, "na-connector"); len(got) != 1 || got[0] != "legacy" {
		t.Errorf("not applicable offered for %v", got)
	}
	const secret = "L-4711-secret"
	e.addSecret(secret)
	n := e.events(req.ID)
	refused(t, e, b.act(req.ID, "identifiers", url.Values{"kind": {"legacy"}, "value": {secret}, "reason": {"ticket"}}), req.ID, n,
		http.StatusUnprocessableEntity, "Kind of identifier: ")
	bad := b.act(req.ID, "identifiers", url.Values{"kind": {"email"}, "value": {"nope"}, "reason": {"ticket"}})
	refused(t, e, bad, req.ID, n, http.StatusUnprocessableEntity, "Identifier: not a valid email address")
	refused(t, e, b.act(req.ID, "identifiers", url.Values{"kind": {"email"}, "value": {"x@example.com"}, "reason": {"ticket"}}), req.ID, n,
		http.StatusConflict, "already has email")
	miss := b.act(req.ID, "identifiers", url.Values{"kind": {"user_ids.legacy"}, "value": {secret}})
	refused(t, e, miss, req.ID, n, http.StatusUnprocessableEntity, "Reason: is required")
	if strings.Contains(miss.body, secret) {
		t.Error("a refused form showed the identifier's value back")
	}
	done(t, b, b.act(req.ID, "identifiers", url.Values{"kind": {"user_ids.legacy"}, "value": {secret}, "reason": {"found in the old CRM"}}),
		req.ID, "identifiers", "The identifier was added")
	if task := e.tasks(req.ID)["legacy"]; task.Status != erasure.TaskQueued {
		t.Errorf("after adding: legacy is %s", task.Status)
	}
	if p := b.get("/console/requests/" + req.ID); strings.Contains(p.body, secret) || !strings.Contains(p.body, "user_ids.legacy (staff:console:bob)") {
		t.Error("the page shows the value, or not where the kind came from")
	}

	other := e.file("nolegacy@example.com", "")
	n = e.events(other.ID)
	refused(t, e, b.act(other.ID, "not-applicable", url.Values{"connector": {"legacy"}}), other.ID, n, http.StatusUnprocessableEntity, "Reason: is required")
	refused(t, e, b.act(other.ID, "not-applicable", url.Values{"connector": {"crm"}, "reason": {"x"}}), other.ID, n, http.StatusConflict, "cannot be declared not applicable")
	done(t, b, b.act(other.ID, "not-applicable", url.Values{"connector": {"legacy"}, "reason": {"joined in 2024"}}), other.ID, "not-applicable", "not applicable")
	if task := e.tasks(other.ID)["legacy"]; task.Status != erasure.TaskNotApplicable || task.Reason != "joined in 2024" {
		t.Errorf("legacy: %s %q", task.Status, task.Reason)
	}
}

// TestFlaggedByARecheck: a completed request whose re-check found the
// person again shows the flag and its re-checks, is listed under
// "flagged", and staff clear the flag with a reason.
func TestFlaggedByARecheck(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	b := e.browser()
	b.login("bob", agentPW)
	req := e.file("again@example.com", "")
	now := e.clock.Now()
	err := e.st.InTx(ctx, func(tx store.Tx) error {
		r, err := tx.LockRequest(ctx, req.ID)
		if err != nil {
			return err
		}
		r.Status, r.CompletedAt = erasure.RequestCompleted, now
		r.Flag, r.FlaggedAt = "shop-db held the person again at day 3 (2 records): it is being erased again", now
		if err := tx.UpdateRequest(ctx, r); err != nil {
			return err
		}
		found := erasure.Task{ID: erasure.NewID(), RequestID: r.ID, Connector: "shop-db", ConnectorType: "sql",
			Phase: erasure.RecheckPhase(72 * time.Hour), Status: erasure.TaskFoundAgain, Attempt: 1, RecordsErased: 2,
			Evidence: []erasure.Evidence{{Kind: "found_again", Value: "2 records"}}, CreatedAt: now, UpdatedAt: now, CompletedAt: now}
		later := erasure.Task{ID: erasure.NewID(), RequestID: r.ID, Connector: "shop-db", ConnectorType: "sql",
			Phase: erasure.RecheckPhase(720 * time.Hour), Status: erasure.TaskScheduled, NextAttemptAt: now.Add(720 * time.Hour), CreatedAt: now, UpdatedAt: now}
		if err := tx.InsertTask(ctx, found); err != nil {
			return err
		}
		return tx.InsertTask(ctx, later)
	})
	if err != nil {
		t.Fatal(err)
	}
	p := b.get("/console/requests/" + req.ID)
	for _, want := range []string{"Flagged for staff", "shop-db held the person again at day 3", "Re-checks after completion",
		"found again", "2 found", "day 30: due", `action="/console/requests/` + req.ID + `/clear-flag"`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the request page lacks %q", want)
		}
	}
	if strings.Contains(p.body, "The request is final: nothing more can be done") {
		t.Error("a flagged request says nothing can be done")
	}
	if list := b.get("/console?flagged=1"); !strings.Contains(list.body, req.ID) || !strings.Contains(list.body, "Flagged</strong>") {
		t.Error("the flagged list does not show the request")
	}
	other := e.file("other@example.com", "")
	if list := b.get("/console?flagged=1"); strings.Contains(list.body, other.ID) {
		t.Error("the flagged list shows an unflagged request")
	}
	n := e.events(req.ID)
	refused(t, e, b.act(req.ID, "clear-flag", url.Values{"reason": {" "}}), req.ID, n, http.StatusUnprocessableEntity, "Reason: is required")
	done(t, b, b.act(req.ID, "clear-flag", url.Values{"reason": {"the CRM import re-created them; fixed"}}), req.ID, "clear-flag", "The flag was cleared")
	if r := e.request(req.ID); r.Flag != "" {
		t.Errorf("flag after clearing: %q", r.Flag)
	}
	p = b.get("/console/requests/" + req.ID)
	if strings.Contains(p.body, "Flagged for staff") || !strings.Contains(p.body, "the CRM import re-created them; fixed") {
		t.Error("after clearing, the page still shows the flag or lacks the reason")
	}
	a := e.browser()
	a.login("cyd", auditorPW)
	if p := a.act(req.ID, "clear-flag", url.Values{"reason": {"x"}}); p.status != http.StatusForbidden {
		t.Errorf("an auditor's clear-flag: %d", p.status)
	}
}

// TestReasonReachesThePerson: the deny and extend forms say what really
// becomes of the reason typed: emailed and shown on the status page for a
// portal request when mail is configured, shown only on the status page
// when it is not, and for a request filed through the API, that Lethe does
// not contact the person at all.
func TestReasonReachesThePerson(t *testing.T) {
	const (
		api      = "Lethe does not contact the person: this request came in through the API"
		pageOnly = "No email is sent (no mail server is configured): the reason is shown on the person&#39;s status page only."
		emailed  = "The reason is emailed to the person and shown on their status page."
	)
	for _, notify := range []bool{false, true} {
		e := setup(t, func(o *options) { o.notify = notify })
		fromAPI := e.file("api@example.com", erasure.RequestPendingApproval)
		e.addSecret("portal@example.com")
		fromPortal, _, err := e.coord.File(context.Background(), coordinator.FileInput{Subject: erasure.Subject{Email: "portal@example.com"},
			Jurisdiction: "gdpr", Source: "portal", Actor: "portal", Hold: erasure.RequestPendingApproval})
		if err != nil {
			t.Fatal(err)
		}
		fromPortalWant := map[bool]string{false: pageOnly, true: emailed}[notify]
		b := e.browser()
		b.login("bob", agentPW)
		for _, tc := range []struct {
			req  erasure.Request
			want string
		}{{fromAPI, api}, {fromPortal, fromPortalWant}} {
			p := b.get("/console/requests/" + tc.req.ID)
			for _, form := range []string{`<p id="deny-hint">`, `<p id="extend-hint">`} {
				i := strings.Index(p.body, form)
				if i < 0 {
					t.Fatalf("no %s on the page", form)
				}
				hint := p.body[i : i+strings.Index(p.body[i:], "</p>")]
				for _, says := range []string{api, pageOnly, emailed} {
					if got := strings.Contains(hint, says); got != (says == tc.want) {
						t.Errorf("notify=%v, source %s: %s says %q: %v, want %v", notify, tc.req.Source, form, says, got, !got)
					}
				}
			}
			// The message after the action says it again.
			if p := b.get("/console/requests/" + tc.req.ID + "?done=deny"); !strings.Contains(p.body, "Denied. "+tc.want) {
				t.Errorf("notify=%v, source %s: the message after a denial does not say %q", notify, tc.req.Source, tc.want)
			}
		}
	}
}
