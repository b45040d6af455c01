// Package hubspot is the connector that erases a data subject's contact
// record from HubSpot CRM with HubSpot's GDPR delete, found by email or by
// HubSpot record id, archived contacts (HubSpot's recycle bin) included.
// Configured to, it also looks the person up and reports identifiers the
// contact holds (an application's user id, the record id).
package hubspot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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
	"github.com/lethe-dev/lethe/internal/erasure"
)

// DefaultBaseURL is HubSpot's API host.
const DefaultBaseURL = "https://api.hubapi.com"

// Config is the `config:` block of a hubspot connector instance.
//
//	access_token: {env: HUBSPOT_TOKEN}
//	base_url: https://api.hubapi.com
//	user_id_system: crm
//	account_time_zone: Europe/Berlin
//	resolve:
//	  properties: {app_user_id: user_ids.app}
//	  record_id: true
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
	// Resolve, when set, makes the instance a resolver: it looks the
	// person up by email and reports what the contact holds.
	Resolve *Resolve `yaml:"resolve"`
}

// Resolve is the `resolve:` block of a hubspot instance: what a contact
// found by email tells about the person.
//
//	properties: {app_user_id: user_ids.app, hs_additional_emails: email}
//	record_id: true
type Resolve struct {
	// Properties maps a contact property's internal name to the kind of
	// identifier it holds (email, phone or user_ids.<namespace>).
	// hs_additional_emails, HubSpot's ';'-separated list, gives each
	// address.
	Properties map[string]string `yaml:"properties"`
	// RecordID reports the contact's HubSpot record id as
	// user_ids.<user_id_system>.
	RecordID bool `yaml:"record_id"`
}

// propertyRe is what a HubSpot property's internal name looks like: it is
// sent in a comma-separated query parameter, so nothing else may pass.
var propertyRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,99}$`)

// system is the user_ids namespace holding HubSpot record ids.
func (c Config) system(name string) string { return vendorkit.System(c.UserIDSystem, name) }

// Plan: the instance erases by email, or by HubSpot record id when
// user_id_system names where requests carry it; it searches by both.
// With resolve, it looks people up by email and gives what resolve names.
func (c Config) Plan(name string) connectors.Plan {
	recordID := connectors.UserIDKind(c.system(name))
	p := connectors.Plan{Keys: []connectors.Requirement{{connectors.Email}}, Uses: []connectors.Kind{connectors.Email, recordID}}
	if c.UserIDSystem != "" {
		p.Keys = []connectors.Requirement{{connectors.Email, recordID}}
	}
	if c.Resolve != nil {
		p.ResolveBy = []connectors.Kind{connectors.Email}
		for _, prop := range c.Resolve.sortedProperties() {
			p.Gives = append(p.Gives, connectors.Kind(c.Resolve.Properties[prop]))
		}
		if c.Resolve.RecordID {
			p.Gives = append(p.Gives, recordID)
		}
	}
	return p
}

func (r *Resolve) sortedProperties() []string { return slices.Sorted(maps.Keys(r.Properties)) }

func (r *Resolve) validate(p *vendorkit.Problems) {
	if len(r.Properties) == 0 && !r.RecordID {
		p.Add("resolve", "name properties to read, or record_id: true (or leave resolve out)")
	}
	for _, prop := range r.sortedProperties() {
		if !propertyRe.MatchString(prop) {
			p.Add("resolve.properties", "%q is not a HubSpot property's internal name (letters, digits and '_', such as app_user_id)", prop)
			continue
		}
		k, err := erasure.ParseKind(r.Properties[prop])
		if err != nil {
			p.Add("resolve.properties."+prop, "%q is not an identifier kind: use email, phone or user_ids.<namespace> (lower-case letters, digits, '-' or '_')", r.Properties[prop])
			continue
		}
		r.Properties[prop] = string(k)
	}
}

// Validate checks the config at start-up and fills in defaults.
func (c *Config) Validate() error {
	var p vendorkit.Problems
	p.BaseURL(&c.BaseURL, vendorkit.URLRule{Default: DefaultBaseURL})
	p.Secret("access_token", c.AccessToken, "a private app token")
	p.Namespace("user_id_system", c.UserIDSystem)
	if c.AccountTimeZone != "" {
		if _, err := time.LoadLocation(c.AccountTimeZone); err != nil {
			p.Add("account_time_zone", "%q is not a known IANA time zone (such as Europe/Berlin)", c.AccountTimeZone)
		}
	}
	if c.Resolve != nil {
		c.Resolve.validate(&p)
	}
	return p.Err()
}

type conn struct {
	base   string
	system string
	loc    *time.Location
	http   *vendorhttp.Client
	now    func() time.Time
}

// resolver is a conn whose instance has a resolve block.
type resolver struct {
	*conn
	props    []string // property internal names, sorted
	kinds    map[string]connectors.Kind
	recordID bool
}

func init() {
	// HubSpot lets a private app make 100 requests per 10 seconds (190 on
	// Professional and Enterprise). The runtime's rate counts HubSpot
	// requests (vendorhttp announces each); an erasure makes four to six,
	// more for archived contacts.
	connectors.Register("hubspot", "HubSpot CRM contacts, permanently deleted with HubSpot's GDPR delete",
		connectors.Limits{Concurrency: 4, RatePerSecond: 10, Burst: 10}, build)
}

func build(_ context.Context, name string, cfg Config, deps connectors.Deps) (connectors.Connector, error) {
	token, err := vendorkit.Reveal(deps, "access_token", cfg.AccessToken)
	if err != nil {
		return nil, err
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
	c := &conn{base: cfg.BaseURL, system: cfg.system(name), loc: loc, now: time.Now,
		http: vendorkit.Client(deps, "HubSpot", vendorkit.Bearer(token))}
	if cfg.Resolve == nil {
		return c, nil
	}
	r := &resolver{conn: c, props: cfg.Resolve.sortedProperties(), kinds: map[string]connectors.Kind{}, recordID: cfg.Resolve.RecordID}
	for p, k := range cfg.Resolve.Properties {
		r.kinds[p] = connectors.Kind(k)
	}
	return r, nil
}

// contact is a HubSpot contact found for the subject.
type contact struct {
	id       string // HubSpot's record id
	byEmail  bool   // found by the subject's email (else by record id)
	archived bool   // in HubSpot's recycle bin: restorable for 90 days
}

// maxArchived bounds how many archived contacts with one email an erasure
// purges: HubSpot keeps an email unique among live contacts only, so the
// recycle bin can hold several.
const maxArchived = 50

// Erase looks the subject up, live and archived, and GDPR-deletes each
// contact found. The lookup comes first because HubSpot's GDPR delete
// answers 204 for an unknown email too (and blocklists it), which would
// hide "not found". An archived contact is still held (HubSpot restores
// it for 90 days): it is GDPR-deleted by record id and looked up again,
// and one that stays is a permanent error.
func (c *conn) Erase(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	ctx = begin(ctx)
	found, skipped, err := c.find(ctx, s, nil)
	if err != nil {
		return connectors.Outcome{}, err
	}
	if skipped != nil {
		return connectors.NotFound(*skipped), nil
	}
	live, archived := split(found)
	evidence := []connectors.Evidence{{Kind: "lookup", Value: counts(found)}}
	var erased int64
	for _, ct := range live {
		ev, gone, err := c.gdprDelete(ctx, s, ct)
		if err != nil {
			return connectors.Outcome{}, err
		}
		if gone {
			erased++
		}
		evidence = append(evidence, ev)
	}
	// Archived contacts: the ones found, then any further ones with the
	// same email that the recycle bin still holds.
	purged := map[string]bool{}
	for i := 0; len(archived) > 0; i++ {
		ct := archived[0]
		archived = archived[1:]
		if purged[ct.id] || i >= maxArchived {
			return connectors.Outcome{}, connectors.Permanentf("HubSpot still lists an archived contact with the subject's email after GDPR-deleting %d; permanently delete the subject's contacts from HubSpot's recycle bin, then retry", len(purged))
		}
		ev, err := c.purgeArchived(ctx, s, ct)
		if err != nil {
			return connectors.Outcome{}, err
		}
		purged[ct.id] = true
		erased++
		evidence = append(evidence, ev)
		if ct.byEmail && len(archived) == 0 {
			more, ok, err := c.lookup(ctx, s.Email, true, true, nil)
			if err != nil {
				return connectors.Outcome{}, err
			}
			if ok {
				archived = append(archived, contact{id: more.ID, byEmail: true, archived: true})
			}
		}
	}
	return connectors.Erased(erased, evidence...), nil
}

func split(found []contact) (live, archived []contact) {
	for _, ct := range found {
		if ct.archived {
			archived = append(archived, ct)
		} else {
			live = append(live, ct)
		}
	}
	return live, archived
}

// counts says how many contacts were found, live and archived.
func counts(found []contact) string {
	live, archived := split(found)
	return connectors.Plural(len(live), "contact") + " found, " + connectors.Plural(len(archived), "archived contact") + " found"
}

// gdprDelete GDPR-deletes a live contact: by email when it was found by
// email (which also blocklists the address, so HubSpot forms and imports
// do not bring the person back), else by record id. gone is false when
// the contact went before the delete.
func (c *conn) gdprDelete(ctx context.Context, s connectors.Subject, ct contact) (ev connectors.Evidence, gone bool, err error) {
	body := map[string]string{"objectId": ct.id}
	if ct.byEmail && !ct.archived {
		body = map[string]string{"objectId": s.Email, "idProperty": "email"}
	}
	req, err := vendorhttp.JSONRequest(http.MethodPost, c.base+"/crm/v3/objects/contacts/gdpr-delete", body)
	if err != nil {
		return ev, false, err
	}
	resp, err := c.do(ctx, req, "GDPR delete", http.StatusNotFound)
	if err != nil {
		return ev, false, err
	}
	switch {
	case resp.Status == http.StatusNotFound:
		if _, err := notFound(resp); err != nil {
			return ev, false, err
		}
		return connectors.Evidence{Kind: "gdpr_delete", Value: "already gone" + correlation(resp)}, false, nil
	case resp.Status == http.StatusNoContent || resp.Status == http.StatusOK:
		return connectors.Evidence{Kind: "gdpr_delete", Value: strconv.Itoa(resp.Status) + correlation(resp)}, true, nil
	}
	return ev, false, connectors.Permanentf("HubSpot GDPR delete: unexpected status %d%s", resp.Status, correlation(resp))
}

// purgeArchived GDPR-deletes an archived contact by record id and checks
// that the recycle bin no longer holds it.
func (c *conn) purgeArchived(ctx context.Context, s connectors.Subject, ct contact) (connectors.Evidence, error) {
	ev, deleted, err := c.gdprDelete(ctx, s, ct)
	if err != nil {
		return ev, err
	}
	_, still, err := c.lookup(ctx, ct.id, false, true, nil)
	if err != nil {
		return ev, err
	}
	if !deleted || still {
		// ⚠ HubSpot does not document a GDPR delete of a contact in its
		// recycle bin; when it refuses one, a person purges it by hand.
		what := "answered that it does not exist"
		if deleted {
			what = "succeeded but the contact is still archived"
		}
		return ev, connectors.Permanentf("HubSpot GDPR delete of an archived contact (in the recycle bin, restorable for 90 days) %s; permanently delete it from HubSpot's recycle bin, then retry", what)
	}
	ev.Value = "archived contact: " + ev.Value
	return ev, nil
}

// Verify looks the subject up again, live and archived: every contact
// still found remains (an archived one can be restored).
func (c *conn) Verify(ctx context.Context, s connectors.Subject) (connectors.Verification, error) {
	ctx = begin(ctx)
	found, skipped, err := c.find(ctx, s, nil)
	if err != nil {
		return connectors.Verification{}, err
	}
	if skipped != nil {
		return connectors.Verification{Evidence: []connectors.Evidence{*skipped}}, nil
	}
	return connectors.Verification{Remaining: int64(len(found)),
		Evidence: []connectors.Evidence{{Kind: "lookup_after_erase", Value: counts(found)}}}, nil
}

var recordIDRe = regexp.MustCompile(`^[0-9]{1,20}$`)

// find looks the subject up by HubSpot record id and by email, live and
// archived, and returns the distinct contacts found; skipped is set when
// the subject has neither identifier. props, when set, are read too, and
// each contact's values are passed to got.
func (c *conn) find(ctx context.Context, s connectors.Subject, props []string, got ...func(contactBody)) (found []contact, skipped *connectors.Evidence, err error) {
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
	add := func(ct contact, b contactBody) {
		for i, f := range found {
			if f.id == ct.id {
				// The same contact found both ways is deleted once,
				// by email.
				found[i].byEmail = found[i].byEmail || ct.byEmail
				return
			}
		}
		found = append(found, ct)
		for _, g := range got {
			g(b)
		}
	}
	type key struct {
		v                 string
		byEmail, archived bool
	}
	var keys []key
	if id != "" {
		keys = append(keys, key{id, false, false}, key{id, false, true})
	}
	if s.Email != "" {
		keys = append(keys, key{s.Email, true, false}, key{s.Email, true, true})
	}
	for _, k := range keys {
		b, ok, err := c.lookup(ctx, k.v, k.byEmail, k.archived, props)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			add(contact{id: b.ID, byEmail: k.byEmail, archived: k.archived}, b)
		}
	}
	return found, nil, nil
}

// contactBody is the part of HubSpot's contact answer the connector reads.
type contactBody struct {
	ID         string             `json:"id"`
	Properties map[string]*string `json:"properties"`
	Archived   bool               `json:"archived"`
}

// lookup reads one contact by email or record id, live or (archived)
// from the recycle bin, with props.
func (c *conn) lookup(ctx context.Context, key string, byEmail, archived bool, props []string) (contactBody, bool, error) {
	q := url.Values{}
	if byEmail {
		q.Set("idProperty", "email")
	}
	if archived {
		q.Set("archived", "true")
	}
	if len(props) > 0 {
		q.Set("properties", strings.Join(props, ","))
	}
	u := c.base + "/crm/v3/objects/contacts/" + url.PathEscape(key)
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	op := "contact lookup"
	if archived {
		op = "archived contact lookup"
	}
	req, err := vendorhttp.JSONRequest(http.MethodGet, u, nil)
	if err != nil {
		return contactBody{}, false, err
	}
	resp, err := c.do(ctx, req, op, http.StatusNotFound)
	if err != nil {
		return contactBody{}, false, err
	}
	if resp.Status == http.StatusNotFound {
		_, err := notFound(resp)
		return contactBody{}, false, err
	}
	var body contactBody
	if err := resp.JSON(&body); err != nil {
		return contactBody{}, false, err
	}
	if !recordIDRe.MatchString(body.ID) {
		return contactBody{}, false, connectors.Retryable(fmt.Errorf("HubSpot %s: the answer (status %d) has no record id", op, resp.Status), 0)
	}
	if body.Archived != archived {
		return contactBody{}, false, connectors.Retryable(fmt.Errorf("HubSpot %s: the answer (status %d) is about a contact that is %s", op, resp.Status, map[bool]string{true: "archived", false: "not archived"}[body.Archived]), 0)
	}
	return body, true, nil
}

// Resolve looks the subject's contacts up by email, live and archived
// (an archived contact is still theirs, and erased too), and reports the
// configured properties and record ids. Finding nothing is no error.
func (r *resolver) Resolve(ctx context.Context, s connectors.Subject) (connectors.Resolution, error) {
	var res connectors.Resolution
	if s.Email == "" {
		return res, nil
	}
	ctx = begin(ctx)
	lookupBy := connectors.Subject{Email: s.Email} // by email only, as the plan says
	var read int
	found, _, err := r.find(ctx, lookupBy, r.props, func(b contactBody) {
		if r.recordID {
			res.Add(connectors.UserIDKind(r.system), b.ID)
		}
		for _, p := range r.props {
			v := b.Properties[p]
			if v == nil || strings.TrimSpace(*v) == "" {
				continue
			}
			read++
			values := []string{strings.TrimSpace(*v)}
			if p == "hs_additional_emails" {
				values = strings.Split(*v, ";")
			}
			for _, one := range values {
				res.Add(r.kinds[p], strings.TrimSpace(one))
			}
		}
	})
	if err != nil {
		return connectors.Resolution{}, err
	}
	res.Evidence = []connectors.Evidence{{Kind: "hubspot_lookup", Value: "by email: " + counts(found) + "; " + connectors.Plural(read, "property value") + " read"}}
	return res, nil
}

var _ connectors.Resolver = (*resolver)(nil)

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
//
// A short rate limit (not the daily one) met after the call already got
// answers is waited out here, up to maxInlineWaits times: an erasure
// makes several requests, and giving up on the last one would throw the
// others away and meet the same limit at the same point on every retry.
func (c *conn) do(ctx context.Context, req *http.Request, op string, ok ...int) (*vendorhttp.Response, error) {
	progress, _ := ctx.Value(progressKey{}).(*int)
	for waits := 0; ; waits++ {
		resp, err := c.http.Do(ctx, req, op, ok...)
		if err == nil || resp == nil {
			if err == nil && progress != nil {
				*progress++
			}
			return resp, err
		}
		e := parseError(resp.Body)
		if resp.Status != http.StatusTooManyRequests {
			return nil, c.classify(op, resp, e, err)
		}
		limited := c.rateLimited(op, resp, e)
		_, after := connectors.Classify(limited)
		if progress == nil || *progress == 0 || waits >= maxInlineWaits || after > maxInlineWait || e.PolicyName == "DAILY" {
			return nil, limited
		}
		select {
		case <-time.After(after):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, limited
			}
			req = req.Clone(ctx)
			req.Body = body
		}
	}
}

// Inline waits for a short rate limit (see do).
const (
	maxInlineWaits = 3
	maxInlineWait  = 10 * time.Second
)

// progressKey marks a context whose call counts HubSpot's answers (see
// do); begin starts the count.
type progressKey struct{}

func begin(ctx context.Context) context.Context {
	return context.WithValue(ctx, progressKey{}, new(int))
}

// classify adds HubSpot's own classification to a refused request.
func (c *conn) classify(op string, resp *vendorhttp.Response, e apiError, err error) error {
	perm, after := connectors.Classify(err)
	msg := errors.Unwrap(err).Error()
	switch {
	case resp.Status == http.StatusUnauthorized:
		msg = fmt.Sprintf("HubSpot %s: 401: the access token was refused; check access_token (a private app token, not revoked)", op)
	case resp.Status == http.StatusForbidden:
		msg = fmt.Sprintf("HubSpot %s: 403: the private app lacks a permission; it needs the crm.objects.contacts.read and crm.objects.contacts.write scopes", op)
	}
	return &connectors.Error{Permanent: perm, RetryAfter: after, Err: errors.New(msg + details(e))}
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
