// Package salesforcefake is a local Salesforce org for tests: SOQL
// queries and Bulk API 2.0 ingest jobs as Salesforce documents them, the
// org's API allocation and faults to inject.
//
//	f := salesforcefake.Start(t, salesforcefake.Options{})
//	f.Seed(connectors.Subject{Email: "ada@example.com"})
//	c := connectortest.Build(t, "salesforce", "sfdc", f.Config())
package salesforcefake

import (
	"bytes"
	"encoding/csv"
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
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// DefaultToken is the access token a fake accepts until SetToken.
const DefaultToken = "00D5g000004ABCD!AQ4AQtest-token"

// Options tunes a fake.
type Options struct {
	// RateLimit, when > 0, refuses requests beyond this many per second
	// (burst Burst, default 1) as Salesforce refuses requests over the
	// org's API allocation: 403 REQUEST_LIMIT_EXCEEDED (Salesforce sends
	// no 429), which the connector retries after an hour.
	RateLimit float64
	Burst     int
	// Polls is how many job status reads answer InProgress before a
	// closed ingest job runs: default 1; negative: none.
	Polls int
}

// Fake follows the REST query and Bulk API 2.0 ingest contract
// (docs/connectors/salesforce.md, VENDOR_APIS.md): Bearer tokens refused
// with 401 INVALID_SESSION_ID; SOQL `SELECT Id FROM <object> WHERE Email =
// '<literal>'` parsed as Salesforce would (a query it cannot parse is 400
// MALFORMED_QUERY), with paging through nextRecordsUrl; ingest jobs that go
// Open → UploadComplete → InProgress → JobComplete over polls, where
// hardDelete removes records and delete only moves them to the Recycle
// Bin; failed results as CSV; the rolling daily API allocation answered
// with 403 REQUEST_LIMIT_EXCEEDED; unknown API versions 404 NOT_FOUND.
type Fake struct {
	fakevendor.Controls
	srv *fakevendor.Server

	mu       sync.Mutex
	token    string
	records  map[string]*sfRecord // id → record
	nextID   int
	jobs     map[string]*sfJob
	nextJob  int
	cursors  map[string][]string // query locator → remaining ids
	pageSize int
	// stepsToComplete is how many status reads a closed job takes to
	// reach JobComplete (the first moves it to InProgress).
	stepsToComplete int
	// endState forces closed jobs to end Failed or Aborted.
	endState string
	// recordError makes each record of a job fail with this sf__Error.
	recordError string
	// noHardDelete: the user lacks the Bulk API Hard Delete permission.
	noHardDelete bool
}

var _ connectortest.Vendor = (*Fake)(nil)

type sfRecord struct {
	object, email string
	recycled      bool // in the Recycle Bin: IsDeleted, not returned by query
}

type sfJob struct {
	object, operation, state string
	ids                      []string
	reads                    int
	processed, failed        int
	failures                 [][]string
}

// versions are the API versions the org serves.
func versions() []string { return []string{"v58.0", "v59.0", "v60.0", "v61.0", "v62.0"} }

// Start starts a fake that stops when the test ends.
func Start(t testing.TB, opt Options) *Fake {
	t.Helper()
	srv := fakevendor.New(t)
	f := &Fake{Controls: srv.Controls(), srv: srv, token: DefaultToken, records: map[string]*sfRecord{}, nextID: 1,
		jobs: map[string]*sfJob{}, cursors: map[string][]string{}, pageSize: 2000,
		stepsToComplete: fakevendor.Polls(opt.Polls, 1) + 1}
	srv.RequireAuth(func(r *http.Request) bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return r.Header.Get("Authorization") == "Bearer "+f.token
	}, Unauthorized)
	if opt.RateLimit > 0 {
		srv.RateLimit(opt.RateLimit, max(opt.Burst, 1), LimitExceeded)
	}
	srv.Handle("GET /services/data/{version}/query", f.versioned(f.query))
	srv.Handle("GET /services/data/{version}/query/{locator}", f.versioned(f.queryMore))
	srv.Handle("POST /services/data/{version}/jobs/ingest", f.versioned(f.createJob))
	srv.Handle("PUT /services/data/{version}/jobs/ingest/{jobId}/batches", f.versioned(f.upload))
	srv.Handle("PATCH /services/data/{version}/jobs/ingest/{jobId}", f.versioned(f.patchJob))
	srv.Handle("GET /services/data/{version}/jobs/ingest/{jobId}", f.versioned(f.getJob))
	srv.Handle("GET /services/data/{version}/jobs/ingest/{jobId}/failedResults/{$}", f.versioned(f.failedResults))
	srv.Handle("DELETE /services/data/{version}/sobjects/{object}/{id}", f.versioned(f.softDelete))
	return f
}

// Token is the token the fake accepts.
func (f *Fake) Token() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.token
}

// SetToken changes the token the fake accepts (the old one expired).
func (f *Fake) SetToken(token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.token = token
}

// DailyAllocation models the org's rolling 24-hour API request
// allocation: n requests, then 403 REQUEST_LIMIT_EXCEEDED (0: used up).
// It replaces Options.RateLimit.
func (f *Fake) DailyAllocation(n int) {
	f.srv.RateLimit(float64(n)/86400, n, LimitExceeded)
}

// Config is a salesforce connector config against f, erasing Contacts and
// Leads found by Email, polling every 5ms.
func (f *Fake) Config() string {
	return fmt.Sprintf("base_url: %s\naccess_token: %s\npoll_interval: 5ms\nobjects: [Contact, Lead]\n", f.URL(), f.Token())
}

// ConfigWith is Config with top-level keys set (fakevendor.MergeYAML).
func (f *Fake) ConfigWith(lines ...string) string { return fakevendor.MergeYAML(f.Config(), lines...) }

// Seed stores a Contact and a Lead with the subject's email (it needs one).
func (f *Fake) Seed(s connectors.Subject) int64 {
	if s.Email == "" {
		panic("salesforcefake: Seed needs a subject with an email")
	}
	f.Add("Contact", s.Email)
	f.Add("Lead", s.Email)
	return 2
}

// Count is how many records hold the subject's email, those in the
// Recycle Bin too: they are still there.
func (f *Fake) Count(s connectors.Subject) int64 { return f.CountEmail(s.Email) }

// WriteErrors writes Salesforce's error body: a list of one error.
func WriteErrors(w http.ResponseWriter, status int, code, message string) {
	fakevendor.JSON(w, status, []map[string]any{{"message": message, "errorCode": code}})
}

// Unauthorized is Salesforce's 401 for an expired or unknown token.
func Unauthorized(w http.ResponseWriter, r *http.Request) {
	WriteErrors(w, 401, "INVALID_SESSION_ID", "Session expired or invalid")
}

// LimitExceeded is Salesforce's answer once the org's API allocation is
// used up: 403 REQUEST_LIMIT_EXCEEDED, not 429.
func LimitExceeded(w http.ResponseWriter, r *http.Request) {
	WriteErrors(w, 403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
}

// Unavailable is Salesforce's 503.
func Unavailable(w http.ResponseWriter, r *http.Request) {
	WriteErrors(w, 503, "SERVER_UNAVAILABLE", "Server temporarily unavailable")
}

func (f *Fake) versioned(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !slices.Contains(versions(), r.PathValue("version")) {
			WriteErrors(w, 404, "NOT_FOUND", "The requested resource does not exist")
			return
		}
		h(w, r)
	}
}

// Add stores a record of object (Contact or Lead) and returns its id
// (003… for Contacts, 00Q… for Leads, as Salesforce's key prefixes).
func (f *Fake) Add(object, email string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	prefix := map[string]string{"Contact": "003", "Lead": "00Q"}[object]
	id := fmt.Sprintf("%s5g00%08dAAA", prefix, f.nextID)
	f.nextID++
	f.records[id] = &sfRecord{object: object, email: email}
	return id
}

// CountEmail counts the records with email, those in the Recycle Bin too.
func (f *Fake) CountEmail(email string) int64 {
	if email == "" {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for _, r := range f.records {
		if strings.EqualFold(r.email, email) {
			n++
		}
	}
	return n
}

// JobState is the state of ingest job id ("" when there is none).
func (f *Fake) JobState(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if j, ok := f.jobs[id]; ok {
		return j.state
	}
	return ""
}

// SetPageSize caps how many records a query page holds (default 2,000).
func (f *Fake) SetPageSize(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pageSize = n
}

// EndJobsAs makes closed jobs end in state (Failed or Aborted) instead of
// running; "" restores normal runs.
func (f *Fake) EndJobsAs(state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.endState = state
}

// FailRecords makes every record of a job fail with the sf__Error code
// (such as DELETE_FAILED or UNABLE_TO_LOCK_ROW); "" restores success.
func (f *Fake) FailRecords(code string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recordError = code
}

// DenyHardDelete takes the Bulk API Hard Delete permission away: hardDelete
// jobs are refused.
func (f *Fake) DenyHardDelete() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noHardDelete = true
}

// ParseSOQL understands exactly SELECT Id FROM <object> WHERE Email =
// '<literal>', with SOQL's string escapes.
func ParseSOQL(q string) (object, email string, ok bool) {
	rest, ok := strings.CutPrefix(q, "SELECT Id FROM ")
	if !ok {
		return "", "", false
	}
	object, rest, ok = strings.Cut(rest, " WHERE Email = '")
	if !ok || strings.ContainsAny(object, " '") {
		return "", "", false
	}
	var b strings.Builder
	for i := 0; i < len(rest); i++ {
		switch c := rest[i]; c {
		case '\\':
			if i+1 == len(rest) {
				return "", "", false
			}
			i++
			esc, known := map[byte]string{'\\': `\`, '\'': `'`, '"': `"`, 'n': "\n", 'r': "\r", 't': "\t", 'b': "\b", 'f': "\f"}[rest[i]]
			if !known {
				return "", "", false // e.g. \_ and \% are for LIKE only
			}
			b.WriteString(esc)
		case '\'':
			return object, b.String(), i == len(rest)-1 // the literal must end the query
		default:
			b.WriteByte(c)
		}
	}
	return "", "", false
}

func (f *Fake) query(w http.ResponseWriter, r *http.Request) {
	object, email, ok := ParseSOQL(r.URL.Query().Get("q"))
	if !ok {
		// Salesforce's message quotes the query, and so the email.
		WriteErrors(w, 400, "MALFORMED_QUERY", "unexpected token in: "+r.URL.Query().Get("q"))
		return
	}
	if object != "Contact" && object != "Lead" {
		WriteErrors(w, 400, "INVALID_TYPE", "sObject type '"+object+"' is not supported.")
		return
	}
	f.mu.Lock()
	var ids []string
	for id, rec := range f.records {
		if rec.object == object && !rec.recycled && strings.EqualFold(rec.email, email) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	f.mu.Unlock()
	f.page(w, r, object, ids, len(ids))
}

func (f *Fake) queryMore(w http.ResponseWriter, r *http.Request) {
	loc := r.PathValue("locator")
	f.mu.Lock()
	ids, ok := f.cursors[loc]
	delete(f.cursors, loc)
	f.mu.Unlock()
	if !ok {
		WriteErrors(w, 400, "INVALID_QUERY_LOCATOR", "invalid query locator")
		return
	}
	object, _, _ := strings.Cut(loc, "-")
	total, _ := strconv.Atoi(strings.Split(loc, "-")[1])
	f.page(w, r, object, ids, total)
}

// page answers one page of ids, keeping the rest behind a query locator.
func (f *Fake) page(w http.ResponseWriter, r *http.Request, object string, ids []string, total int) {
	f.mu.Lock()
	size := f.pageSize
	body := map[string]any{"totalSize": total, "done": true}
	if len(ids) > size {
		loc := fmt.Sprintf("%s-%d-%d", object, total, f.nextID)
		f.nextID++
		f.cursors[loc] = ids[size:]
		ids = ids[:size]
		body["done"] = false
		body["nextRecordsUrl"] = "/services/data/" + r.PathValue("version") + "/query/" + loc
	}
	f.mu.Unlock()
	records := make([]map[string]any, len(ids))
	for i, id := range ids {
		records[i] = map[string]any{
			"attributes": map[string]string{"type": object, "url": "/services/data/" + r.PathValue("version") + "/sobjects/" + object + "/" + id},
			"Id":         id,
		}
	}
	body["records"] = records
	fakevendor.JSON(w, 200, body)
}

func (f *Fake) jobJSON(id string, j *sfJob, version string) map[string]any {
	return map[string]any{
		"id": id, "operation": j.operation, "object": j.object, "createdById": "0055g00000AAAAAAAA",
		"createdDate": time.Now().UTC().Format("2006-01-02T15:04:05.000+0000"), "state": j.state,
		"concurrencyMode": "Parallel", "contentType": "CSV", "apiVersion": version[1:],
		"contentUrl": "services/data/" + version + "/jobs/ingest/" + id + "/batches", "lineEnding": "LF",
		"columnDelimiter": "COMMA", "jobType": "V2Ingest",
		"numberRecordsProcessed": j.processed, "numberRecordsFailed": j.failed,
	}
}

func (f *Fake) createJob(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		WriteErrors(w, 415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json")
		return
	}
	var body struct {
		Object      string `json:"object"`
		Operation   string `json:"operation"`
		ContentType string `json:"contentType"`
		LineEnding  string `json:"lineEnding"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		WriteErrors(w, 400, "JSON_PARSER_ERROR", "cannot parse the request body")
		return
	}
	switch {
	case body.Object != "Contact" && body.Object != "Lead":
		WriteErrors(w, 400, "INVALIDJOB", "InvalidJob : Unable to find object: "+body.Object)
		return
	case !slices.Contains([]string{"insert", "update", "upsert", "delete", "hardDelete"}, body.Operation):
		WriteErrors(w, 400, "INVALIDJOB", "InvalidJob : Invalid operation")
		return
	case body.ContentType != "CSV" || (body.LineEnding != "LF" && body.LineEnding != ""):
		WriteErrors(w, 400, "INVALIDJOB", "InvalidJob : unsupported content type or line ending")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if body.Operation == "hardDelete" && f.noHardDelete {
		// ⚠ The exact code is not documented; Salesforce refuses the job.
		WriteErrors(w, 400, "INVALIDJOB", "InvalidJob : hardDelete requires the Bulk API Hard Delete permission")
		return
	}
	id := fmt.Sprintf("7505g00000%08d", f.nextJob)
	f.nextJob++
	j := &sfJob{object: body.Object, operation: body.Operation, state: "Open"}
	f.jobs[id] = j
	fakevendor.JSON(w, 200, f.jobJSON(id, j, r.PathValue("version")))
}

func (f *Fake) upload(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Content-Type") != "text/csv" {
		WriteErrors(w, 400, "INVALIDCONTENTTYPE", "Content-Type must be text/csv")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[r.PathValue("jobId")]
	if !ok {
		WriteErrors(w, 404, "NOT_FOUND", "The requested resource does not exist")
		return
	}
	if j.state != "Open" {
		WriteErrors(w, 409, "INVALIDJOBSTATE", "Job is not open for uploads")
		return
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(r.Body)
	if bytes.Contains(buf.Bytes(), []byte("\r")) {
		WriteErrors(w, 400, "INVALIDJOB", "line ending CRLF does not match LF")
		return
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(rows) == 0 || len(rows[0]) != 1 || rows[0][0] != "Id" {
		WriteErrors(w, 400, "INVALIDJOB", "the CSV must have one column, Id")
		return
	}
	for _, row := range rows[1:] {
		j.ids = append(j.ids, row[0])
	}
	w.WriteHeader(http.StatusCreated)
}

func (f *Fake) patchJob(w http.ResponseWriter, r *http.Request) {
	var body struct {
		State string `json:"state"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		WriteErrors(w, 400, "JSON_PARSER_ERROR", "cannot parse the request body")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id := r.PathValue("jobId")
	j, ok := f.jobs[id]
	if !ok {
		WriteErrors(w, 404, "NOT_FOUND", "The requested resource does not exist")
		return
	}
	switch {
	case body.State == "UploadComplete" && j.state == "Open":
	case body.State == "Aborted" && (j.state == "Open" || j.state == "UploadComplete"):
	default:
		WriteErrors(w, 409, "INVALIDJOBSTATE", "cannot move the job from "+j.state+" to "+body.State)
		return
	}
	j.state = body.State
	fakevendor.JSON(w, 200, f.jobJSON(id, j, r.PathValue("version")))
}

// getJob reports a job's state, advancing a closed job one step per read.
func (f *Fake) getJob(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := r.PathValue("jobId")
	j, ok := f.jobs[id]
	if !ok {
		WriteErrors(w, 404, "NOT_FOUND", "The requested resource does not exist")
		return
	}
	if j.state == "UploadComplete" || j.state == "InProgress" {
		j.reads++
		j.state = "InProgress"
		if j.reads >= f.stepsToComplete {
			f.run(j)
		}
	}
	info := f.jobJSON(id, j, r.PathValue("version"))
	if j.state == "Failed" {
		info["errorMessage"] = "InvalidBatch : Failed to process the batch"
	}
	fakevendor.JSON(w, 200, info)
}

// run processes a job's records; f.mu is held.
func (f *Fake) run(j *sfJob) {
	if f.endState != "" {
		j.state = f.endState
		return
	}
	j.state = "JobComplete"
	for _, id := range j.ids {
		j.processed++
		rec, ok := f.records[id]
		switch {
		case !ok || rec.object != j.object || (rec.recycled && j.operation == "delete"):
			j.failed++
			j.failures = append(j.failures, []string{id, "ENTITY_IS_DELETED:entity is deleted:--", id})
		case f.recordError != "":
			j.failed++
			// Salesforce's messages can name the person.
			j.failures = append(j.failures, []string{"", f.recordError + ":cannot delete " + rec.email + ":--", id})
		case j.operation == "hardDelete":
			delete(f.records, id)
		case j.operation == "delete":
			rec.recycled = true
		}
	}
}

func (f *Fake) failedResults(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[r.PathValue("jobId")]
	if !ok {
		WriteErrors(w, 404, "NOT_FOUND", "The requested resource does not exist")
		return
	}
	if j.state != "JobComplete" && j.state != "Failed" && j.state != "Aborted" {
		WriteErrors(w, 409, "INVALIDJOBSTATE", "the job is not finished")
		return
	}
	w.Header().Set("Content-Type", "text/csv")
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"sf__Id", "sf__Error", "Id"})
	_ = cw.WriteAll(j.failures)
}

// softDelete is the plain REST delete: the record goes to the Recycle Bin.
func (f *Fake) softDelete(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rec, ok := f.records[r.PathValue("id")]
	if !ok || rec.recycled {
		WriteErrors(w, 404, "ENTITY_IS_DELETED", "entity is deleted")
		return
	}
	rec.recycled = true
	w.WriteHeader(http.StatusNoContent)
}
