package sendgrid_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// fakeSendGrid is a local SendGrid v3 Marketing Contacts API, as
// documented: Bearer auth; POST /v3/marketing/contacts/search/emails
// answering a result map, or 404 when none of the addresses is a contact;
// DELETE /v3/marketing/contacts?ids=… answering 202 {"job_id"} and
// deleting only when the job runs; GET /v3/marketing/contacts/imports/{id}
// reporting pending, then completed (or errored/failed) with counts; and
// a rate limit answered by 429 with X-RateLimit-* headers (reset in epoch
// seconds) and SendGrid's error body.
type fakeSendGrid struct {
	*fakevendor.Server
	key string

	mu       sync.Mutex
	contacts map[string]string // contact id → lower-cased email
	jobs     map[string]*job
	nextID   int
	// pending is how many status requests a job answers "pending" to.
	pending int
	// outcome is how jobs end: completed (default), errored, failed, or
	// partial (completed with one contact errored).
	outcome string
}

type job struct {
	ids                         []string
	polls                       int
	status                      string
	requested, deleted, errored int
	started, finished           time.Time
}

func newFake(t testing.TB, key string) *fakeSendGrid {
	t.Helper()
	f := &fakeSendGrid{
		Server:   fakevendor.New(t),
		key:      key,
		contacts: map[string]string{},
		jobs:     map[string]*job{},
		pending:  2,
		outcome:  "completed",
	}
	f.RequireAuth(func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer "+f.key },
		func(w http.ResponseWriter, r *http.Request) {
			sgError(w, http.StatusUnauthorized, "", "authorization required")
		})
	// SendGrid documents no number for these endpoints; generous here, and
	// tightened by the tests that exercise it.
	f.RateLimit(500, 500, tooMany)
	f.Handle("POST /v3/marketing/contacts/search/emails", f.search)
	f.Handle("DELETE /v3/marketing/contacts", f.deleteContacts)
	f.Handle("GET /v3/marketing/contacts/imports/{id}", f.jobStatus)
	f.Handle("GET /v3/marketing/contacts/count", f.count)
	return f
}

// sgError writes SendGrid's error body.
func sgError(w http.ResponseWriter, status int, field, msg string) {
	var f any
	if field != "" {
		f = field
	}
	fakevendor.JSON(w, status, map[string]any{"errors": []map[string]any{{"field": f, "message": msg}}})
}

// tooMany is SendGrid's 429: rate-limit headers, the reset in unix
// seconds, and no Retry-After.
func tooMany(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("X-RateLimit-Limit", "600")
	w.Header().Set("X-RateLimit-Remaining", "0")
	w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Unix()+2, 10))
	sgError(w, http.StatusTooManyRequests, "", "too many requests")
}

func (f *fakeSendGrid) newID(prefix string) string {
	f.nextID++
	return fmt.Sprintf("%s-%04x-4000-8000-%012x", prefix, f.nextID, f.nextID)
}

// add stores a contact for email and returns its id.
func (f *fakeSendGrid) add(email string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.newID("c0ffee00")
	f.contacts[id] = strings.ToLower(email)
	return id
}

// held counts the contacts holding email.
func (f *fakeSendGrid) held(email string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for _, e := range f.contacts {
		if e == strings.ToLower(email) {
			n++
		}
	}
	return n
}

func (f *fakeSendGrid) setJobs(pending int, outcome string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending, f.outcome = pending, outcome
}

func (f *fakeSendGrid) search(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Emails []string `json:"emails"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Emails) == 0 {
		sgError(w, http.StatusBadRequest, "emails", "emails is required")
		return
	}
	if len(body.Emails) > 100 {
		sgError(w, http.StatusBadRequest, "emails", "a maximum of 100 emails may be searched at once")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	result := map[string]any{}
	found := false
	for _, e := range body.Emails {
		var hit map[string]any
		for id, ce := range f.contacts {
			if ce == strings.ToLower(e) {
				hit = map[string]any{"id": id, "email": ce, "first_name": "Ann", "list_ids": []string{}, "created_at": "2024-01-02T03:04:05Z"}
			}
		}
		if hit == nil {
			result[e] = map[string]any{"error": "contact not found"}
			continue
		}
		found = true
		result[e] = map[string]any{"contact": hit}
	}
	if !found {
		sgError(w, http.StatusNotFound, "", "No contacts found")
		return
	}
	fakevendor.JSON(w, http.StatusOK, map[string]any{"result": result})
}

func (f *fakeSendGrid) deleteContacts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	switch {
	case q.Get("delete_all_contacts") == "true":
		for id := range f.contacts {
			ids = append(ids, id)
		}
	case q.Get("ids") != "":
		ids = strings.Split(q.Get("ids"), ",")
	default:
		sgError(w, http.StatusBadRequest, "ids", "either ids or delete_all_contacts must be set")
		return
	}
	id := f.newID("5ee1ab00")
	f.jobs[id] = &job{ids: ids, status: "pending", requested: len(ids), started: time.Now()}
	fakevendor.JSON(w, http.StatusAccepted, map[string]any{"job_id": id})
}

// jobStatus advances the job one step per request: pending for f.pending
// requests, then it runs and reports its outcome.
func (f *fakeSendGrid) jobStatus(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := r.PathValue("id")
	j, ok := f.jobs[id]
	if !ok {
		sgError(w, http.StatusNotFound, "", "job not found")
		return
	}
	j.polls++
	if j.status == "pending" && j.polls > f.pending {
		j.status, j.finished = f.outcome, time.Now()
		if f.outcome == "partial" {
			j.status = "completed"
		}
		for i, cid := range j.ids {
			_, exists := f.contacts[cid]
			switch {
			case f.outcome == "failed", (f.outcome == "errored" || f.outcome == "partial") && i == 0:
				j.errored++
			case exists:
				delete(f.contacts, cid)
				j.deleted++
			}
		}
	}
	res := map[string]any{
		"id": id, "status": j.status, "job_type": "delete",
		"results": map[string]any{
			"requested_count": j.requested, "created_count": 0, "updated_count": 0,
			"deleted_count": j.deleted, "errored_count": j.errored,
		},
		"started_at": j.started.UTC().Format(time.RFC3339),
	}
	if j.status != "pending" {
		res["finished_at"] = j.finished.UTC().Format(time.RFC3339)
	}
	fakevendor.JSON(w, http.StatusOK, res)
}

func (f *fakeSendGrid) count(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fakevendor.JSON(w, http.StatusOK, map[string]any{"contact_count": len(f.contacts), "billable_count": len(f.contacts)})
}
