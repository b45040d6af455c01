// Package zendeskfake is a local Zendesk Support API for tests: user
// search, requested tickets, bulk ticket deletion and permanent deletion
// as background jobs, user deletion and permanent deletion, deleted users,
// Zendesk's rate-limit answer and faults to inject.
package zendeskfake

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// The credentials a fake accepts: Basic "<DefaultEmail>/token:<DefaultToken>",
// or Bearer <DefaultOAuthToken>.
const (
	DefaultEmail      = "lethe-agent@example.org"
	DefaultToken      = "zendesk-api-token"
	DefaultOAuthToken = "zendesk-oauth-token"
)

// Options tunes a fake; its rate limit answers as Zendesk does (429,
// Retry-After: 1). Jobs stay queued, then working, for Polls polls
// (default 1).
type Options = fakevendor.Options

// States of a user or ticket.
const (
	active  = "active"
	deleted = "deleted" // soft-deleted: still held
	purged  = "purged"  // permanently deleted
)

type user struct {
	id                      int64
	email, externalID, role string
	state                   string
}

type ticket struct {
	id, requester int64
	state         string
}

type job struct {
	fakevendor.Job
	id    string
	purge bool
	ids   []int64
	fail  string // a final status forced on it
	final string // the status it ended with, and its results
	res   any
}

// Fake is a Zendesk account: GET /api/v2/users/search (query=email:…
// or external_id=), GET /api/v2/users/{id}/tickets/requested (cursor
// pages), DELETE /api/v2/tickets/destroy_many and
// /api/v2/deleted_tickets/destroy_many?ids= answering a job_status, GET
// /api/v2/job_statuses/{id}, DELETE /api/v2/users/{id} (422 while the
// user requests a ticket), GET /api/v2/deleted_users (cursor pages,
// permanently deleted users with email null) and DELETE
// /api/v2/deleted_users/{id}.
type Fake struct {
	fakevendor.Controls
	email, token *fakevendor.Key
	polls        int
	mu           sync.Mutex
	next         int64
	users        []*user
	tickets      []*ticket
	jobs         map[string]*job
	failJobs     []string // final statuses forced on the next jobs
	pageSize     int
}

var _ connectortest.RecoverableVendor = (*Fake)(nil)

// Start starts a fake that stops when the test ends.
func Start(t testing.TB, opt Options) *Fake {
	f := &Fake{email: fakevendor.NewKey(DefaultEmail), token: fakevendor.NewKey(DefaultToken), next: 10000, jobs: map[string]*job{}, pageSize: 100}
	f.email.Set(DefaultEmail + "/token")
	oauth := fakevendor.NewKey(DefaultOAuthToken)
	basic, bearer := fakevendor.BasicAuth(f.email, f.token, Refused), fakevendor.BearerAuth(oauth, Refused)
	// Another account has another API token; the address keeps its
	// "/token" form.
	auth := fakevendor.Auth{OK: func(r *http.Request) bool { return basic.OK(r) || bearer.OK(r) }, Refuse: Refused, Keys: []*fakevendor.Key{f.token, oauth}}
	srv := fakevendor.Start(t, opt, fakevendor.Vendor{TooMany: TooMany, Polls: 1, Auth: auth})
	f.Controls, f.polls = srv.Controls(), srv.JobPolls
	srv.Handle("GET /api/v2/users/search", f.search)
	srv.Handle("GET /api/v2/users/{id}/tickets/requested", f.requested)
	srv.Handle("DELETE /api/v2/tickets/destroy_many", func(w http.ResponseWriter, r *http.Request) { f.startJob(w, r, false) })
	srv.Handle("DELETE /api/v2/deleted_tickets/destroy_many", func(w http.ResponseWriter, r *http.Request) { f.startJob(w, r, true) })
	srv.Handle("GET /api/v2/job_statuses/{id}", f.jobStatus)
	srv.Handle("DELETE /api/v2/users/{id}", f.deleteUser)
	srv.Handle("GET /api/v2/deleted_users", f.deletedUsers)
	srv.Handle("DELETE /api/v2/deleted_users/{id}", f.purgeUser)
	return f
}

// Zendesk's answers to credentials it does not accept and past its rate
// limit (a plain-text body and Retry-After in seconds).
var (
	Refused fakevendor.Fault = func(w http.ResponseWriter, _ *http.Request) {
		fakevendor.JSON(w, http.StatusUnauthorized, map[string]string{"error": "Couldn't authenticate you"})
	}
	TooMany fakevendor.Fault = func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "1")
		w.Header().Set("X-Rate-Limit", "200")
		w.Header().Set("X-Rate-Limit-Remaining", "0")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte("Number of allowed API requests per minute exceeded"))
	}
)

func notFound(w http.ResponseWriter) {
	fakevendor.JSON(w, http.StatusNotFound, map[string]string{"error": "RecordNotFound", "description": "Not found"})
}

// Config is a zendesk config against f.
func (f *Fake) Config() string {
	return fmt.Sprintf("base_url: %q\nemail: %q\napi_token: %q\nuser_id_system: %s\npoll_interval: 10ms\n",
		f.URL(), DefaultEmail, f.token.Get(), connectortest.UserIDSystem)
}

// Seed stores an end user with the subject's email and external_id and
// two tickets they requested: three records.
func (f *Fake) Seed(s connectors.Subject) int64 { return f.SeedTickets(s, 2) + 1 }

// SeedTickets stores an active end user holding s's identifiers with n
// requested tickets, and returns n.
func (f *Fake) SeedTickets(s connectors.Subject, n int) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.addUser(s, active)
	for range n {
		f.next++
		f.tickets = append(f.tickets, &ticket{id: f.next, requester: u.id, state: active})
	}
	return int64(n)
}

// SeedAgent stores an agent holding s's identifiers: one record.
func (f *Fake) SeedAgent(s connectors.Subject) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addUser(s, active).role = "agent"
	return 1
}

// SeedRecoverable stores a soft-deleted user (still listed, with their
// email, under deleted users): one record.
func (f *Fake) SeedRecoverable(s connectors.Subject) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addUser(s, deleted)
	return 1
}

func (f *Fake) addUser(s connectors.Subject, state string) *user {
	f.next++
	u := &user{id: f.next, email: s.Email, externalID: s.UserIDs[connectortest.UserIDSystem], role: "end-user", state: state}
	f.users = append(f.users, u)
	return u
}

// Count is how many users holding the subject's email or external_id,
// and tickets they requested, are held: active or soft-deleted.
func (f *Fake) Count(s connectors.Subject) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for _, u := range f.users {
		if !(s.Email != "" && strings.EqualFold(u.email, s.Email)) && !(u.externalID != "" && u.externalID == s.UserIDs[connectortest.UserIDSystem]) {
			continue
		}
		if u.state != purged {
			n++
		}
		for _, t := range f.tickets {
			if t.requester == u.id && t.state != purged {
				n++
			}
		}
	}
	return n
}

// SoftDeletedTickets is how many tickets are deleted but restorable.
func (f *Fake) SoftDeletedTickets() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(slices.DeleteFunc(slices.Clone(f.tickets), func(t *ticket) bool { return t.state != deleted }))
}

// FailJobs makes the next jobs started end with these statuses
// ("failed", "killed") instead of doing their work.
func (f *Fake) FailJobs(statuses ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failJobs = append(f.failJobs, statuses...)
}

// DeletedUsersPageSize caps the page size of GET /api/v2/deleted_users.
func (f *Fake) DeletedUsersPageSize(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pageSize = n
}

func (f *Fake) userJSON(u *user) map[string]any {
	m := map[string]any{"id": u.id, "url": fmt.Sprintf("%s/api/v2/users/%d.json", f.URL(), u.id), "name": "Person " + strconv.FormatInt(u.id, 10),
		"email": nilIfEmpty(u.email), "external_id": nilIfEmpty(u.externalID), "role": u.role, "active": u.state == active,
		"created_at": "2024-01-15T10:30:00Z", "phone": nil}
	if u.state != active { // a deleted user carries no external_id (Zendesk's documented shape)
		delete(m, "external_id")
		m["url"] = fmt.Sprintf("%s/api/v2/deleted_users/%d.json", f.URL(), u.id)
	}
	if u.state == purged {
		m["email"], m["name"] = nil, "Permanently Deleted User"
	}
	return m
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// search matches active users: query terms email:<address> (quotes
// stripped, * a wildcard, several terms any of them) or external_id exactly.
func (f *Fake) search(w http.ResponseWriter, r *http.Request) {
	q, ext := r.URL.Query().Get("query"), r.URL.Query().Get("external_id")
	if q == "" && ext == "" {
		fakevendor.JSON(w, http.StatusBadRequest, map[string]string{"error": "InvalidSearch", "description": "query or external_id required"})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	found := []map[string]any{}
	for _, u := range f.users {
		if u.state == active && ((ext != "" && u.externalID == ext) || (q != "" && queryMatches(q, u.email))) {
			found = append(found, f.userJSON(u))
		}
	}
	fakevendor.JSON(w, http.StatusOK, map[string]any{"users": found, "next_page": nil, "previous_page": nil, "count": len(found)})
}

func queryMatches(q, email string) bool {
	for _, term := range strings.Fields(q) {
		v, ok := strings.CutPrefix(term, "email:")
		v = strings.ToLower(strings.Trim(v, `"`))
		prefix, wild := strings.CutSuffix(v, "*")
		if ok && email != "" && (strings.ToLower(email) == v || (wild && strings.HasPrefix(strings.ToLower(email), prefix))) {
			return true
		}
	}
	return false
}

func (f *Fake) find(id string, state string) *user {
	for _, u := range f.users {
		if strconv.FormatInt(u.id, 10) == id && u.state == state {
			return u
		}
	}
	return nil
}

// page answers one cursor page of items, the cursor an index.
func page[T any](r *http.Request, items []T, limit int) ([]T, map[string]any) {
	size, _ := strconv.Atoi(r.URL.Query().Get("page[size]"))
	if size <= 0 || size > limit {
		size = limit
	}
	from, _ := strconv.Atoi(r.URL.Query().Get("page[after]"))
	from = min(max(from, 0), len(items))
	to := min(from+size, len(items))
	return items[from:to], map[string]any{"has_more": to < len(items), "after_cursor": strconv.Itoa(to), "before_cursor": strconv.Itoa(from)}
}

func (f *Fake) requested(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.find(r.PathValue("id"), active)
	if u == nil {
		notFound(w)
		return
	}
	var list []map[string]any
	for _, t := range f.tickets {
		if t.requester == u.id && t.state == active {
			list = append(list, map[string]any{"id": t.id, "requester_id": u.id, "status": "open", "subject": "Help"})
		}
	}
	items, meta := page(r, list, 100)
	fakevendor.JSON(w, http.StatusOK, map[string]any{"tickets": append([]map[string]any{}, items...), "meta": meta, "links": map[string]any{}})
}

func (f *Fake) startJob(w http.ResponseWriter, r *http.Request, purge bool) {
	var ids []int64
	for _, s := range strings.Split(r.URL.Query().Get("ids"), ",") {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			fakevendor.JSON(w, http.StatusBadRequest, map[string]string{"error": "InvalidValue", "description": "ids must be a comma-separated list of ticket ids"})
			return
		}
		ids = append(ids, id)
	}
	if len(ids) > 100 {
		fakevendor.JSON(w, http.StatusBadRequest, map[string]string{"error": "InvalidValue", "description": "at most 100 ids"})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	j := &job{Job: fakevendor.NewJob(f.polls), id: fmt.Sprintf("job%016x", f.next), purge: purge, ids: ids}
	if len(f.failJobs) > 0 {
		j.fail, f.failJobs = f.failJobs[0], f.failJobs[1:]
	}
	f.jobs[j.id] = j
	f.answerJob(w, j, "queued", nil)
}

func (f *Fake) answerJob(w http.ResponseWriter, j *job, status string, results any) {
	fakevendor.JSON(w, http.StatusOK, map[string]any{"job_status": map[string]any{"id": j.id, "job_type": "ThrottledTicketDeletionJob",
		"url": fmt.Sprintf("%s/api/v2/job_statuses/%s.json", f.URL(), j.id), "total": len(j.ids), "progress": nil,
		"status": status, "message": nil, "results": results}})
}

// jobStatus ends a job on its last poll: the tickets are deleted (bulk
// delete) or permanently deleted (only tickets already deleted).
func (f *Fake) jobStatus(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j := f.jobs[r.PathValue("id")]
	if j == nil {
		notFound(w)
		return
	}
	if j.Ended {
		f.answerJob(w, j, j.final, j.res)
		return
	}
	if !j.Poll() {
		f.answerJob(w, j, j.Stage("queued", "working"), nil)
		return
	}
	j.final, j.res = f.finish(j)
	f.answerJob(w, j, j.final, j.res)
}

// finish does a job's work, or fails it as FailJobs asked.
func (f *Fake) finish(j *job) (string, any) {
	if j.fail != "" {
		return j.fail, nil
	}
	if !j.purge {
		var results []map[string]any
		for _, id := range j.ids {
			t := f.ticket(id, active)
			if t != nil {
				t.state = deleted
			}
			results = append(results, map[string]any{"id": id, "action": "delete", "success": t != nil, "status": "Deleted"})
		}
		return "completed", results
	}
	ok := true
	for _, id := range j.ids {
		if t := f.ticket(id, deleted); t != nil {
			t.state = purged
		} else if f.ticket(id, purged) == nil {
			ok = false
		}
	}
	return "completed", map[string]bool{"success": ok}
}

func (f *Fake) ticket(id int64, state string) *ticket {
	for _, t := range f.tickets {
		if t.id == id && t.state == state {
			return t
		}
	}
	return nil
}

func (f *Fake) deleteUser(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.find(r.PathValue("id"), active)
	if u == nil {
		notFound(w)
		return
	}
	if slices.ContainsFunc(f.tickets, func(t *ticket) bool { return t.requester == u.id && t.state == active }) {
		fakevendor.JSON(w, http.StatusUnprocessableEntity, map[string]any{"error": "RecordInvalid", "description": "Record validation errors",
			"details": map[string]any{"base": []map[string]string{{"description": "User is requester on open tickets"}}}})
		return
	}
	u.state = deleted
	fakevendor.JSON(w, http.StatusOK, map[string]any{"user": f.userJSON(u)})
}

func (f *Fake) deletedUsers(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	list := []map[string]any{}
	for _, u := range f.users {
		if u.state != active {
			list = append(list, f.userJSON(u))
		}
	}
	items, meta := page(r, list, f.pageSize)
	fakevendor.JSON(w, http.StatusOK, map[string]any{"deleted_users": append([]map[string]any{}, items...), "meta": meta, "links": map[string]any{}})
}

func (f *Fake) purgeUser(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.find(r.PathValue("id"), deleted)
	if u == nil {
		notFound(w)
		return
	}
	u.state = purged
	fakevendor.JSON(w, http.StatusOK, map[string]any{"deleted_user": f.userJSON(u)})
}
