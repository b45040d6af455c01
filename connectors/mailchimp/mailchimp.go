// Package mailchimp is the connector that permanently deletes a data
// subject from Mailchimp audiences (lists) with the Marketing API's
// delete-permanent action, which also stops the address from being
// re-imported.
package mailchimp

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/vendorhttp"
	"github.com/lethe-dev/lethe/connectors/vendorkit"
)

func init() {
	// Mailchimp limits simultaneous connections (about 10 per account),
	// not requests per second: 4 tasks, each one request at a time, leave
	// room for the account's other integrations.
	connectors.Register("mailchimp", "Members of Mailchimp audiences, deleted permanently",
		connectors.Limits{Concurrency: 4}, build)
}

// Config is the `config:` block of a mailchimp connector instance.
//
//	api_key: {env: MAILCHIMP_API_KEY}   # ends in the data centre, e.g. -us6
//	lists: [a1b2c3d4e5, f6a7b8c9d0]
type Config struct {
	// APIKey is a Mailchimp API key. Its suffix (…-us6) names the data
	// centre the API lives in, unless BaseURL is set.
	APIKey config.Secret `yaml:"api_key"`
	// BaseURL overrides https://<dc>.api.mailchimp.com (a proxy, a test).
	BaseURL string `yaml:"base_url"`
	// Lists are the audience ids to erase from.
	Lists []string `yaml:"lists"`
	// AllLists erases from every audience of the account, listed afresh
	// on each erase, instead of Lists.
	AllLists bool `yaml:"all_lists"`
}

// Plan: Mailchimp members are keyed by email only.
func (c Config) Plan(string) connectors.Plan { return connectors.EmailPlan() }

// listIDRe is what an audience id may look like; Mailchimp's are ten hex
// digits. It keeps a configured (or listed) id from changing the URL path.
var listIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

var dataCentreRe = regexp.MustCompile(`^[a-z]{2,}[0-9]{1,3}$`)

// Validate reports every problem in the config at once, each naming its key.
func (c *Config) Validate() error {
	var p vendorkit.Problems
	p.Secret("api_key", c.APIKey, "a Mailchimp API key")
	if c.APIKey.Value != "" && c.BaseURL == "" {
		if _, err := dataCentreURL(c.APIKey.Value); err != nil {
			p.Include(err)
		}
	}
	if c.BaseURL != "" {
		p.BaseURL(&c.BaseURL, vendorkit.URLRule{Example: "https://us6.api.mailchimp.com", Version: "/3.0"})
	}
	switch {
	case len(c.Lists) == 0 && !c.AllLists:
		p.Add("lists", "required: the audience ids to erase from (Audience → Settings → Audience ID), or all_lists: true")
	case len(c.Lists) > 0 && c.AllLists:
		p.Add("lists", "leave it out with all_lists: true, which erases from every audience")
	}
	seen := map[string]bool{}
	for i, id := range c.Lists {
		key := fmt.Sprintf("lists[%d]", i)
		switch {
		case !listIDRe.MatchString(id):
			p.Add(key, "%q is not an audience id (letters and digits, such as a1b2c3d4e5)", id)
		case seen[id]:
			p.Add(key, "%q is listed twice", id)
		}
		seen[id] = true
	}
	return p.Err()
}

// dataCentreURL derives the API's address from a key ending in its data
// centre: "…-us6" → https://us6.api.mailchimp.com. The key is never quoted.
func dataCentreURL(key string) (string, error) {
	i := strings.LastIndexByte(key, '-')
	if i < 0 || !dataCentreRe.MatchString(key[i+1:]) {
		return "", errors.New("api_key: does not end in a data centre such as -us6; check the key, or set base_url")
	}
	return "https://" + key[i+1:] + ".api.mailchimp.com", nil
}

type connector struct {
	http     *vendorhttp.Client
	base     string
	lists    []string
	allLists bool
	// known holds the configured audiences seen to exist, so that a
	// member's 404 needs checking only once per audience.
	known sync.Map
}

func build(_ context.Context, _ string, cfg Config, deps connectors.Deps) (connectors.Connector, error) {
	key, err := vendorkit.Reveal(deps, "api_key", cfg.APIKey)
	if err != nil {
		return nil, err
	}
	base := cfg.BaseURL
	if base == "" {
		if base, err = dataCentreURL(key); err != nil {
			return nil, err
		}
	}
	// Any user name; the key is the password.
	api := vendorkit.Client(deps, "Mailchimp", vendorkit.Basic("lethe", key))
	return &connector{http: api, base: base + "/3.0", lists: cfg.Lists, allLists: cfg.AllLists}, nil
}

// subscriberHash is how Mailchimp names a member in URLs: the hex MD5 of
// the lower-cased address. It identifies the person: never show it.
func subscriberHash(email string) string {
	sum := md5.Sum([]byte(strings.ToLower(strings.TrimSpace(email))))
	return hex.EncodeToString(sum[:])
}

// member is what Erase and Verify work on: the subscriber hash of s's
// email and the audiences to look in, with evidence of how they were
// found. A subject without an email is refused: the plan makes the
// runtime wait for one, and without it nothing was looked up, which is
// never "not found" or "clean".
func (c *connector) member(ctx context.Context, s connectors.Subject) (hash string, lists []string, ev []connectors.Evidence, err error) {
	if err := ctx.Err(); err != nil {
		return "", nil, nil, err
	}
	if s.Email == "" {
		return "", nil, nil, connectors.Permanentf("the subject has no email address: Mailchimp members are found by email only (check the instance's keys)")
	}
	lists, ev, err = c.audiences(ctx)
	return subscriberHash(s.Email), lists, ev, err
}

// Erase permanently deletes the subject from every audience, an archived
// membership included (archiving keeps the member's data and lets it be
// re-added). Records is the number of audiences it was deleted from. An unknown configured
// audience does not stop the others from being erased; it is reported as
// a permanent error afterwards.
func (c *connector) Erase(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	hash, lists, ev, err := c.member(ctx, s)
	if err != nil {
		return connectors.Outcome{}, err
	}
	var (
		deleted int64
		missing []string
	)
	for _, id := range lists {
		gone, err := c.deleteMember(ctx, id, hash)
		switch {
		case errors.Is(err, errNoSuchList):
			missing = append(missing, id)
			ev = append(ev, connectors.Evidence{Kind: "list", Value: id + ": audience does not exist"})
			continue
		case err != nil:
			return connectors.Outcome{}, err
		case gone:
			deleted++
			ev = append(ev, connectors.Evidence{Kind: "list", Value: id + ": deleted permanently"})
		default:
			ev = append(ev, connectors.Evidence{Kind: "list", Value: id + ": not a member"})
		}
	}
	if len(missing) > 0 {
		return connectors.Outcome{}, connectors.Permanentf(
			"Mailchimp audience %s does not exist for this API key (erased from %d other audiences); fix lists in the config, or base_url",
			strings.Join(missing, ", "), deleted)
	}
	return connectors.Erased(deleted, ev...), nil
}

var errNoSuchList = errors.New("no such audience")

// deleteMember reports whether the member was deleted (false: it was not
// in the audience). Mailchimp answers 404 both for a member that is not
// there and for an audience that does not exist; a configured audience is
// looked up the first time to tell them apart.
func (c *connector) deleteMember(ctx context.Context, list, hash string) (bool, error) {
	resp, err := c.http.Send(ctx, http.MethodPost, c.memberURL(list, hash)+"/actions/delete-permanent", nil, nil, "delete-permanent in audience "+list, http.StatusNotFound)
	if err != nil {
		return false, err
	}
	if resp.Status != http.StatusNotFound {
		c.known.Store(list, true)
		return true, nil
	}
	if c.allLists {
		return false, nil // just listed; if it vanished since, so did its members
	}
	if _, ok := c.known.Load(list); ok {
		return false, nil
	}
	exists, err := c.listExists(ctx, list)
	if err != nil {
		return false, err
	}
	if !exists {
		return false, errNoSuchList
	}
	c.known.Store(list, true)
	return false, nil
}

func (c *connector) memberURL(list, hash string) string {
	return c.base + "/lists/" + url.PathEscape(list) + "/members/" + hash
}

func (c *connector) listExists(ctx context.Context, list string) (bool, error) {
	resp, err := c.http.Send(ctx, http.MethodGet, c.base+"/lists/"+url.PathEscape(list)+"?fields=id", nil, nil, "audience lookup", http.StatusNotFound)
	if err != nil {
		return false, err
	}
	return resp.Status != http.StatusNotFound, nil
}

// audiences returns the audiences to work on: the configured ones, or with
// all_lists every audience of the account.
func (c *connector) audiences(ctx context.Context) ([]string, []connectors.Evidence, error) {
	if !c.allLists {
		return c.lists, nil, nil
	}
	const page = 1000 // the most Mailchimp returns at once
	var ids []string
	for offset := 0; ; offset += page {
		q := fmt.Sprintf("?count=%d&fields=lists.id", page)
		if offset > 0 {
			q += fmt.Sprintf("&offset=%d", offset)
		}
		var body struct {
			Lists []struct {
				ID string `json:"id"`
			} `json:"lists"`
		}
		if _, err := c.http.Send(ctx, http.MethodGet, c.base+"/lists"+q, nil, &body, "list audiences"); err != nil {
			return nil, nil, err
		}
		for _, l := range body.Lists {
			if !listIDRe.MatchString(l.ID) {
				return nil, nil, connectors.Retryable(fmt.Errorf("%s list audiences: an audience id is not in the expected form", c.http.Vendor), 0)
			}
			ids = append(ids, l.ID)
		}
		if len(body.Lists) < page {
			break
		}
	}
	return ids, []connectors.Evidence{{Kind: "lists", Value: fmt.Sprintf("all_lists: %d audiences", len(ids))}}, nil
}

// Verify looks the member up in every audience; Remaining counts the
// audiences that still hold it (archived or not).
func (c *connector) Verify(ctx context.Context, s connectors.Subject) (connectors.Verification, error) {
	var v connectors.Verification
	hash, lists, _, err := c.member(ctx, s)
	if err != nil {
		return v, err
	}
	for _, id := range lists {
		resp, err := c.http.Send(ctx, http.MethodGet, c.memberURL(id, hash)+"?fields=id", nil, nil, "member lookup in audience "+id, http.StatusNotFound)
		if err != nil {
			return connectors.Verification{}, err
		}
		if resp.Status == http.StatusNotFound {
			v.Evidence = append(v.Evidence, connectors.Evidence{Kind: "lookup", Value: id + ": not found"})
			continue
		}
		v.Remaining++
		v.Evidence = append(v.Evidence, connectors.Evidence{Kind: "lookup", Value: id + ": still a member"})
	}
	return v, nil
}
