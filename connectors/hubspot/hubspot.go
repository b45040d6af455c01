// Package hubspot is the connector that erases a data subject's contact
// record from HubSpot CRM with HubSpot's GDPR delete, found by email or by
// HubSpot record id.
package hubspot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/vendorhttp"
)

// DefaultBaseURL is HubSpot's API host.
const DefaultBaseURL = "https://api.hubapi.com"

func init() {
	// HubSpot lets a private app make 100 requests per 10 seconds (190 on
	// Professional and Enterprise). The runtime's rate counts HubSpot
	// requests (vendorhttp announces each); an erasure makes up to three.
	connectors.Register("hubspot", "HubSpot CRM contacts, permanently deleted with HubSpot's GDPR delete",
		connectors.Limits{Concurrency: 4, RatePerSecond: 10, Burst: 10}, build)
}

// Config is the `config:` block of a hubspot connector instance.
//
//	access_token: {env: HUBSPOT_TOKEN}
//	base_url: https://api.hubapi.com
//	user_id_system: crm
//	account_time_zone: Europe/Berlin
type Config struct {
	// BaseURL is the API root; default https://api.hubapi.com. Set it for
	// an EU data-residency host, a proxy, or tests.
	BaseURL string `yaml:"base_url"`
	// AccessToken is a private app's access token, sent as a Bearer token.
	AccessToken config.Secret `yaml:"access_token"`
	// UserIDSystem is the subject.user_ids key that holds the person's
	// HubSpot record id; default the instance name.
	UserIDSystem string `yaml:"user_id_system"`
	// AccountTimeZone is the HubSpot account's time zone (an IANA name);
	// HubSpot's daily limit resets at midnight there. Default UTC.
	AccountTimeZone string `yaml:"account_time_zone"`
}

// Validate checks the config at start-up and fills in defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if err := checkBaseURL(c.BaseURL); err != nil {
		errs = append(errs, fmt.Errorf("base_url: %w", err))
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if !c.AccessToken.IsSet() {
		errs = append(errs, errors.New("access_token: required: a private app token, as {env: NAME} or {file: PATH}"))
	}
	if c.UserIDSystem != "" && !connectors.InstanceNameRe.MatchString(c.UserIDSystem) {
		errs = append(errs, errors.New("user_id_system: must be lower-case letters, digits, '-' or '_'"))
	}
	if c.AccountTimeZone != "" {
		if _, err := time.LoadLocation(c.AccountTimeZone); err != nil {
			errs = append(errs, fmt.Errorf("account_time_zone: %q is not a known IANA time zone (such as Europe/Berlin)", c.AccountTimeZone))
		}
	}
	return errors.Join(errs...)
}

// checkBaseURL accepts https URLs, and http only to this machine (a local
// proxy or a test server): the token must not cross a network in clear.
func checkBaseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return errors.New("must be an absolute URL such as " + DefaultBaseURL)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	case u.Scheme == "http":
		return errors.New("must use https (http is allowed only to localhost)")
	default:
		return fmt.Errorf("scheme %q is not https", u.Scheme)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return errors.New("must not have a query, a fragment or user info")
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

type conn struct {
	base   string
	system string
	loc    *time.Location
	http   *vendorhttp.Client
	now    func() time.Time
}

func build(_ context.Context, name string, cfg Config, deps connectors.Deps) (connectors.Connector, error) {
	token, err := cfg.AccessToken.Reveal(deps.Getenv)
	if err != nil {
		return nil, fmt.Errorf("access_token: %w", err)
	}
	if token = strings.TrimSpace(token); token == "" {
		return nil, errors.New("access_token: is empty")
	}
	loc := time.UTC
	if cfg.AccountTimeZone != "" {
		if loc, err = time.LoadLocation(cfg.AccountTimeZone); err != nil {
			return nil, fmt.Errorf("account_time_zone: %w", err)
		}
	}
	c := &conn{base: strings.TrimRight(cfg.BaseURL, "/"), system: cfg.UserIDSystem, loc: loc, now: time.Now}
	if c.base == "" {
		c.base = DefaultBaseURL
	}
	if c.system == "" {
		c.system = name
	}
	c.http = &vendorhttp.Client{HTTP: deps.HTTPClient, Vendor: "HubSpot",
		Auth: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }}
	return c, nil
}

// contact is a HubSpot contact found for the subject.
type contact struct {
	id      string // HubSpot's record id
	byEmail bool   // found by the subject's email (else by record id)
}

// Erase looks the subject up and GDPR-deletes each contact found. The
// lookup comes first because HubSpot's GDPR delete answers 204 for an
// unknown email too (and blocklists it), which would hide "not found".
func (c *conn) Erase(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	found, skipped, err := c.find(ctx, s)
	if err != nil {
		return connectors.Outcome{}, err
	}
	if skipped != nil {
		return connectors.NotFound(*skipped), nil
	}
	evidence := []connectors.Evidence{{Kind: "lookup", Value: plural(len(found), "contact") + " found"}}
	var erased int64
	for _, ct := range found {
		body := map[string]string{"objectId": ct.id}
		if ct.byEmail {
			// Deleting by email also blocklists it, so HubSpot forms
			// and imports do not bring the person back.
			body = map[string]string{"objectId": s.Email, "idProperty": "email"}
		}
		req, err := vendorhttp.JSONRequest(http.MethodPost, c.base+"/crm/v3/objects/contacts/gdpr-delete", body)
		if err != nil {
			return connectors.Outcome{}, err
		}
		resp, err := c.do(ctx, req, "GDPR delete", http.StatusNotFound)
		if err != nil {
			return connectors.Outcome{}, err
		}
		switch {
		case resp.Status == http.StatusNotFound:
			// Deleted by someone else since the lookup.
			if _, err := notFound(resp); err != nil {
				return connectors.Outcome{}, err
			}
			evidence = append(evidence, connectors.Evidence{Kind: "gdpr_delete", Value: "already gone" + correlation(resp)})
		case resp.Status == http.StatusNoContent || resp.Status == http.StatusOK:
			erased++
			evidence = append(evidence, connectors.Evidence{Kind: "gdpr_delete", Value: strconv.Itoa(resp.Status) + correlation(resp)})
		default:
			return connectors.Outcome{}, connectors.Permanentf("HubSpot GDPR delete: unexpected status %d%s", resp.Status, correlation(resp))
		}
	}
	return connectors.Erased(erased, evidence...), nil
}

// Verify looks the subject up again: every contact still found remains.
func (c *conn) Verify(ctx context.Context, s connectors.Subject) (connectors.Verification, error) {
	found, skipped, err := c.find(ctx, s)
	if err != nil {
		return connectors.Verification{}, err
	}
	if skipped != nil {
		return connectors.Verification{Evidence: []connectors.Evidence{*skipped}}, nil
	}
	n := int64(len(found))
	return connectors.Verification{Remaining: n,
		Evidence: []connectors.Evidence{{Kind: "lookup_after_erase", Value: plural(len(found), "contact") + " found"}}}, nil
}

var recordIDRe = regexp.MustCompile(`^[0-9]{1,20}$`)

// find looks the subject up by HubSpot record id and by email, and returns
// the distinct contacts found; skipped is set when the subject has
// neither identifier.
func (c *conn) find(ctx context.Context, s connectors.Subject) (found []contact, skipped *connectors.Evidence, err error) {
	id := s.UserIDs[c.system]
	if id == "" && s.Email == "" {
		return nil, &connectors.Evidence{Kind: "skipped", Value: "the subject has no email and no HubSpot record id (user_ids." + c.system + ")"}, nil
	}
	if id != "" && !recordIDRe.MatchString(id) {
		return nil, nil, connectors.Permanentf("user_ids.%s is not a HubSpot record id (digits only)", c.system)
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if id != "" {
		got, ok, err := c.lookup(ctx, id, false)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			found = append(found, contact{id: got})
		}
	}
	if s.Email != "" {
		got, ok, err := c.lookup(ctx, s.Email, true)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			// The same contact found both ways is deleted once, by email.
			if len(found) == 1 && found[0].id == got {
				found = found[:0]
			}
			found = append(found, contact{id: got, byEmail: true})
		}
	}
	return found, nil, nil
}

// lookup reads one contact by email or record id and returns its id.
func (c *conn) lookup(ctx context.Context, key string, byEmail bool) (id string, ok bool, err error) {
	u := c.base + "/crm/v3/objects/contacts/" + url.PathEscape(key)
	if byEmail {
		u += "?idProperty=email"
	}
	req, err := vendorhttp.JSONRequest(http.MethodGet, u, nil)
	if err != nil {
		return "", false, err
	}
	resp, err := c.do(ctx, req, "contact lookup", http.StatusNotFound)
	if err != nil {
		return "", false, err
	}
	if resp.Status == http.StatusNotFound {
		_, err := notFound(resp)
		return "", false, err
	}
	var body struct {
		ID string `json:"id"`
	}
	if err := resp.JSON(&body); err != nil {
		return "", false, err
	}
	if !recordIDRe.MatchString(body.ID) {
		return "", false, connectors.Retryable(fmt.Errorf("HubSpot contact lookup: the answer (status %d) has no record id", resp.Status), 0)
	}
	return body.ID, true, nil
}

// apiError is HubSpot's error body. Message and context can quote what
// was sent (the email), so only the category and correlation id are used.
type apiError struct {
	Status        string `json:"status"`
	Category      string `json:"category"`
	SubCategory   string `json:"subCategory"`
	CorrelationID string `json:"correlationId"`
	ErrorType     string `json:"errorType"`
	PolicyName    string `json:"policyName"`
}

var (
	codeRe          = regexp.MustCompile(`^[A-Za-z0-9_.]{1,80}$`)
	correlationIDRe = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
)

func parseError(b []byte) apiError {
	var e apiError
	if json.Unmarshal(b, &e) != nil {
		return apiError{}
	}
	if !codeRe.MatchString(e.Category) {
		e.Category = ""
	}
	if !codeRe.MatchString(e.SubCategory) {
		e.SubCategory = ""
	}
	if !correlationIDRe.MatchString(e.CorrelationID) {
		e.CorrelationID = ""
	}
	if !codeRe.MatchString(e.PolicyName) {
		e.PolicyName = ""
	}
	return e
}

// notFound tells HubSpot's "no such contact" from a 404 of something that
// is not the HubSpot API (a wrong base_url or proxy path): the latter must
// not be taken for proof that the person is absent.
func notFound(resp *vendorhttp.Response) (apiError, error) {
	e := parseError(resp.Body)
	if e.Category == "OBJECT_NOT_FOUND" || (e.Category == "" && e.Status == "error" && e.CorrelationID != "") {
		return e, nil
	}
	return e, connectors.Permanentf("HubSpot answered 404 without saying the contact does not exist; check base_url points at the HubSpot API%s", details(e))
}

// do sends req and adds HubSpot's own classification to errors: the
// rate-limit policy of a 429, and the category and correlation id HubSpot
// support asks for.
func (c *conn) do(ctx context.Context, req *http.Request, op string, ok ...int) (*vendorhttp.Response, error) {
	resp, err := c.http.Do(ctx, req, op, ok...)
	if err == nil || resp == nil {
		return resp, err
	}
	e := parseError(resp.Body)
	if resp.Status == http.StatusTooManyRequests {
		return nil, c.rateLimited(op, resp, e)
	}
	perm, after := connectors.Classify(err)
	msg := errors.Unwrap(err).Error()
	switch {
	case resp.Status == http.StatusUnauthorized:
		msg = fmt.Sprintf("HubSpot %s: 401: the access token was refused; check access_token (a private app token, not revoked)", op)
	case resp.Status == http.StatusForbidden:
		msg = fmt.Sprintf("HubSpot %s: 403: the private app lacks a permission; it needs the crm.objects.contacts.read and crm.objects.contacts.write scopes", op)
	}
	return nil, &connectors.Error{Permanent: perm, RetryAfter: after, Err: errors.New(msg + details(e))}
}

// rateLimited classifies a 429. The DAILY policy resets at midnight in the
// account's time zone; the others within seconds.
func (c *conn) rateLimited(op string, resp *vendorhttp.Response, e apiError) error {
	after := vendorhttp.ParseRetryAfter(resp.Header.Get("Retry-After"), c.now())
	policy := e.PolicyName
	if policy == "" {
		policy = "unnamed"
	}
	if after <= 0 {
		switch policy {
		case "DAILY":
			after = untilMidnight(c.now(), c.loc)
		case "TEN_SECONDLY_ROLLING":
			after = 10 * time.Second
			if ms, err := strconv.Atoi(resp.Header.Get("X-HubSpot-RateLimit-Interval-Milliseconds")); err == nil && ms > 0 {
				after = time.Duration(ms) * time.Millisecond
			}
		default: // SECONDLY: the window is a second
			after = time.Second
		}
	}
	what := "rate limited"
	if policy == "DAILY" {
		what = "the account's daily API limit is used up"
	}
	return connectors.Retryable(fmt.Errorf("HubSpot %s: 429 %s (policy %s)%s", op, what, policy, details(e)), after)
}

// untilMidnight is the wait until the next midnight in loc (at least a
// minute, so a clock skew does not retry into the same exhausted day).
func untilMidnight(now time.Time, loc *time.Location) time.Duration {
	t := now.In(loc)
	next := time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, loc)
	return max(next.Sub(now)+time.Minute, time.Minute)
}

// details names HubSpot's category and correlation id for staff and
// HubSpot support; never the message, which may quote the email.
func details(e apiError) string {
	var parts []string
	if e.Category != "" {
		c := e.Category
		if e.SubCategory != "" {
			c += "/" + e.SubCategory
		}
		parts = append(parts, "category "+c)
	}
	if e.CorrelationID != "" {
		parts = append(parts, "correlationId "+e.CorrelationID)
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// correlation names the correlation id HubSpot put on a response, if any.
func correlation(resp *vendorhttp.Response) string {
	id := resp.Header.Get("X-HubSpot-Correlation-Id")
	if id == "" {
		id = parseError(resp.Body).CorrelationID
	}
	if !correlationIDRe.MatchString(id) {
		return ""
	}
	return ", correlationId " + id
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
