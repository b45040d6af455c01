// Package stripefake is a local Stripe API for tests: customers listed by
// email, retrieved and deleted, redaction jobs that validate, run and
// succeed over polls, Stripe's error bodies and its rate-limit answer.
package stripefake

import (
	"cmp"
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

// DefaultKey is the secret key a fake accepts.
const DefaultKey = "sk_test_lethe_fake_key"

// Options tunes a fake; its rate limit answers as Stripe does (429
// rate_limit, no Retry-After); Polls is how many status polls a redaction
// job stays validating, and then redacting (default 1).
type Options = fakevendor.Options

// Fake is a Stripe account. Auth: Authorization: Bearer <key> (or the key
// as Basic user, as Stripe's curl examples send it). GET /v1/customers
// ?email=&limit=&starting_after= (exact, case-sensitive; newest first,
// has_more); GET and DELETE /v1/customers/{id} (a deleted customer
// retrieves as {"id","object","deleted":true}; unknown ids are 404
// resource_missing); the redaction jobs of /v1/privacy/redaction_jobs:
// create (form objects[customers][], at most ten), list (expand[]=
// data.objects), retrieve, run (when ready), cancel (when ready or
// failed), validation_errors. A job's customers are locked while it is
// open; one naming a locked or blocked customer fails validation.
type Fake struct {
	fakevendor.Controls
	key   *fakevendor.Key
	polls int
	// PageSize caps a list page below the limit asked for (0: none).
	PageSize fakevendor.Setting[int]

	mu        sync.Mutex
	customers []*customer // oldest first
	jobs      []*job
	blocked   map[string]string // customer id → validation error code
	seq       int
}

type customer struct {
	id, email         string
	deleted, redacted bool
}

type job struct {
	fakevendor.Job
	id, status, behavior string
	customers            []string
	errors               []string // validation error codes
}

var _ connectortest.Vendor = (*Fake)(nil)

// Start starts a fake that stops when the test ends.
func Start(t testing.TB, opt Options) *Fake {
	f := &Fake{key: fakevendor.NewKey(DefaultKey), blocked: map[string]string{}}
	auth := fakevendor.Auth{OK: func(r *http.Request) bool {
		user, _, basic := r.BasicAuth()
		return r.Header.Get("Authorization") == "Bearer "+f.key.Get() || basic && user == f.key.Get()
	}, Refuse: Refused, Keys: []*fakevendor.Key{f.key}}
	srv := fakevendor.Start(t, opt, fakevendor.Vendor{TooMany: TooMany, Auth: auth, Polls: 1})
	f.Controls, f.polls = srv.Controls(), srv.JobPolls
	srv.Handle("GET /v1/customers", f.list)
	srv.Handle("GET /v1/customers/{id}", f.retrieve)
	srv.Handle("DELETE /v1/customers/{id}", f.delete)
	srv.Handle("POST /v1/privacy/redaction_jobs", f.createJob)
	srv.Handle("GET /v1/privacy/redaction_jobs", f.listJobs)
	srv.Handle("GET /v1/privacy/redaction_jobs/{id}", f.withJob(f.getJob))
	srv.Handle("POST /v1/privacy/redaction_jobs/{id}/run", f.withJob(f.runJob))
	srv.Handle("POST /v1/privacy/redaction_jobs/{id}/cancel", f.withJob(f.cancelJob))
	srv.Handle("GET /v1/privacy/redaction_jobs/{id}/validation_errors", f.withJob(f.validationErrors))
	return f
}

// Stripe's answers to a key it does not accept and past its rate limit.
var (
	Refused = Error(http.StatusUnauthorized, "invalid_request_error", "", "Invalid API Key provided: sk_test_****")
	TooMany = Error(http.StatusTooManyRequests, "invalid_request_error", "rate_limit", "Request rate limit exceeded.")
)

// Error is Stripe's error answer {"error":{"type","code","message"}}.
func Error(status int, typ, code, msg string) fakevendor.Fault {
	return func(w http.ResponseWriter, _ *http.Request) {
		e := map[string]any{"type": typ, "message": msg}
		if code != "" {
			e["code"] = code
		}
		fakevendor.JSON(w, status, map[string]any{"error": e})
	}
}

var missing = Error(http.StatusNotFound, "invalid_request_error", "resource_missing", "No such object")

// Config is a stripe config against f (mode delete).
func (f *Fake) Config() string {
	return fmt.Sprintf("api_key: %q\nbase_url: %q\nuser_id_system: %s\npoll_interval: 10ms\n", f.key.Get(), f.URL(), connectortest.UserIDSystem)
}

// NoRecoverableState cites why a deleted customer cannot come back.
func (f *Fake) NoRecoverableState() string {
	return "Stripe's customer delete is permanent and cannot be undone; a deleted customer retrieves only as a stub " +
		"{id, deleted: true}; redaction is irreversible (docs.stripe.com/api/customers/delete, docs.stripe.com/privacy/redaction)"
}

// Seed stores one customer with the subject's email, its id the
// subject's user id (a Stripe customer id) or a new cus_ id.
func (f *Fake) Seed(s connectors.Subject) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := s.UserIDs[connectortest.UserIDSystem]
	if id == "" {
		f.seq++
		id = "cus_fake" + strconv.Itoa(f.seq)
	}
	f.customers = append(f.customers, &customer{id: id, email: s.Email})
	return 1
}

// Count is how many customers holding personal data have the subject's
// email or customer id.
func (f *Fake) Count(s connectors.Subject) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := int64(0)
	for _, c := range f.customers {
		if c.live() && (s.Email != "" && c.email == s.Email || c.id == s.UserIDs[connectortest.UserIDSystem]) {
			n++
		}
	}
	return n
}

// Redacted reports whether the customer id was redacted.
func (f *Fake) Redacted(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.find(id)
	return c != nil && c.redacted
}

// Block makes every redaction job naming the customer id fail
// validation with code (invalid_state: an open invoice, say).
func (f *Fake) Block(id, code string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blocked[id] = code
}

// JobStatuses lists the redaction jobs' statuses, oldest first.
func (f *Fake) JobStatuses() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, j := range f.jobs {
		out = append(out, j.status)
	}
	return out
}

func (c *customer) live() bool { return !c.deleted && !c.redacted }

func (c *customer) json() map[string]any {
	if c.deleted {
		return map[string]any{"id": c.id, "object": "customer", "deleted": true}
	}
	out := map[string]any{"id": c.id, "object": "customer", "email": c.email, "name": "Test Person", "livemode": false, "metadata": map[string]any{}}
	if c.redacted {
		out["email"], out["name"], out["redaction"] = "[redacted]", "[redacted]", map[string]any{"status": "redacted"}
	}
	return out
}

func (f *Fake) find(id string) *customer {
	for _, c := range f.customers {
		if c.id == id {
			return c
		}
	}
	return nil
}

func (f *Fake) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 10
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			Error(http.StatusBadRequest, "invalid_request_error", "parameter_invalid_integer", "Invalid limit")(w, r)
			return
		}
		limit = n
	}
	if p := f.PageSize.Get(); p > 0 {
		limit = min(limit, p)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var match []map[string]any
	after := q.Get("starting_after")
	for i := len(f.customers) - 1; i >= 0; i-- { // newest first
		c := f.customers[i]
		if after != "" {
			if c.id == after {
				after = ""
			}
			continue
		}
		if !c.deleted && (!q.Has("email") || !c.redacted && c.email == q.Get("email")) { // a redacted email reads [redacted]
			match = append(match, c.json())
		}
	}
	page := match[:min(limit, len(match))]
	fakevendor.JSON(w, http.StatusOK, map[string]any{"object": "list", "url": "/v1/customers", "has_more": len(match) > limit, "data": page})
}

func (f *Fake) retrieve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.find(r.PathValue("id")); c != nil {
		fakevendor.JSON(w, http.StatusOK, c.json())
		return
	}
	missing(w, r)
}

func (f *Fake) delete(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.find(r.PathValue("id"))
	switch {
	case c == nil || c.deleted:
		missing(w, r)
	case c.redacted:
		Error(http.StatusBadRequest, "invalid_request_error", "", "This customer has been redacted and cannot be modified.")(w, r)
	default:
		c.deleted = true
		fakevendor.JSON(w, http.StatusOK, c.json())
	}
}

func (j *job) json(objects bool) map[string]any {
	out := map[string]any{"id": j.id, "object": "privacy.redaction_job", "created": 1700000000, "livemode": false,
		"status": j.status, "validation_behavior": j.behavior, "objects": nil}
	if objects {
		out["objects"] = map[string]any{"customers": j.customers}
	}
	return out
}

// open reports whether the job still holds its customers.
func (j *job) open() bool {
	return !slices.Contains([]string{"canceling", "canceled", "succeeded"}, j.status)
}

func (f *Fake) createJob(w http.ResponseWriter, r *http.Request) {
	if r.ParseForm() != nil {
		Error(http.StatusBadRequest, "invalid_request_error", "", "Invalid form body")(w, r)
		return
	}
	ids, behavior := r.PostForm["objects[customers][]"], r.PostForm.Get("validation_behavior")
	if len(ids) == 0 || len(ids) > 10 || !slices.Contains([]string{"", "error", "fix"}, behavior) {
		Error(http.StatusBadRequest, "invalid_request_error", "parameter_invalid", "objects: between 1 and 10 ids; validation_behavior: error or fix")(w, r)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	j := &job{Job: fakevendor.NewJob(f.polls), status: "validating", behavior: cmp.Or(behavior, "error"), customers: ids}
	for _, id := range ids {
		if c := f.find(id); c == nil || c.deleted {
			missing(w, r)
			return
		}
		if code := f.blocked[id]; code != "" {
			j.errors = append(j.errors, code)
		}
		if slices.ContainsFunc(f.jobs, func(o *job) bool { return o.open() && slices.Contains(o.customers, id) }) {
			j.errors = append(j.errors, "locked_by_other_job")
		}
	}
	f.seq++
	j.id = "prj_fake" + strconv.Itoa(f.seq)
	f.jobs = append(f.jobs, j)
	fakevendor.JSON(w, http.StatusOK, j.json(false))
}

func (f *Fake) listJobs(w http.ResponseWriter, r *http.Request) {
	objects := slices.Contains(r.URL.Query()["expand[]"], "data.objects")
	f.mu.Lock()
	defer f.mu.Unlock()
	data := []map[string]any{}
	for i := len(f.jobs) - 1; i >= 0 && len(data) < 100; i-- {
		data = append(data, f.jobs[i].json(objects))
	}
	fakevendor.JSON(w, http.StatusOK, map[string]any{"object": "list", "url": "/v1/privacy/redaction_jobs", "has_more": len(f.jobs) > 100, "data": data})
}

// withJob finds the job of the path under the lock.
func (f *Fake) withJob(h func(http.ResponseWriter, *http.Request, *job)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		i := slices.IndexFunc(f.jobs, func(j *job) bool { return j.id == r.PathValue("id") })
		if i < 0 {
			missing(w, r)
			return
		}
		h(w, r, f.jobs[i])
	}
}

// getJob advances the job a poll: validating → ready (or failed), and,
// once run, redacting → succeeded, when the customers are redacted.
func (f *Fake) getJob(w http.ResponseWriter, _ *http.Request, j *job) {
	switch {
	case j.status == "validating" && j.Poll():
		j.status = "ready"
		if len(j.errors) > 0 {
			j.status = "failed"
		}
	case j.status == "redacting" && j.Poll():
		j.status = "succeeded"
		for _, id := range j.customers {
			if c := f.find(id); c != nil {
				c.redacted = true
			}
		}
	case j.status == "canceling":
		j.status = "canceled"
	}
	fakevendor.JSON(w, http.StatusOK, j.json(false))
}

func (f *Fake) runJob(w http.ResponseWriter, r *http.Request, j *job) {
	if j.status != "ready" {
		Error(http.StatusBadRequest, "invalid_request_error", "", "You can only run a redaction job in the ready status.")(w, r)
		return
	}
	j.status, j.Job = "redacting", fakevendor.NewJob(f.polls)
	fakevendor.JSON(w, http.StatusOK, j.json(false))
}

func (f *Fake) cancelJob(w http.ResponseWriter, r *http.Request, j *job) {
	if j.status != "ready" && j.status != "failed" {
		Error(http.StatusBadRequest, "invalid_request_error", "", "You can only cancel a redaction job in the ready or failed status.")(w, r)
		return
	}
	j.status = "canceling"
	fakevendor.JSON(w, http.StatusOK, j.json(false))
}

func (f *Fake) validationErrors(w http.ResponseWriter, _ *http.Request, j *job) {
	data := []map[string]any{}
	for i, code := range j.errors {
		data = append(data, map[string]any{"id": fmt.Sprintf("prjve_%d", i), "object": "privacy.redaction_job_validation_error", "code": code,
			"erroring_object": map[string]any{"id": strings.Join(j.customers, ","), "object_type": "customer"}, "message": "The object cannot be redacted."})
	}
	fakevendor.JSON(w, http.StatusOK, map[string]any{"object": "list", "has_more": false, "data": data})
}
