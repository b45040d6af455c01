// Package salesforcefake is a local Salesforce org for tests: SOQL
// queries (query and queryAll), Bulk API 2.0 ingest jobs, the Recycle Bin
// and the SOAP API's emptyRecycleBin as Salesforce documents them, the
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
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
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

// AppUserIDField is a custom field every fake org has on Contact and Lead;
// Seed stores the subject's fakevendor.UserIDSystem id in it.
const AppUserIDField = "App_User_Id__c"

// ResolveConfig is a resolve block reading AppUserIDField as
// user_ids.<fakevendor.UserIDSystem> and the record ids as
// user_ids.sfdc; add it with ConfigWith.
const ResolveConfig = "resolve:\n  fields:\n    " + AppUserIDField + ": user_ids." + fakevendor.UserIDSystem + "\n  record_ids: user_ids.sfdc"

// Options tunes a fake: its rate limit refuses requests as Salesforce
// refuses those over the org's API allocation, 403 REQUEST_LIMIT_EXCEEDED
// (Salesforce sends no 429), which the connector retries after an hour;
// a closed ingest job answers InProgress to Polls status reads (default
// 1) before it runs.
type Options = fakevendor.Options

// Fake follows the REST query and Bulk API 2.0 ingest contract
// (docs/connectors/salesforce.md, VENDOR_APIS.md): Bearer tokens refused
// with 401 INVALID_SESSION_ID; SOQL `SELECT <fields> FROM <object> WHERE
// Email = '<literal>'` (or `WHERE Email IN ('<literal>', …)`, or `WHERE Id
// IN ('…', …)`) parsed as Salesforce would (a query it cannot parse is 400
// MALFORMED_QUERY, an unknown field 400 INVALID_FIELD), Email compared
// case-insensitively, with paging through nextRecordsUrl, and a URI and
// headers over 16,384 bytes refused (414 URI Too Long, 431); query leaves
// out records in the Recycle Bin, queryAll returns them with IsDeleted
// true; ingest jobs that go Open → UploadComplete → InProgress →
// JobComplete over polls, where hardDelete removes live records and
// delete only moves them to the Recycle Bin; failed and successful
// results as CSV, in no particular order (the fake: backwards); the
// SOAP API's emptyRecycleBin (POST /services/Soap/u/<version>, the
// token in SessionHeader, at most 200 ids, a result per id); the rolling
// daily API allocation answered with 403 REQUEST_LIMIT_EXCEEDED (a SOAP
// fault on the SOAP API); unknown API versions 404 NOT_FOUND.
type Fake struct {
	fakevendor.Controls
	srv *fakevendor.Server

	mu       sync.Mutex
	token    *fakevendor.Key
	records  map[string]*sfRecord // id → record
	nextID   int
	jobs     map[string]*sfJob
	nextJob  int
	cursors  map[string]cursor // query locator → the rest of a query
	pageSize int
	// stepsToComplete is how many status reads a closed job takes to
	// reach JobComplete (the first moves it to InProgress).
	stepsToComplete int
	// endState forces closed jobs to end Failed or Aborted.
	endState string
	// recordError makes each record of a job fail with this sf__Error;
	// emailErrors those holding an email (lower-case).
	recordError string
	emailErrors map[string]string
	// noHardDelete: the user lacks the Bulk API Hard Delete permission.
	noHardDelete bool
	// purgeError makes emptyRecycleBin fail every id with this status code.
	purgeError string
	// keepPurged: records emptied from the Recycle Bin stay visible to
	// queryAll (IsDeleted) until Salesforce deletes them physically.
	keepPurged bool
	fields     map[string][]string // object → custom fields
}

var _ connectortest.RecoverableVendor = (*Fake)(nil)

type sfRecord struct {
	object, email string
	fields        map[string]string
	recycled      bool // in the Recycle Bin: IsDeleted, not returned by query
	purged        bool // emptied from the Recycle Bin, not yet physically deleted
}

// cursor is what a query locator holds: the rows not yet returned.
type cursor struct {
	object string
	total  int
	rows   []map[string]any
}

type sfJob struct {
	object, operation, state string
	ids                      []string
	reads                    int
	processed, failed        int
	failures, successes      [][]string
}

// versions are the API versions the org serves.
func versions() []string { return []string{"v58.0", "v59.0", "v60.0", "v61.0", "v62.0"} }

// Start starts a fake that stops when the test ends.
func Start(t testing.TB, opt Options) *Fake {
	t.Helper()
	f := &Fake{token: fakevendor.NewKey(DefaultToken), records: map[string]*sfRecord{}, nextID: 1,
		jobs: map[string]*sfJob{}, cursors: map[string]cursor{}, pageSize: 2000, emailErrors: map[string]string{},
		fields: map[string][]string{"Contact": {AppUserIDField}, "Lead": {AppUserIDField}}}
	bearer := fakevendor.BearerAuth(f.token, nil)
	srv := fakevendor.Start(t, opt, fakevendor.Vendor{TooMany: LimitExceeded, Polls: 1, Auth: fakevendor.Auth{
		Keys: bearer.Keys,
		OK: func(r *http.Request) bool {
			if isSOAP(r) {
				// The SOAP API takes the token as the SessionHeader's
				// sessionId, not as a header.
				b, _ := io.ReadAll(r.Body)
				r.Body = io.NopCloser(bytes.NewReader(b))
				var env soapRequest
				return xml.Unmarshal(b, &env) == nil && env.Header.Session.ID == f.token.Get()
			}
			return bearer.OK(r)
		},
		Refuse: Unauthorized,
	}})
	f.Controls, f.srv, f.stepsToComplete = srv.Controls(), srv, srv.JobPolls+1
	srv.Handle("GET /services/data/{version}/query", f.versioned(f.query(false)))
	srv.Handle("GET /services/data/{version}/queryAll", f.versioned(f.query(true)))
	srv.Handle("POST /services/Soap/u/{version}", f.soap)
	srv.Handle("GET /services/data/{version}/query/{locator}", f.versioned(f.queryMore))
	srv.Handle("POST /services/data/{version}/jobs/ingest", f.versioned(f.createJob))
	srv.Handle("PUT /services/data/{version}/jobs/ingest/{jobId}/batches", f.versioned(f.onJob(f.upload)))
	srv.Handle("PATCH /services/data/{version}/jobs/ingest/{jobId}", f.versioned(f.onJob(f.patchJob)))
	srv.Handle("GET /services/data/{version}/jobs/ingest/{jobId}", f.versioned(f.onJob(f.getJob)))
	srv.Handle("GET /services/data/{version}/jobs/ingest/{jobId}/failedResults/{$}", f.versioned(f.onJob(f.failedResults)))
	srv.Handle("GET /services/data/{version}/jobs/ingest/{jobId}/successfulResults/{$}", f.versioned(f.onJob(f.successfulResults)))
	srv.Handle("DELETE /services/data/{version}/sobjects/{object}/{id}", f.versioned(f.softDelete))
	return f
}

// Token is the token the fake accepts.
func (f *Fake) Token() string { return f.token.Get() }

// SetToken changes the token the fake accepts (the old one expired).
func (f *Fake) SetToken(token string) { f.token.Set(token) }

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

// Seed stores a Contact and a Lead with the subject's email (it needs one)
// and, in AppUserIDField, its fakevendor.UserIDSystem id if it has one.
func (f *Fake) Seed(s connectors.Subject) int64 {
	for _, o := range []string{"Contact", "Lead"} {
		id := f.Add(o, fakevendor.NeedEmail("salesforcefake: Seed", s))
		if v := s.UserIDs[fakevendor.UserIDSystem]; v != "" {
			f.SetField(id, AppUserIDField, v)
		}
	}
	return 2
}

// SeedRecoverable stores a Contact and a Lead with the subject's email in
// the Recycle Bin, as a plain delete leaves them: restorable for about 15
// days, invisible to query, returned by queryAll.
func (f *Fake) SeedRecoverable(s connectors.Subject) int64 {
	f.Recycle(f.Add("Contact", fakevendor.NeedEmail("salesforcefake: SeedRecoverable", s)))
	f.Recycle(f.Add("Lead", s.Email))
	return 2
}

// Count is how many records hold the subject's email, those in the
// Recycle Bin too: they are still there.
func (f *Fake) Count(s connectors.Subject) int64 { return f.CountEmail(s.Email) }

// SetField sets a custom field of record id.
func (f *Fake) SetField(id, field, value string) {
	f.locked(func() { f.records[id].fields[field] = value })
}

// Recycle moves record id to the Recycle Bin, as a plain delete does.
func (f *Fake) Recycle(id string) { f.locked(func() { f.records[id].recycled = true }) }

// QueryAllCount is how many records queryAll returns for email: live
// ones, those in the Recycle Bin and, with KeepPurgedQueryable, those
// emptied from it that Salesforce has not deleted physically yet.
func (f *Fake) QueryAllCount(email string) int64 {
	return int64(len(f.ids(email, func(*sfRecord) bool { return true })))
}

// locked runs fn with f.mu held.
func (f *Fake) locked(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

// ids lists, in order, the ids of the records holding email that keep
// accepts.
func (f *Fake) ids(email string, keep func(*sfRecord) bool) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for id, r := range f.records {
		if email != "" && strings.EqualFold(r.email, email) && keep(r) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// FailPurge makes emptyRecycleBin fail every id with the status code
// (such as INSUFFICIENT_ACCESS_OR_READONLY for a record in another user's
// Recycle Bin, without Modify All Data); "" restores success.
func (f *Fake) FailPurge(code string) { f.locked(func() { f.purgeError = code }) }

// KeepPurgedQueryable models what Salesforce documents for
// emptyRecycleBin: emptied records can still be returned by queryAll "for
// some time, typically 24 hours". Count no longer counts them (they cannot
// be restored); queryAll does; emptyRecycleBin refuses them (⚠ the code is
// not documented: the fake answers ENTITY_IS_DELETED).
func (f *Fake) KeepPurgedQueryable() { f.locked(func() { f.keepPurged = true }) }

// purge removes a record for good, or (keepPurged) leaves it for queryAll
// only; f.mu is held.
func (f *Fake) purge(id string) {
	if f.keepPurged {
		f.records[id].purged = true
		return
	}
	delete(f.records, id)
}

// decode reads r's JSON body into v, or answers 400 JSON_PARSER_ERROR.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		WriteErrors(w, 400, "JSON_PARSER_ERROR", "cannot parse the request body")
		return false
	}
	return true
}

// WriteErrors writes Salesforce's error body: a list of one error.
func WriteErrors(w http.ResponseWriter, status int, code, message string) {
	fakevendor.JSON(w, status, []map[string]any{{"message": message, "errorCode": code}})
}

// Unauthorized is Salesforce's 401 for an expired or unknown token (on
// the SOAP API, a fault INVALID_SESSION_ID).
func Unauthorized(w http.ResponseWriter, r *http.Request) {
	if isSOAP(r) {
		WriteFault(w, "INVALID_SESSION_ID", "Invalid Session ID found in SessionHeader: Illegal Session")
		return
	}
	WriteErrors(w, 401, "INVALID_SESSION_ID", "Session expired or invalid")
}

// LimitExceeded is Salesforce's answer once the org's API allocation is
// used up: 403 REQUEST_LIMIT_EXCEEDED, not 429 (on the SOAP API, a fault
// REQUEST_LIMIT_EXCEEDED).
func LimitExceeded(w http.ResponseWriter, r *http.Request) {
	if isSOAP(r) {
		WriteFault(w, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
		return
	}
	WriteErrors(w, 403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
}

// Unavailable is Salesforce's 503.
func Unavailable(w http.ResponseWriter, r *http.Request) {
	WriteErrors(w, 503, "SERVER_UNAVAILABLE", "Server temporarily unavailable")
}

func (f *Fake) versioned(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !slices.Contains(versions(), r.PathValue("version")) {
			notFound(w)
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
	f.records[id] = &sfRecord{object: object, email: email, fields: map[string]string{}}
	return id
}

// CountEmail counts the records with email, those in the Recycle Bin too
// (not those emptied from it and waiting to be deleted physically).
func (f *Fake) CountEmail(email string) int64 { return int64(len(f.RecordIDs(email))) }

// Recycled counts the records with email in the Recycle Bin.
func (f *Fake) Recycled(email string) int64 {
	return int64(len(f.ids(email, func(r *sfRecord) bool { return r.recycled && !r.purged })))
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
func (f *Fake) SetPageSize(n int) { f.locked(func() { f.pageSize = n }) }

// EndJobsAs makes closed jobs end in state (Failed or Aborted) instead of
// running; "" restores normal runs.
func (f *Fake) EndJobsAs(state string) { f.locked(func() { f.endState = state }) }

// FailRecords makes every record of a job fail with the sf__Error code
// (such as DELETE_FAILED or UNABLE_TO_LOCK_ROW); "" restores success.
func (f *Fake) FailRecords(code string) { f.locked(func() { f.recordError = code }) }

// FailRecordsOf makes the records holding email fail in jobs with the
// sf__Error code; "" restores success.
func (f *Fake) FailRecordsOf(email, code string) {
	f.locked(func() {
		if code == "" {
			delete(f.emailErrors, strings.ToLower(email))
			return
		}
		f.emailErrors[strings.ToLower(email)] = code
	})
}

// DenyHardDelete takes the Bulk API Hard Delete permission away: hardDelete
// jobs are refused.
func (f *Fake) DenyHardDelete() { f.locked(func() { f.noHardDelete = true }) }

// Query is a SOQL query the fake understands.
type Query struct {
	Fields []string
	Object string
	// Email is the literal of WHERE Email = '…'; Emails those of WHERE
	// Email IN ('…', …); IDs those of WHERE Id IN ('…', …).
	Email  string
	Emails []string
	IDs    []string
}

// matches reports whether a record's email meets the query's Email
// condition: SOQL compares text case-insensitively.
func (q Query) matches(email string) bool {
	if q.Emails != nil {
		return slices.ContainsFunc(q.Emails, func(e string) bool { return strings.EqualFold(e, email) })
	}
	return strings.EqualFold(email, q.Email)
}

// MaxURI is the most bytes Salesforce takes of a REST call's URI and
// headers together: past it, 414 URI Too Long (the URI alone) or 431
// Request Header Fields Too Large (help article 000386264).
const MaxURI = 16384

var (
	identRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	sfIDRe  = regexp.MustCompile(`^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$`)
)

// ParseSOQL understands exactly SELECT <field>, … FROM <object> WHERE
// Email = '<literal>' and … WHERE Email IN ('<literal>', …), with SOQL's
// string escapes, and SELECT <field>, … FROM <object> WHERE Id IN
// ('<id>', …).
func ParseSOQL(q string) (Query, bool) {
	rest, ok := strings.CutPrefix(q, "SELECT ")
	if !ok {
		return Query{}, false
	}
	list, rest, ok := strings.Cut(rest, " FROM ")
	if !ok {
		return Query{}, false
	}
	var out Query
	for f := range strings.SplitSeq(list, ", ") {
		if !identRe.MatchString(f) {
			return Query{}, false
		}
		out.Fields = append(out.Fields, f)
	}
	object, cond, ok := strings.Cut(rest, " WHERE ")
	if !ok || !identRe.MatchString(object) {
		return Query{}, false
	}
	out.Object = object
	if ids, ok := strings.CutPrefix(cond, "Id IN ("); ok {
		ids, ok = strings.CutSuffix(ids, ")")
		if !ok {
			return Query{}, false
		}
		for id := range strings.SplitSeq(ids, ", ") {
			v, ok := strings.CutPrefix(id, "'")
			v, ok2 := strings.CutSuffix(v, "'")
			if !ok || !ok2 || !sfIDRe.MatchString(v) {
				return Query{}, false
			}
			out.IDs = append(out.IDs, v)
		}
		return out, true
	}
	if list, ok := strings.CutPrefix(cond, "Email IN ("); ok {
		out.Emails = []string{}
		for {
			v, rest, ok := literal(list)
			if !ok {
				return Query{}, false
			}
			out.Emails = append(out.Emails, v)
			if rest == ")" {
				return out, true
			}
			if list, ok = strings.CutPrefix(rest, ", "); !ok {
				return Query{}, false
			}
		}
	}
	lit, ok := strings.CutPrefix(cond, "Email = ")
	if !ok {
		return Query{}, false
	}
	v, rest, ok := literal(lit)
	out.Email = v
	return out, ok && rest == "" // the literal must end the query
}

// literal reads a SOQL string literal ('…' with SOQL's escapes) at the
// start of s and returns its value and what follows it.
func literal(s string) (value, rest string, ok bool) {
	lit, ok := strings.CutPrefix(s, "'")
	if !ok {
		return "", "", false
	}
	var b strings.Builder
	for i := 0; i < len(lit); i++ {
		switch c := lit[i]; c {
		case '\\':
			if i+1 == len(lit) {
				return "", "", false
			}
			i++
			esc, known := map[byte]string{'\\': `\`, '\'': `'`, '"': `"`, 'n': "\n", 'r': "\r", 't': "\t", 'b': "\b", 'f': "\f"}[lit[i]]
			if !known {
				return "", "", false // e.g. \_ and \% are for LIKE only
			}
			b.WriteString(esc)
		case '\'':
			return b.String(), lit[i+1:], true
		default:
			b.WriteByte(c)
		}
	}
	return "", "", false
}

// query answers the query resource, or (all) queryAll, which also returns
// records in the Recycle Bin (and not yet physically deleted ones).
func (f *Fake) query(all bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if tooLong(w, r) {
			return
		}
		q, ok := ParseSOQL(r.URL.Query().Get("q"))
		if !ok {
			// Salesforce's message quotes the query, and so the email.
			WriteErrors(w, 400, "MALFORMED_QUERY", "unexpected token in: "+r.URL.Query().Get("q"))
			return
		}
		if q.Object != "Contact" && q.Object != "Lead" {
			WriteErrors(w, 400, "INVALID_TYPE", "sObject type '"+q.Object+"' is not supported.")
			return
		}
		f.mu.Lock()
		for _, field := range q.Fields {
			if !slices.Contains([]string{"Id", "IsDeleted", "Email"}, field) && !slices.Contains(f.fields[q.Object], field) {
				f.mu.Unlock()
				WriteErrors(w, 400, "INVALID_FIELD", "No such column '"+field+"' on entity '"+q.Object+"'.")
				return
			}
		}
		var ids []string
		byID := map[string]map[string]any{}
		for id, rec := range f.records {
			match := q.matches(rec.email)
			if q.IDs != nil {
				match = slices.Contains(q.IDs, id)
			}
			if rec.object != q.Object || !match || (!all && (rec.recycled || rec.purged)) {
				continue
			}
			ids = append(ids, id)
			row := map[string]any{}
			for _, field := range q.Fields {
				switch field {
				case "Id":
					row[field] = id
				case "IsDeleted":
					row[field] = rec.recycled || rec.purged
				case "Email":
					row[field] = rec.email
				default:
					if v, ok := rec.fields[field]; ok {
						row[field] = v
					} else {
						row[field] = nil
					}
				}
			}
			byID[id] = row
		}
		slices.Sort(ids)
		rows := make([]map[string]any, len(ids))
		for i, id := range ids {
			rows[i] = byID[id]
		}
		f.mu.Unlock()
		f.page(w, r, cursor{object: q.Object, total: len(rows), rows: rows})
	}
}

// tooLong answers a request whose URI and headers are longer than
// Salesforce takes, as Salesforce does, and reports whether it did.
func tooLong(w http.ResponseWriter, r *http.Request) bool {
	size := len(r.RequestURI)
	if size > MaxURI {
		http.Error(w, "URI Too Long", http.StatusRequestURITooLong)
		return true
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			size += len(k) + len(v) + 4 // "k: v\r\n"
		}
	}
	if size > MaxURI {
		http.Error(w, "Request Header Fields Too Large", http.StatusRequestHeaderFieldsTooLarge)
		return true
	}
	return false
}

func (f *Fake) queryMore(w http.ResponseWriter, r *http.Request) {
	loc := r.PathValue("locator")
	f.mu.Lock()
	c, ok := f.cursors[loc]
	delete(f.cursors, loc)
	f.mu.Unlock()
	if !ok {
		WriteErrors(w, 400, "INVALID_QUERY_LOCATOR", "invalid query locator")
		return
	}
	f.page(w, r, c)
}

// page answers one page of c's rows, keeping the rest behind a query
// locator. The next page of a queryAll is read at …/query/<locator> too,
// as Salesforce's nextRecordsUrl says.
func (f *Fake) page(w http.ResponseWriter, r *http.Request, c cursor) {
	f.mu.Lock()
	size := f.pageSize
	body := map[string]any{"totalSize": c.total, "done": true}
	rows := c.rows
	if len(rows) > size {
		loc := fmt.Sprintf("01g5g%013d-%d", f.nextID, c.total-len(rows)+size)
		f.nextID++
		f.cursors[loc] = cursor{object: c.object, total: c.total, rows: rows[size:]}
		rows = rows[:size]
		body["done"] = false
		body["nextRecordsUrl"] = "/services/data/" + r.PathValue("version") + "/query/" + loc
	}
	f.mu.Unlock()
	records := make([]map[string]any, len(rows))
	for i, row := range rows {
		rec := map[string]any{"attributes": map[string]string{"type": c.object, "url": "/services/data/" + r.PathValue("version") + "/sobjects/" + c.object + "/" + fmt.Sprint(row["Id"])}}
		for k, v := range row {
			rec[k] = v
		}
		records[i] = rec
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
	if !decode(w, r, &body) {
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

func (f *Fake) upload(w http.ResponseWriter, r *http.Request, _ string, j *sfJob) {
	if r.Header.Get("Content-Type") != "text/csv" {
		WriteErrors(w, 400, "INVALIDCONTENTTYPE", "Content-Type must be text/csv")
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

func (f *Fake) patchJob(w http.ResponseWriter, r *http.Request, id string, j *sfJob) {
	var body struct {
		State string `json:"state"`
	}
	if !decode(w, r, &body) {
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

// onJob is a handler of the job of r's {jobId}: it answers 404 NOT_FOUND
// for a job the fake does not hold, else runs h with f.mu held.
func (f *Fake) onJob(h func(w http.ResponseWriter, r *http.Request, id string, j *sfJob)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		id := r.PathValue("jobId")
		j, ok := f.jobs[id]
		if !ok {
			notFound(w)
			return
		}
		h(w, r, id, j)
	}
}

// notFound is Salesforce's 404 for an unknown resource (or API version).
func notFound(w http.ResponseWriter) {
	WriteErrors(w, 404, "NOT_FOUND", "The requested resource does not exist")
}

// getJob reports a job's state, advancing a closed job one step per read.
func (f *Fake) getJob(w http.ResponseWriter, r *http.Request, id string, j *sfJob) {
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
		case !ok || rec.object != j.object || rec.recycled || rec.purged:
			// ⚠ Whether hardDelete purges a record already in the
			// Recycle Bin is not documented; the fake takes the reading
			// that leaves it there.
			j.failed++
			j.failures = append(j.failures, []string{id, "ENTITY_IS_DELETED:entity is deleted:--", id})
		case f.recordError != "" || f.emailErrors[strings.ToLower(rec.email)] != "":
			code := f.recordError
			if code == "" {
				code = f.emailErrors[strings.ToLower(rec.email)]
			}
			j.failed++
			// Salesforce's messages can name the person.
			j.failures = append(j.failures, []string{"", code + ":cannot delete " + rec.email + ":--", id})
		case j.operation == "hardDelete":
			// ⚠ Salesforce says hard-deleted records "become
			// immediately eligible for deletion"; the fake deletes them
			// at once, even with KeepPurgedQueryable.
			delete(f.records, id)
			j.successes = append(j.successes, []string{id, "false", id})
		case j.operation == "delete":
			rec.recycled = true
			j.successes = append(j.successes, []string{id, "false", id})
		}
	}
}

func (f *Fake) failedResults(w http.ResponseWriter, _ *http.Request, _ string, j *sfJob) {
	if j.state != "JobComplete" && j.state != "Failed" && j.state != "Aborted" {
		WriteErrors(w, 409, "INVALIDJOBSTATE", "the job is not finished")
		return
	}
	w.Header().Set("Content-Type", "text/csv")
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"sf__Id", "sf__Error", "Id"})
	// Salesforce: "The order of records in the response is not
	// guaranteed to match the ordering of records in the original job
	// data"; the fake answers them backwards.
	_ = cw.WriteAll(backwards(j.failures))
}

// successfulResults is the CSV of a finished job's processed records:
// sf__Id, sf__Created and the uploaded columns (Id).
func (f *Fake) successfulResults(w http.ResponseWriter, _ *http.Request, _ string, j *sfJob) {
	if j.state != "JobComplete" && j.state != "Failed" && j.state != "Aborted" {
		WriteErrors(w, 409, "INVALIDJOBSTATE", "the job is not finished")
		return
	}
	w.Header().Set("Content-Type", "text/csv")
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"sf__Id", "sf__Created", "Id"})
	_ = cw.WriteAll(backwards(j.successes))
}

func backwards(rows [][]string) [][]string {
	out := slices.Clone(rows)
	slices.Reverse(out)
	return out
}

// softDelete is the plain REST delete: the record goes to the Recycle Bin.
func (f *Fake) softDelete(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rec, ok := f.records[r.PathValue("id")]
	if !ok || rec.recycled || rec.purged {
		WriteErrors(w, 404, "ENTITY_IS_DELETED", "entity is deleted")
		return
	}
	rec.recycled = true
	w.WriteHeader(http.StatusNoContent)
}

// isSOAP reports whether r is a call to the SOAP API.
func isSOAP(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/services/Soap/") }

// soapRequest is the part of a SOAP envelope the fake reads.
type soapRequest struct {
	Header struct {
		Session struct {
			ID string `xml:"sessionId"`
		} `xml:"SessionHeader"`
	} `xml:"Header"`
	Body struct {
		Empty *struct {
			IDs []string `xml:"ids"`
		} `xml:"emptyRecycleBin"`
	} `xml:"Body"`
}

// WriteFault writes a SOAP fault as Salesforce's SOAP API does: HTTP 500
// with faultcode sf:<code>.
func WriteFault(w http.ResponseWriter, code, message string) {
	writeFault(w, "sf:"+code, code+": "+message)
}

// writeFault writes a SOAP fault, HTTP 500 with faultcode and faultstring.
func writeFault(w http.ResponseWriter, faultcode, faultstring string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(http.StatusInternalServerError)
	var msg bytes.Buffer
	_ = xml.EscapeText(&msg, []byte(faultstring))
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>%s</faultcode><faultstring>%s</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>`,
		faultcode, msg.String())
}

// soap is POST /services/Soap/u/{version}: the Partner SOAP API, of which
// the fake knows emptyRecycleBin.
func (f *Fake) soap(w http.ResponseWriter, r *http.Request) {
	if !slices.Contains(versions(), "v"+r.PathValue("version")) {
		notFound(w)
		return
	}
	if r.Header.Get("SOAPAction") == "" || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/xml") {
		writeFault(w, "soapenv:Client", "No SOAPAction header!")
		return
	}
	var env soapRequest
	if err := xml.NewDecoder(r.Body).Decode(&env); err != nil || env.Body.Empty == nil {
		WriteFault(w, "INVALID_OPERATION", "the fake knows only emptyRecycleBin")
		return
	}
	ids := env.Body.Empty.IDs
	if len(ids) > 200 {
		WriteFault(w, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call")
		return
	}
	f.mu.Lock()
	var results strings.Builder
	for _, id := range ids {
		rec, ok := f.records[id]
		code, message := "", ""
		switch {
		case !sfIDRe.MatchString(id):
			code, message = "MALFORMED_ID", "malformed id "+id
		case !ok || rec.purged:
			// ⚠ The code for an id no longer in the Recycle Bin is not
			// documented.
			code, message = "ENTITY_IS_DELETED", "entity is deleted"
		case !rec.recycled:
			code, message = "INVALID_ID_FIELD", "entity is not in the recycle bin"
		case f.purgeError != "":
			// Salesforce's messages can name the record.
			code, message = f.purgeError, "cannot empty "+rec.email+" from the recycle bin"
		default:
			f.purge(id)
		}
		if code == "" {
			fmt.Fprintf(&results, `<result><id>%s</id><success>true</success></result>`, id)
			continue
		}
		var msg bytes.Buffer
		_ = xml.EscapeText(&msg, []byte(message))
		fmt.Fprintf(&results, `<result><errors><message>%s</message><statusCode>%s</statusCode></errors><id>%s</id><success>false</success></result>`, msg.String(), code, id)
	}
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com"><soapenv:Header><LimitInfoHeader><limitInfo><current>27</current><limit>15000</limit><type>API REQUESTS</type></limitInfo></LimitInfoHeader></soapenv:Header><soapenv:Body><emptyRecycleBinResponse>%s</emptyRecycleBinResponse></soapenv:Body></soapenv:Envelope>`, results.String())
}

// RecordIDs lists the ids of the records holding email, those in the
// Recycle Bin too, in order.
func (f *Fake) RecordIDs(email string) []string {
	return f.ids(email, func(r *sfRecord) bool { return !r.purged })
}
