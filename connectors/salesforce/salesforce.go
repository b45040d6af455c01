// Package salesforce is the connector that permanently deletes a data
// subject's Contact (and, if configured, Lead) records from Salesforce:
// found by email with SOQL queryAll, live records hard-deleted with a Bulk
// API 2.0 ingest job and those already in the Recycle Bin emptied from it
// with the SOAP API's emptyRecycleBin, so nothing is left restorable.
// Configured to, it also looks the person up and reports fields the
// records hold (an application's user id) and their record ids.
package salesforce

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/vendorhttp"
	"github.com/lethe-dev/lethe/connectors/vendorkit"
	"github.com/lethe-dev/lethe/internal/erasure"
)

// Defaults.
const (
	DefaultAPIVersion   = "v60.0"
	DefaultPollInterval = 30 * time.Second
)

// Objects are the sObjects the connector can erase from: both have an
// Email field.
var Objects = []string{"Contact", "Lead"}

// dailyLimitWait is how long to wait once the org's rolling 24-hour API
// allocation is used up: requests age out of the window gradually, so an
// hour frees some without hammering the org.
const dailyLimitWait = time.Hour

// Config is the `config:` block of a salesforce connector instance.
//
//	base_url: https://acme.my.salesforce.com
//	access_token: {file: /run/secrets/salesforce-token}
//	api_version: v60.0
//	objects: [Contact, Lead]
//	poll_interval: 30s
//	resolve:
//	  fields: {App_User_Id__c: user_ids.app}
//	  record_ids: user_ids.sfdc
type Config struct {
	// BaseURL is the org's instance URL (its My Domain), as the OAuth
	// token response names it in instance_url. Required.
	BaseURL string `yaml:"base_url"`
	// AccessToken is an OAuth access token, sent as a Bearer token. It is
	// read again for every call, so a {file: …} refreshed by another
	// process takes effect without a restart.
	AccessToken config.Secret `yaml:"access_token"`
	// APIVersion is the REST API version; default v60.0.
	APIVersion string `yaml:"api_version"`
	// Objects lists the sObjects to search by Email; default [Contact].
	Objects []string `yaml:"objects"`
	// PollInterval is how long to wait before asking about a bulk job;
	// default 30s.
	PollInterval time.Duration `yaml:"poll_interval"`
	// Resolve, when set, makes the instance a resolver: it looks the
	// person up by email and reports what the records hold.
	Resolve *Resolve `yaml:"resolve"`
}

// Resolve is the `resolve:` block of a salesforce instance: what the
// records found by email tell about the person.
//
//	fields: {App_User_Id__c: user_ids.app, MobilePhone: phone}
//	record_ids: user_ids.sfdc
//	objects: [Contact]
type Resolve struct {
	// Fields maps a field's API name to the kind of identifier it holds
	// (email, phone or user_ids.<namespace>). Each field must exist on
	// every object of Objects.
	Fields map[string]string `yaml:"fields"`
	// RecordIDs, a user_ids.<namespace> kind, reports the records' Ids
	// (Contact 003…, Lead 00Q…) as ids in that namespace.
	RecordIDs string `yaml:"record_ids"`
	// Objects are those looked up; default the instance's objects.
	Objects []string `yaml:"objects"`
}

// fieldRe is a field's API name (Email, App_User_Id__c, ns__Field__c): it
// goes into SOQL unquoted, so nothing else may pass.
var fieldRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,79}$`)

// Plan: Salesforce is searched by email only (SOQL on Email). With
// resolve, it looks people up by email and gives what resolve names.
func (c Config) Plan(string) connectors.Plan {
	p := connectors.EmailPlan()
	if c.Resolve != nil {
		p.ResolveBy = []connectors.Kind{connectors.Email}
		for _, f := range c.Resolve.sortedFields() {
			p.Gives = append(p.Gives, connectors.Kind(c.Resolve.Fields[f]))
		}
		if c.Resolve.RecordIDs != "" {
			p.Gives = append(p.Gives, connectors.Kind(c.Resolve.RecordIDs))
		}
	}
	return p
}

func (r *Resolve) sortedFields() []string { return slices.Sorted(maps.Keys(r.Fields)) }

func (r *Resolve) validate(objects []string) []error {
	var errs []error
	if len(r.Fields) == 0 && r.RecordIDs == "" {
		errs = append(errs, errors.New("resolve: name fields to read, or record_ids (or leave resolve out)"))
	}
	for _, f := range r.sortedFields() {
		switch {
		case !fieldRe.MatchString(f):
			errs = append(errs, fmt.Errorf("resolve.fields: %q is not a field's API name (letters, digits and '_', such as App_User_Id__c)", f))
			continue
		case f == "Id" || f == "IsDeleted":
			errs = append(errs, fmt.Errorf("resolve.fields.%s: use record_ids for record ids", f))
			continue
		}
		k, err := erasure.ParseKind(r.Fields[f])
		if err != nil {
			errs = append(errs, fmt.Errorf("resolve.fields.%s: %q is not an identifier kind: use email, phone or user_ids.<namespace> (lower-case letters, digits, '-' or '_')", f, r.Fields[f]))
			continue
		}
		r.Fields[f] = string(k)
	}
	if r.RecordIDs != "" {
		if k, err := erasure.ParseKind(r.RecordIDs); err != nil || k.Namespace() == "" {
			errs = append(errs, fmt.Errorf("resolve.record_ids: %q is not a user_ids.<namespace> kind (such as user_ids.sfdc)", r.RecordIDs))
		}
	}
	if len(r.Objects) == 0 {
		r.Objects = objects
	}
	for i, o := range r.Objects {
		if !slices.Contains(objects, o) {
			errs = append(errs, fmt.Errorf("resolve.objects[%d]: %q is not one of the instance's objects (%s)", i, o, strings.Join(objects, ", ")))
		} else if slices.Index(r.Objects, o) != i {
			errs = append(errs, fmt.Errorf("resolve.objects[%d]: %s is listed twice", i, o))
		}
	}
	return errs
}

var apiVersionRe = regexp.MustCompile(`^v[1-9][0-9]\.[0-9]$`)

// Validate checks the config at start-up and fills in defaults.
func (c *Config) Validate() error {
	var p vendorkit.Problems
	p.BaseURL(&c.BaseURL, vendorkit.URLRule{Example: "the org's instance URL, https://acme.my.salesforce.com"})
	p.Secret("access_token", c.AccessToken, "an OAuth access token")
	if c.APIVersion == "" {
		c.APIVersion = DefaultAPIVersion
	}
	if !apiVersionRe.MatchString(c.APIVersion) {
		p.Add("api_version", "%q is not a version such as %s", c.APIVersion, DefaultAPIVersion)
	} else if v, _ := strconv.ParseFloat(c.APIVersion[1:], 64); v < 41 {
		p.Add("api_version", "Bulk API 2.0 hard deletes need v41.0 or later, not %s", c.APIVersion)
	}
	if len(c.Objects) == 0 {
		c.Objects = []string{"Contact"}
	}
	for i, o := range c.Objects {
		if !slices.Contains(Objects, o) {
			p.Add(fmt.Sprintf("objects[%d]", i), "%q is not one of %s (names are case-sensitive)", o, strings.Join(Objects, ", "))
		} else if slices.Index(c.Objects, o) != i {
			p.Add(fmt.Sprintf("objects[%d]", i), "%s is listed twice", o)
		}
	}
	p.Interval("poll_interval", &c.PollInterval, DefaultPollInterval)
	if c.Resolve != nil {
		p.Include(c.Resolve.validate(c.Objects)...)
	}
	return p.Err()
}

type conn struct {
	api     string // base URL + /services/data/vXX.X
	soapURL string // base URL + /services/Soap/u/XX.X
	base    string
	objects []string
	poll    time.Duration
	http    *vendorhttp.Client
	token   func() string
}

// resolver is a conn whose instance has a resolve block.
type resolver struct {
	*conn
	fields    []string // API names, sorted
	kinds     map[string]connectors.Kind
	recordIDs connectors.Kind
	objects   []string
}

func init() {
	// Salesforce sets no per-second limit; it counts API requests per
	// rolling 24 hours per org (shared with every other integration) and
	// Bulk API batches (15,000 a day). The runtime's rate counts Salesforce
	// requests; an erasure makes four or five per object (one more to
	// empty records from the Recycle Bin), each poll one per job; a batch
	// of up to 200 people (EraseBatch) about as many as one. Two a
	// second (at most 172,800 a day, and only while a backlog lasts)
	// leaves most orgs' allocation to its other users.
	connectors.Register("salesforce", "Salesforce Contacts and Leads, hard-deleted with a Bulk API 2.0 job and emptied from the Recycle Bin",
		connectors.Limits{Concurrency: 4, RatePerSecond: 2, Burst: 4}, build)
}

func build(_ context.Context, _ string, cfg Config, deps connectors.Deps) (connectors.Connector, error) {
	// Revealed now to fail at start-up, and again on every call to pick
	// up a refreshed token.
	if _, err := vendorkit.Reveal(deps, "access_token", cfg.AccessToken); err != nil {
		return nil, err
	}
	secret, getenv := cfg.AccessToken, vendorkit.Getenv(deps)
	c := &conn{base: cfg.BaseURL, objects: cfg.Objects, poll: cfg.PollInterval}
	c.api = c.base + "/services/data/" + cfg.APIVersion
	c.soapURL = c.base + "/services/Soap/u/" + strings.TrimPrefix(cfg.APIVersion, "v")
	c.token = func() string {
		// A token that cannot be read now is sent empty: Salesforce
		// refuses it, a permanent error asking to check it.
		token, _ := secret.Reveal(getenv)
		return strings.TrimSpace(token)
	}
	c.http = vendorkit.Client(deps, "Salesforce", func(r *http.Request) {
		if !strings.Contains(r.URL.Path, "/services/Soap/") { // the SOAP API takes it in the envelope
			vendorkit.Bearer(c.token())(r)
		}
	})
	if cfg.Resolve == nil {
		return c, nil
	}
	r := &resolver{conn: c, fields: cfg.Resolve.sortedFields(), kinds: map[string]connectors.Kind{},
		recordIDs: connectors.Kind(cfg.Resolve.RecordIDs), objects: cfg.Resolve.Objects}
	for f, k := range cfg.Resolve.Fields {
		r.kinds[f] = connectors.Kind(k)
	}
	return r, nil
}

// sfIDRe matches Salesforce record and job ids.
var sfIDRe = regexp.MustCompile(`^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$`)

// records are the Ids found of one object: live, and in the Recycle Bin
// (IsDeleted: restorable for about 15 days, or emptied from it and not
// yet deleted physically — queryAll cannot tell which).
type records struct{ live, recycled []string }

func (r records) total() int { return len(r.live) + len(r.recycled) }

// Erase finds the subject's records with queryAll, empties those in the
// Recycle Bin from it (emptyRecycleBin), and starts one hard-delete job
// per object with live records; Poll reports the jobs' end. A record that
// cannot be emptied from the Recycle Bin fails the task permanently: it
// can still be restored. It is a batch of one (EraseBatch).
func (c *conn) Erase(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	// A subject without an email is refused (eraseBatch): nothing would be
	// searched, which is never "not found".
	return connectors.One(ctx, c.eraseBatch, s)
}

func purgedEvidence(object string, n int64) connectors.Evidence {
	return connectors.Evidence{Kind: "recycle_bin", Value: fmt.Sprintf("%s: %s emptied from the Recycle Bin (emptyRecycleBin)", object, connectors.Plural(int(n), "record"))}
}

// Verify runs the lookups again with queryAll: every record found
// remains, those in the Recycle Bin too (they can be restored).
func (c *conn) Verify(ctx context.Context, s connectors.Subject) (connectors.Verification, error) {
	found, err := c.find(ctx, s)
	if err != nil {
		return connectors.Verification{}, err
	}
	return c.verification(func(o string) records { return found[o] }), nil
}

// verification counts what a lookup after erasure found, object by
// object: every record found with queryAll remains, in the Recycle Bin
// or not.
func (c *conn) verification(found func(object string) records) connectors.Verification {
	var v connectors.Verification
	for _, o := range c.objects {
		r := found(o)
		v.Remaining += int64(r.total())
		v.Evidence = append(v.Evidence, connectors.Evidence{Kind: "soql_after_erase", Value: fmt.Sprintf("%s: %s found with queryAll (%d deleted: in the Recycle Bin, or emptied from it and not yet deleted physically)", o, connectors.Plural(r.total(), "record"), len(r.recycled))})
	}
	return v
}

// find runs one queryAll per configured object: queryAll, unlike query,
// returns records in the Recycle Bin, which are still held.
func (c *conn) find(ctx context.Context, s connectors.Subject) (map[string]records, error) {
	if s.Email == "" {
		return nil, errNoEmail()
	}
	rows, err := c.byEmail(ctx, s.Email, c.objects)
	if err != nil {
		return nil, err
	}
	found := map[string]records{}
	for _, o := range c.objects {
		found[o] = split(rows[o])
	}
	return found, nil
}

// errNoEmail refuses a subject without an email: the plan makes the
// runtime wait for one, and without it nothing is searched, which is never
// "not found" or "clean".
func errNoEmail() error {
	return connectors.Permanentf("the subject has no email: Salesforce is searched by Email only")
}

// byEmail runs one queryAll per object for the records with email,
// reading fields besides Id and IsDeleted, and returns each object's rows.
func (c *conn) byEmail(ctx context.Context, email string, objects []string, fields ...string) (map[string][]row, error) {
	lit, err := soqlString(email)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	list := strings.Join(append([]string{"Id", "IsDeleted"}, fields...), ", ")
	found := map[string][]row{}
	for _, o := range objects {
		if found[o], err = c.query(ctx, "queryAll", "SELECT "+list+" FROM "+o+" WHERE Email = "+lit); err != nil {
			return nil, err
		}
	}
	return found, nil
}

func split(rows []row) records {
	var r records
	for _, row := range rows {
		if row.deleted {
			r.recycled = append(r.recycled, row.id)
		} else {
			r.live = append(r.live, row.id)
		}
	}
	return r
}

// soqlString quotes v as a SOQL string literal: backslash and quotes are
// escaped, and so are the control characters SOQL has escapes for; any
// other control character is refused.
func soqlString(v string) (string, error) {
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range v {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '\'':
			b.WriteString(`\'`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if r < 0x20 || r == 0x7f {
				return "", connectors.Permanentf("the email contains a control character SOQL cannot express")
			}
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String(), nil
}

// maxPages bounds how many pages of one query are read (2,000 records a
// page): far more than one person can have, fewer than a runaway loop.
const maxPages = 50

// row is one record a query returned: its Id, IsDeleted and the other
// fields asked for.
type row struct {
	id      string
	deleted bool
	fields  map[string]json.RawMessage
}

// query runs a SOQL query with the query or queryAll resource and returns
// every record, following nextRecordsUrl.
func (c *conn) query(ctx context.Context, resource, soql string) ([]row, error) {
	next := c.api + "/" + resource + "?q=" + url.QueryEscape(soql)
	op := "SOQL " + resource
	var rows []row
	for range maxPages {
		resp, err := c.send(ctx, http.MethodGet, next, nil, op)
		if err != nil {
			return nil, err
		}
		var page struct {
			TotalSize      *int                         `json:"totalSize"`
			Done           bool                         `json:"done"`
			NextRecordsURL string                       `json:"nextRecordsUrl"`
			Records        []map[string]json.RawMessage `json:"records"`
		}
		if err := resp.JSON(&page); err != nil {
			return nil, err
		}
		if page.TotalSize == nil {
			return nil, connectors.Retryable(sfError("%s: the answer has no totalSize", op), 0)
		}
		for _, rec := range page.Records {
			var r row
			if json.Unmarshal(rec["Id"], &r.id) != nil || !sfIDRe.MatchString(r.id) {
				return nil, connectors.Retryable(sfError("%s: a record without a valid Id", op), 0)
			}
			if d, ok := rec["IsDeleted"]; ok && json.Unmarshal(d, &r.deleted) != nil {
				return nil, connectors.Retryable(sfError("%s: a record with an unreadable IsDeleted", op), 0)
			}
			r.fields = rec
			rows = append(rows, r)
		}
		if page.Done || page.NextRecordsURL == "" {
			return rows, nil
		}
		if !strings.HasPrefix(page.NextRecordsURL, "/services/data/") {
			return nil, connectors.Permanentf("Salesforce %s: nextRecordsUrl is not under /services/data/", op)
		}
		next = c.base + page.NextRecordsURL
	}
	return nil, connectors.Permanentf("Salesforce %s: more than %d pages of records for one person", op, maxPages)
}

// maxPurge is how many ids one emptyRecycleBin call takes.
const maxPurge = 200

// purgeError says records stay in the Recycle Bin: restorable, so the
// erasure is not done. It names the object, counts and status codes only.
type purgeError struct {
	object string
	failed int
	total  int
	codes  map[string]int
}

func (e *purgeError) Error() string {
	return fmt.Sprintf("Salesforce emptyRecycleBin: %d of %d %s records in the Recycle Bin (restorable) could not be emptied from it (%s); "+
		"the integration user needs Modify All Data to empty other users' Recycle Bins, and records deleted with their parent (an Account's Contacts) go with the parent: "+
		"empty them from the Recycle Bin in Salesforce (or restore and delete them again), then retry",
		e.failed, e.total, e.object, codeList(e.codes))
}

// codeList lists status codes with their counts: "A: 2, B: 1".
func codeList(codes map[string]int) string {
	var list []string
	for code, n := range codes {
		list = append(list, fmt.Sprintf("%s: %d", code, n))
	}
	sort.Strings(list)
	return strings.Join(list, ", ")
}

// purgeResult is one EmptyRecycleBinResult. An error's message can name
// the record; only its statusCode is used.
type purgeResult struct {
	ID      string `xml:"id"`
	Success bool   `xml:"success"`
	Errors  []struct {
		StatusCode string `xml:"statusCode"`
	} `xml:"errors"`
}

// emptyRecycleBin calls the Partner SOAP API's emptyRecycleBin() at
// /services/Soap/u/XX.X, the OAuth access token as the SessionHeader's
// sessionId. REST has no equivalent.
func (c *conn) emptyRecycleBin(ctx context.Context, ids []string) ([]purgeResult, error) {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com">`)
	b.WriteString(`<soapenv:Header><urn:SessionHeader><urn:sessionId>`)
	if err := xml.EscapeText(&b, []byte(c.token())); err != nil {
		return nil, connectors.Permanentf("access_token: cannot be written into a SOAP header")
	}
	b.WriteString(`</urn:sessionId></urn:SessionHeader></soapenv:Header><soapenv:Body><urn:emptyRecycleBin>`)
	for _, id := range ids {
		b.WriteString("<urn:ids>" + id + "</urn:ids>") // ids are checked alphanumeric
	}
	b.WriteString(`</urn:emptyRecycleBin></soapenv:Body></soapenv:Envelope>`)
	req, err := newRequest(http.MethodPost, c.soapURL, &b)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "text/xml; charset=UTF-8")
	req.Header.Set("SOAPAction", `""`)
	req.Header.Set("Accept", "text/xml")
	const op = "emptyRecycleBin"
	resp, err := c.http.Do(ctx, req, op, http.StatusInternalServerError)
	if err != nil {
		return nil, err
	}
	var env struct {
		Body struct {
			Fault *struct {
				Code string `xml:"faultcode"`
			} `xml:"Fault"`
			Response *struct {
				Results []purgeResult `xml:"result"`
			} `xml:"emptyRecycleBinResponse"`
		} `xml:"Body"`
	}
	if err := xml.Unmarshal(resp.Body, &env); err != nil {
		return nil, connectors.Retryable(sfError("%s: unreadable SOAP answer (status %d)", op, resp.Status), 0)
	}
	if f := env.Body.Fault; f != nil || resp.Status != http.StatusOK {
		code := ""
		if f != nil {
			_, code, _ = strings.Cut(f.Code, ":")
		}
		return nil, soapFault(op, resp.Status, code)
	}
	if env.Body.Response == nil || len(env.Body.Response.Results) != len(ids) {
		return nil, connectors.Retryable(sfError("%s: the answer does not have a result per record", op), 0)
	}
	for i, r := range env.Body.Response.Results {
		if r.ID != "" && r.ID != ids[i] {
			return nil, connectors.Retryable(sfError("%s: the results are not in the order of the records", op), 0)
		}
	}
	return env.Body.Response.Results, nil
}

// soapFault classifies a SOAP API fault by its code (the faultstring can
// quote what was sent).
func soapFault(op string, status int, code string) error {
	if !statusCodeRe.MatchString(code) {
		code = ""
	}
	msg := fmt.Sprintf("Salesforce %s: SOAP fault %s (status %d)", op, code, status)
	switch code {
	case "INVALID_SESSION_ID":
		return connectors.Permanentf("%s: the access token was refused or has expired; check access_token", msg)
	case "REQUEST_LIMIT_EXCEEDED":
		return connectors.Retryable(fmt.Errorf("%s: the org's API request limit is reached: %w", msg, connectors.ErrRateLimited), dailyLimitWait)
	case "SERVER_UNAVAILABLE", "UNKNOWN_EXCEPTION", "":
		return connectors.Retryable(errors.New(msg), 0)
	case "API_DISABLED_FOR_ORG", "API_CURRENTLY_DISABLED", "INSUFFICIENT_ACCESS", "INSUFFICIENT_ACCESS_OR_READONLY":
		return connectors.Permanentf("%s: the user lacks a permission; it needs API Enabled and Modify All Data (or Delete on the records' objects) to empty the Recycle Bin", msg)
	}
	return connectors.Permanentf("%s: Salesforce refused the call", msg)
}

// Resolve looks the subject up by email with queryAll (records in the
// Recycle Bin are theirs too, and hold ids that lead elsewhere) and
// reports the configured fields and record ids. Finding nothing is no
// error.
func (r *resolver) Resolve(ctx context.Context, s connectors.Subject) (connectors.Resolution, error) {
	var res connectors.Resolution
	if s.Email == "" {
		return res, nil
	}
	found, err := r.byEmail(ctx, s.Email, r.objects, r.fields...)
	if err != nil {
		return connectors.Resolution{}, err
	}
	for _, o := range r.objects {
		rows := found[o]
		var read, deleted int
		for _, row := range rows {
			if row.deleted {
				deleted++
			}
			if r.recordIDs != "" {
				res.Add(r.recordIDs, row.id)
			}
			for _, f := range r.fields {
				if v, ok := fieldValue(row.fields[f]); ok {
					read++
					res.Add(r.kinds[f], v)
				}
			}
		}
		res.Evidence = append(res.Evidence, connectors.Evidence{Kind: "salesforce_lookup",
			Value: fmt.Sprintf("%s by email: %s found (%d in the Recycle Bin); %s read", o, connectors.Plural(len(rows), "record"), deleted, connectors.Plural(read, "field value"))})
	}
	return res, nil
}

// fieldValue reads a field as text: a string, or a number (an external id
// field can be numeric). Null, empty and other types give nothing.
func fieldValue(raw json.RawMessage) (string, bool) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if len(raw) == 0 || dec.Decode(&v) != nil {
		return "", false
	}
	switch v := v.(type) {
	case string:
		v = strings.TrimSpace(v)
		return v, v != ""
	case json.Number:
		return v.String(), true
	}
	return "", false
}

var _ connectors.Resolver = (*resolver)(nil)

// jobInfo is a Bulk API 2.0 ingest job as Salesforce describes it.
type jobInfo struct {
	ID                     string `json:"id"`
	State                  string `json:"state"`
	NumberRecordsProcessed int64  `json:"numberRecordsProcessed"`
	NumberRecordsFailed    int64  `json:"numberRecordsFailed"`
}

// startJob creates a hardDelete job for ids, uploads them and closes the
// job so Salesforce starts it. A job that could not be closed is aborted.
func (c *conn) startJob(ctx context.Context, object string, ids []string) (string, error) {
	resp, err := c.send(ctx, http.MethodPost, c.api+"/jobs/ingest", map[string]string{
		"object": object, "operation": "hardDelete", "contentType": "CSV", "lineEnding": "LF",
	}, "create "+object+" hardDelete job")
	if err != nil {
		if perm, _ := connectors.Classify(err); perm {
			return "", connectors.Permanent(fmt.Errorf("%w; the user needs the \"Bulk API Hard Delete\" system permission and Delete on %s", err, object))
		}
		return "", err
	}
	var job jobInfo
	if err := resp.JSON(&job); err != nil {
		return "", err
	}
	if !sfIDRe.MatchString(job.ID) {
		return "", connectors.Retryable(sfError("create job: the answer has no job id"), 0)
	}
	if err := c.uploadAndClose(ctx, job.ID, ids); err != nil {
		c.abort(ctx, job.ID)
		return "", fmt.Errorf("job %s: %w", job.ID, err)
	}
	return job.ID, nil
}

func (c *conn) uploadAndClose(ctx context.Context, jobID string, ids []string) error {
	var csvBody bytes.Buffer
	csvBody.WriteString("Id\n")
	for _, id := range ids {
		csvBody.WriteString(id + "\n") // ids are checked alphanumeric: nothing to quote
	}
	req, err := newRequest(http.MethodPut, c.api+"/jobs/ingest/"+jobID+"/batches", &csvBody)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/csv")
	if _, err := c.do(ctx, req, "upload job data"); err != nil {
		return err
	}
	_, err = c.send(ctx, http.MethodPatch, c.api+"/jobs/ingest/"+jobID, map[string]string{"state": "UploadComplete"}, "close job")
	return err
}

// abort tries to abort a job that will not be used, so it does not sit
// open; a failure is left to Salesforce, which removes old jobs.
func (c *conn) abort(ctx context.Context, jobID string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_, _ = c.send(ctx, http.MethodPatch, c.api+"/jobs/ingest/"+jobID, map[string]string{"state": "Aborted"}, "abort job")
}

var statusCodeRe = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,79}$`)

// apiError is one element of Salesforce's error body
// [{"message": …, "errorCode": …}]; the message can quote the query.
type apiError struct {
	Message   string `json:"message"`
	ErrorCode string `json:"errorCode"`
}

func errorCode(body []byte) (code, message string) {
	var list []apiError
	if json.Unmarshal(body, &list) != nil || len(list) == 0 {
		var one apiError
		if json.Unmarshal(body, &one) != nil {
			return "", ""
		}
		list = []apiError{one}
	}
	if !statusCodeRe.MatchString(list[0].ErrorCode) {
		return "", list[0].Message
	}
	return list[0].ErrorCode, list[0].Message
}

// do sends req and classifies Salesforce's own errors: 403
// REQUEST_LIMIT_EXCEEDED is the org's API limit (retryable, after a
// while), not refused credentials; other errors name their errorCode.
func (c *conn) do(ctx context.Context, req *http.Request, op string, ok ...int) (*vendorhttp.Response, error) {
	resp, err := c.http.Do(ctx, req, op, append(ok, http.StatusForbidden)...)
	if resp == nil {
		return nil, err
	}
	if err == nil && (resp.Status != http.StatusForbidden || slices.Contains(ok, http.StatusForbidden)) {
		return resp, nil
	}
	code, message := errorCode(resp.Body)
	suffix := ""
	if code != "" {
		suffix = " (" + code + ")"
	}
	switch {
	case resp.Status == http.StatusForbidden && code == "REQUEST_LIMIT_EXCEEDED":
		wait := dailyLimitWait
		if !strings.Contains(message, "TotalRequests") {
			wait = time.Minute // a concurrency limit, not the daily one
		}
		return nil, connectors.Retryable(sfError("%s: 403: the org's API request limit is reached%s: %w", op, suffix, connectors.ErrRateLimited), wait)
	case resp.Status == http.StatusForbidden:
		return nil, connectors.Permanentf("Salesforce %s: 403 Forbidden%s: the user lacks a permission; it needs API Enabled, Read and Delete on %s and \"Bulk API Hard Delete\"",
			op, suffix, strings.Join(c.objects, " and "))
	case resp.Status == http.StatusUnauthorized:
		return nil, connectors.Permanentf("Salesforce %s: 401 Unauthorized%s: the access token was refused or has expired; check access_token", op, suffix)
	case resp.Status == http.StatusNotFound && code == "NOT_FOUND":
		return nil, connectors.Permanentf("Salesforce %s: 404%s: check base_url (the instance URL) and api_version", op, suffix)
	}
	perm, after := connectors.Classify(err)
	// %w keeps what vendorhttp marked: a 429 stays ErrRateLimited.
	return nil, &connectors.Error{Permanent: perm, RetryAfter: after, Err: fmt.Errorf("%w%s", errors.Unwrap(err), suffix)}
}

// send sends a request with a JSON body (nil: none) with do.
func (c *conn) send(ctx context.Context, method, url string, body any, op string, ok ...int) (*vendorhttp.Response, error) {
	req, err := vendorhttp.JSONRequest(method, url, body)
	if err != nil {
		return nil, err
	}
	return c.do(ctx, req, op, ok...)
}

// newRequest is a request with a body that is not JSON (CSV, a SOAP
// envelope), or none, failing as vendorhttp.JSONRequest does.
func newRequest(method, url string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return nil, connectors.Permanent(errors.New("the configured base URL is not a valid URL"))
	}
	return req, nil
}

// sfError is an error about Salesforce, its name first.
func sfError(format string, args ...any) error {
	return fmt.Errorf("Salesforce "+format, args...)
}
