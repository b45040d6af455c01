// Package braze deletes a person's user profiles from a Braze workspace:
// it finds them with the user export by external_id, user alias, email and
// phone, deletes what it found by braze_id (50 a request), and exports
// again until Braze no longer shows them.
package braze

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/vendorhttp"
	"github.com/lethe-dev/lethe/connectors/vendorkit"
)

const (
	// batch is how many braze_ids one /users/delete request may carry.
	batch = 50
	// maxChecks is how many polls may still find deleted profiles exported
	// before the task fails (30 minutes at the default poll_interval,
	// against the five minutes Braze documents).
	maxChecks = 6
)

func init() {
	// /users/export/ids allows 250 requests a minute to workspaces onboarded
	// since 22 August 2024 (2,500 before); /users/delete 20,000 a minute,
	// shared. Four a second stays within the lower.
	connectors.Register("braze", "Braze user profiles, found by export and deleted by braze_id",
		connectors.Limits{Concurrency: 2, RatePerSecond: 4, Burst: 4}, build)
}

// Config is the `config:` block of a braze instance.
//
//	api_key: {env: BRAZE_REST_API_KEY}
//	base_url: https://rest.fra-01.braze.eu   # the workspace's REST endpoint
//	user_id_system: app                      # subject.user_ids key of the external_id
//	poll_interval: 5m                        # default: when Lethe exports the deleted profiles again
//
// base_url has no default: Braze has one REST endpoint per cluster.
type Config struct {
	// APIKey is a REST API key of the workspace with the users.export.ids
	// and users.delete permissions.
	APIKey           config.Secret `yaml:"api_key"`
	vendorkit.Fields `yaml:",inline"`
	// AliasLabel and AliasSystem, set together, find profiles by the user
	// alias {alias_name: subject.user_ids[AliasSystem], alias_label: AliasLabel}.
	AliasLabel  string `yaml:"alias_label"`
	AliasSystem string `yaml:"alias_system"`
}

// Validate fills in defaults and reports every problem at once, each naming its key.
func (c *Config) Validate() error {
	var p vendorkit.Problems
	p.Secret("api_key", c.APIKey, "a Braze REST API key with the users.export.ids and users.delete permissions")
	c.Check(&p, &vendorkit.URLRule{Example: "https://rest.iad-01.braze.com (the REST endpoint of your Braze instance)"}, 5*time.Minute)
	p.Namespace("alias_system", c.AliasSystem)
	switch {
	case (c.AliasLabel == "") != (c.AliasSystem == ""):
		p.Add("alias_label", "set alias_label and alias_system together: the alias label in Braze and the subject.user_ids key holding the alias name")
	case c.AliasSystem != "" && c.AliasSystem == c.UserIDSystem:
		p.Add("alias_system", "must differ from user_id_system")
	}
	return p.Err()
}

// kinds are what profiles are found by: email, phone, the external_id
// and, if configured, the alias name.
func (c Config) kinds(name string) []connectors.Kind {
	ks := []connectors.Kind{connectors.Email, connectors.Phone, c.IDKind(name)}
	if c.AliasSystem != "" {
		ks = append(ks, connectors.UserIDKind(c.AliasSystem))
	}
	return ks
}

// Plan: any one of the kinds finds the person; an email also tells the
// external_id (and alias name) of the profiles it finds.
func (c Config) Plan(name string) connectors.Plan {
	ks := c.kinds(name)
	return connectors.Plan{Keys: []connectors.Requirement{ks}, Uses: ks,
		ResolveBy: []connectors.Kind{connectors.Email}, Gives: ks[2:]}
}

type connector struct {
	api        *vendorhttp.Client
	base       string
	id, alias  connectors.Kind // alias is "" without alias_system
	aliasLabel string
	poll       time.Duration
}

func build(_ context.Context, name string, cfg Config, deps connectors.Deps) (connectors.Connector, error) {
	key, err := vendorkit.Reveal(deps, "api_key", cfg.APIKey)
	if err != nil {
		return nil, err
	}
	api := vendorkit.Client(deps, "Braze", vendorkit.Bearer(key))
	api.ResetHeader = "X-RateLimit-Reset" // UTC epoch seconds, on every answer
	api.MinRetryAfter = time.Second       // should a 429 come without it
	if cfg.AliasSystem != "" && cfg.AliasSystem == cfg.System(name) {
		return nil, connectors.Permanentf("config: alias_system: must differ from user_id_system (which defaults to the instance name %q)", name)
	}
	c := &connector{api: api, base: cfg.BaseURL, aliasLabel: cfg.AliasLabel, poll: cfg.PollInterval}
	ks := cfg.kinds(name)
	c.id = ks[2]
	if len(ks) > 3 {
		c.alias = ks[3]
	}
	return c, nil
}

// alias is Braze's user alias object.
type alias struct {
	Name  string `json:"alias_name"`
	Label string `json:"alias_label"`
}

// profile is a user profile as the export answers it (only the fields asked for).
type profile struct {
	BrazeID    string  `json:"braze_id"`
	ExternalID string  `json:"external_id"`
	Aliases    []alias `json:"user_aliases"`
}

// fields are all the export is asked for: identifiers, no personal data
// beyond them.
var fields = []string{"braze_id", "external_id", "user_aliases"}

// send posts body to path and decodes a 2xx answer into out; Braze's
// 401, 403 and 404 become permanent errors saying what to check.
func (c *connector) send(ctx context.Context, path string, body, out any, op, permission string) error {
	resp, err := c.api.Send(ctx, http.MethodPost, c.base+path, body, out, op,
		http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound)
	if err != nil {
		return err
	}
	switch resp.Status {
	case http.StatusUnauthorized:
		return connectors.Permanentf("Braze %s: 401 Unauthorized: the REST API key was refused; check api_key and its %s permission, and that base_url is the REST endpoint of its instance", op, permission)
	case http.StatusForbidden:
		return connectors.Permanentf("Braze %s: 403 Forbidden: the REST API key lacks the %s permission or the workspace may not use the endpoint; check api_key's permissions", op, permission)
	case http.StatusNotFound:
		return connectors.Permanentf("Braze %s: 404 Not Found: base_url is not a Braze REST endpoint, or the API key is unknown there; check base_url (such as https://rest.iad-01.braze.com) and api_key", op)
	}
	return nil
}

// export runs one /users/export/ids query. Only a "success" answer with a
// users list (empty: nobody) is a look-up made.
func (c *connector) export(ctx context.Context, query map[string]any) ([]profile, error) {
	query["fields_to_export"] = fields
	var ans struct {
		Message string    `json:"message"`
		Users   []profile `json:"users"`
	}
	if err := c.send(ctx, "/users/export/ids", query, &ans, "user export", "users.export.ids"); err != nil {
		return nil, err
	}
	if ans.Message != "success" || ans.Users == nil {
		return nil, connectors.Retryable(errors.New(`braze user export: the answer is not a finished export ("success" with a users list)`), 0)
	}
	for _, u := range ans.Users {
		if u.BrazeID == "" {
			return nil, connectors.Retryable(errors.New("braze user export: a profile came without its braze_id"), 0)
		}
	}
	return ans.Users, nil
}

// lookup exports s's profiles by each identifier it has, one query per
// identifier (the export takes one email, phone or braze_id a request),
// each profile once; searched names the kinds looked up by.
func (c *connector) lookup(ctx context.Context, s connectors.Subject) (found []profile, searched string, err error) {
	var queries []map[string]any
	var kinds []string
	add := func(kind string, q map[string]any) { queries, kinds = append(queries, q), append(kinds, kind) }
	if id := s.Get(c.id); id != "" {
		add("external_id", map[string]any{"external_ids": []string{id}})
	}
	if name := s.Get(c.alias); c.alias != "" && name != "" {
		add("user alias", map[string]any{"user_aliases": []alias{{name, c.aliasLabel}}})
	}
	if s.Email != "" {
		add("email", map[string]any{"email_address": s.Email})
	}
	if s.Phone != "" {
		add("phone", map[string]any{"phone": s.Phone})
	}
	if len(queries) == 0 {
		ids := string(c.id)
		if c.alias != "" {
			ids += ", " + string(c.alias)
		}
		return nil, "", connectors.Permanentf("the subject has none of the identifiers this Braze instance finds profiles by (email, phone, %s); check the instance's keys", ids)
	}
	for _, q := range queries {
		users, err := c.export(ctx, q)
		if err != nil {
			return nil, "", err
		}
		for _, u := range users {
			if !slices.ContainsFunc(found, func(p profile) bool { return p.BrazeID == u.BrazeID }) {
				found = append(found, u)
			}
		}
	}
	return found, strings.Join(kinds, ", "), nil
}

// Erase deletes every profile found, by braze_id; Braze only queues the
// deletion, so the outcome is running until an export stops showing them.
func (c *connector) Erase(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	found, searched, err := c.lookup(ctx, s)
	if err != nil {
		return connectors.Outcome{}, err
	}
	if len(found) == 0 {
		return connectors.NotFound(connectors.Evidence{Kind: "lookup", Value: "no user profile exported by " + searched}), nil
	}
	ids := make([]string, len(found))
	for i, p := range found {
		ids[i] = p.BrazeID
	}
	queued := 0
	for chunk := range slices.Chunk(ids, batch) {
		var ans struct {
			Deleted *int   `json:"deleted"`
			Message string `json:"message"`
		}
		if err := c.send(ctx, "/users/delete", map[string][]string{"braze_ids": chunk}, &ans, "user delete", "users.delete"); err != nil {
			return connectors.Outcome{}, err
		}
		if ans.Deleted == nil || (ans.Message != "" && ans.Message != "success") {
			return connectors.Outcome{}, connectors.Retryable(errors.New(`braze user delete: the answer is no acknowledgement ("deleted" count, "success"); the erasure is retried`), 0)
		}
		queued += *ans.Deleted
	}
	ev := []connectors.Evidence{{Kind: "delete", Value: connectors.Plural(len(ids), "user profile") + " looked up by " + searched +
		" queued for deletion by braze_id (acknowledged; Braze documents up to five minutes until exports stop showing them)"}}
	if queued < len(ids) {
		// Braze counts the ids it queued; one that an earlier deletion
		// removed meanwhile may not count. The exports by braze_id decide.
		ev = append(ev, connectors.Evidence{Kind: "delete_count", Value: fmt.Sprintf("Braze counted %d of %d as queued; the exports decide", queued, len(ids))})
	}
	return connectors.Running(vendorkit.EncodeRef(ref{Queued: len(ids), Left: ids}), c.poll, ev...), nil
}

// ref is an Erase's job reference: how many profiles were queued for
// deletion and the braze_ids (Braze's own ids) still to see gone.
type ref struct {
	Queued int      `json:"queued"`
	Left   []string `json:"left"`
	Checks int      `json:"checks,omitempty"`
}

func (r ref) complete() bool {
	return r.Queued > 0 && len(r.Left) > 0 && len(r.Left) <= r.Queued && !slices.Contains(r.Left, "") && r.Checks >= 0
}

// Poll exports each queued profile by braze_id: the job ends when none is
// shown any more, and fails after maxChecks polls still finding some.
func (c *connector) Poll(ctx context.Context, jobRef string) (connectors.Outcome, error) {
	var r ref
	if err := vendorkit.DecodeRef(jobRef, &r, func() bool { return r.complete() }, "Braze"); err != nil {
		return connectors.Outcome{}, err
	}
	var left []string
	for _, id := range r.Left {
		users, err := c.export(ctx, map[string]any{"braze_id": id})
		if err != nil {
			return connectors.Outcome{}, err
		}
		if len(users) > 0 {
			left = append(left, id)
		}
	}
	if len(left) == 0 {
		return connectors.Erased(int64(r.Queued), connectors.Evidence{Kind: "export",
			Value: fmt.Sprintf("none of the %s queued for deletion is exported by braze_id any more", connectors.Plural(r.Queued, "user profile"))}), nil
	}
	r.Left, r.Checks = left, r.Checks+1
	if r.Checks >= maxChecks {
		return connectors.Outcome{}, connectors.Permanentf("Braze still exports %d of %d user profiles %d polls after queueing their deletion; look them up in the dashboard, then erase the person again", len(left), r.Queued, r.Checks)
	}
	return connectors.Running(vendorkit.EncodeRef(r), c.poll, connectors.Evidence{Kind: "export",
		Value: fmt.Sprintf("%d of %d user profiles queued for deletion still exported (Braze documents up to five minutes)", len(left), r.Queued)}), nil
}

// Verify exports the person again; every profile still shown remains.
func (c *connector) Verify(ctx context.Context, s connectors.Subject) (connectors.Verification, error) {
	found, searched, err := c.lookup(ctx, s)
	if err != nil {
		return connectors.Verification{}, err
	}
	return connectors.Verification{Remaining: int64(len(found)), Evidence: []connectors.Evidence{{Kind: "lookup",
		Value: connectors.Plural(len(found), "user profile") + " exported by " + searched}}}, nil
}

// Resolve gives the external_id (and alias name) of each profile an email finds.
func (c *connector) Resolve(ctx context.Context, s connectors.Subject) (connectors.Resolution, error) {
	var r connectors.Resolution
	if s.Email == "" {
		return r, nil
	}
	found, _, err := c.lookup(ctx, connectors.Subject{Email: s.Email})
	if err != nil {
		return r, err
	}
	for _, p := range found {
		r.Add(c.id, p.ExternalID)
		for _, a := range p.Aliases {
			if c.alias != "" && a.Label == c.aliasLabel {
				r.Add(c.alias, a.Name)
			}
		}
	}
	r.Evidence = []connectors.Evidence{{Kind: "lookup", Value: connectors.Plural(len(found), "user profile") + " exported by email"}}
	return r, nil
}
