package salesforce

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

	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// fakeSalesforce follows the REST query and Bulk API 2.0 ingest contract
// (docs/connectors/salesforce.md, VENDOR_APIS.md): Bearer tokens refused
// with 401 INVALID_SESSION_ID; SOQL `SELECT Id FROM <object> WHERE Email =
// '<literal>'` parsed as Salesforce would (a query it cannot parse is 400
// MALFORMED_QUERY), with paging through nextRecordsUrl; ingest jobs that go
// Open → UploadComplete → InProgress → JobComplete over polls, where
// hardDelete removes records and delete only moves them to the Recycle
// Bin; failed results as CSV; the rolling daily API allocation answered
// with 403 REQUEST_LIMIT_EXCEEDED; unknown API versions 404 NOT_FOUND.
type fakeSalesforce struct {
	*fakevendor.Server
	token string

	mu       sync.Mutex
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

var versions = []string{"v58.0", "v59.0", "v60.0", "v61.0", "v62.0"}

func newFakeSalesforce(t *testing.T, token string) *fakeSalesforce {
	t.Helper()
	f := &fakeSalesforce{Server: fakevendor.New(t), token: token, records: map[string]*sfRecord{}, nextID: 1,
		jobs: map[string]*sfJob{}, cursors: map[string][]string{}, pageSize: 2000, stepsToComplete: 2}
	f.RequireAuth(func(r *http.Request) bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return r.Header.Get("Authorization") == "Bearer "+f.token
	}, sfUnauthorized)
	f.dailyAllocation(100000)
	f.Handle("GET /services/data/{version}/query", f.versioned(f.query))
	f.Handle("GET /services/data/{version}/query/{locator}", f.versioned(f.queryMore))
	f.Handle("POST /services/data/{version}/jobs/ingest", f.versioned(f.createJob))
	f.Handle("PUT /services/data/{version}/jobs/ingest/{jobId}/batches", f.versioned(f.upload))
	f.Handle("PATCH /services/data/{version}/jobs/ingest/{jobId}", f.versioned(f.patchJob))
	f.Handle("GET /services/data/{version}/jobs/ingest/{jobId}", f.versioned(f.getJob))
	f.Handle("GET /services/data/{version}/jobs/ingest/{jobId}/failedResults/{$}", f.versioned(f.failedResults))
	f.Handle("DELETE /services/data/{version}/sobjects/{object}/{id}", f.versioned(f.softDelete))
	return f
}

// setToken changes the token the fake accepts (the old one expired).
func (f *fakeSalesforce) setToken(token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.token = token
}

// dailyAllocation models the org's rolling 24-hour API request allocation.
func (f *fakeSalesforce) dailyAllocation(n int) {
	f.RateLimit(float64(n)/86400, n, sfLimitExceeded)
}

func (f *fakeSalesforce) config(extra ...string) string {
	return fmt.Sprintf("base_url: %s\naccess_token: %s\npoll_interval: 5ms\n%s", f.URL, f.token, strings.Join(extra, "\n"))
}

func sfErrors(w http.ResponseWriter, status int, code, message string) {
	fakevendor.JSON(w, status, []map[string]any{{"message": message, "errorCode": code}})
}

func sfUnauthorized(w http.ResponseWriter, r *http.Request) {
	sfErrors(w, 401, "INVALID_SESSION_ID", "Session expired or invalid")
}

func sfLimitExceeded(w http.ResponseWriter, r *http.Request) {
	sfErrors(w, 403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
}

func sfUnavailable(w http.ResponseWriter, r *http.Request) {
	sfErrors(w, 503, "SERVER_UNAVAILABLE", "Server temporarily unavailable")
}

func (f *fakeSalesforce) versioned(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !slices.Contains(versions, r.PathValue("version")) {
			sfErrors(w, 404, "NOT_FOUND", "The requested resource does not exist")
			return
		}
		h(w, r)
	}
}

// add stores a record and returns its id (003… for Contacts, 00Q… for
// Leads, as Salesforce's key prefixes).
func (f *fakeSalesforce) add(object, email string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	prefix := map[string]string{"Contact": "003", "Lead": "00Q"}[object]
	id := fmt.Sprintf("%s5g00%08dAAA", prefix, f.nextID)
	f.nextID++
	f.records[id] = &sfRecord{object: object, email: email}
	return id
}

// count counts the records with email, those in the Recycle Bin too: they
// are still there.
func (f *fakeSalesforce) count(email string) int64 {
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

func (f *fakeSalesforce) job(id string) *sfJob {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.jobs[id]
}

// parseSOQL understands exactly SELECT Id FROM <object> WHERE Email =
// '<literal>', with SOQL's string escapes.
func parseSOQL(q string) (object, email string, ok bool) {
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

func (f *fakeSalesforce) query(w http.ResponseWriter, r *http.Request) {
	object, email, ok := parseSOQL(r.URL.Query().Get("q"))
	if !ok {
		// Salesforce's message quotes the query, and so the email.
		sfErrors(w, 400, "MALFORMED_QUERY", "unexpected token in: "+r.URL.Query().Get("q"))
		return
	}
	if object != "Contact" && object != "Lead" {
		sfErrors(w, 400, "INVALID_TYPE", "sObject type '"+object+"' is not supported.")
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

func (f *fakeSalesforce) queryMore(w http.ResponseWriter, r *http.Request) {
	loc := r.PathValue("locator")
	f.mu.Lock()
	ids, ok := f.cursors[loc]
	delete(f.cursors, loc)
	f.mu.Unlock()
	if !ok {
		sfErrors(w, 400, "INVALID_QUERY_LOCATOR", "invalid query locator")
		return
	}
	object, _, _ := strings.Cut(loc, "-")
	total, _ := strconv.Atoi(strings.Split(loc, "-")[1])
	f.page(w, r, object, ids, total)
}

// page answers one page of ids, keeping the rest behind a query locator.
func (f *fakeSalesforce) page(w http.ResponseWriter, r *http.Request, object string, ids []string, total int) {
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

func (f *fakeSalesforce) jobJSON(id string, j *sfJob, version string) map[string]any {
	return map[string]any{
		"id": id, "operation": j.operation, "object": j.object, "createdById": "0055g00000AAAAAAAA",
		"createdDate": time.Now().UTC().Format("2006-01-02T15:04:05.000+0000"), "state": j.state,
		"concurrencyMode": "Parallel", "contentType": "CSV", "apiVersion": version[1:],
		"contentUrl": "services/data/" + version + "/jobs/ingest/" + id + "/batches", "lineEnding": "LF",
		"columnDelimiter": "COMMA", "jobType": "V2Ingest",
		"numberRecordsProcessed": j.processed, "numberRecordsFailed": j.failed,
	}
}

func (f *fakeSalesforce) createJob(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		sfErrors(w, 415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json")
		return
	}
	var body struct {
		Object      string `json:"object"`
		Operation   string `json:"operation"`
		ContentType string `json:"contentType"`
		LineEnding  string `json:"lineEnding"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		sfErrors(w, 400, "JSON_PARSER_ERROR", "cannot parse the request body")
		return
	}
	switch {
	case body.Object != "Contact" && body.Object != "Lead":
		sfErrors(w, 400, "INVALIDJOB", "InvalidJob : Unable to find object: "+body.Object)
		return
	case !slices.Contains([]string{"insert", "update", "upsert", "delete", "hardDelete"}, body.Operation):
		sfErrors(w, 400, "INVALIDJOB", "InvalidJob : Invalid operation")
		return
	case body.ContentType != "CSV" || (body.LineEnding != "LF" && body.LineEnding != ""):
		sfErrors(w, 400, "INVALIDJOB", "InvalidJob : unsupported content type or line ending")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if body.Operation == "hardDelete" && f.noHardDelete {
		// ⚠ The exact code is not documented; Salesforce refuses the job.
		sfErrors(w, 400, "INVALIDJOB", "InvalidJob : hardDelete requires the Bulk API Hard Delete permission")
		return
	}
	id := fmt.Sprintf("7505g00000%08d", f.nextJob)
	f.nextJob++
	j := &sfJob{object: body.Object, operation: body.Operation, state: "Open"}
	f.jobs[id] = j
	fakevendor.JSON(w, 200, f.jobJSON(id, j, r.PathValue("version")))
}

func (f *fakeSalesforce) upload(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Content-Type") != "text/csv" {
		sfErrors(w, 400, "INVALIDCONTENTTYPE", "Content-Type must be text/csv")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[r.PathValue("jobId")]
	if !ok {
		sfErrors(w, 404, "NOT_FOUND", "The requested resource does not exist")
		return
	}
	if j.state != "Open" {
		sfErrors(w, 409, "INVALIDJOBSTATE", "Job is not open for uploads")
		return
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(r.Body)
	if bytes.Contains(buf.Bytes(), []byte("\r")) {
		sfErrors(w, 400, "INVALIDJOB", "line ending CRLF does not match LF")
		return
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(rows) == 0 || len(rows[0]) != 1 || rows[0][0] != "Id" {
		sfErrors(w, 400, "INVALIDJOB", "the CSV must have one column, Id")
		return
	}
	for _, row := range rows[1:] {
		j.ids = append(j.ids, row[0])
	}
	w.WriteHeader(http.StatusCreated)
}

func (f *fakeSalesforce) patchJob(w http.ResponseWriter, r *http.Request) {
	var body struct {
		State string `json:"state"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		sfErrors(w, 400, "JSON_PARSER_ERROR", "cannot parse the request body")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id := r.PathValue("jobId")
	j, ok := f.jobs[id]
	if !ok {
		sfErrors(w, 404, "NOT_FOUND", "The requested resource does not exist")
		return
	}
	switch {
	case body.State == "UploadComplete" && j.state == "Open":
	case body.State == "Aborted" && (j.state == "Open" || j.state == "UploadComplete"):
	default:
		sfErrors(w, 409, "INVALIDJOBSTATE", "cannot move the job from "+j.state+" to "+body.State)
		return
	}
	j.state = body.State
	fakevendor.JSON(w, 200, f.jobJSON(id, j, r.PathValue("version")))
}

// getJob reports a job's state, advancing a closed job one step per read.
func (f *fakeSalesforce) getJob(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := r.PathValue("jobId")
	j, ok := f.jobs[id]
	if !ok {
		sfErrors(w, 404, "NOT_FOUND", "The requested resource does not exist")
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
func (f *fakeSalesforce) run(j *sfJob) {
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

func (f *fakeSalesforce) failedResults(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[r.PathValue("jobId")]
	if !ok {
		sfErrors(w, 404, "NOT_FOUND", "The requested resource does not exist")
		return
	}
	if j.state != "JobComplete" && j.state != "Failed" && j.state != "Aborted" {
		sfErrors(w, 409, "INVALIDJOBSTATE", "the job is not finished")
		return
	}
	w.Header().Set("Content-Type", "text/csv")
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"sf__Id", "sf__Error", "Id"})
	_ = cw.WriteAll(j.failures)
}

// softDelete is the plain REST delete: the record goes to the Recycle Bin.
func (f *fakeSalesforce) softDelete(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rec, ok := f.records[r.PathValue("id")]
	if !ok || rec.recycled {
		sfErrors(w, 404, "ENTITY_IS_DELETED", "entity is deleted")
		return
	}
	rec.recycled = true
	w.WriteHeader(http.StatusNoContent)
}
