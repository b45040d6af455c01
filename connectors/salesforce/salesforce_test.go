package salesforce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
	"github.com/lethe-dev/lethe/connectors/salesforce/salesforcefake"
)

const token = salesforcefake.DefaultToken

// TestVendor runs the conformance suite and the vendor cases against the
// fake.
func TestVendor(t *testing.T) {
	t.Parallel()
	connectortest.RunVendor(t, connectortest.VendorSuite{
		VendorCases: connectortest.VendorCases{
			Type:  "salesforce",
			Start: connectortest.StartFake(salesforcefake.Start),
			// Salesforce refuses requests over the org's daily allocation
			// with 403 REQUEST_LIMIT_EXCEEDED; the connector waits an hour.
			MinRetryAfter: time.Hour, MaxRetryAfter: time.Hour, Credential: "access_token", Forbidden: "permission",
			// A malformed answer and a timeout are vendor cases of every
			// vendor.
			Answers: []connectortest.VendorAnswer{
				{Name: "5xx", Fault: salesforcefake.Unavailable, Says: "503"},
				{Name: "expired token", Fault: salesforcefake.Unauthorized, Permanent: true, Says: "INVALID_SESSION_ID"},
				{Name: "no permission", Fault: func(w http.ResponseWriter, r *http.Request) {
					salesforcefake.WriteErrors(w, 403, "INSUFFICIENT_ACCESS", "insufficient access rights on object id")
				}, Permanent: true, Says: "INSUFFICIENT_ACCESS"},
				{Name: "malformed query", Fault: func(w http.ResponseWriter, r *http.Request) {
					salesforcefake.WriteErrors(w, 400, "MALFORMED_QUERY", "unexpected token: "+r.URL.Query().Get("q"))
				}, Permanent: true, Says: "MALFORMED_QUERY"},
			},
			Unread: map[string]string{
				// Requests: a queryAll per object; per object a job created,
				// uploaded and closed; then the jobs' statuses.
				"malformed/3": "the Contact job's upload answers 201 Created, whose body is not read",
				"malformed/6": "the Lead job's upload answers 201 Created, whose body is not read",
			},
		},
		Misconfigured: "api_version: v45.0", // an API version the org does not serve
	})
}

// TestConformanceResolver runs the suite against an instance with a
// resolve block: it also looks people up.
func TestConformanceResolver(t *testing.T) {
	f := salesforcefake.Start(t, salesforcefake.Options{})
	h := connectortest.VendorHarness("salesforce", f)
	// One fake serves the whole suite, and two of its cases number their
	// subjects alike (ResolveFindsOnlyTheSubject seeds subjects 1000 and
	// 1001 and leaves them; Batch/BatchAtTheLimit seeds 1000 to 1119):
	// a number asked for again is a new subject.
	var mu sync.Mutex
	asked := map[int]int{}
	h.Subject = func(i int) connectors.Subject {
		mu.Lock()
		defer mu.Unlock()
		asked[i]++
		return connectortest.VendorSubject(i + (asked[i]-1)*1_000_000)
	}
	h.New = func(t *testing.T) connectors.Connector {
		return connectortest.Build(t, "salesforce", "sfdc", f.ConfigWith(salesforcefake.ResolveConfig))
	}
	h.Resolves = func(s connectors.Subject) map[connectors.Kind][]string {
		return map[connectors.Kind][]string{
			connectors.UserIDKind(connectortest.UserIDSystem): {s.UserIDs[connectortest.UserIDSystem]},
			"user_ids.sfdc": f.RecordIDs(s.Email),
		}
	}
	connectortest.Run(t, h)
}

// contactsConfig is a config against f for Contacts alone (the connector's
// default objects), with extra lines set.
func contactsConfig(f *salesforcefake.Fake, extra ...string) string {
	return f.ConfigWith(append([]string{"objects:"}, extra...)...)
}

// setup starts a fake holding a Contact with each of emails and builds an
// "sfdc" instance for Contacts alone against it.
func setup(t *testing.T, opt salesforcefake.Options, emails ...string) (*salesforcefake.Fake, connectors.Connector) {
	t.Helper()
	f := salesforcefake.Start(t, opt)
	for _, e := range emails {
		f.Add("Contact", e)
	}
	return f, connectortest.Build(t, "salesforce", "sfdc", contactsConfig(f))
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	const base = "base_url: https://acme.my.salesforce.com\naccess_token: x\n"
	connectortest.RunVendorConfigCases(t, "salesforce", base, "poll_interval")
	connectortest.RunConfigCases(t, "salesforce", nil, []string{"00Dsecret"}, connectortest.ConfigCases{
		{"no base_url", "access_token: x\n", "base_url: required"},
		{"no token", "base_url: https://acme.my.salesforce.com\n", "access_token: required"},
		{"token not in errors", "access_token: 00Dsecret!value\nbase_url: ftp://x\n", "base_url: must be an http(s) URL"},
		{"plain http", "access_token: x\nbase_url: http://acme.my.salesforce.com\n", "base_url: must use https"},
		{"relative", "access_token: x\nbase_url: acme.my.salesforce.com\n", "base_url: must be an http(s) URL"},
		{"version without v", base + "api_version: \"60.0\"\n", "api_version: \"60.0\" is not a version"},
		{"old version", base + "api_version: v39.0\n", "api_version: Bulk API 2.0 hard deletes need v41.0"},
		{"unknown object", base + "objects: [Contact, Account]\n", "objects[1]: \"Account\" is not one of Contact, Lead"},
		{"lower-case object", base + "objects: [contact]\n", "objects[0]:"},
		{"duplicate object", base + "objects: [Lead, Lead]\n", "objects[1]: Lead is listed twice"},
		{"empty env", "base_url: https://acme.my.salesforce.com\naccess_token: {env: LETHE_TEST_UNSET_SF}\n", "access_token: environment variable LETHE_TEST_UNSET_SF"},
		{"empty resolve", base + "resolve: {}\n", "resolve: name fields"},
		{"hostile field", base + "resolve:\n  fields: {\"Email FROM User WHERE Id != null OR Email\": email}\n", "resolve.fields: \"Email FROM User"},
		{"field Id", base + "resolve:\n  fields: {Id: user_ids.sfdc}\n", "resolve.fields.Id: use record_ids"},
		{"bad kind", base + "resolve:\n  fields: {App_User_Id__c: user_id}\n", "resolve.fields.App_User_Id__c: \"user_id\" is not an identifier kind"},
		{"record_ids not a user id", base + "resolve:\n  record_ids: email\n", "resolve.record_ids: \"email\" is not a user_ids"},
		{"resolve object not erased", base + "resolve:\n  record_ids: user_ids.sfdc\n  objects: [Lead]\n", "resolve.objects[0]: \"Lead\" is not one of the instance's objects (Contact)"},
	})
	t.Run("defaults", func(t *testing.T) {
		c := connectortest.Build(t, "salesforce", "sfdc", "base_url: https://acme.my.salesforce.com/\naccess_token: x\n").(*conn)
		if c.api != "https://acme.my.salesforce.com/services/data/v60.0" || len(c.objects) != 1 || c.objects[0] != "Contact" || c.poll != 30*time.Second {
			t.Errorf("defaults: api %q, objects %v, poll %v", c.api, c.objects, c.poll)
		}
	})
}

func TestSOQLString(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"a@example.com":              `'a@example.com'`,
		"o'brien@example.com":        `'o\'brien@example.com'`,
		`back\slash@example.com`:     `'back\\slash@example.com'`,
		`x\'or'1'='1@example.com`:    `'x\\\'or\'1\'=\'1@example.com'`,
		"%_@example.com":             `'%_@example.com'`, // literal under =, not LIKE
		"tab\there\nnl\"q@example.x": `'tab\there\nnl\"q@example.x'`,
	} {
		got, err := soqlString(in)
		if err != nil || got != want {
			t.Errorf("soqlString(%q) = %s, %v; want %s", in, got, err, want)
		}
		// The fake parses what Salesforce would and must read the input back.
		q, ok := salesforcefake.ParseSOQL("SELECT Id, IsDeleted FROM Contact WHERE Email = " + got)
		if !ok || q.Email != in {
			t.Errorf("%s reads back as %q (ok %v)", got, q.Email, ok)
		}
	}
	if _, err := soqlString("nul\x00@example.com"); err == nil {
		t.Error("a NUL byte was accepted")
	} else if perm, _ := connectors.Classify(err); !perm || strings.Contains(err.Error(), "nul") {
		t.Errorf("err = %v; want permanent without the email", err)
	}
}

// erase runs Erase and polls to the end, as the runtime would.
func erase(t *testing.T, c connectors.Connector, s connectors.Subject) (connectors.Outcome, error) {
	t.Helper()
	return connectortest.EraseAndWait(connectortest.Ctx(t), c, s, 5*time.Second)
}

// pollToEnd polls the job ref to its end, as the runtime does after the
// Erase that returned it.
func pollToEnd(t *testing.T, c connectors.Connector, ref string) (connectors.Outcome, error) {
	t.Helper()
	return erase(t, refPoller{c, ref}, connectors.Subject{})
}

// refPoller polls a given job ref as if Erase had just returned it.
type refPoller struct {
	connectors.Connector
	ref string
}

func (p refPoller) Erase(context.Context, connectors.Subject) (connectors.Outcome, error) {
	return connectors.Running(p.ref, time.Millisecond), nil
}

func (p refPoller) Poll(ctx context.Context, ref string) (connectors.Outcome, error) {
	return p.Connector.(connectors.Poller).Poll(ctx, ref)
}

// TestRequestsMatchContract checks the calls Salesforce receives.
func TestRequestsMatchContract(t *testing.T) {
	t.Parallel()
	f, c := setup(t, salesforcefake.Options{})
	s := connectors.Subject{Email: "o'brien@example.com"}
	id := f.Add("Contact", s.Email)
	f.Add("Contact", "brien@example.com")
	out, err := c.Erase(connectortest.Ctx(t), s)
	if err != nil || out.Status != connectors.StatusRunning || out.PollAfter != 5*time.Millisecond {
		t.Fatalf("Erase = %+v, %v; want running with the configured poll interval", out, err)
	}
	calls := f.Calls()
	if len(calls) != 4 {
		t.Fatalf("%d calls, want query, create, upload, close: %+v", len(calls), calls)
	}
	const api = "/services/data/v60.0"
	for i, want := range []struct {
		method, path, contentType string
		status                    int
	}{
		{"GET", api + "/queryAll", "", 200},
		{"POST", api + "/jobs/ingest", "application/json", 200},
		{"PUT", api + "/jobs/ingest/{job}/batches", "text/csv", 201},
		{"PATCH", api + "/jobs/ingest/{job}", "application/json", 200},
	} {
		got := calls[i]
		jobPath := strings.Replace(want.path, "{job}", "7505g0000000000000", 1)
		if got.Method != want.method || got.Path != jobPath || got.Status != want.status {
			t.Errorf("call %d = %s %s → %d, want %s %s → %d", i, got.Method, got.Path, got.Status, want.method, jobPath, want.status)
		}
		if got.Header.Get("Content-Type") != want.contentType {
			t.Errorf("call %d Content-Type = %q, want %q", i, got.Header.Get("Content-Type"), want.contentType)
		}
		if got.Header.Get("Authorization") != "Bearer "+token {
			t.Errorf("call %d Authorization = %q", i, got.Header.Get("Authorization"))
		}
	}
	if q := calls[0].Query; q != "q=SELECT+Id%2C+IsDeleted+FROM+Contact+WHERE+Email+%3D+%27o%5C%27brien%40example.com%27" {
		t.Errorf("query string = %s", q)
	}
	var job map[string]string
	if err := json.Unmarshal(calls[1].Body, &job); err != nil {
		t.Fatal(err)
	}
	if len(job) != 4 || job["object"] != "Contact" || job["operation"] != "hardDelete" || job["contentType"] != "CSV" || job["lineEnding"] != "LF" {
		t.Errorf("create job body = %s", calls[1].Body)
	}
	if string(calls[2].Body) != "Id\n"+id+"\n" {
		t.Errorf("CSV = %q", calls[2].Body)
	}
	if string(calls[3].Body) != `{"state":"UploadComplete"}` {
		t.Errorf("close body = %s", calls[3].Body)
	}
	if strings.Contains(out.JobRef, "brien") || strings.Contains(out.JobRef, id) {
		t.Errorf("job ref %s holds the person's identifiers", out.JobRef)
	}

	if _, err := pollToEnd(t, c, `{"v":1,"jobs":[{"object":"Contact","id":"7505g0000000000000"}]}`); err != nil {
		t.Fatal(err)
	}
	if f.CountEmail(s.Email) != 0 || f.CountEmail("brien@example.com") != 1 {
		t.Errorf("after the job: %d left of the subject, %d of the bystander", f.CountEmail(s.Email), f.CountEmail("brien@example.com"))
	}
	for _, call := range f.Calls()[4:] {
		if call.Method != "GET" || call.Path != api+"/jobs/ingest/7505g0000000000000" {
			t.Errorf("poll = %s %s", call.Method, call.Path)
		}
	}
}

func TestJobPolledToCompletionByAnotherProcess(t *testing.T) {
	t.Parallel()
	f := salesforcefake.Start(t, salesforcefake.Options{Polls: 2})
	s := connectors.Subject{Email: "async@example.com"}
	f.Add("Contact", s.Email)
	f.Add("Contact", s.Email)
	f.Add("Lead", s.Email)
	cfg := f.Config() // Contacts and Leads
	out, err := connectortest.Build(t, "salesforce", "sfdc", cfg).Erase(connectortest.Ctx(t), s)
	if err != nil || out.Status != connectors.StatusRunning {
		t.Fatalf("Erase = %+v, %v", out, err)
	}
	// Another process, built from the same config, polls the stored ref.
	other := connectortest.Build(t, "salesforce", "sfdc", cfg).(connectors.Poller)
	var states []connectors.Status
	ref := out.JobRef
	for range 10 {
		out, err = other.Poll(connectortest.Ctx(t), ref)
		if err != nil {
			t.Fatalf("Poll: %v", err)
		}
		states = append(states, out.Status)
		if out.Status != connectors.StatusRunning {
			break
		}
		if out.JobRef != ref {
			t.Fatalf("the ref changed: %s", out.JobRef)
		}
		if !strings.Contains(out.Evidence[0].Value, "InProgress") {
			t.Errorf("running evidence = %+v", out.Evidence)
		}
	}
	if len(states) != 3 || out.Status != connectors.StatusErased || out.Records != 3 {
		t.Fatalf("states %v, final %+v", states, out)
	}
	want := []string{"Contact hardDelete job 7505g0000000000000: JobComplete, 2 processed, 0 failed",
		"Lead hardDelete job 7505g0000000000001: JobComplete, 1 processed, 0 failed"}
	if len(out.Evidence) != 2 || out.Evidence[0].Value != want[0] || out.Evidence[1].Value != want[1] {
		t.Errorf("evidence = %+v", out.Evidence)
	}
	v, err := other.(connectors.Verifier).Verify(connectortest.Ctx(t), s)
	if err != nil || v.Remaining != 0 || len(v.Evidence) != 2 {
		t.Errorf("Verify = %+v, %v", v, err)
	}
}

func TestJobEndings(t *testing.T) {
	t.Parallel()
	s := connectors.Subject{Email: "ending@example.com"}
	for _, tc := range []struct {
		name        string
		setup       func(f *salesforcefake.Fake)
		permanent   bool
		want        string
		leftRecords int64
	}{
		{"job failed", func(f *salesforcefake.Fake) { f.EndJobsAs("Failed") }, false, "job 7505g0000000000000 failed", 1},
		{"job aborted", func(f *salesforcefake.Fake) { f.EndJobsAs("Aborted") }, true, "job 7505g0000000000000 was aborted", 1},
		{"record cannot be deleted", func(f *salesforcefake.Fake) { f.FailRecords("DELETE_FAILED") }, true, "1 of 1 records were not deleted (DELETE_FAILED: 1)", 1},
		{"row lock", func(f *salesforcefake.Fake) { f.FailRecords("UNABLE_TO_LOCK_ROW") }, false, "(UNABLE_TO_LOCK_ROW: 1)", 1},
		{"malformed status", func(*salesforcefake.Fake) {}, false, "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, c := setup(t, salesforcefake.Options{}, s.Email)
			tc.setup(f)
			if tc.name == "malformed status" {
				out, err := c.Erase(connectortest.Ctx(t), s)
				if err != nil {
					t.Fatal(err)
				}
				f.Inject(1, fakevendor.Malformed())
				_, err = c.(connectors.Poller).Poll(connectortest.Ctx(t), out.JobRef)
				if perm, _ := connectors.Classify(err); err == nil || perm {
					t.Fatalf("a malformed job status = %v; want retryable", err)
				}
				return
			}
			_, err := erase(t, c, s)
			if err == nil {
				t.Fatal("the job's end was reported as success")
			}
			perm, _ := connectors.Classify(err)
			if perm != tc.permanent || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v (permanent %v); want permanent %v, mentioning %q", err, perm, tc.permanent, tc.want)
			}
			if strings.Contains(err.Error(), "ending@") {
				t.Errorf("error quotes the email: %v", err)
			}
			if n := f.CountEmail(s.Email); n != tc.leftRecords {
				t.Errorf("%d records left, want %d", n, tc.leftRecords)
			}
		})
	}
	t.Run("records already deleted by a concurrent job", func(t *testing.T) {
		t.Parallel()
		_, c := setup(t, salesforcefake.Options{}, s.Email)
		first, err := c.Erase(connectortest.Ctx(t), s)
		if err != nil {
			t.Fatal(err)
		}
		second, err := c.Erase(connectortest.Ctx(t), s) // a redelivered task, before the first job ran
		if err != nil {
			t.Fatal(err)
		}
		a, err := pollToEnd(t, c, first.JobRef)
		if err != nil || a.Records != 1 {
			t.Fatalf("first job: %+v, %v", a, err)
		}
		b, err := pollToEnd(t, c, second.JobRef)
		if err != nil || b.Status != connectors.StatusNotFound || !strings.Contains(b.Evidence[0].Value, "1 already deleted") {
			t.Fatalf("second job: %+v, %v; want not_found", b, err)
		}
	})
	t.Run("job gone after seven days", func(t *testing.T) {
		t.Parallel()
		_, c := setup(t, salesforcefake.Options{})
		_, err := c.(connectors.Poller).Poll(connectortest.Ctx(t), `{"v":1,"jobs":[{"object":"Contact","id":"7505g0000099999999"}]}`)
		if perm, _ := connectors.Classify(err); err == nil || perm || !strings.Contains(err.Error(), "no longer exists") {
			t.Fatalf("err = %v; want retryable (erase again)", err)
		}
	})
	t.Run("bad ref", func(t *testing.T) {
		t.Parallel()
		f, c := setup(t, salesforcefake.Options{})
		for _, ref := range []string{"", "750x", `{"v":1,"jobs":[]}`, `{"v":1,"jobs":[{"object":"Contact","id":"../../x"}]}`, `{"v":1,"jobs":[{"object":"User","id":"7505g0000099999999"}]}`} {
			_, err := c.(connectors.Poller).Poll(connectortest.Ctx(t), ref)
			if perm, _ := connectors.Classify(err); !perm {
				t.Errorf("Poll(%q) = %v; want permanent", ref, err)
			}
		}
		if len(f.Calls()) != 0 {
			t.Error("a bad ref reached Salesforce")
		}
	})
}

// softDelete deletes a record the ordinary way, through the REST API as a
// person or another integration would: it goes to the Recycle Bin.
func softDelete(t *testing.T, f *salesforcefake.Fake, object, id string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, f.URL()+"/services/data/v60.0/sobjects/"+object+"/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+f.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("soft delete: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestRecycleBin: the Salesforce fake with the contact in the Recycle Bin
// before the request: afterwards queryAll finds nothing.
func TestRecycleBin(t *testing.T) {
	t.Parallel()
	f, c := setup(t, salesforcefake.Options{})
	s := connectors.Subject{Email: "recycled@example.com"}
	id := f.Add("Contact", s.Email)
	softDelete(t, f, "Contact", id)
	f.Add("Contact", "bystander@example.com")
	if f.CountEmail(s.Email) != 1 || f.Recycled(s.Email) != 1 {
		t.Fatal("the fake does not keep soft-deleted records")
	}
	if v, err := c.(connectors.Verifier).Verify(connectortest.Ctx(t), s); err != nil || v.Remaining != 1 {
		t.Fatalf("Verify before = %+v, %v; a record in the Recycle Bin remains", v, err)
	}
	out, err := erase(t, c, s)
	if err != nil || out.Status != connectors.StatusErased || out.Records != 1 {
		t.Fatalf("Erase of a recycled record = %+v, %v; want erased, 1", out, err)
	}
	if n := f.QueryAllCount(s.Email); n != 0 {
		t.Fatalf("queryAll still finds %d records", n)
	}
	if f.CountEmail("bystander@example.com") != 1 {
		t.Error("the bystander lost a record")
	}
	if v, err := c.(connectors.Verifier).Verify(connectortest.Ctx(t), s); err != nil || v.Remaining != 0 {
		t.Errorf("Verify after = %+v, %v", v, err)
	}
	for _, call := range connectortest.CallsTo(f, "", "/services/data/v60.0/jobs/") {
		t.Errorf("a job was started with no live record: %s %s", call.Method, call.Path)
	}
	soap := connectortest.CallsTo(f, "", "/services/Soap/")
	if len(soap) != 1 {
		t.Fatalf("%d SOAP calls, want one emptyRecycleBin", len(soap))
	}
	call := soap[0]
	body := string(call.Body)
	for _, want := range []string{"<urn:sessionId>" + token + "</urn:sessionId>", "<urn:emptyRecycleBin><urn:ids>" + id + "</urn:ids></urn:emptyRecycleBin>"} {
		if !strings.Contains(body, want) {
			t.Errorf("emptyRecycleBin envelope lacks %s: %s", want, body)
		}
	}
	if call.Path != "/services/Soap/u/60.0" || call.Header.Get("SOAPAction") == "" || !strings.HasPrefix(call.Header.Get("Content-Type"), "text/xml") || call.Status != 200 {
		t.Errorf("emptyRecycleBin = %s (SOAPAction %q, Content-Type %q) → %d", call.Path, call.Header.Get("SOAPAction"), call.Header.Get("Content-Type"), call.Status)
	}
	if call.Header.Get("Authorization") != "" {
		t.Errorf("the SOAP call carries the token in a header too")
	}
	want := []string{"Contact: 1 record found (1 in the Recycle Bin)", "Contact: 1 record emptied from the Recycle Bin (emptyRecycleBin)"}
	if len(out.Evidence) != 2 || out.Evidence[0].Value != want[0] || out.Evidence[1].Value != want[1] {
		t.Errorf("evidence = %+v, want %v", out.Evidence, want)
	}

	t.Run("with live records", func(t *testing.T) {
		f := salesforcefake.Start(t, salesforcefake.Options{})
		s := connectors.Subject{Email: "both@example.com"}
		f.Add("Contact", s.Email)
		f.Recycle(f.Add("Contact", s.Email))
		f.Recycle(f.Add("Lead", s.Email))
		f.Add("Lead", s.Email)
		c := connectortest.Build(t, "salesforce", "sfdc", f.Config())
		out, err := c.Erase(connectortest.Ctx(t), s)
		if err != nil || out.Status != connectors.StatusRunning {
			t.Fatalf("Erase = %+v, %v; want running", out, err)
		}
		if f.Recycled(s.Email) != 0 {
			t.Error("the Recycle Bin was not emptied before the jobs")
		}
		out, err = pollToEnd(t, c, out.JobRef)
		if err != nil || out.Status != connectors.StatusErased || out.Records != 4 {
			t.Fatalf("Poll = %+v, %v; want 4 records (2 by jobs, 2 emptied)", out, err)
		}
		if n := f.QueryAllCount(s.Email); n != 0 {
			t.Errorf("queryAll still finds %d records", n)
		}
		var emptied int
		for _, ev := range out.Evidence {
			if ev.Kind == "recycle_bin" {
				emptied++
			}
		}
		if emptied != 2 {
			t.Errorf("evidence = %+v, want a recycle_bin line per object", out.Evidence)
		}
	})
	t.Run("more than 200 in the Recycle Bin", func(t *testing.T) {
		f, c := setup(t, salesforcefake.Options{})
		s := connectors.Subject{Email: "hoarded@example.com"}
		for range 201 {
			f.Recycle(f.Add("Contact", s.Email))
		}
		out, err := erase(t, c, s)
		if err != nil || out.Records != 201 || f.QueryAllCount(s.Email) != 0 {
			t.Fatalf("Erase = %+v, %v; %d left", out, err, f.QueryAllCount(s.Email))
		}
		if calls := len(connectortest.CallsTo(f, "", "/services/Soap/")); calls != 2 {
			t.Errorf("%d emptyRecycleBin calls, want 2 (200 ids at most)", calls)
		}
	})
	t.Run("cannot be emptied", func(t *testing.T) {
		s := connectors.Subject{Email: "stuck@example.com"}
		f, c := setup(t, salesforcefake.Options{}, s.Email)
		f.FailPurge("INSUFFICIENT_ACCESS_OR_READONLY")
		f.Recycle(f.Add("Contact", s.Email))
		_, err := erase(t, c, s)
		perm, _ := connectors.Classify(err)
		if err == nil || !perm {
			t.Fatalf("err = %v; want permanent", err)
		}
		for _, want := range []string{"1 of 1 Contact records in the Recycle Bin", "INSUFFICIENT_ACCESS_OR_READONLY: 1", "Modify All Data", "hardDelete jobs were started"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
		if strings.Contains(err.Error(), "stuck") {
			t.Errorf("error quotes the email: %v", err)
		}
		if f.Recycled(s.Email) != 1 {
			t.Error("the record left the Recycle Bin")
		}
		if v, err := c.(connectors.Verifier).Verify(connectortest.Ctx(t), s); err != nil || v.Remaining == 0 {
			t.Errorf("Verify = %+v, %v; the record in the Recycle Bin remains", v, err)
		}
	})
	t.Run("deleted the ordinary way while the job ran", func(t *testing.T) {
		f, c := setup(t, salesforcefake.Options{})
		s := connectors.Subject{Email: "racing@example.com"}
		id := f.Add("Contact", s.Email)
		out, err := c.Erase(connectortest.Ctx(t), s)
		if err != nil || out.Status != connectors.StatusRunning {
			t.Fatalf("Erase = %+v, %v", out, err)
		}
		softDelete(t, f, "Contact", id) // the job meets ENTITY_IS_DELETED
		out, err = pollToEnd(t, c, out.JobRef)
		if err != nil || out.Status != connectors.StatusErased || out.Records != 1 {
			t.Fatalf("Poll = %+v, %v; want the record emptied from the Recycle Bin", out, err)
		}
		if !strings.Contains(out.Evidence[0].Value, "1 already deleted, 1 of them emptied from the Recycle Bin") {
			t.Errorf("evidence = %+v", out.Evidence)
		}
		if f.QueryAllCount(s.Email) != 0 {
			t.Error("the record is still there")
		}
	})
	t.Run("emptied records still listed by queryAll", func(t *testing.T) {
		// Salesforce: emptied records "can be queried using queryAll()
		// for some time, typically 24 hours". queryAll cannot tell them
		// from restorable ones, so Verify stays on the safe side.
		f, c := setup(t, salesforcefake.Options{})
		f.KeepPurgedQueryable()
		s := connectors.Subject{Email: "lingering@example.com"}
		f.Recycle(f.Add("Contact", s.Email))
		if out, err := erase(t, c, s); err != nil || out.Records != 1 || f.CountEmail(s.Email) != 0 {
			t.Fatalf("Erase = %+v, %v", out, err)
		}
		if v, err := c.(connectors.Verifier).Verify(connectortest.Ctx(t), s); err != nil || v.Remaining != 1 || !strings.Contains(v.Evidence[0].Value, "not yet deleted physically") {
			t.Errorf("Verify = %+v, %v; want the listed record counted", v, err)
		}
		_, err := erase(t, c, s)
		if perm, _ := connectors.Classify(err); !perm || !strings.Contains(err.Error(), "ENTITY_IS_DELETED: 1") {
			t.Errorf("a second Erase = %v; want permanent with the code", err)
		}
	})
	t.Run("SOAP faults", func(t *testing.T) {
		s := connectors.Subject{Email: "faulty@example.com"}
		for _, tc := range []struct {
			name      string
			fault     fakevendor.Fault
			permanent bool
			after     time.Duration
			want      string
		}{
			{"expired session", salesforcefake.Unauthorized, true, 0, "INVALID_SESSION_ID"},
			{"daily limit", salesforcefake.LimitExceeded, false, time.Hour, "REQUEST_LIMIT_EXCEEDED"},
			{"unknown exception", func(w http.ResponseWriter, r *http.Request) {
				salesforcefake.WriteFault(w, "UNKNOWN_EXCEPTION", "An unexpected error occurred: faulty@example.com")
			}, false, 0, "UNKNOWN_EXCEPTION"},
			{"not SOAP", fakevendor.Malformed(), false, 0, "unreadable SOAP answer"},
			{"503", salesforcefake.Unavailable, false, 0, "503"},
			{"API disabled", func(w http.ResponseWriter, r *http.Request) {
				salesforcefake.WriteFault(w, "API_DISABLED_FOR_ORG", "API is not enabled for this Organization or Partner")
			}, true, 0, "API Enabled"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f, c := setup(t, salesforcefake.Options{})
				f.Recycle(f.Add("Contact", s.Email))
				f.Inject(1, f.PassThrough()) // the queryAll
				f.Inject(1, tc.fault)        // the emptyRecycleBin
				_, err := c.Erase(connectortest.Ctx(t), s)
				perm, after := connectors.Classify(err)
				if err == nil || perm != tc.permanent || after != tc.after || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v (permanent %v, after %v); want permanent %v after %v, mentioning %q", err, perm, after, tc.permanent, tc.after, tc.want)
				}
				if strings.Contains(err.Error(), "faulty@") || strings.Contains(err.Error(), token) {
					t.Errorf("error quotes the email or token: %v", err)
				}
				if f.Recycled(s.Email) != 1 {
					t.Error("the record left the Recycle Bin despite the fault")
				}
			})
		}
	})
	t.Run("no permission", func(t *testing.T) {
		f, c := setup(t, salesforcefake.Options{}, s.Email)
		f.DenyHardDelete()
		_, err := erase(t, c, s)
		if perm, _ := connectors.Classify(err); !perm || !strings.Contains(err.Error(), `"Bulk API Hard Delete"`) || !strings.Contains(err.Error(), "INVALIDJOB") {
			t.Fatalf("err = %v; want permanent naming the permission", err)
		}
		if f.CountEmail(s.Email) != 1 {
			t.Error("records went without the permission")
		}
	})
}

func TestPaging(t *testing.T) {
	t.Parallel()
	s := connectors.Subject{Email: "many@example.com"}
	f, c := setup(t, salesforcefake.Options{}, slices.Repeat([]string{s.Email}, 5)...)
	f.SetPageSize(2)
	out, err := erase(t, c, s)
	if err != nil || out.Records != 5 || f.CountEmail(s.Email) != 0 {
		t.Fatalf("Erase = %+v, %v; %d left", out, err, f.CountEmail(s.Email))
	}
	if more := len(connectortest.CallsTo(f, "", "/services/data/v60.0/query/")); more != 2 {
		t.Errorf("%d nextRecordsUrl reads, want 2", more)
	}
}

func TestLimitsAndFaults(t *testing.T) {
	t.Parallel()
	s := connectors.Subject{Email: "limits@example.com"}

	t.Run("daily limit is retryable after a long wait", func(t *testing.T) {
		t.Parallel()
		f, c := setup(t, salesforcefake.Options{}, s.Email)
		f.DailyAllocation(2)
		_, err := c.Erase(connectortest.Ctx(t), s) // query and job creation pass, the upload is refused
		perm, after := connectors.Classify(err)
		if perm || after != time.Hour || !strings.Contains(err.Error(), "REQUEST_LIMIT_EXCEEDED") {
			t.Fatalf("err = %v (permanent %v, after %v); want retryable after 1h", err, perm, after)
		}
		if f.Limited() == 0 {
			t.Error("the fake's allocation did not trip")
		}
	})
	t.Run("concurrent request limit waits a minute", func(t *testing.T) {
		t.Parallel()
		f, c := setup(t, salesforcefake.Options{})
		f.Inject(1, func(w http.ResponseWriter, r *http.Request) {
			salesforcefake.WriteErrors(w, 403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded.")
		})
		_, err := c.Erase(connectortest.Ctx(t), s)
		if perm, after := connectors.Classify(err); perm || after != time.Minute {
			t.Fatalf("err = %v; want retryable after a minute", err)
		}
	})
	t.Run("limit storm then success", func(t *testing.T) {
		t.Parallel()
		f, c := setup(t, salesforcefake.Options{}, s.Email)
		f.Inject(3, salesforcefake.LimitExceeded)
		f.Inject(2, fakevendor.TooMany(2*time.Second)) // a proxy in front of Salesforce
		var errs []error
		for range 10 {
			out, err := erase(t, c, s)
			if err == nil {
				if out.Records != 1 || f.CountEmail(s.Email) != 0 {
					t.Fatalf("Erase = %+v", out)
				}
				break
			}
			if perm, after := connectors.Classify(err); perm || after <= 0 {
				t.Fatalf("err = %v; want retryable with a delay", err)
			}
			errs = append(errs, err)
		}
		if len(errs) != 5 {
			t.Errorf("%d errors before success, want 5", len(errs))
		}
	})
	t.Run("upload fails: the job is aborted", func(t *testing.T) {
		t.Parallel()
		f, c := setup(t, salesforcefake.Options{}, s.Email)
		// Query and create pass; the upload meets a 500.
		f.Inject(2, f.PassThrough())
		f.Inject(1, func(w http.ResponseWriter, r *http.Request) {
			salesforcefake.WriteErrors(w, 500, "UNKNOWN_EXCEPTION", "An unexpected error occurred")
		})
		_, err := c.Erase(connectortest.Ctx(t), s)
		if perm, _ := connectors.Classify(err); err == nil || perm || !strings.Contains(err.Error(), "job 7505g0000000000000") {
			t.Fatalf("err = %v; want retryable naming the job", err)
		}
		if st := f.JobState("7505g0000000000000"); st != "Aborted" {
			t.Errorf("the unused job is %s, want Aborted", st)
		}
		if out, err := erase(t, c, s); err != nil || out.Records != 1 {
			t.Errorf("retry = %+v, %v", out, err)
		}
	})
}

// TestAPIVersion: an instance set to another API version calls that
// version only. (Two instances side by side, each at its own org, are a
// vendor case.)
func TestAPIVersion(t *testing.T) {
	t.Parallel()
	f := salesforcefake.Start(t, salesforcefake.Options{})
	s := connectors.Subject{Email: "v62@example.com"}
	f.Add("Contact", s.Email)
	c := connectortest.Build(t, "salesforce", "sfdc-us", contactsConfig(f, "api_version: v62.0"))
	if out, err := erase(t, c, s); err != nil || out.Records != 1 || f.CountEmail(s.Email) != 0 {
		t.Fatalf("Erase = %+v, %v", out, err)
	}
	for _, call := range f.Calls() {
		if !strings.HasPrefix(call.Path, "/services/data/v62.0/") {
			t.Errorf("called %s", call.Path)
		}
	}
}

func TestTokenFileIsReadPerCall(t *testing.T) {
	t.Parallel()
	f := salesforcefake.Start(t, salesforcefake.Options{})
	f.SetToken("first-token")
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("first-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := connectortest.Build(t, "salesforce", "sfdc", "base_url: "+f.URL()+"\naccess_token: {file: "+path+"}\n").(connectors.Verifier)
	s := connectors.Subject{Email: "rotate@example.com"}
	if _, err := c.Verify(connectortest.Ctx(t), s); err != nil {
		t.Fatal(err)
	}
	// The token is refreshed by another process; the old one expires.
	f.SetToken("second-token")
	if err := os.WriteFile(path, []byte("second-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Verify(connectortest.Ctx(t), s); err != nil {
		t.Fatalf("after the refresh: %v", err)
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	const base = "base_url: https://acme.my.salesforce.com\naccess_token: x\nobjects: [Contact, Lead]\n"
	connectortest.RunPlanCases(t, "salesforce", connectortest.PlanCases{
		{Name: "email", Instance: "sfdc", YAML: base, Keys: "[email]", Uses: "[email]"},
		{Name: "resolver", Instance: "sfdc", YAML: base + "resolve:\n  fields: {App_User_Id__c: user_ids.app, MobilePhone: phone}\n  record_ids: user_ids.sfdc\n",
			Keys: "[email]", Uses: "[email]", ResolveBy: "[email]", Gives: "[phone user_ids.app user_ids.sfdc]"},
	})
	if _, ok := connectortest.Build(t, "salesforce", "sfdc", base).(connectors.Resolver); ok {
		t.Error("an instance without resolve is a resolver")
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	f := salesforcefake.Start(t, salesforcefake.Options{})
	s := connectors.Subject{Email: "o'hara@example.com"}
	a := f.Add("Contact", s.Email)
	f.SetField(a, salesforcefake.AppUserIDField, "u-1")
	b := f.Add("Contact", s.Email) // a duplicate Contact with another app id: both are reported
	f.SetField(b, salesforcefake.AppUserIDField, "u-2")
	binned := f.Add("Contact", s.Email)
	f.SetField(binned, salesforcefake.AppUserIDField, "u-3")
	f.Recycle(binned)
	lead := f.Add("Lead", s.Email) // no app id: nothing read
	other := f.Add("Contact", "hara@example.com")
	f.SetField(other, salesforcefake.AppUserIDField, "u-9")
	c := connectortest.Build(t, "salesforce", "sfdc", f.ConfigWith(salesforcefake.ResolveConfig))
	r, err := c.(connectors.Resolver).Resolve(connectortest.Ctx(t), s)
	if err != nil {
		t.Fatal(err)
	}
	want := map[connectors.Kind][]string{
		"user_ids.app":  {"u-1", "u-2", "u-3"},
		"user_ids.sfdc": {a, b, binned, lead},
	}
	for k, vs := range want {
		if fmt.Sprint(sorted(r.Found[k])) != fmt.Sprint(sorted(vs)) {
			t.Errorf("Found[%s] = %v, want %v", k, r.Found[k], vs)
		}
	}
	if len(r.Found) != 2 {
		t.Errorf("Found = %v", r.Found)
	}
	wantEv := []string{"Contact by email: 3 records found (1 in the Recycle Bin); 3 field values read", "Lead by email: 1 record found (0 in the Recycle Bin); 0 field values read"}
	if len(r.Evidence) != 2 || r.Evidence[0].Value != wantEv[0] || r.Evidence[1].Value != wantEv[1] {
		t.Errorf("evidence = %+v, want %v", r.Evidence, wantEv)
	}
	for _, call := range f.Calls() {
		if call.Path != "/services/data/v60.0/queryAll" || !strings.Contains(call.Query, "SELECT+Id%2C+IsDeleted%2C+App_User_Id__c+FROM+") {
			t.Errorf("lookup = %s?%s", call.Path, call.Query)
		}
	}

	t.Run("a field the org does not have", func(t *testing.T) {
		c := connectortest.Build(t, "salesforce", "sfdc", f.ConfigWith("resolve:\n  fields: {Nope__c: user_ids.app}"))
		_, err := c.(connectors.Resolver).Resolve(connectortest.Ctx(t), s)
		if perm, _ := connectors.Classify(err); err == nil || !perm || !strings.Contains(err.Error(), "INVALID_FIELD") {
			t.Fatalf("err = %v; want permanent INVALID_FIELD", err)
		}
	})
	t.Run("numbers and nulls", func(t *testing.T) {
		for raw, want := range map[string]string{`"u-1"`: "u-1", `42`: "42", `null`: "", `""`: "", `true`: "", `{"a":1}`: "", `  " x "`: "x"} {
			got, ok := fieldValue(json.RawMessage(raw))
			if got != want || ok != (want != "") {
				t.Errorf("fieldValue(%s) = %q, %v; want %q", raw, got, ok, want)
			}
		}
	})
}

// TestResolveCases runs the look-up cases every resolver runs.
func TestResolveCases(t *testing.T) {
	t.Parallel()
	connectortest.RunResolveCases(t, connectortest.ResolveCases{
		Start: connectortest.StartFake(salesforcefake.Start),
		New: func(t *testing.T, f connectortest.FaultyVendor) connectors.Resolver {
			return connectortest.Build(t, "salesforce", "sfdc", f.(*salesforcefake.Fake).ConfigWith(salesforcefake.ResolveConfig)).(connectors.Resolver)
		},
		// Over the org's daily allocation the connector waits an hour.
		TooMany: salesforcefake.LimitExceeded, TooManyAfter: time.Hour, Unavailable: salesforcefake.Unavailable, Refused: salesforcefake.Unauthorized,
	})
}

func sorted(vs []string) []string {
	out := append([]string(nil), vs...)
	slices.Sort(out)
	return out
}

// kinds counts the calls f received by what they were.
func kinds(f *salesforcefake.Fake) map[string]int {
	out := map[string]int{}
	for _, call := range f.Calls() {
		p := call.Path
		switch {
		case strings.HasSuffix(p, "/queryAll"), strings.Contains(p, "/query/"), strings.HasSuffix(p, "/query"):
			out["query"]++
		case strings.HasPrefix(p, "/services/Soap/"):
			out["emptyRecycleBin"]++
		case call.Method == "POST" && strings.HasSuffix(p, "/jobs/ingest"):
			out["create"]++
		case call.Method == "PUT":
			out["upload"]++
		case call.Method == "PATCH":
			out["close"]++
		case strings.HasSuffix(p, "/failedResults/"):
			out["failedResults"]++
		case strings.HasSuffix(p, "/successfulResults/"):
			out["successfulResults"]++
		case call.Method == "GET" && strings.Contains(p, "/jobs/ingest/"):
			out["status"]++
		default:
			out[call.Method+" "+p]++
		}
	}
	return out
}

// eraseBatch erases subjects in one batch and polls to the end.
func eraseBatch(t *testing.T, c connectors.Connector, subjects []connectors.Subject) []connectors.Item {
	t.Helper()
	items, err := connectortest.EraseBatchAndWait(connectortest.Ctx(t), c.(connectors.BatchEraser), subjects, 5*time.Second)
	if err != nil {
		t.Fatalf("EraseBatch: %v", err)
	}
	return items
}

func subjects(n int, format string) []connectors.Subject {
	out := make([]connectors.Subject, n)
	for i := range out {
		out[i] = connectors.Subject{Email: fmt.Sprintf(format, i)}
	}
	return out
}

// TestBatchCalls: a batch costs one lookup per object (more only for long
// emails), one job per object and one status read per job and poll.
func TestBatchCalls(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 70) + "%d@example.com" // 80-odd characters, Salesforce's most
	for _, tc := range []struct {
		name     string
		n        int
		format   string
		recycled bool
		want     map[string]int // calls of EraseBatch
	}{
		{"one", 1, "one%d@example.com", false, map[string]int{"query": 1, "create": 1, "upload": 1, "close": 1}},
		{"two", 2, "two%d@example.com", false, map[string]int{"query": 1, "create": 1, "upload": 1, "close": 1}},
		{"the limit", 200, "full%d@example.com", false, map[string]int{"query": 1, "create": 1, "upload": 1, "close": 1}},
		{"the limit in the Recycle Bin too", 200, "binned%d@example.com", true, map[string]int{"query": 1, "emptyRecycleBin": 1, "create": 1, "upload": 1, "close": 1}},
		{"past the limit: two chunks", 201, "over%d@example.com", false, map[string]int{"query": 2, "create": 2, "upload": 2, "close": 2}},
		{"long emails split the lookup", 200, long, false, map[string]int{"query": 2, "create": 1, "upload": 1, "close": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, c := setup(t, salesforcefake.Options{})
			ss := subjects(tc.n, tc.format)
			for _, s := range ss {
				f.Add("Contact", s.Email)
				if tc.recycled {
					f.Recycle(f.Add("Contact", s.Email))
				}
			}
			bystander := f.Add("Contact", "bystander@example.com")
			items, err := c.(connectors.BatchEraser).EraseBatch(connectortest.Ctx(t), ss)
			if err != nil || len(items) != tc.n {
				t.Fatalf("EraseBatch = %d items, %v", len(items), err)
			}
			if got := kinds(f); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("calls = %v, want %v", got, tc.want)
			}
			for _, call := range f.Calls() {
				if call.Status/100 != 2 {
					t.Errorf("%s %s → %d", call.Method, call.Path, call.Status)
				}
				if n := len(call.Path) + 1 + len(call.Query); n > 12000 {
					t.Errorf("a request URI of %d bytes", n)
				}
			}
			var refs []string
			for i, it := range items {
				if it.Err != nil || it.Outcome.Status != connectors.StatusRunning {
					t.Fatalf("subject %d: %+v, %v", i, it.Outcome, it.Err)
				}
				refs = append(refs, it.Outcome.JobRef)
			}
			before := kinds(f)["status"]
			for range 3 { // the fake's jobs end on the second read
				got, err := c.(connectors.BatchPoller).PollBatch(connectortest.Ctx(t), refs)
				if err != nil {
					t.Fatal(err)
				}
				for i, it := range got {
					refs[i] = it.Outcome.JobRef
					if it.Err != nil {
						t.Fatalf("subject %d: %v", i, it.Err)
					}
				}
				if got[0].Outcome.Status != connectors.StatusRunning {
					for i, it := range got {
						if want := map[bool]int64{false: 1, true: 2}[tc.recycled]; it.Outcome.Status != connectors.StatusErased || it.Outcome.Records != want {
							t.Errorf("subject %d: %+v, want %d erased", i, it.Outcome, want)
						}
					}
					break
				}
			}
			jobs := tc.want["create"]
			if reads := kinds(f)["status"] - before; reads != 2*jobs {
				t.Errorf("%d status reads for %d refs, want %d (one per job per PollBatch)", reads, tc.n, 2*jobs)
			}
			for _, s := range ss {
				if f.QueryAllCount(s.Email) != 0 {
					t.Fatalf("records of a subject remain")
				}
			}
			if f.CountEmail("bystander@example.com") != 1 || f.JobState(bystander) != "" {
				t.Error("the bystander lost its record")
			}
		})
	}
}

// TestBatchLookupLength: the lookups of a batch stay within what
// Salesforce takes (the fake refuses more with 414), whatever the emails.
func TestBatchLookupLength(t *testing.T) {
	t.Parallel()
	f, c := setup(t, salesforcefake.Options{})
	// Quotes and backslashes are escaped, then URL-encoded: the longest
	// an 80-character email gets.
	ss := subjects(200, strings.Repeat(`'\`, 30)+"%03d@example.com")
	for _, s := range ss {
		f.Add("Contact", s.Email)
	}
	items := eraseBatch(t, c, ss)
	for i, it := range items {
		if it.Err != nil || it.Outcome.Records != 1 {
			t.Errorf("subject %d: %+v, %v", i, it.Outcome, it.Err)
		}
	}
	if q := kinds(f)["query"]; q < 4 {
		t.Errorf("%d lookups for 200 long emails", q)
	}
	t.Run("the fake refuses a URI too long", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, f.URL()+"/services/data/v60.0/queryAll?q="+strings.Repeat("x", salesforcefake.MaxURI), nil)
		req.Header.Set("Authorization", "Bearer "+f.Token())
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusRequestURITooLong {
			t.Fatalf("%v %v", resp, err)
		}
		resp.Body.Close()
	})
	t.Run("an email too long for any lookup fails alone", func(t *testing.T) {
		f, c := setup(t, salesforcefake.Options{}, "fine@example.com")
		items, err := c.(connectors.BatchEraser).EraseBatch(connectortest.Ctx(t), []connectors.Subject{{Email: strings.Repeat("'", 3000) + "@example.com"}, {Email: "fine@example.com"}})
		if err != nil {
			t.Fatal(err)
		}
		if !connectortest.IsPermanent(items[0].Err) || items[1].Err != nil || items[1].Outcome.Status != connectors.StatusRunning {
			t.Errorf("items = %+v", items)
		}
		for _, call := range f.Calls() {
			if call.Status/100 != 2 {
				t.Errorf("%s → %d", call.Path, call.Status)
			}
		}
	})
}

// TestBatchAttribution: each subject's outcome is what Salesforce said of
// that subject's records.
func TestBatchAttribution(t *testing.T) {
	t.Parallel()
	t.Run("records of one subject fail", func(t *testing.T) {
		t.Parallel()
		f, c := setup(t, salesforcefake.Options{})
		a, b, d := connectors.Subject{Email: "a@example.com"}, connectors.Subject{Email: "b@example.com"}, connectors.Subject{Email: "d@example.com"}
		f.Add("Contact", a.Email)
		f.Add("Contact", a.Email)
		f.Add("Contact", b.Email)
		f.Add("Contact", d.Email)
		f.FailRecordsOf(b.Email, "DELETE_FAILED")
		items := eraseBatch(t, c, []connectors.Subject{a, b, d})
		if it := items[0]; it.Err != nil || it.Outcome.Status != connectors.StatusErased || it.Outcome.Records != 2 {
			t.Errorf("a: %+v, %v; want 2 erased", it.Outcome, it.Err)
		}
		if err := items[1].Err; !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), "1 of 1 records were not deleted (DELETE_FAILED: 1)") || strings.Contains(err.Error(), "b@") {
			t.Errorf("b: %v; want its own failure, permanent", err)
		}
		if it := items[2]; it.Err != nil || it.Outcome.Records != 1 {
			t.Errorf("d: %+v, %v", it.Outcome, it.Err)
		}
		if !strings.Contains(connectortest.EvidenceText(items[0].Outcome.Evidence), "4 processed, 1 failed; this subject's: 2, 0 of them failed") {
			t.Errorf("evidence = %+v", items[0].Outcome.Evidence)
		}
		if f.CountEmail(b.Email) != 1 {
			t.Error("b's record went")
		}
		if k := kinds(f); k["failedResults"] != 1 || k["successfulResults"] != 1 {
			t.Errorf("results read %v, want each once for the job", k)
		}
	})
	t.Run("a subject's record deleted the ordinary way meanwhile", func(t *testing.T) {
		t.Parallel()
		f, c := setup(t, salesforcefake.Options{})
		a, b := connectors.Subject{Email: "a@example.com"}, connectors.Subject{Email: "b@example.com"}
		f.Add("Contact", a.Email)
		id := f.Add("Contact", b.Email)
		f.Add("Contact", b.Email)
		items, err := c.(connectors.BatchEraser).EraseBatch(connectortest.Ctx(t), []connectors.Subject{a, b})
		if err != nil {
			t.Fatal(err)
		}
		softDelete(t, f, "Contact", id)
		refs := []string{items[0].Outcome.JobRef, items[1].Outcome.JobRef}
		var got []connectors.Item
		for range 3 {
			if got, err = c.(connectors.BatchPoller).PollBatch(connectortest.Ctx(t), refs); err != nil {
				t.Fatal(err)
			}
			if got[0].Outcome.Status != connectors.StatusRunning {
				break
			}
		}
		if got[0].Err != nil || got[0].Outcome.Records != 1 || strings.Contains(connectortest.EvidenceText(got[0].Outcome.Evidence), "already deleted") {
			t.Errorf("a: %+v, %v", got[0].Outcome, got[0].Err)
		}
		if got[1].Err != nil || got[1].Outcome.Records != 2 || !strings.Contains(connectortest.EvidenceText(got[1].Outcome.Evidence), "1 already deleted, 1 of them emptied") {
			t.Errorf("b: %+v, %v; want 2 (1 by the job, 1 emptied)", got[1].Outcome, got[1].Err)
		}
		if f.QueryAllCount(b.Email) != 0 {
			t.Error("b's record is still in the Recycle Bin")
		}
	})
	t.Run("results that cannot be told apart fail the sharers retryably", func(t *testing.T) {
		t.Parallel()
		f := salesforcefake.Start(t, salesforcefake.Options{})
		c := connectortest.Build(t, "salesforce", "sfdc", f.Config()) // Contacts and Leads
		a, b := connectors.Subject{Email: "a@example.com"}, connectors.Subject{Email: "b@example.com"}
		f.Add("Contact", a.Email)
		f.Add("Contact", b.Email)
		f.Add("Lead", a.Email) // a alone has Leads
		items, err := c.(connectors.BatchEraser).EraseBatch(connectortest.Ctx(t), []connectors.Subject{a, b})
		if err != nil {
			t.Fatal(err)
		}
		f.FailRecords("DELETE_FAILED")
		refs := []string{items[0].Outcome.JobRef, items[1].Outcome.JobRef}
		p := c.(connectors.BatchPoller)
		if _, err := p.PollBatch(connectortest.Ctx(t), refs); err != nil { // InProgress
			t.Fatal(err)
		}
		// The jobs run: the Contact job's status and failed results; its
		// successful results come back without ids.
		f.Inject(2, f.PassThrough())
		f.Inject(1, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/csv")
			fmt.Fprint(w, "sf__Id,sf__Created,Id\n,false,\n")
		})
		got, err := p.PollBatch(connectortest.Ctx(t), refs)
		if err != nil {
			t.Fatal(err)
		}
		for i, it := range got {
			if it.Err == nil || connectortest.IsPermanent(it.Err) || !strings.Contains(it.Err.Error(), "do not say which of them were this subject's") {
				t.Errorf("subject %d: %+v, %v; want retryable", i, it.Outcome, it.Err)
			}
		}
		if k := kinds(f); k["status"] != 4 || k["failedResults"] != 2 || k["successfulResults"] != 1 {
			t.Errorf("calls %v", k)
		}
	})
	t.Run("emails that differ in case", func(t *testing.T) {
		t.Parallel()
		f, c := setup(t, salesforcefake.Options{})
		f.Add("Contact", "ada@example.com")
		f.Add("Contact", "ADA@EXAMPLE.COM")
		f.Add("Contact", "bob@example.com")
		items := eraseBatch(t, c, []connectors.Subject{{Email: "Ada@Example.com"}, {Email: "bob@example.com"}, {Email: "ada@example.com"}})
		for i, want := range []int64{2, 1, 2} {
			if it := items[i]; it.Err != nil || it.Outcome.Records != want {
				t.Errorf("subject %d: %+v, %v; want %d", i, it.Outcome, it.Err, want)
			}
		}
		if f.CountEmail("ada@example.com") != 0 {
			t.Error("records remain")
		}
	})
	t.Run("a record matching no email as compared here", func(t *testing.T) {
		t.Parallel()
		f, c := setup(t, salesforcefake.Options{})
		f.Add("Contact", "a@example.com")
		f.Add("Contact", "b@example.com")
		foreign := func(w http.ResponseWriter, r *http.Request) {
			fakevendor.JSON(w, 200, map[string]any{"totalSize": 1, "done": true, "records": []map[string]any{
				{"attributes": map[string]string{"type": "Contact"}, "Id": "0035g0000099999AAA", "IsDeleted": false, "Email": "straße@example.com"}}})
		}
		f.Inject(1, foreign)
		_, err := c.(connectors.BatchEraser).EraseBatch(connectortest.Ctx(t), []connectors.Subject{{Email: "a@example.com"}, {Email: "b@example.com"}})
		if err == nil || !connectortest.IsPermanent(err) || strings.Contains(err.Error(), "straße") {
			t.Fatalf("err = %v; want the batch refused permanently, which the runtime splits", err)
		}
		if k := kinds(f); k["create"] != 0 {
			t.Errorf("a job was started: %v", k)
		}
		// A batch of one owns what its lookup finds.
		f.Inject(1, foreign)
		items, err := c.(connectors.BatchEraser).EraseBatch(connectortest.Ctx(t), []connectors.Subject{{Email: "a@example.com"}})
		if err != nil || items[0].Err != nil || items[0].Outcome.Status != connectors.StatusRunning {
			t.Fatalf("batch of one = %+v, %v", items, err)
		}
	})
	t.Run("a subject's records that cannot be emptied", func(t *testing.T) {
		t.Parallel()
		f, c := setup(t, salesforcefake.Options{})
		f.Add("Contact", "a@example.com")
		f.Recycle(f.Add("Contact", "b@example.com"))
		f.Add("Contact", "b@example.com")
		f.FailPurge("INSUFFICIENT_ACCESS_OR_READONLY")
		items, err := c.(connectors.BatchEraser).EraseBatch(connectortest.Ctx(t), []connectors.Subject{{Email: "a@example.com"}, {Email: "b@example.com"}})
		if err != nil {
			t.Fatal(err)
		}
		if items[0].Err != nil || items[0].Outcome.Status != connectors.StatusRunning {
			t.Errorf("a: %+v, %v", items[0].Outcome, items[0].Err)
		}
		if err := items[1].Err; !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), "1 of 1 Contact records in the Recycle Bin") || !strings.Contains(err.Error(), "hardDelete jobs were started") {
			t.Errorf("b: %v", err)
		}
	})
}

// TestBatchRefused: a call Salesforce refuses fails the whole batch,
// classified as for a single erase.
func TestBatchRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		fault       fakevendor.Fault
		permanent   bool
		after       time.Duration
		rateLimited bool
	}{
		{"400", func(w http.ResponseWriter, r *http.Request) {
			salesforcefake.WriteErrors(w, 400, "MALFORMED_QUERY", "unexpected token: "+r.URL.Query().Get("q"))
		}, true, 0, false},
		{"503", salesforcefake.Unavailable, false, 0, false},
		{"429 from a proxy", fakevendor.TooMany(3 * time.Second), false, 3 * time.Second, true},
		{"daily limit", salesforcefake.LimitExceeded, false, time.Hour, true},
		{"expired token", salesforcefake.Unauthorized, true, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ss := subjects(3, "refused%d@example.com")
			emails := make([]string, len(ss))
			for i, s := range ss {
				emails[i] = s.Email
			}
			f, c := setup(t, salesforcefake.Options{}, emails...)
			for _, at := range []int{0, 1} { // the lookup, the job's creation
				f.Inject(at, f.PassThrough())
				f.Inject(1, tc.fault)
				items, err := c.(connectors.BatchEraser).EraseBatch(connectortest.Ctx(t), ss)
				perm, after := connectors.Classify(err)
				if err == nil || items != nil || perm != tc.permanent || after != tc.after || errors.Is(err, connectors.ErrRateLimited) != tc.rateLimited {
					t.Fatalf("call %d: err = %v (permanent %v, after %v); want permanent %v after %v, rate limited %v", at, err, perm, after, tc.permanent, tc.after, tc.rateLimited)
				}
				if strings.Contains(err.Error(), "refused0") || strings.Contains(err.Error(), f.URL()) {
					t.Errorf("error %q quotes an email or the URL", err)
				}
			}
			for _, s := range ss {
				if f.CountEmail(s.Email) != 1 {
					t.Error("a refused batch deleted records")
				}
			}
		})
	}
	t.Run("the SOAP API's daily limit", func(t *testing.T) {
		t.Parallel()
		f, c := setup(t, salesforcefake.Options{})
		f.Recycle(f.Add("Contact", "soap@example.com"))
		f.Recycle(f.Add("Contact", "soap2@example.com"))
		f.Inject(1, f.PassThrough())
		f.Inject(1, salesforcefake.LimitExceeded)
		_, err := c.(connectors.BatchEraser).EraseBatch(connectortest.Ctx(t), []connectors.Subject{{Email: "soap@example.com"}, {Email: "soap2@example.com"}})
		if _, after := connectors.Classify(err); !errors.Is(err, connectors.ErrRateLimited) || after != time.Hour {
			t.Fatalf("err = %v; want rate limited, after an hour", err)
		}
	})
}

// TestPollBatch: refs sharing jobs are read once per job; old refs poll.
func TestPollBatch(t *testing.T) {
	t.Parallel()
	f := salesforcefake.Start(t, salesforcefake.Options{})
	c := connectortest.Build(t, "salesforce", "sfdc", f.Config())
	old := connectors.Subject{Email: "old@example.com"}
	f.Add("Contact", old.Email)
	f.Add("Lead", old.Email)
	single, err := c.Erase(connectortest.Ctx(t), old) // a ref as stored before batches
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(single.JobRef, `{"v":1,"jobs":[{"object":"Contact","id":"7505g0000000000000"},{"object":"Lead","id":"7505g0000000000001"}]`) {
		t.Fatalf("single erase ref = %s", single.JobRef)
	}
	ss := subjects(10, "poll%d@example.com")
	for _, s := range ss {
		f.Seed(s)
	}
	items, err := c.(connectors.BatchEraser).EraseBatch(connectortest.Ctx(t), ss)
	if err != nil {
		t.Fatal(err)
	}
	refs := []string{single.JobRef, "not a ref"}
	for _, it := range items {
		if strings.Contains(it.Outcome.JobRef, "poll") || strings.Contains(it.Outcome.JobRef, "0035g") || strings.Contains(it.Outcome.JobRef, "00Q5g") {
			t.Errorf("ref %s holds an email or a record id", it.Outcome.JobRef)
		}
		refs = append(refs, it.Outcome.JobRef)
	}
	before := len(f.Calls())
	got, err := c.(connectors.BatchPoller).PollBatch(connectortest.Ctx(t), refs)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.Calls()) - before; n != 4 {
		t.Errorf("%d calls for %d refs to 4 jobs, want 4", n, len(refs))
	}
	if !connectortest.IsPermanent(got[1].Err) {
		t.Errorf("a bad ref: %v; want permanent, alone", got[1].Err)
	}
	for range 2 {
		if got, err = c.(connectors.BatchPoller).PollBatch(connectortest.Ctx(t), refs); err != nil {
			t.Fatal(err)
		}
	}
	for i, it := range got {
		if i == 1 {
			continue
		}
		if it.Err != nil || it.Outcome.Status != connectors.StatusErased || it.Outcome.Records != 2 {
			t.Errorf("ref %d: %+v, %v; want 2 erased", i, it.Outcome, it.Err)
		}
	}
	// The single Poll reads a batch's ref too.
	if out, err := c.(connectors.Poller).Poll(connectortest.Ctx(t), refs[2]); err != nil || out.Records != 2 {
		t.Errorf("Poll of a batch ref = %+v, %v", out, err)
	}

	t.Run("the job fails for the batch", func(t *testing.T) {
		for _, tc := range []struct {
			state     string
			permanent bool
		}{{"Failed", false}, {"Aborted", true}} {
			f, c := setup(t, salesforcefake.Options{})
			ss := subjects(3, tc.state+"%d@example.com")
			for _, s := range ss {
				f.Add("Contact", s.Email)
			}
			f.EndJobsAs(tc.state)
			items, err := c.(connectors.BatchEraser).EraseBatch(connectortest.Ctx(t), ss)
			if err != nil {
				t.Fatal(err)
			}
			refs := []string{items[0].Outcome.JobRef, items[1].Outcome.JobRef, items[2].Outcome.JobRef}
			var got []connectors.Item
			for range 2 {
				if got, err = c.(connectors.BatchPoller).PollBatch(connectortest.Ctx(t), refs); err != nil {
					t.Fatal(err)
				}
			}
			for i, it := range got {
				if it.Err == nil || connectortest.IsPermanent(it.Err) != tc.permanent || !strings.Contains(it.Err.Error(), "7505g0000000000000") {
					t.Errorf("%s: ref %d: %v; want permanent %v", tc.state, i, it.Err, tc.permanent)
				}
			}
			if reads := kinds(f)["status"]; reads != 2 {
				t.Errorf("%d status reads", reads)
			}
		}
	})
	t.Run("refs", func(t *testing.T) {
		const job = `"object":"Contact","id":"7505g0000099999999"`
		for ref, ok := range map[string]bool{
			`{"v":1,"jobs":[{` + job + `}]}`:                                 true,
			`{"v":2,"jobs":[{` + job + `,"n":2,"of":5,"at":[0,4]}]}`:         true,
			`{"v":1,"jobs":[{` + job + `,"n":2,"of":5,"at":[0,4]}]}`:         false, // shared jobs are version 2
			`{"v":2,"jobs":[{` + job + `,"n":2,"of":5,"at":[4,0]}]}`:         false,
			`{"v":2,"jobs":[{` + job + `,"n":2,"of":5,"at":[1,1]}]}`:         false,
			`{"v":2,"jobs":[{` + job + `,"n":2,"of":5,"at":[0,5]}]}`:         false,
			`{"v":2,"jobs":[{` + job + `,"n":2,"of":5,"at":[0]}]}`:           false,
			`{"v":2,"jobs":[{` + job + `,"n":5,"of":5,"at":[0,1,2,3,4]}]}`:   false, // the whole job: no ranks
			`{"v":2,"jobs":[{` + job + `,"n":1,"of":5,"at":[-1]}]}`:          false,
			`{"v":3,"jobs":[{` + job + `}]}`:                                 false,
			`{"v":2,"jobs":[{` + job + `,"n":1,"of":2,"at":[1],"email":1}]}`: false,
		} {
			if _, err := parseJobRef(ref); (err == nil) != ok {
				t.Errorf("parseJobRef(%s) = %v, want ok %v", ref, err, ok)
			}
		}
	})
}

// TestVerifyBatch: the lookups after a batch cost one queryAll per object
// for up to 200 emails; each subject is counted alone, a record in the
// Recycle Bin still counts, and a subject without an email is refused.
func TestVerifyBatch(t *testing.T) {
	t.Parallel()
	f, c := setup(t, salesforcefake.Options{})
	ss := subjects(201, "check%d@example.com")
	f.Add("Contact", ss[3].Email)
	f.Recycle(f.Add("Contact", ss[7].Email))
	f.Add("Contact", "bystander@example.com")
	got, err := c.(connectors.BatchVerifier).VerifyBatch(connectortest.Ctx(t), append(ss, connectors.Subject{}))
	if err != nil || len(got) != len(ss)+1 {
		t.Fatalf("VerifyBatch = %d answers, %v", len(got), err)
	}
	for i, ch := range got[:len(ss)] {
		want := int64(0)
		if i == 3 || i == 7 {
			want = 1
		}
		if ch.Err != nil || ch.Verification.Remaining != want {
			t.Errorf("subject %d: %d remaining, %v; want %d", i, ch.Verification.Remaining, ch.Err, want)
		}
	}
	if last := got[len(ss)]; last.Err == nil || !connectortest.IsPermanent(last.Err) {
		t.Errorf("a subject without an email: %+v, want a permanent error", last)
	}
	if n := kinds(f)["query"]; n != 2 {
		t.Errorf("%d queries for 201 subjects, want 2 (200 and 1)", n)
	}
}
