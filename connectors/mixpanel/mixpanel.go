// Package mixpanel is the mixpanel connector: it files a GDPR (or CCPA)
// deletion task for a person's distinct_id with Mixpanel's GDPR API v3 and
// follows the task, which Mixpanel may take up to 30 days to carry out.
// Many people go in one task (up to 1,999 distinct_ids, EraseBatch), and
// the task's one status is each of theirs (PollBatch asks once a task).
// Given a service account, it also finds the distinct_ids of the profiles
// holding a person's email (Query API, /api/query/engage).
package mixpanel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/vendorhttp"
	"github.com/lethe-dev/lethe/connectors/vendorkit"
)

const (
	defaultBaseURL      = "https://mixpanel.com"
	defaultPollInterval = 12 * time.Hour
	deletionsPath       = "/api/app/data-deletions/v3.0/"
	engagePath          = "/api/query/engage"
	vendor              = "Mixpanel"
	// queryRetryAfter is the pause after a Query API 429 that named no
	// delay: the API allows 60 queries an hour.
	queryRetryAfter = time.Minute
	// maxEngagePages bounds the profiles read for one email (1,000 a page).
	maxEngagePages = 10
	// maxBatch is the most distinct_ids one deletion task takes, per the
	// GDPR API reference (its privacy guide says 2,000: the lower is used).
	maxBatch = 1999
)

// Ways to find the person's distinct_id.
const (
	byUserID = "user_id"
	byEmail  = "email"
)

func init() {
	// Mixpanel allows the GDPR API one request a second per project.
	connectors.Register("mixpanel", "Mixpanel: a GDPR/CCPA deletion task for a distinct_id (events and profile)",
		connectors.Limits{Concurrency: 2, RatePerSecond: 1, Burst: 1}, build)
}

// Config is the `config:` block of a mixpanel instance.
//
//	project_token: {env: MIXPANEL_PROJECT_TOKEN}
//	token: {env: MIXPANEL_GDPR_TOKEN}
//	base_url: https://eu.mixpanel.com      # or in.mixpanel.com (data residency); default https://mixpanel.com
//	compliance_type: GDPR
//	identify_by: user_id
//	user_id_system: app                    # subject.user_ids key of the distinct_id
//	poll_interval: 12h                     # between status checks (the default)
//	batch_size: 1999                       # distinct_ids a task (≤ 1999)
//	resolve_by_email: true                 # find distinct_ids by email, with:
//	query_api:
//	  project_id: 123456
//	  username: lethe.abc123.mp-service-account
//	  secret: {env: MIXPANEL_SERVICE_ACCOUNT_SECRET}
type Config struct {
	// ProjectToken names the project (the token=… query parameter).
	ProjectToken config.Secret `yaml:"project_token"`
	// Token is the GDPR API OAuth token of a project owner or admin, sent
	// as a Bearer token.
	Token            config.Secret `yaml:"token"`
	vendorkit.Fields `yaml:",inline"`
	// ComplianceType is GDPR (default) or CCPA.
	ComplianceType string `yaml:"compliance_type"`
	// IdentifyBy says what the distinct_id is: the subject's user id
	// (user_id, default) or their email (email).
	IdentifyBy string `yaml:"identify_by"`
	// BatchSize is the most distinct_ids one deletion task is filed for
	// (default and most 1,999). Mixpanel takes fewer in projects with
	// Group Analytics: floor(2000 / (group keys + 1)).
	BatchSize int `yaml:"batch_size"`
	// ResolveByEmail looks up the profiles whose $email is the subject's
	// email and reports their distinct_ids, before anything is erased.
	// It needs QueryAPI.
	ResolveByEmail bool `yaml:"resolve_by_email"`
	// QueryAPI is the service account the Query API takes.
	QueryAPI *QueryAPIConfig `yaml:"query_api"`
}

// QueryAPIConfig is a service account for Mixpanel's Query API (HTTP
// Basic, username and secret), which must name the project.
type QueryAPIConfig struct {
	ProjectID int64 `yaml:"project_id"`
	// WorkspaceID is the global data view's id, for projects with Data
	// Views; optional.
	WorkspaceID int64         `yaml:"workspace_id"`
	Username    string        `yaml:"username"`
	Secret      config.Secret `yaml:"secret"`
}

// Validate fills in defaults and reports every problem at once, each
// naming its key.
func (c *Config) Validate() error {
	var p vendorkit.Problems
	p.Secret("project_token", c.ProjectToken, "the project's token (Project Settings)")
	p.Secret("token", c.Token, "the GDPR API OAuth token")
	c.Check(&p, &vendorkit.URLRule{Default: defaultBaseURL}, defaultPollInterval)
	p.OneOf("compliance_type", &c.ComplianceType, "GDPR", "CCPA")
	p.OneOf("identify_by", &c.IdentifyBy, byUserID, byEmail)
	if c.UserIDSystem != "" && c.IdentifyBy == byEmail {
		p.Add("user_id_system", "not used with identify_by: email")
	}
	switch {
	case c.BatchSize == 0:
		c.BatchSize = maxBatch
	case c.BatchSize < 2 || c.BatchSize > maxBatch:
		p.Add("batch_size", "must be from 2 to %d (Mixpanel's most distinct_ids a deletion task; fewer with Group Analytics)", maxBatch)
	}
	switch q := c.QueryAPI; {
	case c.ResolveByEmail && c.IdentifyBy == byEmail:
		p.Add("resolve_by_email", "not used with identify_by: email (the distinct_id is the email already)")
	case c.ResolveByEmail && q == nil:
		p.Add("resolve_by_email", "needs query_api: a service account (project_id, username, secret) for the Query API")
	case !c.ResolveByEmail && q != nil:
		p.Add("query_api", "only used with resolve_by_email: true")
	}
	if q := c.QueryAPI; q != nil {
		if q.ProjectID <= 0 {
			p.Add("query_api.project_id", "required: the project's numeric id (Project Settings)")
		}
		if q.WorkspaceID < 0 {
			p.Add("query_api.workspace_id", "must be a positive workspace id")
		}
		if strings.TrimSpace(q.Username) == "" || strings.ContainsAny(q.Username, ":\r\n") {
			p.Add("query_api.username", "required: the service account's username (without ':')")
		}
		p.Secret("query_api.secret", q.Secret, "the service account's secret")
	}
	return p.Err()
}

// Plan: Mixpanel erases by distinct_id, which is the subject's email
// (identify_by: email) or its user id; with resolve_by_email the instance
// finds distinct_ids by email.
func (c Config) Plan(name string) connectors.Plan {
	if c.IdentifyBy == byEmail {
		return connectors.EmailPlan()
	}
	id := c.IDKind(name)
	p := connectors.Plan{Keys: []connectors.Requirement{{id}}}
	if c.ResolveByEmail {
		p.ResolveBy = []connectors.Kind{connectors.Email}
		p.Gives = []connectors.Kind{id}
	}
	return p
}

type connector struct {
	base       string
	project    string
	compliance string
	identifyBy string
	system     string
	poll       time.Duration
	batch      int
	api        *vendorhttp.Client
}

// resolving adds Resolve: distinct_ids found by email with the Query API.
type resolving struct {
	*connector
	projectID, workspaceID int64
	query                  *vendorhttp.Client
}

func build(_ context.Context, name string, cfg Config, deps connectors.Deps) (connectors.Connector, error) {
	project, token, err := vendorkit.RevealPair(deps, "project_token", cfg.ProjectToken, "token", cfg.Token)
	if err != nil {
		return nil, err
	}
	api := vendorkit.Client(deps, vendor, vendorkit.Bearer(token))
	// A 429 names no delay; the GDPR API allows one request a second.
	api.MinRetryAfter = time.Second
	c := &connector{base: cfg.BaseURL, project: project, compliance: cfg.ComplianceType, identifyBy: cfg.IdentifyBy,
		system: cfg.System(name), poll: cfg.PollInterval, batch: cfg.BatchSize, api: api}
	if !cfg.ResolveByEmail {
		return c, nil
	}
	q := cfg.QueryAPI
	secret, err := vendorkit.Reveal(deps, "query_api.secret", q.Secret)
	if err != nil {
		return nil, err
	}
	query := vendorkit.Client(deps, "Mixpanel Query API", vendorkit.Basic(strings.TrimSpace(q.Username), secret))
	query.MinRetryAfter = queryRetryAfter
	return resolving{connector: c, projectID: q.ProjectID, workspaceID: q.WorkspaceID, query: query}, nil
}

// jobRef is what Poll needs: Mixpanel's task (tracking) id. The project
// token comes from the instance's config. A task filed for several
// people gives each of them the same ref, with Of: how many distinct_ids
// the task holds (never which). Mixpanel reports on the task alone, so
// the task is all of it that is the subject's. Refs of a task for one
// distinct_id (all refs made before batches) have no Of.
type jobRef struct {
	Task string `json:"task"`
	Of   int    `json:"of,omitempty"`
}

// status is the evidence of the task's status s.
func (j jobRef) status(s string) connectors.Evidence {
	v := j.Task + ": " + s
	if j.Of > 1 {
		v += fmt.Sprintf(" (task of %d distinct_ids)", j.Of)
	}
	return connectors.Evidence{Kind: "mixpanel_task", Value: v}
}

// distinctID is the person's distinct_id, or "" and why it is missing.
func (c *connector) distinctID(s connectors.Subject) (id, missing string) {
	if c.identifyBy == byEmail {
		if s.Email == "" {
			return "", "the subject has no email"
		}
		return s.Email, ""
	}
	if id := s.UserIDs[c.system]; id != "" {
		return id, ""
	}
	return "", "the subject has no user id for " + c.system
}

func (c *connector) url(path string) string {
	return c.base + path + "?token=" + url.QueryEscape(c.project)
}

// Erase files a deletion task for the subject's distinct_id: a batch of
// one.
func (c *connector) Erase(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	return connectors.One(ctx, c.EraseBatch, s)
}

// BatchLimit is batch_size: at most 1,999 distinct_ids a task.
func (c *connector) BatchLimit() int { return c.batch }

// EraseBatch files one deletion task for the distinct_ids of all the
// subjects (each id once) and gives every subject the task as its job. A
// subject without a distinct_id fails alone; more subjects than
// batch_size are refused before anything is sent.
func (c *connector) EraseBatch(ctx context.Context, subjects []connectors.Subject) ([]connectors.Item, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(subjects) > c.batch {
		return nil, connectors.Permanentf("Mixpanel deletion task: %d subjects given, batch_size is %d distinct_ids a task; nothing was sent", len(subjects), c.batch)
	}
	items := make([]connectors.Item, len(subjects))
	var ids []string
	seen := map[string]bool{}
	for i, s := range subjects {
		id, missing := c.distinctID(s)
		if id == "" {
			// The plan makes the runtime wait for the identifier; without it
			// nothing was searched, so this is never "not found".
			items[i].Err = connectors.Permanentf("%s: Mixpanel erases by distinct_id only (check the instance's keys)", missing)
			continue
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return items, nil
	}
	task, err := c.createTask(ctx, ids)
	if err != nil {
		return nil, err
	}
	ref := jobRef{Task: task}
	created := task + ": created (" + c.compliance + ")"
	if len(ids) > 1 {
		ref.Of = len(ids)
		created += fmt.Sprintf(" for %d distinct_ids", len(ids))
	}
	for i := range items {
		if items[i].Err == nil {
			items[i].Outcome = connectors.Running(vendorkit.EncodeRef(ref), c.poll,
				connectors.Evidence{Kind: "mixpanel_task", Value: created})
		}
	}
	return items, nil
}

// createTask files a deletion task for ids and returns its id.
func (c *connector) createTask(ctx context.Context, ids []string) (string, error) {
	var body struct {
		Status  string          `json:"status"`
		Results json.RawMessage `json:"results"`
	}
	resp, err := c.api.Send(ctx, http.MethodPost, c.url(deletionsPath), map[string]any{
		"distinct_ids":    ids,
		"compliance_type": c.compliance,
	}, &body, "create deletion task", http.StatusNotFound)
	if err != nil {
		return "", err
	}
	if resp.Status == http.StatusNotFound {
		return "", connectors.Permanentf("Mixpanel create deletion task: 404 Not Found: check base_url (e.g. %s, or https://eu.mixpanel.com)", defaultBaseURL)
	}
	if body.Status != "" && body.Status != "ok" {
		return "", connectors.Permanentf("Mixpanel create deletion task: status %d answered %q", resp.Status, body.Status)
	}
	task, count, err := taskID(body.Results)
	if err != nil {
		return "", connectors.Retryable(fmt.Errorf("%s create deletion task: status %d: %w", vendor, resp.Status, err), 0)
	}
	if count != nil && *count < len(ids) {
		// Mixpanel took fewer than were sent and does not say which: the
		// task cannot be anyone's.
		return "", connectors.Permanentf("Mixpanel deletion task %s holds %d of the %d distinct_ids sent, without saying which; erase the people again (in smaller batches)", task, *count, len(ids))
	}
	return task, nil
}

// taskID reads the task id from either documented answer: the OpenAPI
// file's {"task_id"} and the guide's [{"tracking_id","status",
// "distinct_id_count"}], and the count of distinct_ids the task holds
// when the answer gives it (the guide's does).
func taskID(results json.RawMessage) (id string, count *int, err error) {
	var obj struct {
		TaskID     flexID `json:"task_id"`
		TrackingID flexID `json:"tracking_id"`
		Count      *int   `json:"distinct_id_count"`
	}
	if err := json.Unmarshal(results, &obj); err == nil {
		if obj.TaskID != "" {
			return string(obj.TaskID), obj.Count, nil
		}
		if obj.TrackingID != "" {
			return string(obj.TrackingID), obj.Count, nil
		}
		return "", nil, errors.New("no task_id in the answer")
	}
	var list []struct {
		TrackingID flexID `json:"tracking_id"`
		TaskID     flexID `json:"task_id"`
		Count      *int   `json:"distinct_id_count"`
	}
	if err := json.Unmarshal(results, &list); err != nil {
		return "", nil, errors.New("unreadable results in the answer")
	}
	if len(list) == 0 || (list[0].TrackingID == "" && list[0].TaskID == "") {
		return "", nil, errors.New("no tracking_id in the answer")
	}
	if list[0].TrackingID != "" {
		return string(list[0].TrackingID), list[0].Count, nil
	}
	return string(list[0].TaskID), list[0].Count, nil
}

// flexID is an id Mixpanel may send as a string or a number.
type flexID string

func (f *flexID) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = flexID(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*f = flexID(n.String())
	return nil
}

// Poll reads the task's status: a PollBatch of one.
func (c *connector) Poll(ctx context.Context, ref string) (connectors.Outcome, error) {
	return connectors.One(ctx, c.PollBatch, ref)
}

// PollBatch reads the status of each task the refs name, once a task,
// and gives every ref of a task the outcome the task's status means for
// each of its people: Mixpanel reports on the task, never on one of its
// distinct_ids. A malformed ref, and a task gone or ended badly, fail
// their refs alone; a call Mixpanel does not answer (429, 5xx, refused
// token) fails the whole call.
func (c *connector) PollBatch(ctx context.Context, refs []string) ([]connectors.Item, error) {
	g := connectors.GroupRefs(refs, func(ref string) (jobRef, string, error) {
		var j jobRef
		err := vendorkit.DecodeRef(ref, &j, func() bool { return j.Task != "" && j.Of >= 0 }, "mixpanel")
		return j, j.Task, err
	})
	for _, task := range g.Jobs {
		status, err := c.taskStatus(ctx, task)
		var scoped *taskError
		if err != nil && !errors.As(err, &scoped) {
			return nil, err
		}
		for _, i := range g.ByJob[task] {
			if scoped != nil {
				g.Items[i].Err = scoped.err
				continue
			}
			out, err := c.outcome(g.Refs[i], status)
			g.Items[i] = connectors.Item{Outcome: out, Err: err}
		}
	}
	return g.Items, nil
}

// taskError is a failure of one task (gone, or its answer unreadable),
// as opposed to one of the call.
type taskError struct{ err error }

func (e *taskError) Error() string { return e.err.Error() }
func (e *taskError) Unwrap() error { return e.err }

// taskStatus asks Mixpanel for the task's status.
func (c *connector) taskStatus(ctx context.Context, task string) (string, error) {
	var body struct {
		Results json.RawMessage `json:"results"`
	}
	resp, err := c.api.Send(ctx, http.MethodGet, c.url(deletionsPath+url.PathEscape(task)), nil, &body, "deletion task status", http.StatusNotFound)
	if err != nil {
		return "", err
	}
	if resp.Status == http.StatusNotFound {
		return "", &taskError{connectors.Permanentf("Mixpanel deletion task %s not found: it was removed, or project_token and base_url name another project", task)}
	}
	status, err := readStatus(body.Results)
	if err != nil {
		return "", &taskError{connectors.Retryable(fmt.Errorf("%s deletion task %s: %w", vendor, task, err), 0)}
	}
	return status, nil
}

// outcome is what the task's status means for each of its people, who
// are all told the same: the status is the task's.
func (c *connector) outcome(j jobRef, status string) (connectors.Outcome, error) {
	ev := j.status(status)
	partial := connectors.Outcome{Evidence: []connectors.Evidence{ev}}
	switch status {
	case "PENDING", "STAGING", "STARTED":
		return connectors.Running(vendorkit.EncodeRef(j), c.poll, ev), nil
	case "SUCCESS":
		// Mixpanel reports the task done, not what it deleted, nor for
		// which of its distinct_ids it held anything.
		return connectors.ErasedUncounted(ev), nil
	case "NOT_FOUND":
		// "The deletion task cannot be found": about the task, not the
		// people, who are never reported not found on the strength of it.
		return partial, connectors.Retryable(fmt.Errorf("%s cannot find deletion task %s: a new task will be filed", vendor, j.Task), 0)
	case "FAILURE":
		return partial, connectors.Retryable(fmt.Errorf("%s deletion task %s FAILURE: a new task will be filed", vendor, j.Task), 0)
	case "REVOKED":
		return partial, connectors.Permanentf("Mixpanel deletion task %s was REVOKED (cancelled in Mixpanel): erase the person again if the cancellation was a mistake", j.Task)
	}
	return partial, connectors.Retryable(fmt.Errorf("%s deletion task %s has status %q", vendor, j.Task, status), 0)
}

// readStatus reads results.status; a list (as in the guide's create
// answer) is read by its first element.
func readStatus(results json.RawMessage) (string, error) {
	var obj struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(results, &obj); err == nil {
		if obj.Status == "" {
			return "", errors.New("no status in the answer")
		}
		return obj.Status, nil
	}
	var list []struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(results, &list); err != nil || len(list) == 0 || list[0].Status == "" {
		return "", errors.New("no status in the answer")
	}
	return list[0].Status, nil
}

// Resolve finds the profiles whose $email is the subject's email and
// reports every distinct_id among them (POST /api/query/engage with
// where=properties["$email"] == "<email>"). None is an empty resolution.
func (r resolving) Resolve(ctx context.Context, s connectors.Subject) (connectors.Resolution, error) {
	if err := ctx.Err(); err != nil {
		return connectors.Resolution{}, err
	}
	var res connectors.Resolution
	if s.Email == "" {
		res.Evidence = []connectors.Evidence{{Kind: "mixpanel_lookup", Value: "not looked up: the subject has no email"}}
		return res, nil
	}
	where, err := emailWhere(s.Email)
	if err != nil {
		return connectors.Resolution{}, err
	}
	q := url.Values{"project_id": {strconv.FormatInt(r.projectID, 10)}}
	if r.workspaceID > 0 {
		q.Set("workspace_id", strconv.FormatInt(r.workspaceID, 10))
	}
	kind := connectors.UserIDKind(r.system)
	var profiles, ignored int
	session := ""
	for page := 0; ; page++ {
		if page == maxEngagePages {
			return connectors.Resolution{}, connectors.Permanentf("Mixpanel Query API: more than %d pages of profiles hold this email; look their distinct_ids up in Mixpanel and add them to the request", maxEngagePages)
		}
		form := url.Values{"where": {where}, "output_properties": {`["$email"]`}}
		if page > 0 {
			form.Set("session_id", session)
			form.Set("page", strconv.Itoa(page))
		}
		req, err := http.NewRequest(http.MethodPost, r.base+engagePath+"?"+q.Encode(), strings.NewReader(form.Encode()))
		if err != nil {
			return connectors.Resolution{}, connectors.Permanentf("the configured base_url is not a valid URL")
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := r.query.Do(ctx, req, "profile query")
		if err != nil {
			return connectors.Resolution{}, err
		}
		var body struct {
			Status    string `json:"status"`
			Page      int    `json:"page"`
			PageSize  int    `json:"page_size"`
			SessionID string `json:"session_id"`
			Results   []struct {
				DistinctID flexID `json:"$distinct_id"`
				Properties struct {
					Email *string `json:"$email"`
				} `json:"$properties"`
			} `json:"results"`
		}
		if err := resp.JSON(&body); err != nil {
			return connectors.Resolution{}, err
		}
		if body.Status != "" && body.Status != "ok" {
			return connectors.Resolution{}, connectors.Retryable(fmt.Errorf("%s profile query: status %d answered a status other than ok", vendor, resp.Status), 0)
		}
		for _, p := range body.Results {
			// The where expression should match only this email; a profile
			// with another is never reported as the subject's.
			if p.Properties.Email == nil || !strings.EqualFold(strings.TrimSpace(*p.Properties.Email), s.Email) {
				ignored++
				continue
			}
			profiles++
			res.Add(kind, string(p.DistinctID))
		}
		if body.PageSize <= 0 || len(body.Results) < body.PageSize || body.SessionID == "" {
			break
		}
		session = body.SessionID
	}
	v := connectors.Plural(profiles, "profile") + " found by email"
	if ignored > 0 {
		v += fmt.Sprintf("; %s with another email ignored", connectors.Plural(ignored, "profile"))
	}
	res.Evidence = []connectors.Evidence{{Kind: "mixpanel_lookup", Value: v}}
	return res, nil
}

// emailWhere is the segmentation expression matching profiles by $email.
// Mixpanel documents no escapes inside a string literal, so an email that
// would need one (a double quote, a backslash) or holds a control
// character is refused rather than guessed at.
func emailWhere(email string) (string, error) {
	for _, r := range email {
		if r == '"' || r == '\\' || unicode.IsControl(r) || r == utf8.RuneError {
			return "", connectors.Permanentf("Mixpanel profile query: the subject's email holds a quote, backslash or control character, which Mixpanel's where expressions cannot quote safely; find the distinct_id in Mixpanel by hand")
		}
	}
	return `properties["$email"] == "` + email + `"`, nil
}
