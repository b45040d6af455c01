// Package sendgridfake is a local SendGrid v3 Marketing Contacts API for
// tests: contact searches and asynchronous delete jobs as SendGrid
// documents them, its rate-limit answer and faults to inject.
//
//	f := sendgridfake.Start(t, sendgridfake.Options{})
//	f.Seed(connectors.Subject{Email: "ada@example.com"})
//	c := connectortest.Build(t, "sendgrid", "mailing", f.Config())
package sendgridfake

import (
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
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// DefaultKey is the API key a fake accepts until SetKey.
const DefaultKey = "SG.test-key.0123456789abcdef"

// Options tunes a fake: its rate limit answers as SendGrid does (429 with
// SendGrid's error body and X-RateLimit-Limit, -Remaining and -Reset in
// unix seconds, no Retry-After; SendGrid documents no number for these
// endpoints), and a delete job answers "pending" to Polls status requests
// (default 2) before it runs.
type Options = fakevendor.Options

// Fake is a local SendGrid v3 Marketing Contacts API, as documented:
// Bearer auth; POST /v3/marketing/contacts/search/emails taking up to
// MaxSearch addresses (primary or alternate) and answering a result map
// keyed by the lower-cased address, a contact or "contact not found" for
// each, or 404 when none of the addresses is a contact, or 400 when one is
// not an address; DELETE /v3/marketing/contacts?ids=… taking up to
// MaxDelete ids, answering 202 {"job_id"} and deleting only when the job
// runs; GET /v3/marketing/contacts/imports/{id} reporting
// pending, then completed (or errored/failed) with counts; and a rate
// limit answered by 429 with X-RateLimit-* headers (reset in epoch
// seconds) and SendGrid's error body.
type Fake struct {
	fakevendor.Controls

	mu       sync.Mutex
	key      *fakevendor.Key
	contacts map[string]*contact
	jobs     map[string]*job
	nextID   int
	// pending is how many status requests a job answers "pending" to.
	pending int
	// outcome is how jobs end: completed (default), errored, failed, or
	// partial (completed with one contact errored).
	outcome *fakevendor.Setting[string]
}

// contact is a Marketing Campaigns contact: its primary address and any
// alternate ones, all lower-cased.
type contact struct {
	email      string
	alternates []string
}

func (c *contact) holds(email string) bool {
	return c.email == email || slices.Contains(c.alternates, email)
}

// MaxSearch is how many addresses one search takes: SendGrid documents
// "up to 100 contacts" a call.
const MaxSearch = 100

// MaxDelete is how many ids the fake takes in one delete. SendGrid
// documents no maximum; the fake holds the connector to the 100 it
// assumes.
const MaxDelete = 100

type job struct {
	fakevendor.Job
	ids                         []string
	status                      string
	requested, deleted, errored int
	started, finished           time.Time
}

// Start starts a fake that stops when the test ends.
func Start(t testing.TB, opt Options) *Fake {
	t.Helper()
	f := &Fake{key: fakevendor.NewKey(DefaultKey), contacts: map[string]*contact{}, jobs: map[string]*job{}, outcome: fakevendor.NewSetting("completed")}
	srv := fakevendor.Start(t, opt, fakevendor.Vendor{TooMany: TooMany, Polls: 2, Auth: fakevendor.BearerAuth(f.key, Refused)})
	f.Controls, f.pending = srv.Controls(), srv.JobPolls
	srv.Handle("POST /v3/marketing/contacts/search/emails", f.search)
	srv.Handle("DELETE /v3/marketing/contacts", f.deleteContacts)
	srv.Handle("GET /v3/marketing/contacts/imports/{id}", f.jobStatus)
	srv.Handle("GET /v3/marketing/contacts/count", f.contactCount)
	return f
}

// Refused is SendGrid's answer to a key it does not accept.
func Refused(w http.ResponseWriter, _ *http.Request) {
	WriteError(w, http.StatusUnauthorized, "", "authorization required")
}

// NoRecoverableState is why SendGrid keeps no deleted contact that could
// be restored.
func (f *Fake) NoRecoverableState() string {
	return "SendGrid deletes Marketing Campaigns contacts for good (it tells customers to export contacts as their backup) and documents no way to restore them"
}

// Key is the API key the fake accepts.
func (f *Fake) Key() string { return f.key.Get() }

// SetKey changes the API key the fake accepts (another SendGrid account).
func (f *Fake) SetKey(key string) { f.key.Set(key) }

// Config is a sendgrid connector config against f, polling every 10ms.
// Subjects are found by Email.
func (f *Fake) Config() string { return ConfigFor(f.URL(), f.Key()) }

// ConfigFor is a sendgrid connector config for a fake at base, with key.
func ConfigFor(base, key string) string {
	return fmt.Sprintf("api_key: %q\nbase_url: %q\npoll_interval: 10ms\n", key, base)
}

// Seed stores a contact with the subject's email (it needs one).
func (f *Fake) Seed(s connectors.Subject) int64 {
	f.Add(fakevendor.NeedEmail("sendgridfake: Seed", s))
	return 1
}

// Count is how many contacts hold the subject's email, as their address
// or an alternate one.
func (f *Fake) Count(s connectors.Subject) int64 {
	if s.Email == "" {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for _, c := range f.contacts {
		if c.holds(strings.ToLower(s.Email)) {
			n++
		}
	}
	return n
}

// WriteError writes SendGrid's error body; field may be empty.
func WriteError(w http.ResponseWriter, status int, field, msg string) {
	var f any
	if field != "" {
		f = field
	}
	fakevendor.JSON(w, status, map[string]any{"errors": []map[string]any{{"field": f, "message": msg}}})
}

// TooMany is SendGrid's 429: rate-limit headers, the reset in unix
// seconds, and no Retry-After.
func TooMany(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("X-RateLimit-Limit", "600")
	w.Header().Set("X-RateLimit-Remaining", "0")
	w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Unix()+2, 10))
	WriteError(w, http.StatusTooManyRequests, "", "too many requests")
}

func (f *Fake) newID(prefix string) string {
	f.nextID++
	return fmt.Sprintf("%s-%04x-4000-8000-%012x", prefix, f.nextID, f.nextID)
}

// Add stores a contact for email, with any alternate addresses, and
// returns its id.
func (f *Fake) Add(email string, alternates ...string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.newID("c0ffee00")
	c := &contact{email: strings.ToLower(email)}
	for _, a := range alternates {
		c.alternates = append(c.alternates, strings.ToLower(a))
	}
	f.contacts[id] = c
	return id
}

// Remove deletes a contact at once, as someone using SendGrid's own UI
// would.
func (f *Fake) Remove(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.contacts, id)
}

// EndJobsAs sets how delete jobs end when they run: completed (the
// default), errored, failed, or partial (completed with one contact
// errored).
func (f *Fake) EndJobsAs(outcome string) { f.outcome.Set(outcome) }

func (f *Fake) search(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Emails []string `json:"emails"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Emails) == 0 {
		WriteError(w, http.StatusBadRequest, "emails", "emails is required")
		return
	}
	if len(body.Emails) > MaxSearch {
		WriteError(w, http.StatusBadRequest, "emails", "a maximum of 100 emails may be searched at once")
		return
	}
	for _, e := range body.Emails {
		if e != "" && !plausible(e) {
			// "A 400 status code is returned if any searched addresses
			// are invalid": the whole search is refused.
			WriteError(w, http.StatusBadRequest, "emails", "one or more of the emails is invalid")
			return
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	result := map[string]any{}
	found := false
	for _, e := range body.Emails {
		if e == "" {
			continue // "Empty strings are excluded from the search and will not be returned."
		}
		e = strings.ToLower(e)
		var hit map[string]any
		for id, c := range f.contacts {
			if c.holds(e) {
				hit = map[string]any{"id": id, "email": c.email, "alternate_emails": append([]string{}, c.alternates...),
					"first_name": "Ann", "list_ids": []string{}, "created_at": "2024-01-02T03:04:05Z"}
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
		WriteError(w, http.StatusNotFound, "", "No contacts found")
		return
	}
	fakevendor.JSON(w, http.StatusOK, map[string]any{"result": result})
}

func (f *Fake) deleteContacts(w http.ResponseWriter, r *http.Request) {
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
		for _, id := range strings.Split(q.Get("ids"), ",") {
			ids = append(ids, strings.TrimSpace(id)) // SendGrid's own sample sends "1, 2"
		}
		if len(ids) > MaxDelete {
			WriteError(w, http.StatusBadRequest, "ids", "too many ids")
			return
		}
	default:
		WriteError(w, http.StatusBadRequest, "ids", "either ids or delete_all_contacts must be set")
		return
	}
	id := f.newID("5ee1ab00")
	f.jobs[id] = &job{Job: fakevendor.NewJob(f.pending), ids: ids, status: "pending", requested: len(ids), started: time.Now()}
	fakevendor.JSON(w, http.StatusAccepted, map[string]any{"job_id": id})
}

// jobStatus advances the job one step per request: pending for Polls
// requests, then it runs and reports its outcome.
func (f *Fake) jobStatus(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := r.PathValue("id")
	j, ok := f.jobs[id]
	if !ok {
		WriteError(w, http.StatusNotFound, "", "job not found")
		return
	}
	if outcome := f.outcome.Get(); j.Poll() {
		j.status, j.finished = outcome, time.Now()
		if outcome == "partial" {
			j.status = "completed"
		}
		for i, cid := range j.ids {
			_, exists := f.contacts[cid]
			switch {
			case outcome == "failed", (outcome == "errored" || outcome == "partial") && i == 0:
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

// plausible is the fake's idea of an address SendGrid accepts: one @
// between a local part and a dotted domain, no spaces. SendGrid does not
// publish its rule.
func plausible(e string) bool {
	local, domain, ok := strings.Cut(e, "@")
	return ok && local != "" && strings.Contains(domain, ".") &&
		!strings.Contains(domain, "@") && !strings.ContainsAny(e, " \t\r\n")
}

func (f *Fake) contactCount(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fakevendor.JSON(w, http.StatusOK, map[string]any{"contact_count": len(f.contacts), "billable_count": len(f.contacts)})
}
