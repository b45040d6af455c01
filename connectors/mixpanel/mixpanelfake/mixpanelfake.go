// Package mixpanelfake is a local Mixpanel GDPR API (v3) for tests:
// deletion tasks as Mixpanel documents them, advancing over status polls,
// with its rate-limit answer and faults to inject.
//
//	f := mixpanelfake.Start(t, mixpanelfake.Options{})
//	f.Seed(connectors.Subject{UserIDs: map[string]string{"app": "user-1"}})
//	c := connectortest.Build(t, "mixpanel", "mixpanel", f.Config())
package mixpanelfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// Tokens a fake accepts until SetTokens.
const (
	DefaultProjectToken = "proj_token"
	DefaultToken        = "gdpr_token"
)

// Options tunes a fake.
type Options struct {
	// RateLimit, when > 0, refuses requests beyond this many per second
	// (burst Burst, default 1) as Mixpanel does: 429 naming no delay.
	// Mixpanel allows the GDPR API one request a second.
	RateLimit float64
	Burst     int
	// Polls is how many status polls a task stays unfinished (PENDING,
	// STAGING, STARTED, then STARTED again) before it ends: default 3;
	// negative: none.
	Polls int
}

// Fake is Mixpanel's GDPR API v3 as documented: POST
// /api/app/data-deletions/v3.0/?token=<project token> with a Bearer token
// and {"distinct_ids","compliance_type"}, answered in either documented
// shape; GET /api/app/data-deletions/v3.0/{id}?token= with results.status
// advancing PENDING → STAGING → STARTED → SUCCESS (NOT_FOUND when it held
// nothing) over polls.
type Fake struct {
	fakevendor.Controls

	mu             sync.Mutex
	project, token string
	polls          int
	users          map[string]int64 // distinct_id → records
	tasks          map[string]*fakeTask
	next           int
	listShape      bool   // answer a create with the guide's [{tracking_id, status}]
	final          string // a final status forced for every task
}

var _ connectortest.Vendor = (*Fake)(nil)

type fakeTask struct {
	ids        []string
	compliance string
	held       bool // some distinct_id had data when the task was filed
	polls      int
}

// Start starts a fake that stops when the test ends.
func Start(t testing.TB, opt Options) *Fake {
	t.Helper()
	srv := fakevendor.New(t)
	f := &Fake{Controls: srv.Controls(), project: DefaultProjectToken, token: DefaultToken,
		polls: fakevendor.Polls(opt.Polls, 3), users: map[string]int64{}, tasks: map[string]*fakeTask{}}
	if opt.RateLimit > 0 {
		srv.RateLimit(opt.RateLimit, max(opt.Burst, 1), TooMany)
	}
	srv.RequireAuth(func(r *http.Request) bool {
		_, token := f.Tokens()
		return r.Header.Get("Authorization") == "Bearer "+token
	}, func(w http.ResponseWriter, r *http.Request) {
		fakevendor.JSON(w, http.StatusUnauthorized, map[string]string{"status": "error", "error": "Unauthorized"})
	})
	srv.Handle("POST /api/app/data-deletions/v3.0/{$}", f.create)
	srv.Handle("GET /api/app/data-deletions/v3.0/{id}", f.status)
	return f
}

// TooMany is Mixpanel's 429; it names no delay.
func TooMany(w http.ResponseWriter, r *http.Request) {
	fakevendor.JSON(w, http.StatusTooManyRequests, map[string]string{"status": "error", "error": "Too many requests"})
}

func (f *Fake) projectOK(w http.ResponseWriter, r *http.Request) bool {
	if project, _ := f.Tokens(); r.URL.Query().Get("token") != project {
		fakevendor.JSON(w, http.StatusBadRequest, map[string]string{"status": "error", "error": "invalid project token"})
		return false
	}
	return true
}

func (f *Fake) create(w http.ResponseWriter, r *http.Request) {
	if !f.projectOK(w, r) {
		return
	}
	var body struct {
		DistinctIDs    []string `json:"distinct_ids"`
		ComplianceType string   `json:"compliance_type"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || len(body.DistinctIDs) == 0 || len(body.DistinctIDs) > 1999 ||
		(body.ComplianceType != "" && body.ComplianceType != "GDPR" && body.ComplianceType != "CCPA") {
		fakevendor.JSON(w, http.StatusBadRequest, map[string]string{"status": "error", "error": "invalid request"})
		return
	}
	f.mu.Lock()
	f.next++
	id := fmt.Sprintf("t-%04d", f.next)
	task := &fakeTask{ids: body.DistinctIDs, compliance: body.ComplianceType}
	for _, d := range body.DistinctIDs {
		task.held = task.held || f.users[d] > 0
	}
	f.tasks[id] = task
	list := f.listShape
	f.mu.Unlock()
	if list {
		fakevendor.JSON(w, http.StatusOK, map[string]any{"status": "ok", "results": []map[string]string{{"tracking_id": id, "status": "PENDING"}}})
		return
	}
	fakevendor.JSON(w, http.StatusCreated, map[string]any{"status": "ok", "results": map[string]string{"task_id": id}})
}

func (f *Fake) status(w http.ResponseWriter, r *http.Request) {
	if !f.projectOK(w, r) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	task, ok := f.tasks[r.PathValue("id")]
	if !ok {
		fakevendor.JSON(w, http.StatusNotFound, map[string]string{"status": "error", "error": "task not found"})
		return
	}
	task.polls++
	running := []string{"PENDING", "STAGING", "STARTED"}
	st := "SUCCESS"
	switch {
	case task.polls <= f.polls:
		st = running[min(task.polls, len(running))-1]
	case f.final != "":
		st = f.final
	case !task.held:
		st = "NOT_FOUND"
	}
	if st == "SUCCESS" {
		for _, d := range task.ids {
			delete(f.users, d)
		}
	}
	fakevendor.JSON(w, http.StatusOK, map[string]any{"status": "ok", "results": map[string]string{"status": st, "result": ""}})
}

// Tokens are the project token and the GDPR API token the fake accepts.
func (f *Fake) Tokens() (project, token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.project, f.token
}

// SetTokens changes the project token and the GDPR API token the fake
// accepts (another project).
func (f *Fake) SetTokens(project, token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.project, f.token = project, token
}

// Config is a mixpanel connector config against f, polling every 2ms. It
// reads the distinct_id from UserIDs["app"] (connectortest.UserIDSystem).
func (f *Fake) Config() string {
	project, token := f.Tokens()
	return fmt.Sprintf("project_token: %s\ntoken: %s\nbase_url: %s\npoll_interval: 2ms\nuser_id_system: %s\n",
		project, token, f.URL(), connectortest.UserIDSystem)
}

// ConfigWith is Config with top-level keys set (fakevendor.MergeYAML).
func (f *Fake) ConfigWith(lines ...string) string { return fakevendor.MergeYAML(f.Config(), lines...) }

// Seed gives Mixpanel events and a profile for the subject's
// UserIDs["app"] as distinct_id (it needs one).
func (f *Fake) Seed(s connectors.Subject) int64 {
	id := s.UserIDs[connectortest.UserIDSystem]
	if id == "" {
		panic("mixpanelfake: Seed needs a subject with UserIDs[\"" + connectortest.UserIDSystem + "\"]")
	}
	f.AddUser(id)
	return 1
}

// Count is what Mixpanel holds about the subject's UserIDs["app"].
func (f *Fake) Count(s connectors.Subject) int64 {
	return f.CountUser(s.UserIDs[connectortest.UserIDSystem])
}

// AddUser gives Mixpanel data about distinctID.
func (f *Fake) AddUser(distinctID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[distinctID] = 1
}

// CountUser is how many records (0 or 1) Mixpanel holds for distinctID.
func (f *Fake) CountUser(distinctID string) int64 {
	if distinctID == "" {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.users[distinctID]
}

// AnswerCreateAsList makes task creation answer in the shape of
// Mixpanel's guide, results: [{tracking_id, status}], instead of the
// OpenAPI's {task_id}.
func (f *Fake) AnswerCreateAsList() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listShape = true
}

// EndTasksAs forces the final status of every task (FAILURE, REVOKED, …).
func (f *Fake) EndTasksAs(status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.final = status
}
