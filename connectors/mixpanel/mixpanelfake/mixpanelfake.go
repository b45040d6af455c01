// Package mixpanelfake is a local Mixpanel GDPR API (v3) for tests:
// deletion tasks as Mixpanel documents them, advancing over status polls,
// the Query API's profile query (/api/query/engage) with a service
// account, its rate-limit answer and faults to inject.
//
//	f := mixpanelfake.Start(t, mixpanelfake.Options{})
//	f.Seed(connectors.Subject{UserIDs: map[string]string{"app": "user-1"}})
//	c := connectortest.Build(t, "mixpanel", "mixpanel", f.Config())
package mixpanelfake

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// Tokens a fake accepts until SetTokens, and its Query API service
// account and project id.
const (
	DefaultProjectToken = "proj_token"
	DefaultToken        = "gdpr_token"
	ServiceAccount      = "lethe.test.mp-service-account"
	ServiceSecret       = "sa_secret"
	ProjectID           = 4242
	// RequestingUser is the project admin a task names as its requester
	// (personal data the connector must never repeat).
	RequestingUser = "admin@example.com"
	// MaxDistinctIDs is the most distinct_ids one deletion task takes
	// without group keys (Mixpanel's GDPR API reference).
	MaxDistinctIDs = 1999
)

// Options tunes a fake: its rate limit answers as Mixpanel does (429
// naming no delay; Mixpanel allows the GDPR API one request a second),
// and a task stays unfinished (PENDING, STAGING, STARTED, then STARTED
// again) for Polls status polls (default 3) before it ends.
type Options = fakevendor.Options

// Fake is Mixpanel's GDPR API v3 as documented: POST
// /api/app/data-deletions/v3.0/?token=<project token> with a Bearer token
// and {"distinct_ids","compliance_type"} (at most 1,999 distinct_ids, fewer
// with group keys: SetGroupKeys; a 400 past that), answered in either
// documented shape; GET /api/app/data-deletions/v3.0/{id}?token= with the
// OpenAPI file's results {tracking_id, status, requesting_user,
// compliance_type, project_id, date_requested, distinct_ids}, status
// advancing PENDING → STAGING → STARTED → SUCCESS over polls. One status
// covers the whole task: SUCCESS whether or not its distinct_ids held
// anything (⚠ Mixpanel documents no other answer for ids it never saw;
// NOT_FOUND it defines as "the deletion task cannot be found", which
// EndTasksAs can force). And the Query API's POST
// /api/query/engage?project_id= (service account, HTTP Basic), a form with
// where (only properties["$email"] == "<literal>" is understood; a literal
// holding a backslash is refused, Mixpanel documents no escapes),
// output_properties, session_id and page, answering {page, page_size,
// session_id, status, total, results:[{$distinct_id, $properties}]}.
// It is a connectortest.FaultyVendor, as the connector's TestVendor
// takes it.
type Fake struct {
	fakevendor.Controls

	mu             sync.Mutex
	project, token *fakevendor.Key
	polls          int
	users          fakevendor.IDs    // the distinct_ids with events and a profile
	emails         map[string]string // distinct_id → the profile's $email
	pageSize       *fakevendor.Setting[int]
	tasks          map[string]*fakeTask
	next           int
	listShape      fakevendor.Setting[bool]   // answer a create with the guide's [{tracking_id, status}]
	final          fakevendor.Setting[string] // a final status forced for every task
	groupKeys      fakevendor.Setting[int]    // Group Analytics group keys: fewer distinct_ids a task
	saSecret       *fakevendor.Key
}

type fakeTask struct {
	fakevendor.Job
	ids        []string
	compliance string
	requested  string
	held       bool // some distinct_id had data when the task was filed
}

// Start starts a fake that stops when the test ends.
func Start(t testing.TB, opt Options) *Fake {
	t.Helper()
	f := &Fake{project: fakevendor.NewKey(DefaultProjectToken), token: fakevendor.NewKey(DefaultToken), saSecret: fakevendor.NewKey(ServiceSecret),
		emails: map[string]string{}, pageSize: fakevendor.NewSetting(1000), tasks: map[string]*fakeTask{}}
	gdpr := fakevendor.BearerAuth(f.token, nil)
	query := fakevendor.BasicAuth(fakevendor.NewKey(ServiceAccount), f.saSecret, nil)
	srv := fakevendor.Start(t, opt, fakevendor.Vendor{TooMany: TooMany, Polls: 3, Auth: fakevendor.Auth{
		// The Query API takes the service account; the GDPR API the token.
		OK: func(r *http.Request) bool {
			if r.URL.Path == "/api/query/engage" {
				return query.OK(r)
			}
			return gdpr.OK(r)
		},
		Refuse: Refused,
		Keys:   []*fakevendor.Key{f.project, f.token, f.saSecret},
	}})
	f.Controls, f.polls = srv.Controls(), srv.JobPolls
	srv.Handle("POST /api/app/data-deletions/v3.0/{$}", f.create)
	srv.Handle("GET /api/app/data-deletions/v3.0/{id}", f.status)
	srv.Handle("POST /api/query/engage", f.engage)
	return f
}

// Refused is Mixpanel's answer to credentials it does not accept.
func Refused(w http.ResponseWriter, _ *http.Request) {
	fakevendor.JSON(w, http.StatusUnauthorized, map[string]string{"status": "error", "error": "Unauthorized"})
}

// SetServiceSecret changes the service account secret the fake accepts
// (a rotated secret).
func (f *Fake) SetServiceSecret(secret string) { f.saSecret.Set(secret) }

// SetPageSize changes how many profiles a page of the profile query holds
// (Mixpanel: 1,000).
func (f *Fake) SetPageSize(n int) { f.pageSize.Set(n) }

// emailWhere reads the one where expression the fake understands:
// properties["$email"] (or user["$email"]) == "<literal>".
func emailWhere(where string) (email string, ok bool) {
	where = strings.TrimSpace(where)
	for _, prefix := range []string{`properties["$email"]`, `user["$email"]`} {
		rest, found := strings.CutPrefix(where, prefix)
		if !found {
			continue
		}
		rest, found = strings.CutPrefix(strings.TrimSpace(rest), "==")
		if !found {
			return "", false
		}
		rest = strings.TrimSpace(rest)
		if len(rest) < 2 || rest[0] != '"' || rest[len(rest)-1] != '"' {
			return "", false
		}
		lit := rest[1 : len(rest)-1]
		if strings.ContainsAny(lit, `"\`) {
			return "", false
		}
		return lit, true
	}
	return "", false
}

func (f *Fake) engage(w http.ResponseWriter, r *http.Request) {
	bad := func(msg string) {
		fakevendor.JSON(w, http.StatusBadRequest, map[string]string{"status": "error", "error": msg})
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		bad("request body must be form encoded")
		return
	}
	switch pid := r.URL.Query().Get("project_id"); pid {
	case "":
		bad("project_id is required when authenticating with a service account")
		return
	case strconv.Itoa(ProjectID):
	default:
		fakevendor.JSON(w, http.StatusForbidden, map[string]string{"status": "error", "error": "service account has no access to this project"})
		return
	}
	if err := r.ParseForm(); err != nil {
		bad("unreadable form")
		return
	}
	email, ok := emailWhere(r.PostForm.Get("where"))
	if !ok {
		bad("invalid where expression")
		return
	}
	var props []string
	if v := r.PostForm.Get("output_properties"); v != "" && json.Unmarshal([]byte(v), &props) != nil {
		bad("output_properties must be a JSON array")
		return
	}
	page := 0
	if v := r.PostForm.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			bad("page must be a number")
			return
		}
		page = n
	}
	if page > 0 && r.PostForm.Get("session_id") != "sess-"+email {
		bad("page above 0 requires the session_id of the first page")
		return
	}
	f.mu.Lock()
	var ids []string
	for id, e := range f.emails {
		if e == email { // Mixpanel compares strings exactly
			ids = append(ids, id)
		}
	}
	size := f.pageSize.Get()
	f.mu.Unlock()
	slices.Sort(ids)
	results := []map[string]any{}
	for _, id := range ids[min(page*size, len(ids)):min((page+1)*size, len(ids))] {
		p := map[string]any{"$email": email, "$first_name": "Ada", "$last_seen": "2026-02-27T10:00:00"}
		if props != nil {
			for k := range p {
				if !slices.Contains(props, k) {
					delete(p, k)
				}
			}
		}
		results = append(results, map[string]any{"$distinct_id": id, "$properties": p})
	}
	fakevendor.JSON(w, http.StatusOK, map[string]any{"page": page, "page_size": size, "session_id": "sess-" + email,
		"status": "ok", "total": len(results), "results": results})
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

// Limit is the most distinct_ids one deletion task takes: 1,999, or
// floor(2000 / (group keys + 1)) in a project with Group Analytics.
func (f *Fake) Limit() int { return min(MaxDistinctIDs, 2000/(f.groupKeys.Get()+1)) }

// SetGroupKeys gives the project n Group Analytics group keys, which
// lower the distinct_ids a deletion task takes (Limit).
func (f *Fake) SetGroupKeys(n int) { f.groupKeys.Set(n) }

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
	if err := dec.Decode(&body); err != nil || len(body.DistinctIDs) == 0 ||
		(body.ComplianceType != "" && body.ComplianceType != "GDPR" && body.ComplianceType != "CCPA") {
		fakevendor.JSON(w, http.StatusBadRequest, map[string]string{"status": "error", "error": "invalid request"})
		return
	}
	if len(body.DistinctIDs) > f.Limit() {
		// Mixpanel documents the limit, not its answer past it.
		fakevendor.JSON(w, http.StatusBadRequest, map[string]string{"status": "error", "error": fmt.Sprintf("at most %d distinct_ids", f.Limit())})
		return
	}
	compliance := body.ComplianceType
	if compliance == "" {
		compliance = "GDPR"
	}
	f.mu.Lock()
	f.next++
	id := fmt.Sprintf("t-%04d", f.next)
	task := &fakeTask{Job: fakevendor.NewJob(f.polls), ids: body.DistinctIDs, compliance: compliance,
		requested: fmt.Sprintf("2026-03-01T10:%02d:00", f.next%60)}
	for _, d := range body.DistinctIDs {
		task.held = task.held || f.users.Has(d)
	}
	f.tasks[id] = task
	list := f.listShape.Get()
	f.mu.Unlock()
	if list {
		fakevendor.JSON(w, http.StatusOK, map[string]any{"status": "ok", "results": []map[string]any{{
			"status": "PENDING", "disclosure_type": "DATA", "date_requested": task.requested, "tracking_id": id,
			"project_id": ProjectID, "compliance_type": strings.ToLower(compliance), "destination_url": nil,
			"requesting_user": RequestingUser, "distinct_id_count": len(body.DistinctIDs),
		}}})
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
	id := r.PathValue("id")
	task, ok := f.tasks[id]
	if !ok {
		fakevendor.JSON(w, http.StatusNotFound, map[string]string{"status": "error", "error": "task not found"})
		return
	}
	st := task.Stage("PENDING", "STAGING", "STARTED")
	task.Poll()
	switch {
	case !task.Ended:
	case f.final.Get() != "":
		st = f.final.Get()
	default:
		st = "SUCCESS"
	}
	if st == "SUCCESS" {
		for _, d := range task.ids {
			f.users.Remove(d)
			delete(f.emails, d)
		}
	}
	fakevendor.JSON(w, http.StatusOK, map[string]any{"status": "ok", "results": map[string]any{
		"tracking_id": id, "status": st, "requesting_user": RequestingUser, "compliance_type": task.compliance,
		"project_id": ProjectID, "date_requested": task.requested, "distinct_ids": task.ids,
	}})
}

// TaskIDs are the distinct_ids of every deletion task filed, in order.
func (f *Fake) TaskIDs() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([][]string, f.next)
	for i := range out {
		if t := f.tasks[fmt.Sprintf("t-%04d", i+1)]; t != nil {
			out[i] = slices.Clone(t.ids)
		}
	}
	return out
}

// Tokens are the project token and the GDPR API token the fake accepts.
func (f *Fake) Tokens() (project, token string) { return f.project.Get(), f.token.Get() }

// SetTokens changes the project token and the GDPR API token the fake
// accepts (another project).
func (f *Fake) SetTokens(project, token string) { f.project.Set(project); f.token.Set(token) }

// Config is a mixpanel connector config against f, polling every 2ms. It
// reads the distinct_id from UserIDs["app"] (fakevendor.UserIDSystem)
// and finds distinct_ids by email with the fake's service account.
func (f *Fake) Config() string {
	project, token := f.Tokens()
	return fmt.Sprintf("project_token: %s\ntoken: %s\nbase_url: %s\npoll_interval: 2ms\nuser_id_system: %s\n"+
		"resolve_by_email: true\nquery_api:\n  project_id: %d\n  username: %s\n  secret: %s\n",
		project, token, f.URL(), fakevendor.UserIDSystem, ProjectID, ServiceAccount, f.saSecret.Get())
}

// ConfigWith is Config with top-level keys set (fakevendor.MergeYAML);
// "resolve_by_email:" and "query_api:" leave the look-up out.
func (f *Fake) ConfigWith(lines ...string) string { return fakevendor.MergeYAML(f.Config(), lines...) }

// Seed gives Mixpanel events and a profile for the subject's
// UserIDs["app"] as distinct_id (it needs one), the profile's $email
// being the subject's email when it has one.
func (f *Fake) Seed(s connectors.Subject) int64 {
	id := fakevendor.NeedUserID("mixpanelfake: Seed", s)
	f.AddUser(id)
	if s.Email != "" {
		f.SetEmail(id, s.Email)
	}
	return 1
}

// CannotTellAbsent is why Mixpanel cannot say it held nobody: a deletion
// task has one status, nothing said per distinct_id, and there is no
// lookup by distinct_id.
func (f *Fake) CannotTellAbsent() string {
	return "Mixpanel reports one status a deletion task, nothing per distinct_id, and has no lookup by distinct_id"
}

// NoRecoverableState is why Mixpanel keeps nothing a deleted user can be
// restored from.
func (f *Fake) NoRecoverableState() string {
	return "Mixpanel's deletion API deletes a distinct_id's events and profile permanently; it documents no way to restore them"
}

// SetEmail sets the $email property of distinctID's profile (AddUser it
// first). Several profiles may hold one email.
func (f *Fake) SetEmail(distinctID, email string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.emails[distinctID] = email
}

// Count is what Mixpanel holds about the subject's UserIDs["app"].
func (f *Fake) Count(s connectors.Subject) int64 {
	return f.CountUser(s.UserIDs[fakevendor.UserIDSystem])
}

// AddUser gives Mixpanel data about distinctID.
func (f *Fake) AddUser(distinctID string) { f.users.Add(distinctID) }

// CountUser is how many records (0 or 1) Mixpanel holds for distinctID.
func (f *Fake) CountUser(distinctID string) int64 { return f.users.Count(distinctID) }

// AnswerCreateAsList makes task creation answer in the shape of
// Mixpanel's guide, results: [{tracking_id, status}], instead of the
// OpenAPI's {task_id}.
func (f *Fake) AnswerCreateAsList() { f.listShape.Set(true) }

// EndTasksAs forces the final status of every task (FAILURE, REVOKED, …).
func (f *Fake) EndTasksAs(status string) { f.final.Set(status) }
