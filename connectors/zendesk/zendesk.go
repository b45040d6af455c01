// Package zendesk erases an end user from Zendesk Support: the tickets
// they requested are deleted and then permanently deleted (Zendesk keeps
// deleted tickets restorable for 30 days), then the user is deleted and
// permanently deleted, a user already soft-deleted included.
package zendesk

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/vendorhttp"
	"github.com/lethe-dev/lethe/connectors/vendorkit"
)

func init() {
	// Zendesk limits Support API requests per account and minute by plan
	// (Team 200, Growth and Professional 400, Enterprise 700): 3 a second
	// stays under the smallest paid plan, and under the 700 permanent user
	// deletions Zendesk allows every 10 minutes.
	connectors.Register("zendesk", "Zendesk Support end users and the tickets they requested, permanently deleted",
		connectors.Limits{Concurrency: 2, RatePerSecond: 3, Burst: 5}, build)
}

// Config is the `config:` block of a zendesk instance.
//
//	subdomain: acme                  # or base_url: https://acme.zendesk.com
//	email: lethe-agent@acme.example  # the agent the API token belongs to
//	api_token: {env: ZENDESK_API_TOKEN}
//	user_id_system: app              # subject.user_ids key holding the Zendesk external_id
//	poll_interval: 15s               # default: how long to wait before asking about a job
//
// base_url, instead of subdomain, is a host-mapped domain or a proxy.
type Config struct {
	// Subdomain is the account's subdomain: https://<subdomain>.zendesk.com.
	Subdomain        string `yaml:"subdomain"`
	vendorkit.Fields `yaml:",inline"`
	// Email and APIToken are sent as Basic "<email>/token:<api_token>".
	Email    string        `yaml:"email"`
	APIToken config.Secret `yaml:"api_token"`
	// OAuthToken, instead of email and api_token, is sent as a Bearer token.
	OAuthToken config.Secret `yaml:"oauth_token"`
	// DeletedUserPages caps the pages of 100 deleted users read to find a
	// soft-deleted user by email (default 100).
	DeletedUserPages int `yaml:"deleted_user_pages"`
}

var subdomainRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Validate fills in defaults and reports every problem at once, each naming its key.
func (c *Config) Validate() error {
	var p vendorkit.Problems
	switch {
	case c.Subdomain != "" && c.BaseURL != "":
		p.Add("subdomain", "set subdomain or base_url, not both")
	case c.Subdomain != "" && !subdomainRe.MatchString(c.Subdomain):
		p.Add("subdomain", "must be the account's subdomain (acme for https://acme.zendesk.com)")
	case c.Subdomain != "":
		c.BaseURL = "https://" + c.Subdomain + ".zendesk.com"
	case c.BaseURL == "":
		p.Add("subdomain", "required: the account's subdomain (acme for https://acme.zendesk.com), or base_url")
	}
	if c.BaseURL != "" {
		p.BaseURL(&c.BaseURL, vendorkit.URLRule{Example: "https://acme.zendesk.com", Version: "/api/v2"})
	}
	switch {
	case c.OAuthToken.IsSet() && (c.APIToken.IsSet() || c.Email != ""):
		p.Add("oauth_token", "set oauth_token, or email and api_token, not both")
	case c.OAuthToken.IsSet():
	default:
		p.Secret("api_token", c.APIToken, "a Zendesk API token (Admin Center > Apps and integrations > Zendesk API), or set oauth_token")
		if !strings.Contains(c.Email, "@") {
			p.Add("email", "required: the email address of the agent the API token is used as")
		}
	}
	c.Check(&p, nil, 15*time.Second) // base_url: above, from subdomain
	switch {
	case c.DeletedUserPages == 0:
		c.DeletedUserPages = 100
	case c.DeletedUserPages < 0:
		p.Add("deleted_user_pages", "must not be negative (leave it out for 100)")
	}
	return p.Err()
}

// Plan: a user is found by email or by external_id, either one enough.
func (c Config) Plan(name string) connectors.Plan {
	kinds := []connectors.Kind{connectors.Email, c.IDKind(name)}
	return connectors.Plan{Keys: []connectors.Requirement{kinds}, Uses: kinds}
}

type connector struct {
	api    *vendorhttp.Client
	base   string
	system string
	poll   time.Duration
	pages  int
}

func build(_ context.Context, name string, cfg Config, deps connectors.Deps) (connectors.Connector, error) {
	var auth func(*http.Request)
	if cfg.OAuthToken.IsSet() {
		token, err := vendorkit.Reveal(deps, "oauth_token", cfg.OAuthToken)
		if err != nil {
			return nil, err
		}
		auth = vendorkit.Bearer(token)
	} else {
		token, err := vendorkit.Reveal(deps, "api_token", cfg.APIToken)
		if err != nil {
			return nil, err
		}
		auth = vendorkit.Basic(cfg.Email+"/token", token)
	}
	api := vendorkit.Client(deps, "Zendesk", auth)
	api.MinRetryAfter = time.Second // Zendesk sends Retry-After; a proxy's 429 may not
	return &connector{api: api, base: cfg.BaseURL + "/api/v2", system: cfg.System(name),
		poll: cfg.PollInterval, pages: cfg.DeletedUserPages}, nil
}

// maxBatch is how many ticket ids Zendesk's bulk deletes take at once.
const maxBatch = 100

// Steps of an erasure, as its job reference records them.
const (
	stepList  = "list"  // find the next batch of requested tickets
	stepTrash = "trash" // a bulk (soft) delete job of Batch runs
	stepPurge = "purge" // a permanent delete job of Batch runs
	stepUsers = "users" // delete and permanently delete the users
)

// ref is an erasure's job reference: where it is, by Zendesk's own ids
// only. Once a ticket or user is soft-deleted it holds the only way back
// to it (Zendesk lists neither deleted tickets nor deleted users by
// requester or external_id), so Poll keeps it going through failures.
type ref struct {
	Users   []int64 `json:"users,omitempty"`   // active users, to delete
	Deleted []int64 `json:"deleted,omitempty"` // soft-deleted users, to purge
	Step    string  `json:"step"`
	Job     string  `json:"job,omitempty"`
	Batch   []int64 `json:"batch,omitempty"`
	Tickets int64   `json:"tickets,omitempty"` // tickets permanently deleted so far
	Purged  int64   `json:"purged,omitempty"`  // users permanently deleted so far
	Tries   int     `json:"tries,omitempty"`   // failures in a row
	moved   bool    // a user was soft-deleted in this call
}

var jobIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func (r ref) complete() bool {
	ids := slices.Concat(r.Users, r.Deleted, r.Batch)
	ok := len(r.Users)+len(r.Deleted) > 0 && !slices.ContainsFunc(ids, func(id int64) bool { return id <= 0 })
	switch r.Step {
	case stepList, stepUsers:
		return ok && len(r.Batch) == 0
	case stepTrash, stepPurge:
		return ok && (r.Job == "" || jobIDRe.MatchString(r.Job)) && len(r.Batch) > 0 && len(r.Batch) <= maxBatch
	}
	return false
}

// destroyed reports whether the erasure has deleted anything that a new
// lookup could miss.
func (r ref) destroyed() bool {
	return r.Step == stepTrash || r.Step == stepPurge || r.Tickets > 0 || r.Purged > 0 || r.moved
}

// maxTries is how many failures in a row Poll rides out before it gives up.
const maxTries = 8

// Erase finds the person's users and starts deleting what they requested.
func (c *connector) Erase(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	f, err := c.lookup(ctx, s)
	if err != nil {
		return connectors.Outcome{}, err
	}
	if len(f.active)+len(f.deleted) == 0 {
		return connectors.NotFound(connectors.Evidence{Kind: "lookup", Value: "no Zendesk user found" + f.scope()}), nil
	}
	for _, u := range f.active {
		if u.Role != "end-user" {
			return connectors.Outcome{}, connectors.Permanentf("the Zendesk user found is an agent or admin (role %.16q): Lethe deletes end users only; downgrade the user to end user first", u.Role)
		}
	}
	r := ref{Step: stepList, Users: ids(f.active), Deleted: ids(f.deleted)}
	return c.run(ctx, r, true, connectors.Evidence{Kind: "lookup",
		Value: fmt.Sprintf("%s and %s found%s", connectors.Plural(len(f.active), "user"), connectors.Plural(len(f.deleted), "soft-deleted user"), f.scope())})
}

// Poll moves an erasure on from its job reference.
func (c *connector) Poll(ctx context.Context, jobRef string) (connectors.Outcome, error) {
	var r ref
	if err := vendorkit.DecodeRef(jobRef, &r, func() bool { return r.complete() }, "Zendesk"); err != nil {
		return connectors.Outcome{}, err
	}
	return c.run(ctx, r, false)
}

// run takes r as far as Zendesk lets it now. A failure before anything
// was deleted is returned (fresh: the erasure starts again from the
// lookup); after, r is kept and polled again, up to maxTries failures.
func (c *connector) run(ctx context.Context, r ref, fresh bool, ev ...connectors.Evidence) (connectors.Outcome, error) {
	fail := func(err error) (connectors.Outcome, error) {
		if ctx.Err() != nil || (fresh && !r.destroyed()) {
			return connectors.Outcome{}, err
		}
		if r.Tries++; r.Tries > maxTries {
			return connectors.Outcome{}, connectors.Permanent(fmt.Errorf("zendesk erasure gave up after %d failures in a row (%w); %s", maxTries, err, r.left()))
		}
		_, after := connectors.Classify(err)
		return connectors.Running(vendorkit.EncodeRef(r), max(after, c.poll<<min(r.Tries, 6)),
			connectors.Evidence{Kind: "retry", Value: fmt.Sprintf("step %s failed (%d of %d tries); the job reference keeps what is left", r.Step, r.Tries, maxTries)}), nil
	}
	for {
		switch r.Step {
		case stepList:
			batch, err := c.nextBatch(ctx, r.Users)
			if err != nil {
				return fail(err)
			}
			if len(batch) == 0 {
				r.Step = stepUsers
				continue
			}
			if r.Job, err = c.startJob(ctx, stepTrash, batch); err != nil {
				return fail(err)
			}
			r.Step, r.Batch, r.Tries = stepTrash, batch, 0
			return connectors.Running(vendorkit.EncodeRef(r), c.poll, append(ev, connectors.Evidence{Kind: "ticket_job",
				Value: fmt.Sprintf("%s: deleting %s", r.Job, connectors.Plural(len(batch), "requested ticket"))})...), nil
		case stepTrash, stepPurge:
			st, results, err := c.jobStatus(ctx, r.Job)
			if err != nil {
				return fail(err)
			}
			switch {
			case st == "queued" || st == "working":
				return connectors.Running(vendorkit.EncodeRef(r), c.poll, connectors.Evidence{Kind: "ticket_job", Value: r.Job + ": " + st}), nil
			case st != "completed" || (r.Step == stepPurge && failures(results) > 0):
				// Failed, killed, gone (kept a day) or not every ticket
				// permanently deleted: the same batch again.
				if r.Tries++; r.Tries > maxTries {
					return connectors.Outcome{}, connectors.Permanentf("zendesk erasure gave up: the %s job failed %d times; %s", r.Step, maxTries, r.left())
				}
				old := r.Job
				if r.Job, err = c.startJob(ctx, r.Step, r.Batch); err != nil {
					return fail(err) // r.Job is "": the next poll starts it
				}
				return connectors.Running(vendorkit.EncodeRef(r), c.poll, connectors.Evidence{Kind: "ticket_job",
					Value: fmt.Sprintf("%s: %s %.16s; started again as %s", cmp.Or(old, "job"), r.Step, st, r.Job)}), nil
			case r.Step == stepPurge:
				r.Tickets += int64(len(r.Batch))
				r.Step, r.Job, r.Batch, r.Tries = stepList, "", nil, 0
				continue
			}
			// Deleted tickets stay restorable for 30 days: purge them.
			r.Step, r.Job, r.Tries = stepPurge, "", 0
			if r.Job, err = c.startJob(ctx, stepPurge, r.Batch); err != nil {
				return fail(err) // the ref says: start the purge
			}
			return connectors.Running(vendorkit.EncodeRef(r), c.poll, connectors.Evidence{Kind: "ticket_job",
				Value: fmt.Sprintf("%s: permanently deleting %s", r.Job, connectors.Plural(len(r.Batch), "deleted ticket"))}), nil
		case stepUsers:
			if err := c.deleteUsers(ctx, &r); err != nil {
				return fail(err)
			}
			return connectors.Erased(r.Tickets+r.Purged, append(ev,
				connectors.Evidence{Kind: "tickets", Value: connectors.Plural(int(r.Tickets), "requested ticket") + " permanently deleted"},
				connectors.Evidence{Kind: "users", Value: connectors.Plural(int(r.Purged), "user") + " permanently deleted"},
				connectors.Evidence{Kind: "not_covered", Value: notCovered})...), nil
		default:
			return connectors.Outcome{}, connectors.Permanentf("zendesk: unknown step %.16q in the job reference", r.Step)
		}
	}
}

// notCovered is what the erasure leaves, for the certificate.
const notCovered = "not covered: archived tickets (closed over 120 days; Zendesk's ticket lists omit them), " +
	"tickets of a user already deleted or already in Deleted tickets before Lethe ran, " +
	"tickets the person did not request (comments, CCs, side conversations on others' tickets), a user holding the email only as a secondary identity, " +
	"suspended tickets, the audit log (unless its Automatically delete PII setting is on), Help Center content, other Zendesk products"

// left says what an erasure that gave up still holds.
func (r ref) left() string {
	msg := fmt.Sprintf("%d tickets and %d users permanently deleted so far", r.Tickets, r.Purged)
	if r.Step == stepTrash || r.Step == stepPurge {
		msg += fmt.Sprintf("; tickets %v may be deleted but restorable for 30 days: permanently delete them in Admin Center > Deleted tickets", r.Batch)
	}
	if len(r.Deleted) > 0 {
		msg += fmt.Sprintf("; %d soft-deleted users remain under Admin Center > Deleted users: permanently delete them there", len(r.Deleted))
	}
	return msg
}

// jobStatus reads the status and results of job; a job never started
// (""), or whose status Zendesk no longer keeps (404, after a day), is
// "gone".
func (c *connector) jobStatus(ctx context.Context, job string) (string, json.RawMessage, error) {
	if job == "" {
		return "gone", nil, nil
	}
	var body struct {
		JobStatus struct {
			Status  string          `json:"status"`
			Results json.RawMessage `json:"results"`
		} `json:"job_status"`
	}
	resp, err := c.api.Send(ctx, http.MethodGet, c.base+"/job_statuses/"+job, nil, &body, "job status", http.StatusNotFound)
	if err != nil || resp.Status == http.StatusNotFound {
		return "gone", nil, err
	}
	return body.JobStatus.Status, body.JobStatus.Results, nil
}

// failures counts what a job's results say failed: {"success": false}
// (permanent ticket deletion) or entries of a results array.
func failures(raw json.RawMessage) int {
	var one struct{ Success *bool }
	if json.Unmarshal(raw, &one) == nil && one.Success != nil {
		if *one.Success {
			return 0
		}
		return 1
	}
	var many []struct {
		Success *bool
		Error   string
	}
	n := 0
	if json.Unmarshal(raw, &many) == nil {
		for _, e := range many {
			if e.Error != "" || (e.Success != nil && !*e.Success) {
				n++
			}
		}
	}
	return n
}

// startJob starts the bulk delete (stepTrash) or permanent delete
// (stepPurge) of ids and returns Zendesk's job id.
func (c *connector) startJob(ctx context.Context, step string, ids []int64) (string, error) {
	path, op := "/tickets/destroy_many", "bulk delete tickets"
	if step == stepPurge {
		path, op = "/deleted_tickets/destroy_many", "permanently delete tickets"
	}
	var body struct {
		JobStatus struct{ ID string } `json:"job_status"`
	}
	if _, err := c.api.Send(ctx, http.MethodDelete, c.base+path+"?ids="+joinIDs(ids), nil, &body, op); err != nil {
		return "", err
	}
	if !jobIDRe.MatchString(body.JobStatus.ID) {
		return "", connectors.Retryable(fmt.Errorf("zendesk %s: no usable job_status id in the answer", op), 0)
	}
	return body.JobStatus.ID, nil
}

// nextBatch is up to 100 tickets requested by the first of users that has any.
func (c *connector) nextBatch(ctx context.Context, users []int64) ([]int64, error) {
	for _, u := range users {
		ids, _, err := c.requested(ctx, u)
		if err != nil || len(ids) > 0 {
			return ids, err
		}
	}
	return nil, nil
}

// requested is the first page of tickets user u requested; a user gone
// (404) has none.
func (c *connector) requested(ctx context.Context, u int64) ([]int64, bool, error) {
	var body struct {
		Tickets []struct{ ID int64 } `json:"tickets"`
		Meta    struct {
			HasMore bool `json:"has_more"`
		} `json:"meta"`
	}
	resp, err := c.api.Send(ctx, http.MethodGet, fmt.Sprintf("%s/users/%d/tickets/requested?page%%5Bsize%%5D=%d", c.base, u, maxBatch), nil, &body, "requested tickets", http.StatusNotFound)
	if err != nil || resp.Status == http.StatusNotFound {
		return nil, false, err
	}
	var ids []int64
	for _, t := range body.Tickets {
		if t.ID > 0 && !slices.Contains(ids, t.ID) && len(ids) < maxBatch {
			ids = append(ids, t.ID)
		}
	}
	return ids, body.Meta.HasMore, nil
}

// deleteUsers deletes each active user (Zendesk's soft delete) and then
// permanently deletes every soft-deleted one, keeping r up to date.
func (c *connector) deleteUsers(ctx context.Context, r *ref) error {
	for len(r.Users) > 0 {
		resp, err := c.api.Send(ctx, http.MethodDelete, fmt.Sprintf("%s/users/%d", c.base, r.Users[0]), nil, nil, "delete user", http.StatusNotFound, http.StatusUnprocessableEntity)
		if err != nil {
			return err
		}
		if resp.Status == http.StatusUnprocessableEntity {
			r.Step = stepList // a ticket may have come in since: list again
			return connectors.Permanentf("Zendesk refused to delete the user (422): an end user who is the requester of a ticket that is not closed, a ticket-sharing placeholder or a legacy Chat user cannot be deleted")
		}
		r.Deleted, r.Users, r.moved = append(r.Deleted, r.Users[0]), r.Users[1:], true
	}
	for len(r.Deleted) > 0 {
		resp, err := c.api.Send(ctx, http.MethodDelete, fmt.Sprintf("%s/deleted_users/%d", c.base, r.Deleted[0]), nil, nil, "permanently delete user", http.StatusNotFound)
		if err != nil {
			return err
		}
		if resp.Status != http.StatusNotFound {
			r.Purged++
		}
		r.Deleted = r.Deleted[1:]
	}
	return nil
}

// zuser is the part of a Zendesk user Lethe reads.
type zuser struct {
	ID         int64
	Email      *string
	ExternalID *string `json:"external_id"`
	Role       string
}

func ids(us []zuser) []int64 {
	out := make([]int64, len(us))
	for i, u := range us {
		out[i] = u.ID
	}
	return out
}

// found is what a lookup found: active users and soft-deleted ones, and
// whether the deleted users were searched (by email only).
type found struct {
	active, deleted []zuser
	byEmail         bool
}

// scope says what the lookup searched, for the evidence.
func (f found) scope() string {
	if f.byEmail {
		return " (active and soft-deleted users searched)"
	}
	return " (active users searched by external_id; soft-deleted users carry no external_id and were not searched: no email)"
}

// lookup searches active users by email and by external_id, and the
// deleted users (Zendesk's only list of them) by email. The searches
// match loosely; only users holding exactly the identifier count.
func (c *connector) lookup(ctx context.Context, s connectors.Subject) (found, error) {
	email, ext := strings.TrimSpace(s.Email), s.UserIDs[c.system]
	f := found{byEmail: email != ""}
	if email == "" && ext == "" {
		return f, connectors.Permanentf("the subject has neither an email nor a user id under %s: Zendesk users are found by email or external_id (check the instance's keys)", c.system)
	}
	is := func(p *string, v string) bool { return v != "" && p != nil && strings.EqualFold(*p, v) }
	add := func(list *[]zuser, us []zuser, match func(zuser) bool) {
		for _, u := range us {
			if u.ID > 0 && match(u) && !slices.ContainsFunc(*list, func(v zuser) bool { return v.ID == u.ID }) {
				*list = append(*list, u)
			}
		}
	}
	if email != "" {
		us, err := c.search(ctx, url.Values{"query": {`email:"` + email + `"`}})
		if err != nil {
			return f, err
		}
		add(&f.active, us, func(u zuser) bool { return is(u.Email, email) })
	}
	if ext != "" {
		us, err := c.search(ctx, url.Values{"external_id": {ext}})
		if err != nil {
			return f, err
		}
		add(&f.active, us, func(u zuser) bool { return u.ExternalID != nil && *u.ExternalID == ext })
	}
	if email != "" {
		us, err := c.deletedUsers(ctx)
		if err != nil {
			return f, err
		}
		add(&f.deleted, us, func(u zuser) bool {
			return is(u.Email, email) && !slices.ContainsFunc(f.active, func(v zuser) bool { return v.ID == u.ID })
		})
	}
	return f, nil
}

// search reads GET /users/search with q, every page (10 at most).
func (c *connector) search(ctx context.Context, q url.Values) ([]zuser, error) {
	var all []zuser
	for page := 1; ; page++ {
		q.Set("page", strconv.Itoa(page))
		var body struct {
			Users    []zuser `json:"users"`
			NextPage *string `json:"next_page"`
		}
		if _, err := c.api.Send(ctx, http.MethodGet, c.base+"/users/search?"+q.Encode(), nil, &body, "user search"); err != nil {
			return nil, err
		}
		all = append(all, body.Users...)
		if body.NextPage == nil || *body.NextPage == "" || len(body.Users) == 0 {
			return all, nil
		}
		if page == 10 {
			return nil, connectors.Permanentf("Zendesk user search: more than 10 pages of matches; the identifier is too broad to erase by")
		}
	}
}

// deletedUsers reads GET /deleted_users, cursor page by page.
func (c *connector) deletedUsers(ctx context.Context) ([]zuser, error) {
	var all []zuser
	after := ""
	for page := 0; page < c.pages; page++ {
		q := url.Values{"page[size]": {strconv.Itoa(maxBatch)}}
		if after != "" {
			q.Set("page[after]", after)
		}
		var body struct {
			DeletedUsers []zuser `json:"deleted_users"`
			Meta         struct {
				HasMore     bool   `json:"has_more"`
				AfterCursor string `json:"after_cursor"`
			} `json:"meta"`
		}
		if _, err := c.api.Send(ctx, http.MethodGet, c.base+"/deleted_users?"+q.Encode(), nil, &body, "deleted users"); err != nil {
			return nil, err
		}
		all = append(all, body.DeletedUsers...)
		if !body.Meta.HasMore || body.Meta.AfterCursor == "" {
			return all, nil
		}
		after = body.Meta.AfterCursor
	}
	return nil, connectors.Permanentf("Zendesk lists more than %d pages of deleted users; raise deleted_user_pages to search them all for a soft-deleted user", c.pages)
}

// Verify looks again: users (active or soft-deleted) and their requested
// tickets remaining.
func (c *connector) Verify(ctx context.Context, s connectors.Subject) (connectors.Verification, error) {
	f, err := c.lookup(ctx, s)
	if err != nil {
		return connectors.Verification{}, err
	}
	tickets, more := 0, false
	for _, u := range f.active {
		ids, m, err := c.requested(ctx, u.ID)
		if err != nil {
			return connectors.Verification{}, err
		}
		tickets, more = tickets+len(ids), more || m
	}
	ev := fmt.Sprintf("%s, %s and %s found", connectors.Plural(len(f.active), "user"),
		connectors.Plural(len(f.deleted), "soft-deleted user"), connectors.Plural(tickets, "requested ticket"))
	if more {
		ev += " (more pages of tickets)"
	}
	ev += f.scope()
	return connectors.Verification{Remaining: int64(len(f.active) + len(f.deleted) + tickets),
		Evidence: []connectors.Evidence{{Kind: "lookup", Value: ev}}}, nil
}

func joinIDs(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(s, ",")
}
