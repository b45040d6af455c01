// Package iterable forgets a person in an Iterable project by GDPR forget
// (profile, events and list memberships deleted, new data refused), then
// looks again after the ten minutes Iterable documents.
package iterable

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/vendorhttp"
	"github.com/lethe-dev/lethe/connectors/vendorkit"
)

// DefaultBaseURL is Iterable's US data centre; EU projects use
// https://api.eu.iterable.com.
const DefaultBaseURL = "https://api.iterable.com"

func init() {
	// Iterable limits each endpoint per project (429 beyond); 5/s stays inside.
	connectors.Register("iterable", "Iterable user profiles, forgotten by GDPR request (profile, events, list memberships)",
		connectors.Limits{Concurrency: 2, RatePerSecond: 5, Burst: 5}, build)
}

// Config is the `config:` block of an iterable instance.
//
//	api_key: {env: ITERABLE_API_KEY}
//	project_type: hybrid            # email (default), userid or hybrid
//	user_id_system: app             # subject.user_ids key of the Iterable userId
//	poll_interval: 10m              # default: when Lethe looks again after the forget
type Config struct {
	// APIKey is a server-side API key of the project.
	APIKey config.Secret `yaml:"api_key"`
	// ProjectType is how the project identifies users: by email, by userId
	// ("userid") or by either ("hybrid"); Iterable forgets by that only.
	ProjectType      string `yaml:"project_type"`
	vendorkit.Fields `yaml:",inline"`
}

// Validate fills in defaults and reports every problem at once, each naming its key.
func (c *Config) Validate() error {
	var p vendorkit.Problems
	p.Secret("api_key", c.APIKey, "a server-side API key of the Iterable project")
	p.OneOf("project_type", &c.ProjectType, "email", "userid", "hybrid")
	c.Check(&p, &vendorkit.URLRule{Default: DefaultBaseURL, Example: "https://api.eu.iterable.com", Version: "/api"}, 10*time.Minute)
	return p.Err()
}

// kinds are the identifiers the project's users are found by.
func (c Config) kinds(name string) []connectors.Kind {
	id := c.IDKind(name)
	return map[string][]connectors.Kind{"email": {connectors.Email}, "userid": {id}, "hybrid": {connectors.Email, id}}[c.ProjectType]
}

// Plan: any one of the project's kinds is enough; an email-keyed
// profile also tells the userId (a resolver).
func (c Config) Plan(name string) connectors.Plan {
	p := connectors.Plan{Keys: []connectors.Requirement{c.kinds(name)}, Uses: c.kinds(name)}
	if c.ProjectType == "hybrid" {
		p.ResolveBy, p.Gives = []connectors.Kind{connectors.Email}, p.Uses[1:]
	}
	return p
}

type connector struct {
	api   *vendorhttp.Client
	base  string
	kinds []connectors.Kind
	poll  time.Duration
}

func build(_ context.Context, name string, cfg Config, deps connectors.Deps) (connectors.Connector, error) {
	key, err := vendorkit.Reveal(deps, "api_key", cfg.APIKey)
	if err != nil {
		return nil, err
	}
	api := vendorkit.Client(deps, "Iterable", vendorkit.Header("Api-Key", key))
	api.MinRetryAfter = time.Second // Iterable's 429 names no delay
	return &connector{api: api, base: cfg.BaseURL + "/api/users", kinds: cfg.kinds(name), poll: cfg.PollInterval}, nil
}

// profile is a user Iterable holds, and the kind it was found by.
type profile struct {
	email, userID string
	by            connectors.Kind
}

// lookup finds the profiles s has under the project's kinds; an empty
// answer ({}) is Iterable's "no such user".
func (c *connector) lookup(ctx context.Context, s connectors.Subject) ([]profile, error) {
	var found []profile
	searched := false
	for _, k := range c.kinds {
		v, path := s.Email, "/getByEmail?email="+url.QueryEscape(s.Email)
		if k != connectors.Email {
			v = s.UserIDs[k.Namespace()]
			path = "/byUserId/" + url.PathEscape(v)
		}
		if v == "" {
			continue
		}
		searched = true
		var body struct { // keys match case-insensitively
			User *struct {
				Email, UserID string
				DataFields    struct{ UserID string }
			}
		}
		if _, err := c.api.Send(ctx, http.MethodGet, c.base+path, nil, &body, "user lookup"); err != nil {
			return nil, err
		}
		if u := body.User; u != nil {
			p := profile{u.Email, cmp.Or(u.UserID, u.DataFields.UserID), k}
			if !slices.ContainsFunc(found, func(q profile) bool { return q.email == p.email && q.userID == p.userID }) {
				found = append(found, p)
			}
		}
	}
	if !searched {
		return nil, connectors.Permanentf("the subject has none of the identifiers this Iterable project finds users by (check project_type and the instance's keys)")
	}
	return found, nil
}

// Erase forgets every profile found; the ref holds only their number.
func (c *connector) Erase(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	found, err := c.lookup(ctx, s)
	if err != nil {
		return connectors.Outcome{}, err
	}
	if len(found) == 0 {
		return connectors.NotFound(connectors.Evidence{Kind: "lookup", Value: "user profile not found"}), nil
	}
	for _, p := range found {
		body := map[string]string{"email": p.email}
		if p.by != connectors.Email {
			body = map[string]string{"userId": p.userID}
		}
		var ack struct{ Code string }
		if _, err := c.api.Send(ctx, http.MethodPost, c.base+"/forget", body, &ack, "forget user"); err != nil {
			return connectors.Outcome{}, err
		}
		if ack.Code != "Success" {
			return connectors.Outcome{}, connectors.Retryable(fmt.Errorf("iterable forget user: not acknowledged (code %.32q)", ack.Code), 0)
		}
	}
	return connectors.Running(vendorkit.EncodeRef(ref{Forgotten: len(found)}), c.poll,
		connectors.Evidence{Kind: "forget", Value: connectors.Plural(len(found), "profile") + " forgotten (acknowledged; Iterable documents up to ten minutes)"}), nil
}

// ref is an Erase's job reference: how many profiles it forgot.
type ref struct{ Forgotten int }

// Poll reports the forget done once Iterable's ten minutes have passed;
// the runtime's Verify then looks the person up again.
func (c *connector) Poll(_ context.Context, jobRef string) (connectors.Outcome, error) {
	var r ref
	if err := vendorkit.DecodeRef(jobRef, &r, func() bool { return r.Forgotten > 0 }, "Iterable"); err != nil {
		return connectors.Outcome{}, err
	}
	return connectors.Erased(int64(r.Forgotten), connectors.Evidence{Kind: "forgotten_list",
		Value: "hashed identifiers on Iterable's forgotten list: new data about the person is refused unless someone calls unforget"}), nil
}

// Verify looks the person up again; a profile still there remains.
func (c *connector) Verify(ctx context.Context, s connectors.Subject) (connectors.Verification, error) {
	found, err := c.lookup(ctx, s)
	v := connectors.Verification{Remaining: int64(len(found))}
	v.Evidence = []connectors.Evidence{{Kind: "lookup", Value: connectors.Plural(len(found), "user profile") + " found"}}
	return v, err
}

// Resolve gives the userId of the profile an email finds (hybrid projects).
func (c *connector) Resolve(ctx context.Context, s connectors.Subject) (connectors.Resolution, error) {
	var r connectors.Resolution
	if s.Email == "" || len(c.kinds) < 2 {
		return r, nil
	}
	found, err := c.lookup(ctx, connectors.Subject{Email: s.Email})
	for _, p := range found {
		r.Add(c.kinds[1], p.userID)
	}
	r.Evidence = []connectors.Evidence{{Kind: "lookup", Value: connectors.Plural(len(found), "user profile") + " found by email"}}
	return r, err
}
