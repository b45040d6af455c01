// Package shopify erases a customer's personal data from a Shopify store by
// the GraphQL Admin API's customerRequestDataErasure, then looks the
// customer up by id, for days if need be, until Shopify has erased them.
package shopify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/vendorhttp"
	"github.com/lethe-dev/lethe/connectors/vendorkit"
)

// DefaultAPIVersion is the GraphQL Admin API version asked for. Shopify
// supports each stable version for at least twelve months and answers a
// retired one with the oldest supported version.
const DefaultAPIVersion = "2026-10"

// MaxWait is how long after the request Poll waits for Shopify to erase
// a customer: ten days, or 180 days after their latest order, and a margin.
const MaxWait = 200 * 24 * time.Hour

func init() {
	// The GraphQL Admin API allows 100 cost points a second on the Standard
	// plan; the search asks for at most about 22 (a 10-customer connection),
	// the others a few, so 4 a second stays inside.
	connectors.Register("shopify", "Shopify store customers, erased by Shopify's customer data erasure (profile, addresses; orders redacted)",
		connectors.Limits{Concurrency: 2, RatePerSecond: 4, Burst: 4}, build)
}

// Config is the `config:` block of a shopify instance.
//
//	shop: acme                      # acme.myshopify.com
//	access_token: {env: SHOPIFY_ADMIN_TOKEN}
//	user_id_system: shopify         # subject.user_ids key of Shopify customer ids
//	poll_interval: 24h              # default: how often Lethe looks for the erased customer
//
// base_url, instead of shop, is the store's address (a proxy, a test).
type Config struct {
	// Shop is the store's myshopify.com subdomain ("acme" or
	// "acme.myshopify.com"); or set BaseURL.
	Shop             string `yaml:"shop"`
	vendorkit.Fields `yaml:",inline"`
	// AccessToken is an Admin API access token with read_customers and
	// write_customer_data_erasure.
	AccessToken config.Secret `yaml:"access_token"`
	// APIVersion is the GraphQL Admin API version (default DefaultAPIVersion).
	APIVersion string `yaml:"api_version"`
}

var (
	shopRe    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,99}$`)
	versionRe = regexp.MustCompile(`^(20[0-9]{2}-(01|04|07|10)|unstable)$`)
	// customerIDRe is a Shopify customer id, bare or as a GraphQL gid.
	customerIDRe = regexp.MustCompile(`^(?:gid://shopify/Customer/)?([1-9][0-9]{0,19})$`)
)

// Validate fills in defaults and reports every problem at once, each naming its key.
func (c *Config) Validate() error {
	var p vendorkit.Problems
	p.Secret("access_token", c.AccessToken, "an Admin API access token with read_customers and write_customer_data_erasure")
	shop := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(c.Shop)), ".myshopify.com")
	if c.Shop != "" && !shopRe.MatchString(shop) {
		p.Add("shop", "must be the store's myshopify.com subdomain (acme for acme.myshopify.com)")
	}
	if c.Shop != "" && c.BaseURL != "" {
		p.Add("shop", "set shop or base_url, not both")
	}
	if c.Shop == "" && c.BaseURL == "" {
		p.Add("shop", "required: the store's myshopify.com subdomain (acme for acme.myshopify.com), or set base_url")
	} else {
		def := ""
		if c.Shop != "" {
			def = "https://" + shop + ".myshopify.com"
		}
		p.BaseURL(&c.BaseURL, vendorkit.URLRule{Default: def, Example: "https://acme.myshopify.com", Version: "/admin"})
	}
	if c.APIVersion == "" {
		c.APIVersion = DefaultAPIVersion
	} else if !versionRe.MatchString(c.APIVersion) || c.APIVersion < "2025-04" {
		p.Add("api_version", "must be a Shopify API version from 2025-04 on (YYYY-01, -04, -07 or -10), such as %s", DefaultAPIVersion)
	}
	c.Check(&p, nil, 24*time.Hour) // base_url: above, from shop
	return p.Err()
}

// Plan: a customer is found by email or by Shopify customer id, either
// one enough; an email also tells the customer id.
func (c Config) Plan(name string) connectors.Plan {
	return connectors.EmailResolvesPlan(c.IDKind(name))
}

type connector struct {
	api      *vendorhttp.Client
	endpoint string
	idKind   connectors.Kind
	poll     time.Duration
}

func build(_ context.Context, name string, cfg Config, deps connectors.Deps) (connectors.Connector, error) {
	token, err := vendorkit.Reveal(deps, "access_token", cfg.AccessToken)
	if err != nil {
		return nil, err
	}
	api := vendorkit.Client(deps, "Shopify", vendorkit.Header("X-Shopify-Access-Token", token))
	api.MinRetryAfter = time.Second
	return &connector{api: api, endpoint: cfg.BaseURL + "/admin/api/" + cfg.APIVersion + "/graphql.json",
		idKind: cfg.IDKind(name), poll: cfg.PollInterval}, nil
}

const (
	customerFields = `id defaultEmailAddress { emailAddress }`
	byEmailQuery   = `query($q: String!) { customers(first: 10, query: $q) { nodes { ` + customerFields + ` } } }`
	byIDQuery      = `query($id: ID!) { customer(id: $id) { ` + customerFields + ` } }`
	eraseMutation  = `mutation($id: ID!) { customerRequestDataErasure(customerId: $id) { customerId userErrors { field message code } } }`
)

// customer is a Customer as asked for; defaultEmailAddress replaced the
// deprecated email field in 2025-04.
type customer struct {
	ID                  string
	DefaultEmailAddress struct{ EmailAddress string }
}

// lookup finds the customer ids (digits) s has: by email, exact matches
// only, and by customer id.
func (c *connector) lookup(ctx context.Context, s connectors.Subject) ([]string, error) {
	id := s.UserIDs[c.idKind.Namespace()]
	if s.Email == "" && id == "" {
		return nil, connectors.Permanentf("the subject has neither an email nor a Shopify customer id (user_ids.%s): nothing to search by", c.idKind.Namespace())
	}
	var found []string
	add := func(gid string) error {
		m := customerIDRe.FindStringSubmatch(gid)
		if m == nil {
			return connectors.Retryable(errors.New("customer lookup at Shopify: a customer without a usable id"), 0)
		}
		for _, f := range found {
			if f == m[1] {
				return nil
			}
		}
		found = append(found, m[1])
		return nil
	}
	if s.Email != "" {
		if strings.ContainsAny(s.Email, "\"\\") || strings.IndexFunc(s.Email, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
			return nil, connectors.Permanentf("the email holds a quote, backslash, space or control character, which Shopify's search syntax would read as more than an address; erase this customer by id")
		}
		var data struct{ Customers struct{ Nodes []customer } }
		if err := c.gql(ctx, "customer search", byEmailQuery, map[string]any{"q": `email:"` + s.Email + `"`}, &data); err != nil {
			return nil, err
		}
		for _, n := range data.Customers.Nodes {
			if strings.EqualFold(n.DefaultEmailAddress.EmailAddress, s.Email) {
				if err := add(n.ID); err != nil {
					return nil, err
				}
			}
		}
	}
	if id != "" {
		m := customerIDRe.FindStringSubmatch(id)
		if m == nil {
			return nil, connectors.Permanentf("user_ids.%s is not a Shopify customer id (digits, or gid://shopify/Customer/<digits>)", c.idKind.Namespace())
		}
		cust, err := c.byID(ctx, m[1])
		if err != nil {
			return nil, err
		}
		if cust != nil {
			if err := add(cust.ID); err != nil {
				return nil, err
			}
		}
	}
	return found, nil
}

// byID looks a customer up by id (digits); nil when Shopify has none.
func (c *connector) byID(ctx context.Context, id string) (*customer, error) {
	var data struct{ Customer *customer }
	err := c.gql(ctx, "customer lookup", byIDQuery, map[string]any{"id": "gid://shopify/Customer/" + id}, &data)
	return data.Customer, err
}

// Erase requests the erasure of every customer found; Shopify erases
// them days later, and the job reference holds their ids.
func (c *connector) Erase(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	ids, err := c.lookup(ctx, s)
	if err != nil {
		return connectors.Outcome{}, err
	}
	var requested []string
	for _, id := range ids {
		var data struct {
			CustomerRequestDataErasure *struct {
				CustomerID string
				UserErrors []struct{ Code string }
			}
		}
		if err := c.gql(ctx, "customer data erasure request", eraseMutation, map[string]any{"id": "gid://shopify/Customer/" + id}, &data); err != nil {
			return connectors.Outcome{}, err
		}
		p := data.CustomerRequestDataErasure
		switch {
		case p == nil:
			return connectors.Outcome{}, connectors.Retryable(errors.New("customer data erasure request at Shopify: no payload in the answer"), 0)
		case len(p.UserErrors) > 0 && p.UserErrors[0].Code == "DOES_NOT_EXIST":
			continue // erased or deleted since the lookup
		case len(p.UserErrors) > 0:
			return connectors.Outcome{}, connectors.Retryable(fmt.Errorf(
				"customer data erasure request at Shopify: refused (%s); if it persists, see the customer in Shopify admin", code(p.UserErrors[0].Code)), 0)
		}
		requested = append(requested, id)
	}
	if len(requested) == 0 {
		return connectors.NotFound(connectors.Evidence{Kind: "lookup", Value: "customer not found"}), nil
	}
	return connectors.Running(vendorkit.EncodeRef(ref{IDs: requested, At: time.Now().Unix()}), c.poll,
		connectors.Evidence{Kind: "erasure_request", Value: connectors.Plural(len(requested), "customer") +
			": data erasure requested (acknowledged; Shopify erases after 10 days, or 180 days after the customer's latest order)"}), nil
}

// ref is an Erase's job reference: the customers whose erasure was
// requested (Shopify's ids) and when.
type ref struct {
	IDs []string `json:"ids"`
	At  int64    `json:"at"`
}

// Poll looks each customer up by id: erased once Shopify finds none of them.
func (c *connector) Poll(ctx context.Context, jobRef string) (connectors.Outcome, error) {
	var r ref
	complete := func() bool {
		for _, id := range r.IDs {
			if m := customerIDRe.FindStringSubmatch(id); m == nil || m[1] != id {
				return false
			}
		}
		return len(r.IDs) > 0 && r.At > 0
	}
	if err := vendorkit.DecodeRef(jobRef, &r, complete, "Shopify"); err != nil {
		return connectors.Outcome{}, err
	}
	var left []string
	for _, id := range r.IDs {
		cust, err := c.byID(ctx, id)
		if err != nil {
			return connectors.Outcome{}, err
		}
		if cust != nil {
			left = append(left, id)
		}
	}
	if len(left) == 0 {
		return connectors.Erased(int64(len(r.IDs)), connectors.Evidence{Kind: "lookup",
			Value: connectors.Plural(len(r.IDs), "customer") + " no longer found by id: erased by Shopify (Shopify documents that it keeps their orders, redacted; not checked)"}), nil
	}
	since := time.Since(time.Unix(r.At, 0))
	if since > MaxWait {
		return connectors.Outcome{}, connectors.Permanentf("Shopify has not erased %d of %s %d days after the request; "+
			"see in Shopify admin whether the erasure was cancelled (customerCancelDataErasure) or is still held for a recent order, then erase the person again",
			len(left), connectors.Plural(len(r.IDs), "customer"), int(since.Hours()/24))
	}
	return connectors.Running(jobRef, c.poll, connectors.Evidence{Kind: "lookup",
		Value: fmt.Sprintf("%d of %s awaiting Shopify's erasure", len(left), connectors.Plural(len(r.IDs), "customer"))}), nil
}

// Verify looks the person up again; a customer still found remains.
func (c *connector) Verify(ctx context.Context, s connectors.Subject) (connectors.Verification, error) {
	ids, err := c.lookup(ctx, s)
	if err != nil {
		return connectors.Verification{}, err
	}
	return connectors.Verification{Remaining: int64(len(ids)),
		Evidence: []connectors.Evidence{{Kind: "lookup", Value: connectors.Plural(len(ids), "customer") + " found"}}}, nil
}

// Resolve gives the customer id of the customer an email finds.
func (c *connector) Resolve(ctx context.Context, s connectors.Subject) (connectors.Resolution, error) {
	var r connectors.Resolution
	if s.Email == "" {
		return r, nil
	}
	ids, err := c.lookup(ctx, connectors.Subject{Email: s.Email})
	for _, id := range ids {
		r.Add(c.idKind, id)
	}
	r.Evidence = []connectors.Evidence{{Kind: "lookup", Value: connectors.Plural(len(ids), "customer") + " found by email"}}
	return r, err
}

// envelope is a GraphQL answer: data, errors and the query's cost.
type envelope struct {
	Data   json.RawMessage
	Errors []struct {
		Message    string
		Extensions struct{ Code string }
	}
	Extensions struct {
		Cost struct {
			RequestedQueryCost float64
			ThrottleStatus     struct{ CurrentlyAvailable, RestoreRate float64 }
		}
	}
}

// throttleDelay is how long the bucket takes to hold the query's cost
// again: (requested - available) / restore rate, at least a second.
func (e envelope) throttleDelay() time.Duration {
	cost := e.Extensions.Cost
	need, rate := cost.RequestedQueryCost-cost.ThrottleStatus.CurrentlyAvailable, cost.ThrottleStatus.RestoreRate
	if need <= 0 || rate <= 0 {
		return time.Second
	}
	return max(time.Second, time.Duration(math.Ceil(need/rate))*time.Second)
}

// gql sends a GraphQL request and decodes its data into out. Shopify
// answers a throttled query 200 with the THROTTLED error (the REST API,
// and some proxies, 429): both are retryable after the bucket refills.
func (c *connector) gql(ctx context.Context, op, query string, vars map[string]any, out any) error {
	resp, err := c.api.Send(ctx, http.MethodPost, c.endpoint, map[string]any{"query": query, "variables": vars}, nil, op,
		http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusTooManyRequests)
	if err != nil {
		return err
	}
	var body envelope
	switch resp.Status {
	case http.StatusUnauthorized:
		return connectors.Permanentf("%s at Shopify: 401 Unauthorized: the access token was refused; check access_token (an Admin API access token of this store)", op)
	case http.StatusForbidden:
		return forbidden(op, "403 Forbidden")
	case http.StatusNotFound:
		return connectors.Permanentf("%s at Shopify: 404 Not Found: no GraphQL Admin API at the configured address; check shop (or base_url) and api_version", op)
	case http.StatusTooManyRequests:
		_ = json.Unmarshal(resp.Body, &body)
		after := c.api.RetryAfter(resp.Header)
		if after <= 0 {
			after = body.throttleDelay()
		}
		return connectors.Retryable(fmt.Errorf("%s at Shopify: 429 Too Many Requests: %w", op, connectors.ErrRateLimited), after)
	}
	if err := resp.JSON(&body); err != nil {
		return fmt.Errorf("%s at Shopify: %w", op, err)
	}
	if len(body.Errors) > 0 {
		switch e := body.Errors[0]; {
		case e.Extensions.Code == "THROTTLED" || e.Message == "Throttled":
			return connectors.Retryable(fmt.Errorf("%s at Shopify: throttled, the query's cost exceeds what the store's bucket holds: %w", op, connectors.ErrRateLimited), body.throttleDelay())
		case e.Extensions.Code == "ACCESS_DENIED":
			return forbidden(op, "ACCESS_DENIED")
		case e.Extensions.Code == "INTERNAL_SERVER_ERROR":
			return connectors.Retryable(fmt.Errorf("%s at Shopify: INTERNAL_SERVER_ERROR", op), 0)
		default:
			return connectors.Permanentf("%s at Shopify: the query was refused (%s); check api_version", op, code(e.Extensions.Code))
		}
	}
	if err := json.Unmarshal(body.Data, out); err != nil {
		return connectors.Retryable(fmt.Errorf("%s at Shopify: unreadable data: %w", op, err), 0)
	}
	return nil
}

func forbidden(op, what string) error {
	return connectors.Permanentf("%s at Shopify: %s: the app lacks a scope; grant read_customers and write_customer_data_erasure (and the erase customer data permission), and check access_token", op, what)
}

// code is a vendor's error code fit for a message: a short upper-case word.
func code(s string) string {
	if len(s) > 40 || strings.IndexFunc(s, func(r rune) bool { return (r < 'A' || r > 'Z') && r != '_' }) >= 0 {
		return "an unexpected code"
	}
	if s == "" {
		return "no code"
	}
	return s
}
