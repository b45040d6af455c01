// Package sendgrid is the connector that deletes a data subject's contacts
// from SendGrid Marketing Campaigns: it finds them by email, starts
// SendGrid's asynchronous delete job and polls it to its end.
package sendgrid

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/vendorhttp"
	"github.com/lethe-dev/lethe/connectors/vendorkit"
)

// DefaultBaseURL is SendGrid's global API; EU subusers use
// https://api.eu.sendgrid.com.
const DefaultBaseURL = "https://api.sendgrid.com"

func init() {
	// SendGrid publishes no fixed number for the v3 Marketing endpoints
	// and signals its limit with X-RateLimit-* headers. The runtime's rate
	// counts SendGrid requests (an erase makes two, a poll one): 8 a second
	// stays under the 600 requests a minute SendGrid applies elsewhere.
	connectors.Register("sendgrid", "Marketing Campaigns contacts in SendGrid, deleted by an asynchronous job",
		connectors.Limits{Concurrency: 4, RatePerSecond: 8, Burst: 8}, build)
}

// Config is the `config:` block of a sendgrid connector instance.
//
//	api_key: {env: SENDGRID_API_KEY}
//	base_url: https://api.eu.sendgrid.com   # optional
type Config struct {
	// APIKey is a SendGrid API key with the Marketing scope
	// (marketing.read and marketing.write, or full access).
	APIKey config.Secret `yaml:"api_key"`
	// BaseURL overrides https://api.sendgrid.com (EU region, a proxy, a test).
	BaseURL string `yaml:"base_url"`
	// PollInterval is how long to wait before asking about a delete job
	// again (default 1m).
	PollInterval time.Duration `yaml:"poll_interval"`
}

// Validate fills in defaults and reports every problem in the config at
// once, each naming its key.
func (c *Config) Validate() error {
	var p vendorkit.Problems
	p.Secret("api_key", c.APIKey, "a SendGrid API key with the Marketing scope")
	p.BaseURL(&c.BaseURL, vendorkit.URLRule{Default: DefaultBaseURL, Example: "https://api.eu.sendgrid.com", Version: "/v3"})
	p.Interval("poll_interval", &c.PollInterval, time.Minute)
	return p.Err()
}

// Plan: SendGrid's contacts are found by email only.
func (c Config) Plan(string) connectors.Plan { return connectors.EmailPlan() }

type connector struct {
	http *vendorhttp.Client
	base string
	poll time.Duration
	// reachable is set once the contacts API answered at base: from then
	// on a 404 from the search means "no such contact", not a wrong URL.
	reachable atomic.Bool
}

func build(_ context.Context, _ string, cfg Config, deps connectors.Deps) (connectors.Connector, error) {
	key, err := vendorkit.Reveal(deps, "api_key", cfg.APIKey)
	if err != nil {
		return nil, err
	}
	api := vendorkit.Client(deps, "SendGrid", vendorkit.Bearer(key))
	api.ResetHeader = "X-RateLimit-Reset"
	return &connector{http: api, base: cfg.BaseURL + "/v3/marketing/contacts", poll: cfg.PollInterval}, nil
}

// jobPrefix marks a JobRef as a contacts delete job; the ref is
// "contacts-delete:<job id>", all that Poll needs.
const jobPrefix = "contacts-delete:"

// jobIDRe is what a SendGrid job id may look like (they are UUIDs); it
// keeps a stored ref from changing the status URL.
var jobIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// Erase finds the subject's contacts and starts a job deleting them.
func (c *connector) Erase(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	ids, err := c.search(ctx, s)
	if err != nil {
		return connectors.Outcome{}, err
	}
	if len(ids) == 0 {
		return connectors.NotFound(connectors.Evidence{Kind: "search", Value: "contact not found"}), nil
	}
	escaped := make([]string, len(ids))
	for i, id := range ids {
		escaped[i] = url.QueryEscape(id)
	}
	var job struct {
		JobID string `json:"job_id"`
	}
	resp, err := c.http.Send(ctx, http.MethodDelete, c.base+"?ids="+strings.Join(escaped, ","), nil, &job, "delete contacts")
	if err != nil {
		return connectors.Outcome{}, err
	}
	if !jobIDRe.MatchString(job.JobID) {
		return connectors.Outcome{}, connectors.Retryable(fmt.Errorf("SendGrid delete contacts: status %d without a usable job_id", resp.Status), 0)
	}
	return connectors.Running(jobPrefix+job.JobID, c.poll,
		connectors.Evidence{Kind: "search", Value: connectors.Plural(len(ids), "contact") + " found"},
		connectors.Evidence{Kind: "delete_job", Value: job.JobID + ": started"}), nil
}

// Poll asks SendGrid how the delete job is doing. A job that errored or
// failed is a retryable error: the next attempt searches again and starts
// a new job for whatever is left.
func (c *connector) Poll(ctx context.Context, jobRef string) (connectors.Outcome, error) {
	if err := ctx.Err(); err != nil {
		return connectors.Outcome{}, err
	}
	id, ok := strings.CutPrefix(jobRef, jobPrefix)
	if !ok || !jobIDRe.MatchString(id) {
		return connectors.Outcome{}, connectors.Permanentf("job reference %q is not a SendGrid contacts delete job", jobRef)
	}
	var job struct {
		Status  string `json:"status"`
		Results struct {
			Requested int64 `json:"requested_count"`
			Deleted   int64 `json:"deleted_count"`
			Errored   int64 `json:"errored_count"`
		} `json:"results"`
		FinishedAt string `json:"finished_at"`
	}
	resp, err := c.http.Send(ctx, http.MethodGet, c.base+"/imports/"+id, nil, &job, "delete job status", http.StatusNotFound)
	if err != nil {
		return connectors.Outcome{}, err
	}
	if resp.Status == http.StatusNotFound {
		return connectors.Outcome{}, connectors.Retryable(fmt.Errorf(
			"SendGrid does not know delete job %s (expired, or another account's); the next attempt searches again", id), 0)
	}
	r := job.Results
	switch job.Status {
	case "pending":
		return connectors.Running(jobRef, c.poll, connectors.Evidence{Kind: "delete_job", Value: id + ": pending"}), nil
	case "completed":
		if r.Errored > 0 {
			return connectors.Outcome{}, connectors.Retryable(fmt.Errorf(
				"SendGrid delete job %s completed with %d of %d contacts errored; the next attempt searches again", id, r.Errored, r.Requested), 0)
		}
		ev := fmt.Sprintf("%s: completed, requested %d, deleted %d, errored %d", id, r.Requested, r.Deleted, r.Errored)
		if job.FinishedAt != "" && len(job.FinishedAt) <= 40 {
			ev += ", finished " + job.FinishedAt
		}
		return connectors.Erased(r.Deleted, connectors.Evidence{Kind: "delete_job", Value: ev}), nil
	case "errored", "failed":
		return connectors.Outcome{}, connectors.Retryable(fmt.Errorf(
			"SendGrid delete job %s %s (%d of %d contacts errored); the next attempt searches again and starts a new job",
			id, job.Status, r.Errored, r.Requested), 0)
	}
	return connectors.Outcome{}, connectors.Retryable(fmt.Errorf("SendGrid delete job %s: unexpected status %q", id, truncate(job.Status, 32)), 0)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Verify searches for the subject again; Remaining counts the contacts
// still found. SendGrid's search can lag a deletion by a few minutes; a
// failed verification is retried.
func (c *connector) Verify(ctx context.Context, s connectors.Subject) (connectors.Verification, error) {
	ids, err := c.search(ctx, s)
	if err != nil {
		return connectors.Verification{}, err
	}
	v := connectors.Verification{Remaining: int64(len(ids))}
	if len(ids) == 0 {
		v.Evidence = []connectors.Evidence{{Kind: "lookup", Value: "contact not found"}}
	} else {
		v.Evidence = []connectors.Evidence{{Kind: "lookup", Value: connectors.Plural(len(ids), "contact") + " still found"}}
	}
	return v, nil
}

// search returns the ids of the contacts holding s's email. A subject
// without an email is refused: the plan makes the runtime wait for one,
// and without it nothing is searched, which is never "not found" or
// "clean".
func (c *connector) search(ctx context.Context, s connectors.Subject) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.Email == "" {
		return nil, connectors.Permanentf("the subject has no email address: SendGrid contacts are found by email only (check the instance's keys)")
	}
	email := strings.ToLower(strings.TrimSpace(s.Email)) // SendGrid stores addresses lower-cased
	var body struct {
		Result map[string]struct {
			Contact *struct {
				ID string `json:"id"`
			} `json:"contact"`
			Error string `json:"error"`
		} `json:"result"`
	}
	resp, err := c.http.Send(ctx, http.MethodPost, c.base+"/search/emails", map[string][]string{"emails": {email}}, &body, "contact search", http.StatusNotFound)
	if err != nil {
		return nil, err
	}
	if resp.Status == http.StatusNotFound {
		// SendGrid's answer when none of the addresses is a contact; but a
		// wrong base_url answers 404 too, and must not pass for "erased".
		return nil, c.checkReachable(ctx)
	}
	c.reachable.Store(true)
	var ids []string
	for addr, r := range body.Result {
		if !strings.EqualFold(addr, email) || r.Contact == nil {
			continue // "contact not found", or an address we did not ask about
		}
		if r.Contact.ID == "" {
			return nil, connectors.Retryable(errors.New("SendGrid contact search: a contact without an id"), 0)
		}
		ids = append(ids, r.Contact.ID)
	}
	return ids, nil
}

// checkReachable makes sure, once per instance, that base_url leads to
// the contacts API, with a cheap call (the contact count).
func (c *connector) checkReachable(ctx context.Context) error {
	if c.reachable.Load() {
		return nil
	}
	resp, err := c.http.Send(ctx, http.MethodGet, c.base+"/count", nil, nil, "contact count", http.StatusNotFound)
	if err != nil {
		return err
	}
	var count struct {
		ContactCount *int64 `json:"contact_count"`
	}
	if resp.Status == http.StatusNotFound || resp.JSON(&count) != nil || count.ContactCount == nil {
		return connectors.Permanentf("SendGrid contacts API not found at the configured base_url (status %d); check base_url", resp.Status)
	}
	c.reachable.Store(true)
	return nil
}
