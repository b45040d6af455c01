// Package stripe erases a person's Stripe customers, found by email (the
// list filter, which reads what was just written) or by customer id: it
// deletes them (mode delete), or redacts them and their related objects
// with a redaction job (mode redact), and its evidence says which, and what
// Stripe keeps.
package stripe

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/vendorhttp"
	"github.com/lethe-dev/lethe/connectors/vendorkit"
)

// DefaultBaseURL is Stripe's API.
const DefaultBaseURL = "https://api.stripe.com"

func init() {
	// Stripe allows 100 requests a second in live mode, 25 in a sandbox,
	// and 25 a second per endpoint unless it documents otherwise.
	connectors.Register("stripe", "Stripe customers, deleted, or redacted with their payments by a redaction job",
		connectors.Limits{Concurrency: 4, RatePerSecond: 25, Burst: 25}, build)
}

// Config is the `config:` block of a stripe instance.
//
//	api_key: {env: STRIPE_SECRET_KEY}   # sk_… or rk_…
//	mode: redact                         # delete (default) or redact
//	user_id_system: stripe              # subject.user_ids key of Stripe customer ids (cus_…)
//	poll_interval: 1m                   # default: how often a redaction job is looked at
type Config struct {
	// APIKey is a secret key (sk_…) or a restricted key (rk_…) that may
	// write Customers (and Redaction jobs, in mode redact).
	APIKey           config.Secret `yaml:"api_key"`
	vendorkit.Fields `yaml:",inline"`
	// Mode is what happens to each customer found: "delete" (the
	// customer; payments and invoices stay as they are) or "redact" (a
	// redaction job removes the personal data from the customer and the
	// related objects Stripe keeps).
	Mode string `yaml:"mode"`
	// ValidationBehavior is the redaction job's: "error" (default; the
	// job fails while any object cannot be redacted) or "fix" (Stripe
	// fixes what it can, such as cancelling unused PaymentIntents).
	ValidationBehavior string `yaml:"validation_behavior"`
	// StripeVersion, if set, is sent as the Stripe-Version header.
	StripeVersion string `yaml:"stripe_version"`
}

var versionRe = regexp.MustCompile(`^20[0-9]{2}-[0-9]{2}-[0-9]{2}(\.[a-z]+)?$`)

// Validate fills in defaults and reports every problem at once, each naming its key.
func (c *Config) Validate() error {
	var p vendorkit.Problems
	p.Secret("api_key", c.APIKey, "a Stripe secret key (sk_…) or restricted key (rk_…) that may write Customers")
	if strings.HasPrefix(c.APIKey.Value, "pk_") {
		p.Add("api_key", "is a publishable key (pk_…), which cannot read or delete customers; use a secret (sk_…) or restricted (rk_…) key")
	}
	c.Check(&p, &vendorkit.URLRule{Default: DefaultBaseURL, Version: "/v1"}, time.Minute)
	p.OneOf("mode", &c.Mode, "delete", "redact")
	p.OneOf("validation_behavior", &c.ValidationBehavior, "error", "fix")
	if c.StripeVersion != "" && !versionRe.MatchString(c.StripeVersion) {
		p.Add("stripe_version", "must be a Stripe API version such as 2025-09-30.clover")
	}
	return p.Err()
}

// Plan: customers are found by email or by customer id, either enough;
// an email also tells the customer ids (a resolver).
func (c Config) Plan(name string) connectors.Plan {
	return connectors.EmailResolvesPlan(c.IDKind(name))
}

type connector struct {
	api      *vendorhttp.Client
	base     string
	idKind   connectors.Kind
	redact   bool
	behavior string
	poll     time.Duration
}

func build(_ context.Context, name string, cfg Config, deps connectors.Deps) (connectors.Connector, error) {
	key, err := vendorkit.Reveal(deps, "api_key", cfg.APIKey)
	if err != nil {
		return nil, err
	}
	bearer := vendorkit.Bearer(key)
	api := vendorkit.Client(deps, "Stripe", func(r *http.Request) {
		bearer(r)
		if cfg.StripeVersion != "" {
			r.Header.Set("Stripe-Version", cfg.StripeVersion)
		}
	})
	api.MinRetryAfter = time.Second // Stripe's 429 names no delay
	return &connector{api: api, base: cfg.BaseURL + "/v1", idKind: cfg.IDKind(name),
		redact: cfg.Mode == "redact", behavior: cfg.ValidationBehavior, poll: cfg.PollInterval}, nil
}

// idRe is what a Stripe id may look like; it keeps a stored or given id
// from changing a URL path.
var idRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)

const (
	maxPages = 10 // of 100 customers with one email
	jobLimit = 10 // customers per redaction job, as Stripe documents
)

// customer is what Stripe answers for one: deleted ones are stubs, and
// redacted ones show [redacted] (and, in newer versions, say so).
type customer struct {
	ID        string `json:"id"`
	Email     string `json:"email"`
	Name      string `json:"name"`
	Deleted   bool   `json:"deleted"`
	Redaction *struct {
		Status string `json:"status"`
	} `json:"redaction"`
}

// held reports whether the customer still holds personal data: a customer
// found by id may have no email, so a redacted name also counts.
func (c customer) held() bool {
	return !c.Deleted && c.Email != "[redacted]" && c.Name != "[redacted]" && (c.Redaction == nil || c.Redaction.Status != "redacted")
}

// call sends a request (form: its form-encoded body, nil for none) and
// decodes a 2xx answer into out. missing reports Stripe's 404
// resource_missing; any other 404 means base_url does not lead to
// Stripe's API.
func (c *connector) call(ctx context.Context, method, path string, form url.Values, out any, op string) (missing bool, err error) {
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		return false, connectors.Permanentf("the configured base_url is not a valid URL")
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.api.Do(ctx, req, op, http.StatusNotFound, http.StatusConflict)
	if err != nil {
		return false, err
	}
	switch resp.Status {
	case http.StatusNotFound:
		var e struct{ Error struct{ Code string } }
		if json.Unmarshal(resp.Body, &e) == nil && e.Error.Code == "resource_missing" {
			return true, nil
		}
		hint := ""
		if strings.HasPrefix(op, "redaction") {
			hint = ", or the account lacks redaction jobs (a preview: check stripe_version)"
		}
		return false, connectors.Permanentf("Stripe %s: 404 Not Found without Stripe's resource_missing error: base_url does not lead to Stripe's API (check base_url)%s", op, hint)
	case http.StatusConflict: // Stripe's SDKs retry a 409 unless Stripe-Should-Retry says false
		if resp.Header.Get("Stripe-Should-Retry") == "false" {
			return false, connectors.Permanentf("Stripe %s: 409 Conflict, and Stripe says not to retry", op)
		}
		return false, retryable("Stripe %s: 409 Conflict", op)
	}
	if out != nil {
		return false, resp.JSON(out)
	}
	return false, nil
}

// lookup lists the ids of the customers s has that still hold personal
// data: by email with the list filter, by customer id with a retrieve.
func (c *connector) lookup(ctx context.Context, s connectors.Subject) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	id := s.UserIDs[c.idKind.Namespace()]
	if s.Email == "" && id == "" {
		return nil, connectors.Permanentf("the subject has neither an email nor a Stripe customer id (%s): nothing was searched", c.idKind)
	}
	if id != "" && !idRe.MatchString(id) {
		return nil, connectors.Permanentf("the subject's %s is not an id Stripe issues: nothing was searched", c.idKind)
	}
	var found []string
	if s.Email != "" {
		ids, err := c.byEmail(ctx, s.Email)
		if err != nil {
			return nil, err
		}
		found = ids
	}
	if id != "" {
		var cu customer
		missing, err := c.call(ctx, http.MethodGet, "/customers/"+url.PathEscape(id), nil, &cu, "customer retrieve")
		if err != nil {
			return nil, err
		}
		if !missing && cu.ID == id && cu.held() && !slices.Contains(found, id) {
			found = append(found, id)
		}
	}
	return found, nil
}

// byEmail pages through the customers Stripe lists for email (an exact,
// case-sensitive filter).
func (c *connector) byEmail(ctx context.Context, email string) ([]string, error) {
	var ids []string
	q := url.Values{"email": {email}, "limit": {"100"}}
	for range maxPages {
		var list struct {
			Data    []customer
			HasMore bool `json:"has_more"`
		}
		missing, err := c.call(ctx, http.MethodGet, "/customers?"+q.Encode(), nil, &list, "customer list")
		if err != nil {
			return nil, err
		}
		if missing {
			return nil, connectors.Permanentf("Stripe customer list: resource_missing: base_url does not lead to Stripe's API (check base_url)")
		}
		for _, cu := range list.Data {
			if !idRe.MatchString(cu.ID) {
				return nil, retryable("Stripe customer list: a customer without a usable id")
			}
			if strings.EqualFold(cu.Email, email) && cu.held() && !slices.Contains(ids, cu.ID) {
				ids = append(ids, cu.ID)
			}
		}
		if !list.HasMore || len(list.Data) == 0 {
			return ids, nil
		}
		q.Set("starting_after", list.Data[len(list.Data)-1].ID)
	}
	return nil, connectors.Permanentf("Stripe lists more than %d customers with the subject's email; erase them in the Dashboard", maxPages*100)
}

// Erase deletes the subject's customers, or starts redaction jobs for them.
func (c *connector) Erase(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	ids, err := c.lookup(ctx, s)
	if err != nil {
		return connectors.Outcome{}, err
	}
	if len(ids) == 0 {
		return connectors.NotFound(connectors.Evidence{Kind: "lookup", Value: "no customer found"}), nil
	}
	if c.redact {
		return c.startRedaction(ctx, ids)
	}
	deleted := 0
	for _, id := range ids {
		var ack customer
		missing, err := c.call(ctx, http.MethodDelete, "/customers/"+url.PathEscape(id), nil, &ack, "customer delete")
		if err != nil {
			return connectors.Outcome{}, err
		}
		if missing {
			continue // deleted meanwhile
		}
		if !ack.Deleted {
			return connectors.Outcome{}, retryable("Stripe customer delete: answered without deleted: true")
		}
		deleted++
	}
	if deleted == 0 {
		return connectors.NotFound(connectors.Evidence{Kind: "lookup", Value: "the customers found were deleted meanwhile"}), nil
	}
	return connectors.Erased(int64(deleted),
		connectors.Evidence{Kind: "delete", Value: connectors.Plural(deleted, "customer") + " deleted (Stripe answered deleted: true; its card details are removed, its subscriptions cancelled, and only a deleted stub remains retrievable)"},
		connectors.Evidence{Kind: "retained", Value: "customer deleted, not redacted: Stripe still holds the person's charges, payment intents, refunds, disputes, invoices and receipts, with the billing name, email and address on them, as transaction records it keeps for its legal obligations (mode redact removes the personal data from them)"}), nil
}

// ref is a redaction's job reference: Stripe's job ids and how many
// customers they redact (never the customer ids: those identify the person).
type ref struct {
	Jobs      []string `json:"jobs"`
	Customers int      `json:"customers"`
}

// job is a redaction job as Stripe answers it.
type job struct {
	ID      string              `json:"id"`
	Status  string              `json:"status"`
	Objects map[string][]string `json:"objects"`
}

var openStatus = []string{"created", "validating", "ready", "redacting", "failed"}

// startRedaction carries on with the open jobs of an earlier attempt that
// hold only these customers (a job whose answer was lost, or whose run
// failed, still holds them: Stripe refuses them to a new job), cancels
// failed ones, and creates jobs of ten customers for the rest.
func (c *connector) startRedaction(ctx context.Context, ids []string) (connectors.Outcome, error) {
	var open struct{ Data []job }
	if _, err := c.call(ctx, http.MethodGet, "/privacy/redaction_jobs?limit=100&expand[]=data.objects", nil, &open, "redaction job list"); err != nil {
		return connectors.Outcome{}, err
	}
	r, left := ref{Customers: len(ids)}, slices.Clone(ids)
	var states []string
	for _, j := range open.Data {
		cus := j.Objects["customers"]
		if !idRe.MatchString(j.ID) || !slices.Contains(openStatus, j.Status) || len(cus) == 0 || len(j.Objects) != 1 ||
			slices.ContainsFunc(cus, func(id string) bool { return !slices.Contains(left, id) }) {
			continue
		}
		if j.Status == "failed" {
			if _, err := c.call(ctx, http.MethodPost, "/privacy/redaction_jobs/"+j.ID+"/cancel", url.Values{}, nil, "redaction job cancel"); err != nil {
				return connectors.Outcome{}, err
			}
			continue
		}
		left = slices.DeleteFunc(left, func(id string) bool { return slices.Contains(cus, id) })
		r.Jobs, states = append(r.Jobs, j.ID), append(states, j.ID+": "+j.Status+" (started earlier)")
	}
	for chunk := range slices.Chunk(left, jobLimit) {
		form := url.Values{"validation_behavior": {c.behavior}, "objects[customers][]": chunk}
		var j job
		if _, err := c.call(ctx, http.MethodPost, "/privacy/redaction_jobs", form, &j, "redaction job create"); err != nil {
			return connectors.Outcome{}, err
		}
		if !idRe.MatchString(j.ID) {
			return connectors.Outcome{}, retryable("Stripe redaction job create: answered without a usable job id")
		}
		r.Jobs, states = append(r.Jobs, j.ID), append(states, j.ID+": "+cmp.Or(j.Status, "created"))
	}
	return connectors.Running(vendorkit.EncodeRef(r), c.poll,
		connectors.Evidence{Kind: "lookup", Value: connectors.Plural(len(ids), "customer") + " found"},
		connectors.Evidence{Kind: "redaction_job", Value: strings.Join(states, ", ")}), nil
}

// Poll advances each redaction job (running it once Stripe validated it)
// and reports the customers redacted once every job succeeded.
func (c *connector) Poll(ctx context.Context, jobRef string) (connectors.Outcome, error) {
	var r ref
	if err := vendorkit.DecodeRef(jobRef, &r, func() bool {
		return r.Customers > 0 && len(r.Jobs) > 0 && !slices.ContainsFunc(r.Jobs, func(id string) bool { return !idRe.MatchString(id) })
	}, "Stripe redaction"); err != nil {
		return connectors.Outcome{}, err
	}
	states, done := make([]string, len(r.Jobs)), 0
	for i, id := range r.Jobs {
		state, err := c.advance(ctx, id)
		if err != nil {
			return connectors.Outcome{}, err
		}
		states[i] = id + ": " + state
		if state == "succeeded" {
			done++
		}
	}
	jobs := connectors.Evidence{Kind: "redaction_job", Value: strings.Join(states, ", ")}
	if done < len(r.Jobs) {
		return connectors.Running(jobRef, c.poll, jobs), nil
	}
	return connectors.Erased(int64(r.Customers),
		connectors.Evidence{Kind: "redaction", Value: "personal data redacted from objects Stripe must keep, not deleted: Stripe reported its redaction jobs for " +
			connectors.Plural(r.Customers, "customer") + " succeeded; by Stripe's documentation a job also redacts the customers' related payment intents, charges, invoices, " +
			"subscriptions, payment methods, events and request logs (not counted or checked here), which remain, reading [redacted]"},
		jobs,
		connectors.Evidence{Kind: "retained", Value: "Stripe may still keep data about the payments as the law requires of a payment provider, outside the Dashboard and API"}), nil
}

// advance looks at a job once, runs it when it is ready, and says where
// it stands.
func (c *connector) advance(ctx context.Context, id string) (string, error) {
	var j job
	missing, err := c.call(ctx, http.MethodGet, "/privacy/redaction_jobs/"+id, nil, &j, "redaction job status")
	if err != nil {
		return "", err
	}
	if missing {
		return "", retryable("Stripe does not know redaction job %s (another account's key?); the next attempt searches again", id)
	}
	switch j.Status {
	case "created", "validating", "redacting", "succeeded":
		return j.Status, nil
	case "ready":
		var run job
		if _, err := c.call(ctx, http.MethodPost, "/privacy/redaction_jobs/"+id+"/run", url.Values{}, &run, "redaction job run"); err != nil {
			return "", err
		}
		return cmp.Or(run.Status, "redacting"), nil
	case "failed":
		return "", c.failed(ctx, id)
	case "canceling", "canceled":
		return "", retryable("Stripe redaction job %s was canceled in Stripe and redacted nothing; the next attempt searches again and starts a new job", id)
	}
	return "", retryable("Stripe redaction job %s: unexpected status %.32q", id, j.Status)
}

// retryable is an error the next attempt may get past; it names
// Stripe's objects, never the person's.
func retryable(format string, args ...any) error {
	return connectors.Retryable(fmt.Errorf(format, args...), 0)
}

var codeRe = regexp.MustCompile(`^[a-z_]{1,64}$`)

// failed reads why a job failed validation (the codes only: the messages
// and objects name the person's records), cancels it so that its objects
// are free for a new job, and reports what staff must do.
func (c *connector) failed(ctx context.Context, id string) error {
	var list struct {
		Data []struct{ Code string }
	}
	if _, err := c.call(ctx, http.MethodGet, "/privacy/redaction_jobs/"+id+"/validation_errors?limit=100", nil, &list, "redaction job validation errors"); err != nil {
		return err
	}
	codes := map[string]int{}
	for _, e := range list.Data {
		codes[cmp.Or(codeRe.FindString(e.Code), "other")]++
	}
	var why []string
	for _, code := range slices.Sorted(maps.Keys(codes)) {
		why = append(why, fmt.Sprintf("%s ×%d", code, codes[code]))
	}
	if _, err := c.call(ctx, http.MethodPost, "/privacy/redaction_jobs/"+id+"/cancel", url.Values{}, nil, "redaction job cancel"); err != nil {
		return err
	}
	return connectors.Permanentf("Stripe redaction job %s failed validation (%s) and was canceled; that job redacted nothing. "+
		"Finish what Stripe waits for (cancel unused PaymentIntents and SetupIntents, detach payment methods, void open invoices, close disputes, "+
		"run or cancel another job holding the customer; payments younger than 90 days wait out the fraud period), or set validation_behavior: fix, then erase the person again",
		id, cmp.Or(strings.Join(why, ", "), "no errors listed"))
}

// Verify looks the person up again: customers still holding personal
// data remain.
func (c *connector) Verify(ctx context.Context, s connectors.Subject) (connectors.Verification, error) {
	ids, err := c.lookup(ctx, s)
	if err != nil {
		return connectors.Verification{}, err
	}
	return connectors.Verification{Remaining: int64(len(ids)), Evidence: []connectors.Evidence{{Kind: "lookup",
		Value: connectors.Plural(len(ids), "customer") + " holding personal data found"}}}, nil
}

// Resolve gives the ids of the customers an email finds.
func (c *connector) Resolve(ctx context.Context, s connectors.Subject) (connectors.Resolution, error) {
	var r connectors.Resolution
	if s.Email == "" {
		return r, nil
	}
	ids, err := c.byEmail(ctx, s.Email)
	for _, id := range ids {
		r.Add(c.idKind, id)
	}
	r.Evidence = []connectors.Evidence{{Kind: "lookup", Value: connectors.Plural(len(ids), "customer") + " found by email"}}
	return r, err
}
