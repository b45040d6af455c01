// Package klaviyo deletes a person's Klaviyo profiles with the Data
// Privacy API's deletion job, which Klaviyo only acknowledges (202, no
// status endpoint), then looks the profiles up again until they are gone.
package klaviyo

import (
	"context"
	"errors"
	"fmt"
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

// DefaultBaseURL is Klaviyo's API (one host for every region).
const DefaultBaseURL = "https://a.klaviyo.com"

// DefaultRevision is the API revision sent in the revision header.
const DefaultRevision = "2026-10-15"

// MaxLooks is how many times Poll looks for the profiles before the
// attempt fails and the next one requests deletion again (a day at the
// default poll_interval).
const MaxLooks = 144

func init() {
	// The deletion endpoint allows 3/s burst, 60/m steady per account; the
	// profile lookups 75/s, 700/m. Every deletion follows at least one
	// lookup, so 2 requests a second keep deletions within 60 a minute.
	connectors.Register("klaviyo", "Klaviyo profiles, deleted by Data Privacy API deletion job (events and recipient records redacted)",
		connectors.Limits{Concurrency: 2, RatePerSecond: 2, Burst: 3}, build)
}

// Config is the `config:` block of a klaviyo instance.
//
//	api_key: {env: KLAVIYO_PRIVATE_KEY}
//	user_id_system: klaviyo            # subject.user_ids key of the Klaviyo profile id
//	poll_interval: 10m                 # default: between looks for the deleted profiles
type Config struct {
	// APIKey is a private API key (pk_…) with the profiles:read and
	// data-privacy:write scopes.
	APIKey config.Secret `yaml:"api_key"`
	// Revision is the API revision header (YYYY-MM-DD[.suffix]).
	Revision         string `yaml:"revision"`
	vendorkit.Fields `yaml:",inline"`
}

var revisionRe = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(\.[A-Za-z0-9_-]+)?$`)

// Validate fills in defaults and reports every problem at once, each naming its key.
func (c *Config) Validate() error {
	var p vendorkit.Problems
	p.Secret("api_key", c.APIKey, "a Klaviyo private API key (pk_…) with the profiles:read and data-privacy:write scopes")
	c.Check(&p, &vendorkit.URLRule{Default: DefaultBaseURL, Version: "/api"}, 10*time.Minute)
	if c.Revision == "" {
		c.Revision = DefaultRevision
	} else if !revisionRe.MatchString(c.Revision) {
		p.Add("revision", "must be an API revision date such as %s", DefaultRevision)
	}
	return p.Err()
}

// Plan: any of email, phone or Klaviyo profile id finds the profiles; an
// email also tells the profile id (a resolver).
func (c Config) Plan(name string) connectors.Plan {
	return connectors.EmailResolvesPlan(c.IDKind(name), connectors.Phone)
}

type connector struct {
	api  *vendorhttp.Client
	base string
	id   connectors.Kind
	poll time.Duration
}

const jsonAPI = "application/vnd.api+json"

func build(_ context.Context, name string, cfg Config, deps connectors.Deps) (connectors.Connector, error) {
	key, err := vendorkit.Reveal(deps, "api_key", cfg.APIKey)
	if err != nil {
		return nil, err
	}
	api := vendorkit.Client(deps, "Klaviyo", func(r *http.Request) {
		r.Header.Set("Authorization", "Klaviyo-API-Key "+key)
		r.Header.Set("revision", cfg.Revision)
		r.Header.Set("Accept", jsonAPI)
	})
	api.MinRetryAfter = time.Second // Klaviyo's windows are a second and a minute
	return &connector{api: api, base: cfg.BaseURL + "/api", id: cfg.IDKind(name),
		poll: cfg.PollInterval}, nil
}

// profileIDRe is what a Klaviyo profile id looks like (a ULID); it keeps
// a stored job reference from changing a filter.
var profileIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// send makes one request; refused credentials name the key and its
// scopes, and a 404 (unless in ok) the base_url.
func (c *connector) send(ctx context.Context, method, u string, body any, op string, ok ...int) (*vendorhttp.Response, error) {
	req, err := vendorhttp.JSONRequest(method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", jsonAPI)
	}
	resp, err := c.api.Do(ctx, req, op, ok...)
	var ce *connectors.Error
	switch {
	case err == nil:
		return resp, nil
	case resp != nil && (resp.Status == http.StatusUnauthorized || resp.Status == http.StatusForbidden) && errors.As(err, &ce):
		return nil, connectors.Permanent(fmt.Errorf("%w (api_key: a Klaviyo private API key with the profiles:read and data-privacy:write scopes)", ce.Err))
	case resp != nil && resp.Status == http.StatusBadRequest && errors.As(err, &ce):
		return nil, connectors.Permanent(fmt.Errorf("%w (Klaviyo also answers 400 to a missing or malformed api_key and to a revision it does not serve)", ce.Err))
	case resp != nil && resp.Status == http.StatusNotFound:
		return nil, connectors.Permanentf("Klaviyo %s: 404 Not Found: no Klaviyo API at the configured base_url; check base_url", op)
	}
	return nil, err
}

// find returns the ids of the profiles whose field equals value.
func (c *connector) find(ctx context.Context, field, value string) ([]string, error) {
	if strings.ContainsAny(value, `"\`) || strings.ContainsFunc(value, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return nil, connectors.Permanentf("the subject's %s has a character Klaviyo's filter syntax cannot quote", field)
	}
	filter := url.QueryEscape(fmt.Sprintf(`equals(%s,"%s")`, field, value))
	resp, err := c.send(ctx, http.MethodGet, c.base+"/profiles?page%5Bsize%5D=100&filter="+filter, nil, "profile lookup")
	if err != nil {
		return nil, err
	}
	var body struct {
		Data *[]struct {
			Type, ID string
		} `json:"data"`
		Links struct{ Next string } `json:"links"`
	}
	if err := resp.JSON(&body); err != nil {
		return nil, err
	}
	if body.Data == nil {
		return nil, connectors.Retryable(errors.New("profile lookup at Klaviyo: an answer without data"), 0)
	}
	if body.Links.Next != "" {
		return nil, connectors.Permanentf("Klaviyo profile lookup: more than 100 profiles share the subject's %s; delete them in Klaviyo", field)
	}
	var ids []string
	for _, p := range *body.Data {
		if p.Type != "profile" || !profileIDRe.MatchString(p.ID) {
			return nil, connectors.Retryable(errors.New("profile lookup at Klaviyo: a profile without a usable id"), 0)
		}
		ids = append(ids, p.ID)
	}
	return ids, nil
}

// lookup finds the profiles s has by email, phone_number and profile id;
// a subject with none of them is refused, never "not found".
func (c *connector) lookup(ctx context.Context, s connectors.Subject) ([]string, error) {
	var found []string
	searched := false
	for _, q := range [][2]string{{"email", s.Email}, {"phone_number", s.Phone}, {"id", s.UserIDs[c.id.Namespace()]}} {
		if q[1] == "" {
			continue
		}
		searched = true
		ids, err := c.find(ctx, q[0], q[1])
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if !slices.Contains(found, id) {
				found = append(found, id)
			}
		}
	}
	if !searched {
		return nil, connectors.Permanentf("the subject has no email, phone or Klaviyo profile id (user_ids.%s) to find profiles by", c.id.Namespace())
	}
	return found, nil
}

// ref is an Erase's job reference: the Klaviyo ids of the profiles whose
// deletion was requested, and how often Poll has looked for them.
type ref struct {
	Profiles []string
	Looks    int
}

// Erase requests deletion of every profile found, by its Klaviyo id.
func (c *connector) Erase(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	ids, err := c.lookup(ctx, s)
	if err != nil {
		return connectors.Outcome{}, err
	}
	if len(ids) == 0 {
		return connectors.NotFound(connectors.Evidence{Kind: "lookup", Value: "profile not found"}), nil
	}
	for _, id := range ids {
		job := map[string]any{"data": map[string]any{"type": "data-privacy-deletion-job", "attributes": map[string]any{
			"profile": map[string]any{"data": map[string]any{"type": "profile", "id": id, "attributes": map[string]any{}}}}}}
		// The lookup at the same base_url has just answered, so a 404 here
		// is a profile deleted since (an earlier attempt's job finishing),
		// not a wrong base_url: the next attempt looks the person up again.
		resp, err := c.send(ctx, http.MethodPost, c.base+"/data-privacy-deletion-jobs", job, "profile deletion request", http.StatusNotFound)
		if err != nil {
			return connectors.Outcome{}, err
		}
		if resp.Status == http.StatusNotFound {
			return connectors.Outcome{}, connectors.Retryable(errors.New("profile deletion request at Klaviyo: 404, the profile is gone since the lookup; the next attempt looks it up again"), 0)
		}
		if resp.Status != http.StatusAccepted {
			return connectors.Outcome{}, connectors.Retryable(fmt.Errorf("profile deletion request at Klaviyo: status %d, not the 202 Klaviyo acknowledges with", resp.Status), 0)
		}
	}
	return connectors.Running(vendorkit.EncodeRef(ref{Profiles: ids}), c.poll, connectors.Evidence{Kind: "deletion_job",
		Value: connectors.Plural(len(ids), "profile") + " deletion requested (acknowledged 202; Klaviyo reports no job status)"}), nil
}

// Poll looks the profiles up by id: erased once none is found, running
// while any is, and after MaxLooks a retryable error, so that the next
// attempt requests deletion again.
func (c *connector) Poll(ctx context.Context, jobRef string) (connectors.Outcome, error) {
	var r ref
	complete := func() bool {
		return len(r.Profiles) > 0 && r.Looks >= 0 && !slices.ContainsFunc(r.Profiles, func(id string) bool { return !profileIDRe.MatchString(id) })
	}
	if err := vendorkit.DecodeRef(jobRef, &r, complete, "Klaviyo"); err != nil {
		return connectors.Outcome{}, err
	}
	left := 0
	for _, id := range r.Profiles {
		found, err := c.find(ctx, "id", id)
		if err != nil {
			return connectors.Outcome{}, err
		}
		left += len(found)
	}
	n := len(r.Profiles)
	if left == 0 {
		return connectors.Erased(int64(n),
			connectors.Evidence{Kind: "lookup", Value: connectors.Plural(n, "profile") + " no longer found by Klaviyo id after the deletion request"},
			connectors.Evidence{Kind: "retained", Value: "Klaviyo keeps events and campaign recipient records with personal data redacted, and the deleted profile's contact details on its Deleted Profiles list"}), nil
	}
	if r.Looks++; r.Looks >= MaxLooks {
		return connectors.Outcome{}, connectors.Retryable(fmt.Errorf("profiles still at Klaviyo: %d of %d after %d looks since the deletion request; the next attempt requests deletion again", left, n, r.Looks), 0)
	}
	return connectors.Running(vendorkit.EncodeRef(r), c.poll,
		connectors.Evidence{Kind: "lookup", Value: fmt.Sprintf("%d of %d profiles still found; deletion pending", left, n)}), nil
}

// Verify looks the person up again; every profile still found remains.
func (c *connector) Verify(ctx context.Context, s connectors.Subject) (connectors.Verification, error) {
	ids, err := c.lookup(ctx, s)
	if err != nil {
		return connectors.Verification{}, err
	}
	return connectors.Verification{Remaining: int64(len(ids)),
		Evidence: []connectors.Evidence{{Kind: "lookup", Value: connectors.Plural(len(ids), "profile") + " found"}}}, nil
}

// Resolve gives the ids of the profiles an email finds.
func (c *connector) Resolve(ctx context.Context, s connectors.Subject) (connectors.Resolution, error) {
	var r connectors.Resolution
	if s.Email == "" {
		return r, nil
	}
	ids, err := c.find(ctx, "email", s.Email)
	if err != nil {
		return r, err
	}
	for _, id := range ids {
		r.Add(c.id, id)
	}
	r.Evidence = []connectors.Evidence{{Kind: "lookup", Value: connectors.Plural(len(ids), "profile") + " found by email"}}
	return r, nil
}
