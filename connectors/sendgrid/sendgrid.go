// Package sendgrid is the connector that deletes a data subject's contacts
// from SendGrid Marketing Campaigns: it finds them by email, starts
// SendGrid's asynchronous delete job and polls it to its end. Up to 100
// subjects share one search and one delete job (connectors.BatchEraser),
// and refs of one job are polled with one request (connectors.BatchPoller).
package sendgrid

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
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

var (
	_ connectors.BatchEraser = (*connector)(nil)
	_ connectors.BatchPoller = (*connector)(nil)
	_ connectors.Verifier    = (*connector)(nil)
)

// jobPrefix marks a JobRef as a contacts delete job. A job holding one
// subject's contacts alone is "contacts-delete:<job id>" (what Erase has
// always made, and refs are stored): the job's counts are that subject's.
// A job shared by several subjects of a batch is
// "contacts-delete:<job id>:<mine>/<sent>": <mine> of the <sent> contact
// ids the job was given are this subject's. Neither carries personal data.
const jobPrefix = "contacts-delete:"

// jobIDRe is what a SendGrid job id may look like (they are UUIDs); it
// keeps a stored ref from changing the status URL.
var jobIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// shareRe is the tail of a shared job's ref: "<mine>/<sent>".
var shareRe = regexp.MustCompile(`^([1-9][0-9]{0,5})/([1-9][0-9]{0,5})$`)

const (
	// batchLimit is the most subjects EraseBatch sends in one search:
	// SendGrid's "Get Contacts by Emails" retrieves "up to 100 contacts"
	// a call, one per address asked.
	batchLimit = 100
	// deleteLimit is the most contact ids one delete call is given.
	// SendGrid documents no maximum for DELETE /v3/marketing/contacts;
	// 100 is ours (its batch lookup by ids takes 100, and 100 UUIDs keep
	// the URL near 4 KB), and a batch of 100 addresses never finds more.
	deleteLimit = 100
)

// BatchLimit is how many subjects one EraseBatch takes in one search and
// one delete call.
func (c *connector) BatchLimit() int { return batchLimit }

// Erase finds the subject's contacts and starts a job deleting them: a
// batch of one.
func (c *connector) Erase(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	return connectors.One(ctx, c.EraseBatch, s)
}

// EraseBatch finds the contacts of up to 100 subjects with one search and
// deletes them all with one delete job; each subject's ref names the job
// and how many of its contacts are theirs. More than 100 subjects (the
// runtime never passes more than BatchLimit) are taken 100 at a time.
func (c *connector) EraseBatch(ctx context.Context, subjects []connectors.Subject) ([]connectors.Item, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	items := make([]connectors.Item, len(subjects))
	for _, ch := range connectors.Chunks(len(subjects), batchLimit) {
		if err := c.eraseChunk(ctx, subjects[ch[0]:ch[1]], items[ch[0]:ch[1]]); err != nil {
			return nil, err
		}
	}
	return items, nil
}

// eraseChunk erases at most batchLimit subjects, filling in their items.
func (c *connector) eraseChunk(ctx context.Context, subjects []connectors.Subject, items []connectors.Item) error {
	found, err := c.lookup(ctx, subjects)
	if err != nil {
		return err
	}
	var ids []string // the contacts to delete, each once
	seen := map[string]bool{}
	owners := 0
	for i, f := range found {
		switch {
		case f.err != nil:
			items[i].Err = f.err
		case len(f.ids) == 0:
			items[i].Outcome = connectors.NotFound(connectors.Evidence{Kind: "search", Value: "contact not found"})
		default:
			owners++
			for _, id := range f.ids {
				if !seen[id] {
					seen[id] = true
					ids = append(ids, id)
				}
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if len(ids) > deleteLimit {
		// One contact per address asked: a search answering more is not
		// SendGrid as documented.
		return connectors.Retryable(fmt.Errorf("SendGrid contact search answered %d contacts for %d addresses", len(ids), len(subjects)), 0)
	}
	job, err := c.startDelete(ctx, ids)
	if err != nil {
		return err
	}
	for i, f := range found {
		if f.err != nil || len(f.ids) == 0 {
			continue
		}
		ref, started := jobPrefix+job, job+": started"
		if owners > 1 {
			ref = fmt.Sprintf("%s%s:%d/%d", jobPrefix, job, len(f.ids), len(ids))
			started = fmt.Sprintf("%s: started for %s, %d of them this subject's", job, connectors.Plural(len(ids), "contact"), len(f.ids))
		}
		items[i].Outcome = connectors.Running(ref, c.poll,
			connectors.Evidence{Kind: "search", Value: connectors.Plural(len(f.ids), "contact") + " found"},
			connectors.Evidence{Kind: "delete_job", Value: started})
	}
	return nil
}

// startDelete starts SendGrid's job deleting ids and returns its id.
func (c *connector) startDelete(ctx context.Context, ids []string) (string, error) {
	escaped := make([]string, len(ids))
	for i, id := range ids {
		escaped[i] = url.QueryEscape(id)
	}
	var job struct {
		JobID string `json:"job_id"`
	}
	resp, err := c.http.Send(ctx, http.MethodDelete, c.base+"?ids="+strings.Join(escaped, ","), nil, &job, "delete contacts")
	if err != nil {
		return "", err
	}
	if !jobIDRe.MatchString(job.JobID) {
		return "", connectors.Retryable(fmt.Errorf("SendGrid delete contacts: status %d without a usable job_id", resp.Status), 0)
	}
	return job.JobID, nil
}

// jobRef is a parsed JobRef: the job, and for a shared job the subject's
// part of it.
type jobRef struct {
	job        string
	shared     bool
	mine, sent int64
}

func parseRef(ref string) (jobRef, error) {
	rest, ok := strings.CutPrefix(ref, jobPrefix)
	job, share, shared := strings.Cut(rest, ":")
	r := jobRef{job: job, shared: shared}
	if ok && shared {
		if m := shareRe.FindStringSubmatch(share); m != nil {
			r.mine, _ = strconv.ParseInt(m[1], 10, 64)
			r.sent, _ = strconv.ParseInt(m[2], 10, 64)
		}
		ok = r.mine > 0 && r.mine <= r.sent
	}
	if !ok || !jobIDRe.MatchString(job) {
		return jobRef{}, connectors.Permanentf("job reference %q is not a SendGrid contacts delete job", truncate(ref, 200))
	}
	return r, nil
}

// jobStatus is SendGrid's report on a delete job.
type jobStatus struct {
	Status  string `json:"status"`
	Results struct {
		Requested int64 `json:"requested_count"`
		Deleted   int64 `json:"deleted_count"`
		Errored   int64 `json:"errored_count"`
	} `json:"results"`
	FinishedAt string `json:"finished_at"`
}

// Poll asks SendGrid how the delete job is doing: a batch of one.
func (c *connector) Poll(ctx context.Context, jobRef string) (connectors.Outcome, error) {
	return connectors.One(ctx, c.PollBatch, jobRef)
}

// PollBatch asks SendGrid about each delete job the refs name, once per
// job, and judges each ref by its job's report. A job that errored or
// failed is a retryable error for everyone in it: SendGrid reports totals
// only, so nobody in it can be told apart, and the next attempt searches
// again and starts a new job for whatever is left. A ref that is not ours
// fails alone; a status request the vendor refuses fails the call.
func (c *connector) PollBatch(ctx context.Context, refs []string) ([]connectors.Item, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	g := connectors.GroupRefs(refs, func(ref string) (jobRef, string, error) {
		r, err := parseRef(ref)
		return r, r.job, err
	})
	for _, job := range g.Jobs {
		st, err := c.status(ctx, job)
		if err != nil {
			return nil, err
		}
		for _, i := range g.ByJob[job] {
			g.Items[i].Outcome, g.Items[i].Err = c.judge(refs[i], g.Refs[i], st)
		}
	}
	return g.Items, nil
}

// status fetches a delete job's report; nil when SendGrid does not know
// the job.
func (c *connector) status(ctx context.Context, id string) (*jobStatus, error) {
	var job jobStatus
	resp, err := c.http.Send(ctx, http.MethodGet, c.base+"/imports/"+id, nil, &job, "delete job status", http.StatusNotFound)
	if err != nil {
		return nil, err
	}
	if resp.Status == http.StatusNotFound {
		return nil, nil
	}
	return &job, nil
}

// judge is one ref's outcome from its job's report. A job of one subject
// is theirs whole: its deleted_count is their count. In a shared job a
// subject's count is the number of their contacts sent, when the job
// completed with every contact sent requested, deleted and none errored;
// when fewer were deleted without errors (some were gone already), they
// are erased with the count unknown.
func (c *connector) judge(ref string, r jobRef, job *jobStatus) (connectors.Outcome, error) {
	id := r.job
	if job == nil {
		return connectors.Outcome{}, connectors.Retryable(fmt.Errorf(
			"SendGrid does not know delete job %s (expired, or another account's); the next attempt searches again", id), 0)
	}
	res := job.Results
	switch job.Status {
	case "pending":
		return connectors.Running(ref, c.poll, connectors.Evidence{Kind: "delete_job", Value: id + ": pending"}), nil
	case "completed":
		if res.Errored > 0 {
			return connectors.Outcome{}, connectors.Retryable(fmt.Errorf(
				"SendGrid delete job %s completed with %d of %d contacts errored; the next attempt searches again", id, res.Errored, res.Requested), 0)
		}
		ev := fmt.Sprintf("%s: completed, requested %d, deleted %d, errored %d", id, res.Requested, res.Deleted, res.Errored)
		if job.FinishedAt != "" && len(job.FinishedAt) <= 40 {
			ev += ", finished " + job.FinishedAt
		}
		if !r.shared {
			return connectors.Erased(res.Deleted, connectors.Evidence{Kind: "delete_job", Value: ev}), nil
		}
		if res.Requested != r.sent {
			return connectors.Outcome{}, connectors.Retryable(fmt.Errorf(
				"SendGrid delete job %s completed with %d contacts requested of the %d sent; whose is not known, the next attempt searches again",
				id, res.Requested, r.sent), 0)
		}
		if res.Deleted == r.sent {
			return connectors.Erased(r.mine, connectors.Evidence{Kind: "delete_job",
				Value: fmt.Sprintf("%s, %d of them this subject's", ev, r.mine)}), nil
		}
		return connectors.ErasedUncounted(connectors.Evidence{Kind: "delete_job",
			Value: fmt.Sprintf("%s; %d of the contacts sent were this subject's, how many of those it deleted is not known", ev, r.mine)}), nil
	case "errored", "failed":
		return connectors.Outcome{}, connectors.Retryable(fmt.Errorf(
			"SendGrid delete job %s %s (%d of %d contacts errored); the next attempt searches again and starts a new job",
			id, job.Status, res.Errored, res.Requested), 0)
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
	found, err := c.lookup(ctx, []connectors.Subject{s})
	if err != nil {
		return connectors.Verification{}, err
	}
	return found[0].verification()
}

// VerifyBatch searches for up to batchLimit subjects a call; each is
// judged as Verify judges one.
func (c *connector) VerifyBatch(ctx context.Context, subjects []connectors.Subject) ([]connectors.Checked, error) {
	out := make([]connectors.Checked, len(subjects))
	for _, ch := range connectors.Chunks(len(subjects), batchLimit) {
		found, err := c.lookup(ctx, subjects[ch[0]:ch[1]])
		if err != nil {
			return nil, err
		}
		for j, f := range found {
			v, err := f.verification()
			out[ch[0]+j] = connectors.Checked{Verification: v, Err: err}
		}
	}
	return out, nil
}

// verification is a lookup's answer for one subject after erasure.
func (f found) verification() (connectors.Verification, error) {
	if f.err != nil {
		return connectors.Verification{}, f.err
	}
	v := connectors.Verification{Remaining: int64(len(f.ids))}
	if len(f.ids) == 0 {
		v.Evidence = []connectors.Evidence{{Kind: "lookup", Value: "contact not found"}}
	} else {
		v.Evidence = []connectors.Evidence{{Kind: "lookup", Value: connectors.Plural(len(f.ids), "contact") + " still found"}}
	}
	return v, nil
}

// found is what the search said about one subject: the ids of their
// contacts (none: SendGrid said it holds no contact with the address), or
// the error that fails them alone.
type found struct {
	ids []string
	err error
}

// lookup finds the contacts of up to batchLimit subjects with one search
// by their emails, and tells each subject's apart: SendGrid answers per
// address. A subject without an email is refused on their own: the plan
// makes the runtime wait for one, and without it nothing is searched,
// which is never "not found" or "clean". An address SendGrid's answer
// leaves out is not "not found" either: SendGrid said nothing about it.
func (c *connector) lookup(ctx context.Context, subjects []connectors.Subject) ([]found, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]found, len(subjects))
	emails := make([]string, len(subjects))
	var ask []string // each address once
	asked := map[string]bool{}
	for i, s := range subjects {
		email := strings.ToLower(strings.TrimSpace(s.Email)) // SendGrid stores addresses lower-cased
		if email == "" {
			out[i].err = connectors.Permanentf("the subject has no email address: SendGrid contacts are found by email only (check the instance's keys)")
			continue
		}
		emails[i] = email
		if !asked[email] {
			asked[email] = true
			ask = append(ask, email)
		}
	}
	if len(ask) == 0 {
		return out, nil
	}
	var body struct {
		Result map[string]struct {
			Contact *struct {
				ID string `json:"id"`
			} `json:"contact"`
			Error string `json:"error"`
		} `json:"result"`
	}
	resp, err := c.http.Send(ctx, http.MethodPost, c.base+"/search/emails", map[string][]string{"emails": ask}, &body, "contact search", http.StatusNotFound)
	if err != nil {
		return nil, err
	}
	if resp.Status == http.StatusNotFound {
		// SendGrid's answer when none of the addresses is a contact; but a
		// wrong base_url answers 404 too, and must not pass for "erased".
		return out, c.checkReachable(ctx)
	}
	c.reachable.Store(true)
	type answer struct {
		ids      []string
		notFound bool
		other    bool
	}
	answers := map[string]*answer{}
	for addr, r := range body.Result {
		addr = strings.ToLower(addr)
		if !asked[addr] {
			continue // an address we did not ask about
		}
		a := answers[addr]
		if a == nil {
			a = &answer{}
			answers[addr] = a
		}
		switch {
		case r.Contact != nil:
			if r.Contact.ID == "" {
				return nil, connectors.Retryable(errors.New("SendGrid contact search: a contact without an id"), 0)
			}
			if !slices.Contains(a.ids, r.Contact.ID) {
				a.ids = append(a.ids, r.Contact.ID)
			}
		case strings.Contains(strings.ToLower(r.Error), "not found"):
			a.notFound = true
		default:
			a.other = true
		}
	}
	for i, email := range emails {
		if out[i].err != nil {
			continue
		}
		a := answers[email]
		switch {
		case a != nil && len(a.ids) > 0:
			out[i].ids = a.ids
		case a != nil && a.notFound && !a.other:
		case a != nil:
			out[i].err = connectors.Retryable(errors.New("SendGrid contact search answered an error for one of the addresses, not a contact or \"contact not found\""), 0)
		default:
			out[i].err = connectors.Retryable(errors.New("SendGrid contact search answered without one of the addresses asked"), 0)
		}
	}
	return out, nil
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
