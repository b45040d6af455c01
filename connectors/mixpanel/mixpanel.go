// Package mixpanel is the mixpanel connector: it files a GDPR (or CCPA)
// deletion task for a person's distinct_id with Mixpanel's GDPR API v3 and
// follows the task, which Mixpanel may take up to 30 days to carry out.
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
//	base_url: https://eu.mixpanel.com      # default https://mixpanel.com
//	compliance_type: GDPR
//	identify_by: user_id
//	user_id_system: app
//	poll_interval: 12h
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
	Token config.Secret `yaml:"token"`
	// BaseURL is https://mixpanel.com by default; https://eu.mixpanel.com
	// or https://in.mixpanel.com for EU or India data residency.
	BaseURL string `yaml:"base_url"`
	// ComplianceType is GDPR (default) or CCPA.
	ComplianceType string `yaml:"compliance_type"`
	// IdentifyBy says what the distinct_id is: the subject's user id
	// (user_id, default) or their email (email).
	IdentifyBy string `yaml:"identify_by"`
	// UserIDSystem is the subject.user_ids key holding the distinct_id;
	// default: the instance name.
	UserIDSystem string `yaml:"user_id_system"`
	// PollInterval is how long to wait between status checks (default 12h).
	PollInterval time.Duration `yaml:"poll_interval"`
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
	p.BaseURL(&c.BaseURL, vendorkit.URLRule{Default: defaultBaseURL})
	p.OneOf("compliance_type", &c.ComplianceType, "GDPR", "CCPA")
	p.OneOf("identify_by", &c.IdentifyBy, byUserID, byEmail)
	p.Namespace("user_id_system", c.UserIDSystem)
	if c.UserIDSystem != "" && c.IdentifyBy == byEmail {
		p.Add("user_id_system", "not used with identify_by: email")
	}
	p.Interval("poll_interval", &c.PollInterval, defaultPollInterval)
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

// system is the subject.user_ids key holding the distinct_id.
func (c Config) system(name string) string { return vendorkit.System(c.UserIDSystem, name) }

// Plan: Mixpanel erases by distinct_id, which is the subject's email
// (identify_by: email) or its user id; with resolve_by_email the instance
// finds distinct_ids by email.
func (c Config) Plan(name string) connectors.Plan {
	if c.IdentifyBy == byEmail {
		return connectors.EmailPlan()
	}
	id := connectors.UserIDKind(c.system(name))
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
		system: cfg.system(name), poll: cfg.PollInterval, api: api}
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
// token comes from the instance's config.
type jobRef struct {
	Task string `json:"task"`
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

// Erase files a deletion task for the subject's distinct_id.
func (c *connector) Erase(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	if err := ctx.Err(); err != nil {
		return connectors.Outcome{}, err
	}
	id, missing := c.distinctID(s)
	if id == "" {
		// The plan makes the runtime wait for the identifier; without it
		// nothing was searched, so this is never "not found".
		return connectors.Outcome{}, connectors.Permanentf("%s: Mixpanel erases by distinct_id only (check the instance's keys)", missing)
	}
	var body struct {
		Status  string          `json:"status"`
		Results json.RawMessage `json:"results"`
	}
	resp, err := c.api.Send(ctx, http.MethodPost, c.url(deletionsPath), map[string]any{
		"distinct_ids":    []string{id},
		"compliance_type": c.compliance,
	}, &body, "create deletion task", http.StatusNotFound)
	if err != nil {
		return connectors.Outcome{}, err
	}
	if resp.Status == http.StatusNotFound {
		return connectors.Outcome{}, connectors.Permanentf("Mixpanel create deletion task: 404 Not Found: check base_url (e.g. %s, or https://eu.mixpanel.com)", defaultBaseURL)
	}
	if body.Status != "" && body.Status != "ok" {
		return connectors.Outcome{}, connectors.Permanentf("Mixpanel create deletion task: status %d answered %q", resp.Status, body.Status)
	}
	task, err := taskID(body.Results)
	if err != nil {
		return connectors.Outcome{}, connectors.Retryable(fmt.Errorf("%s create deletion task: status %d: %w", vendor, resp.Status, err), 0)
	}
	ref := jobRef{Task: task}
	return connectors.Running(vendorkit.EncodeRef(ref), c.poll,
		connectors.Evidence{Kind: "mixpanel_task", Value: task + ": created (" + c.compliance + ")"}), nil
}

// taskID reads the task id from either documented answer: the OpenAPI
// file's {"task_id"} and the guide's [{"tracking_id","status"}].
func taskID(results json.RawMessage) (string, error) {
	var obj struct {
		TaskID     flexID `json:"task_id"`
		TrackingID flexID `json:"tracking_id"`
	}
	if err := json.Unmarshal(results, &obj); err == nil {
		if obj.TaskID != "" {
			return string(obj.TaskID), nil
		}
		if obj.TrackingID != "" {
			return string(obj.TrackingID), nil
		}
		return "", errors.New("no task_id in the answer")
	}
	var list []struct {
		TrackingID flexID `json:"tracking_id"`
		TaskID     flexID `json:"task_id"`
	}
	if err := json.Unmarshal(results, &list); err != nil {
		return "", errors.New("unreadable results in the answer")
	}
	if len(list) == 0 || (list[0].TrackingID == "" && list[0].TaskID == "") {
		return "", errors.New("no tracking_id in the answer")
	}
	if list[0].TrackingID != "" {
		return string(list[0].TrackingID), nil
	}
	return string(list[0].TaskID), nil
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

// Poll reads the task's status.
func (c *connector) Poll(ctx context.Context, ref string) (connectors.Outcome, error) {
	var j jobRef
	if err := vendorkit.DecodeRef(ref, &j, func() bool { return j.Task != "" }, "mixpanel"); err != nil {
		return connectors.Outcome{}, err
	}
	var body struct {
		Results json.RawMessage `json:"results"`
	}
	resp, err := c.api.Send(ctx, http.MethodGet, c.url(deletionsPath+url.PathEscape(j.Task)), nil, &body, "deletion task status", http.StatusNotFound)
	if err != nil {
		return connectors.Outcome{}, err
	}
	if resp.Status == http.StatusNotFound {
		return connectors.Outcome{}, connectors.Permanentf("Mixpanel deletion task %s not found: it was removed, or project_token and base_url name another project", j.Task)
	}
	status, err := taskStatus(body.Results)
	if err != nil {
		return connectors.Outcome{}, connectors.Retryable(fmt.Errorf("%s deletion task %s: %w", vendor, j.Task, err), 0)
	}
	ev := []connectors.Evidence{{Kind: "mixpanel_task", Value: j.Task + ": " + status}}
	partial := connectors.Outcome{Evidence: ev}
	switch status {
	case "PENDING", "STAGING", "STARTED":
		return connectors.Running(vendorkit.EncodeRef(j), c.poll, ev...), nil
	case "SUCCESS":
		// Mixpanel reports the task done, not what it deleted.
		return connectors.ErasedUncounted(ev...), nil
	case "NOT_FOUND":
		// Mixpanel held nothing under the distinct_id.
		return connectors.NotFound(ev...), nil
	case "FAILURE":
		return partial, connectors.Retryable(fmt.Errorf("%s deletion task %s FAILURE: a new task will be filed", vendor, j.Task), 0)
	case "REVOKED":
		return partial, connectors.Permanentf("Mixpanel deletion task %s was REVOKED (cancelled in Mixpanel): erase the person again if the cancellation was a mistake", j.Task)
	}
	return partial, connectors.Retryable(fmt.Errorf("%s deletion task %s has status %q", vendor, j.Task, status), 0)
}

// taskStatus reads results.status; a list (as in the guide's create
// answer) is read by its first element.
func taskStatus(results json.RawMessage) (string, error) {
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
