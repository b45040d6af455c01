// Package salesforce is the connector that permanently deletes a data
// subject's Contact (and, if configured, Lead) records from Salesforce:
// found by email with SOQL, then hard-deleted with a Bulk API 2.0 ingest
// job, so nothing is left in the Recycle Bin.
package salesforce

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
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

func init() {
	// Salesforce sets no per-second limit; it counts API requests per
	// rolling 24 hours per org (shared with every other integration) and
	// Bulk API batches (15,000 a day). The runtime's rate counts Salesforce
	// requests; an erasure makes four or five per object, each poll one
	// per job. Two a second (at most 172,800 a day, and only while a
	// backlog lasts) leaves most orgs' allocation to its other users.
	connectors.Register("salesforce", "Salesforce Contacts and Leads, hard-deleted with a Bulk API 2.0 job (no Recycle Bin)",
		connectors.Limits{Concurrency: 4, RatePerSecond: 2, Burst: 4}, build)
}

// Config is the `config:` block of a salesforce connector instance.
//
//	base_url: https://acme.my.salesforce.com
//	access_token: {file: /run/secrets/salesforce-token}
//	api_version: v60.0
//	objects: [Contact, Lead]
//	poll_interval: 30s
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
}

var apiVersionRe = regexp.MustCompile(`^v[1-9][0-9]\.[0-9]$`)

// Validate checks the config at start-up and fills in defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.BaseURL == "" {
		errs = append(errs, errors.New("base_url: required: the org's instance URL, such as https://acme.my.salesforce.com"))
	} else if err := checkBaseURL(c.BaseURL); err != nil {
		errs = append(errs, fmt.Errorf("base_url: %w", err))
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if !c.AccessToken.IsSet() {
		errs = append(errs, errors.New("access_token: required: an OAuth access token, as {env: NAME} or {file: PATH}"))
	}
	if c.APIVersion == "" {
		c.APIVersion = DefaultAPIVersion
	}
	if !apiVersionRe.MatchString(c.APIVersion) {
		errs = append(errs, fmt.Errorf("api_version: %q is not a version such as %s", c.APIVersion, DefaultAPIVersion))
	} else if v, _ := strconv.ParseFloat(c.APIVersion[1:], 64); v < 41 {
		errs = append(errs, fmt.Errorf("api_version: Bulk API 2.0 hard deletes need v41.0 or later, not %s", c.APIVersion))
	}
	if len(c.Objects) == 0 {
		c.Objects = []string{"Contact"}
	}
	for i, o := range c.Objects {
		if !slices.Contains(Objects, o) {
			errs = append(errs, fmt.Errorf("objects[%d]: %q is not one of %s (names are case-sensitive)", i, o, strings.Join(Objects, ", ")))
		} else if slices.Index(c.Objects, o) != i {
			errs = append(errs, fmt.Errorf("objects[%d]: %s is listed twice", i, o))
		}
	}
	if c.PollInterval < 0 {
		errs = append(errs, errors.New("poll_interval: must not be negative"))
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	return errors.Join(errs...)
}

// checkBaseURL accepts https URLs, and http only to this machine (a local
// proxy or a test server): the token must not cross a network in clear.
func checkBaseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return errors.New("must be an absolute URL such as https://acme.my.salesforce.com")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	case u.Scheme == "http":
		return errors.New("must use https (http is allowed only to localhost)")
	default:
		return fmt.Errorf("scheme %q is not https", u.Scheme)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return errors.New("must not have a query, a fragment or user info")
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

type conn struct {
	api     string // base URL + /services/data/vXX.X
	base    string
	objects []string
	poll    time.Duration
	http    *vendorhttp.Client
}

func build(_ context.Context, _ string, cfg Config, deps connectors.Deps) (connectors.Connector, error) {
	// Revealed now to fail at start-up, and again on every call to pick
	// up a refreshed token.
	if _, err := cfg.AccessToken.Reveal(deps.Getenv); err != nil {
		return nil, fmt.Errorf("access_token: %w", err)
	}
	secret, getenv := cfg.AccessToken, deps.Getenv
	c := &conn{base: strings.TrimRight(cfg.BaseURL, "/"), objects: cfg.Objects, poll: cfg.PollInterval}
	c.api = c.base + "/services/data/" + cfg.APIVersion
	c.http = &vendorhttp.Client{HTTP: deps.HTTPClient, Vendor: "Salesforce", Auth: func(r *http.Request) {
		// A token that cannot be read now is sent empty: Salesforce
		// refuses it with 401, a permanent error asking to check it.
		token, _ := secret.Reveal(getenv)
		r.Header.Set("Authorization", "Bearer "+strings.TrimSpace(token))
	}}
	return c, nil
}

// jobRef is what Poll needs to find the jobs an Erase started; it holds
// Salesforce job ids only, nothing about the person.
type jobRef struct {
	V    int      `json:"v"`
	Jobs []refJob `json:"jobs"`
}

type refJob struct {
	Object string `json:"object"`
	ID     string `json:"id"`
}

func (r jobRef) String() string {
	b, _ := json.Marshal(r)
	return string(b)
}

func parseJobRef(s string) (jobRef, error) {
	var r jobRef
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil || r.V != 1 || len(r.Jobs) == 0 {
		return jobRef{}, connectors.Permanentf("not a Salesforce job reference")
	}
	for _, j := range r.Jobs {
		if !slices.Contains(Objects, j.Object) || !sfIDRe.MatchString(j.ID) {
			return jobRef{}, connectors.Permanentf("not a Salesforce job reference")
		}
	}
	return r, nil
}

// sfIDRe matches Salesforce record and job ids.
var sfIDRe = regexp.MustCompile(`^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$`)

// Erase finds the subject's records and starts one hard-delete job per
// object that has any; Poll reports the jobs' end.
func (c *conn) Erase(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	found, skipped, err := c.find(ctx, s)
	if err != nil {
		return connectors.Outcome{}, err
	}
	if skipped != nil {
		return connectors.NotFound(*skipped), nil
	}
	var evidence []connectors.Evidence
	var total int
	for _, o := range c.objects {
		evidence = append(evidence, connectors.Evidence{Kind: "soql", Value: fmt.Sprintf("%s: %s found", o, plural(len(found[o]), "record"))})
		total += len(found[o])
	}
	if total == 0 {
		return connectors.NotFound(evidence...), nil
	}
	ref := jobRef{V: 1}
	for _, o := range c.objects {
		if len(found[o]) == 0 {
			continue
		}
		id, err := c.startJob(ctx, o, found[o])
		if err != nil {
			// Jobs already started run on; a retry finds what they
			// have not deleted yet.
			return connectors.Outcome{}, err
		}
		ref.Jobs = append(ref.Jobs, refJob{Object: o, ID: id})
		evidence = append(evidence, connectors.Evidence{Kind: "bulk_job", Value: fmt.Sprintf("%s hardDelete job %s: UploadComplete, %s", o, id, plural(len(found[o]), "record"))})
	}
	return connectors.Running(ref.String(), c.poll, evidence...), nil
}

// Verify runs the SOQL lookups again: every record found remains.
func (c *conn) Verify(ctx context.Context, s connectors.Subject) (connectors.Verification, error) {
	found, skipped, err := c.find(ctx, s)
	if err != nil {
		return connectors.Verification{}, err
	}
	if skipped != nil {
		return connectors.Verification{Evidence: []connectors.Evidence{*skipped}}, nil
	}
	var v connectors.Verification
	for _, o := range c.objects {
		v.Remaining += int64(len(found[o]))
		v.Evidence = append(v.Evidence, connectors.Evidence{Kind: "soql_after_erase", Value: fmt.Sprintf("%s: %s found", o, plural(len(found[o]), "record"))})
	}
	return v, nil
}

// find runs one SOQL query per configured object.
func (c *conn) find(ctx context.Context, s connectors.Subject) (map[string][]string, *connectors.Evidence, error) {
	if s.Email == "" {
		return nil, &connectors.Evidence{Kind: "skipped", Value: "the subject has no email"}, nil
	}
	lit, err := soqlString(s.Email)
	if err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	found := map[string][]string{}
	for _, o := range c.objects {
		ids, err := c.query(ctx, "SELECT Id FROM "+o+" WHERE Email = "+lit)
		if err != nil {
			return nil, nil, err
		}
		found[o] = ids
	}
	return found, nil, nil
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

// query runs a SOQL query and returns the Ids of every record, following
// nextRecordsUrl.
func (c *conn) query(ctx context.Context, soql string) ([]string, error) {
	next := c.api + "/query?q=" + url.QueryEscape(soql)
	var ids []string
	for range maxPages {
		req, err := vendorhttp.JSONRequest(http.MethodGet, next, nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.do(ctx, req, "SOQL query")
		if err != nil {
			return nil, err
		}
		var page struct {
			TotalSize      *int   `json:"totalSize"`
			Done           bool   `json:"done"`
			NextRecordsURL string `json:"nextRecordsUrl"`
			Records        []struct {
				ID string `json:"Id"`
			} `json:"records"`
		}
		if err := resp.JSON(&page); err != nil {
			return nil, err
		}
		if page.TotalSize == nil {
			return nil, connectors.Retryable(sfError("SOQL query: the answer has no totalSize"), 0)
		}
		for _, r := range page.Records {
			if !sfIDRe.MatchString(r.ID) {
				return nil, connectors.Retryable(sfError("SOQL query: a record without a valid Id"), 0)
			}
			ids = append(ids, r.ID)
		}
		if page.Done || page.NextRecordsURL == "" {
			return ids, nil
		}
		if !strings.HasPrefix(page.NextRecordsURL, "/services/data/") {
			return nil, connectors.Permanentf("Salesforce SOQL query: nextRecordsUrl is not under /services/data/")
		}
		next = c.base + page.NextRecordsURL
	}
	return nil, connectors.Permanentf("Salesforce SOQL query: more than %d pages of records for one person", maxPages)
}

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
	req, err := vendorhttp.JSONRequest(http.MethodPost, c.api+"/jobs/ingest", map[string]string{
		"object": object, "operation": "hardDelete", "contentType": "CSV", "lineEnding": "LF",
	})
	if err != nil {
		return "", err
	}
	resp, err := c.do(ctx, req, "create "+object+" hardDelete job")
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
	req, err := http.NewRequest(http.MethodPut, c.api+"/jobs/ingest/"+jobID+"/batches", &csvBody)
	if err != nil {
		return connectors.Permanent(errors.New("the configured base URL is not a valid URL"))
	}
	req.Header.Set("Content-Type", "text/csv")
	if _, err := c.do(ctx, req, "upload job data"); err != nil {
		return err
	}
	req, err = vendorhttp.JSONRequest(http.MethodPatch, c.api+"/jobs/ingest/"+jobID, map[string]string{"state": "UploadComplete"})
	if err != nil {
		return err
	}
	_, err = c.do(ctx, req, "close job")
	return err
}

// abort tries to abort a job that will not be used, so it does not sit
// open; a failure is left to Salesforce, which removes old jobs.
func (c *conn) abort(ctx context.Context, jobID string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	req, err := vendorhttp.JSONRequest(http.MethodPatch, c.api+"/jobs/ingest/"+jobID, map[string]string{"state": "Aborted"})
	if err != nil {
		return
	}
	_, _ = c.do(ctx, req, "abort job")
}

// Poll reads the state of each job of ref. Salesforce's job states are
// Open, UploadComplete, InProgress, JobComplete, Failed and Aborted.
func (c *conn) Poll(ctx context.Context, ref string) (connectors.Outcome, error) {
	r, err := parseJobRef(ref)
	if err != nil {
		return connectors.Outcome{}, err
	}
	var evidence []connectors.Evidence
	var erased int64
	running := false
	for _, j := range r.Jobs {
		info, err := c.job(ctx, j)
		if err != nil {
			return connectors.Outcome{}, err
		}
		switch info.State {
		case "UploadComplete", "InProgress":
			running = true
			evidence = append(evidence, connectors.Evidence{Kind: "bulk_job", Value: fmt.Sprintf("%s hardDelete job %s: %s", j.Object, j.ID, info.State)})
			continue
		case "JobComplete":
		case "Failed":
			// Nothing in the job's data is at fault (ids from SOQL); an
			// erase again starts a new job for what is left.
			return connectors.Outcome{}, connectors.Retryable(sfError("%s hardDelete job %s failed; see Setup > Bulk Data Load Jobs", j.Object, j.ID), 0)
		case "Aborted":
			return connectors.Outcome{}, connectors.Permanentf("Salesforce %s hardDelete job %s was aborted in Salesforce; retry the task once that was intended", j.Object, j.ID)
		case "Open":
			return connectors.Outcome{}, connectors.Retryable(sfError("%s hardDelete job %s is still open: its upload never completed", j.Object, j.ID), 0)
		default:
			return connectors.Outcome{}, connectors.Retryable(sfError("%s hardDelete job %s: unknown state", j.Object, j.ID), 0)
		}
		deleted := info.NumberRecordsProcessed - info.NumberRecordsFailed
		line := fmt.Sprintf("%s hardDelete job %s: JobComplete, %d processed, %d failed", j.Object, j.ID, info.NumberRecordsProcessed, info.NumberRecordsFailed)
		if info.NumberRecordsFailed > 0 {
			gone, err := c.failures(ctx, j, info)
			if err != nil {
				return connectors.Outcome{}, err
			}
			line += fmt.Sprintf(" (%d already deleted)", gone)
		}
		erased += max(deleted, 0)
		evidence = append(evidence, connectors.Evidence{Kind: "bulk_job", Value: line})
	}
	if running {
		return connectors.Running(ref, c.poll, evidence...), nil
	}
	return connectors.Erased(erased, evidence...), nil
}

func (c *conn) job(ctx context.Context, j refJob) (jobInfo, error) {
	req, err := vendorhttp.JSONRequest(http.MethodGet, c.api+"/jobs/ingest/"+j.ID, nil)
	if err != nil {
		return jobInfo{}, err
	}
	resp, err := c.do(ctx, req, "job status", http.StatusNotFound)
	if err != nil {
		return jobInfo{}, err
	}
	if resp.Status == http.StatusNotFound {
		// Salesforce removes jobs after seven days. Erasing again looks
		// the person up afresh.
		return jobInfo{}, connectors.Retryable(sfError("%s hardDelete job %s no longer exists; the erase will be redone", j.Object, j.ID), 0)
	}
	var info jobInfo
	if err := resp.JSON(&info); err != nil {
		return jobInfo{}, err
	}
	if info.State == "" || info.NumberRecordsFailed < 0 || info.NumberRecordsProcessed < 0 {
		return jobInfo{}, connectors.Retryable(sfError("job %s: the status answer has no state", j.ID), 0)
	}
	return info, nil
}

// failures reads why records of a completed job failed. Records that were
// already deleted (another job got there first) are no failure; a row lock
// is worth retrying; anything else needs a person. Only Salesforce's
// status codes are reported: its messages can quote the record's name.
func (c *conn) failures(ctx context.Context, j refJob, info jobInfo) (alreadyGone int64, err error) {
	req, err := http.NewRequest(http.MethodGet, c.api+"/jobs/ingest/"+j.ID+"/failedResults/", nil)
	if err != nil {
		return 0, connectors.Permanent(errors.New("the configured base URL is not a valid URL"))
	}
	req.Header.Set("Accept", "text/csv")
	resp, err := c.do(ctx, req, "failed results")
	if err != nil {
		return 0, err
	}
	rd := csv.NewReader(bytes.NewReader(resp.Body))
	rd.FieldsPerRecord = -1
	header, err := rd.Read()
	col := slices.Index(header, "sf__Error")
	if err != nil || col < 0 {
		return 0, connectors.Retryable(sfError("job %s: unreadable failed results", j.ID), 0)
	}
	codes := map[string]int{}
	for {
		row, err := rd.Read()
		if err == io.EOF {
			break
		}
		if err != nil || col >= len(row) {
			return 0, connectors.Retryable(sfError("job %s: unreadable failed results", j.ID), 0)
		}
		code, _, _ := strings.Cut(row[col], ":")
		if !statusCodeRe.MatchString(code) {
			code = "unknown"
		}
		codes[code]++
	}
	alreadyGone = int64(codes["ENTITY_IS_DELETED"])
	delete(codes, "ENTITY_IS_DELETED")
	if len(codes) == 0 {
		return alreadyGone, nil
	}
	var list []string
	for code, n := range codes {
		list = append(list, fmt.Sprintf("%s: %d", code, n))
	}
	sort.Strings(list)
	err = sfError("%s hardDelete job %s: %d of %d records were not deleted (%s); see Setup > Bulk Data Load Jobs",
		j.Object, j.ID, info.NumberRecordsFailed-alreadyGone, info.NumberRecordsProcessed, strings.Join(list, ", "))
	if _, locked := codes["UNABLE_TO_LOCK_ROW"]; locked && len(codes) == 1 {
		return 0, connectors.Retryable(err, 0)
	}
	return 0, connectors.Permanent(err)
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
		return nil, connectors.Retryable(sfError("%s: 403: the org's API request limit is reached%s", op, suffix), wait)
	case resp.Status == http.StatusForbidden:
		return nil, connectors.Permanentf("Salesforce %s: 403 Forbidden%s: the user lacks a permission; it needs API Enabled, Read and Delete on %s and \"Bulk API Hard Delete\"",
			op, suffix, strings.Join(c.objects, " and "))
	case resp.Status == http.StatusUnauthorized:
		return nil, connectors.Permanentf("Salesforce %s: 401 Unauthorized%s: the access token was refused or has expired; check access_token", op, suffix)
	case resp.Status == http.StatusNotFound && code == "NOT_FOUND":
		return nil, connectors.Permanentf("Salesforce %s: 404%s: check base_url (the instance URL) and api_version", op, suffix)
	}
	perm, after := connectors.Classify(err)
	return nil, &connectors.Error{Permanent: perm, RetryAfter: after, Err: errors.New(errors.Unwrap(err).Error() + suffix)}
}

// sfError is an error about Salesforce, its name first.
func sfError(format string, args ...any) error {
	return fmt.Errorf("Salesforce "+format, args...)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
