// Package intercom erases a person's Intercom contacts (users and leads),
// found by email or external_id, with Intercom's permanent contact delete
// (DELETE /contacts/{id}), archived users Intercom's search cannot see
// included.
package intercom

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/vendorhttp"
	"github.com/lethe-dev/lethe/connectors/vendorkit"
)

// DefaultBaseURL is Intercom's US region; EU workspaces use
// https://api.eu.intercom.io and Australian ones https://api.au.intercom.io.
const DefaultBaseURL = "https://api.intercom.io"

// DefaultVersion is the Intercom-Version header sent unless
// intercom_version names another.
const DefaultVersion = "2.14"

func init() {
	// Private apps may make 10,000 calls a minute (25,000 per workspace),
	// spread over 10-second windows (about 166 a second): 20 a second
	// leaves room for the workspace's other apps.
	connectors.Register("intercom", "Intercom contacts (users and leads), permanently deleted",
		connectors.Limits{Concurrency: 4, RatePerSecond: 20, Burst: 20}, build)
}

// Config is the `config:` block of an intercom instance.
//
//	access_token: {env: INTERCOM_TOKEN}
//	base_url: https://api.eu.intercom.io
//	user_id_system: app
type Config struct {
	// AccessToken is the access token of an Intercom app of the workspace.
	AccessToken config.Secret `yaml:"access_token"`
	BaseURL     string        `yaml:"base_url"`
	// IntercomVersion is the API version sent as Intercom-Version.
	IntercomVersion string `yaml:"intercom_version"`
	// UserIDSystem is the subject.user_ids key holding the Intercom
	// external_id (the application's user id); default the instance name.
	UserIDSystem string `yaml:"user_id_system"`
	// ArchivedLookup is how archived users are found: "off" (the
	// default: they are not, and the evidence says so) or "probe" (create
	// a user with the external_id; Intercom's 409 names an archived one).
	// Off by default: the probe's user exists for a moment, and webhooks
	// or workflows acting on new users would see the person's id.
	ArchivedLookup string `yaml:"archived_lookup"`
}

// versionRe is an Intercom API version; archived contacts can be deleted
// from 2.6 on, so older ones are refused.
var versionRe = regexp.MustCompile(`^(2\.([6-9]|[1-9][0-9])|[3-9]\.[0-9]{1,2}|Unstable)$`)

// Validate fills in defaults and reports every problem at once, each naming its key.
func (c *Config) Validate() error {
	var p vendorkit.Problems
	p.Secret("access_token", c.AccessToken, "the access token of an Intercom app with read and write access to users and companies")
	p.BaseURL(&c.BaseURL, vendorkit.URLRule{Default: DefaultBaseURL, Example: "https://api.eu.intercom.io"})
	if c.IntercomVersion == "" {
		c.IntercomVersion = DefaultVersion
	} else if !versionRe.MatchString(c.IntercomVersion) {
		p.Add("intercom_version", "must be an Intercom API version 2.6 or later, such as %s, or Unstable", DefaultVersion)
	}
	p.Namespace("user_id_system", c.UserIDSystem)
	p.OneOf("archived_lookup", &c.ArchivedLookup, "off", "probe")
	return p.Err()
}

// Plan: either the email or the external_id finds contacts; an email
// also tells the external_id of the users it finds.
func (c Config) Plan(name string) connectors.Plan {
	return connectors.EmailResolvesPlan(connectors.UserIDKind(vendorkit.System(c.UserIDSystem, name)))
}

type conn struct {
	api    *vendorhttp.Client
	base   string
	system string
	probe  bool
}

func build(_ context.Context, name string, cfg Config, deps connectors.Deps) (connectors.Connector, error) {
	token, err := vendorkit.Reveal(deps, "access_token", cfg.AccessToken)
	if err != nil {
		return nil, err
	}
	bearer := vendorkit.Bearer(token)
	api := vendorkit.Client(deps, "Intercom", func(r *http.Request) { bearer(r); r.Header.Set("Intercom-Version", cfg.IntercomVersion) })
	api.ResetHeader = "X-RateLimit-Reset" // a unix time
	// A 429 without a reset waits out Intercom's 10-second window.
	api.MinRetryAfter = 10 * time.Second
	return &conn{api: api, base: cfg.BaseURL, system: vendorkit.System(cfg.UserIDSystem, name),
		probe: cfg.ArchivedLookup == "probe"}, nil
}

// contact is the part of Intercom's contact object the connector reads.
type contact struct {
	Type       string `json:"type"`
	ID         string `json:"id"`
	Role       string `json:"role"`
	Email      string `json:"email"`
	ExternalID string `json:"external_id"`
}

// idRe is what an Intercom contact id looks like; it goes into paths and
// job references, so nothing else may pass.
var idRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// found is what a look-up found: live contacts (users and leads) and the
// ids of archived users, which only the probe finds.
type found struct {
	live     []contact
	archived []string
	archive  string // how archived users were looked for
}

func (f found) String() string {
	users := 0
	for _, ct := range f.live {
		if ct.Role == "user" {
			users++
		}
	}
	return fmt.Sprintf("%s found (%s, %s); %s", connectors.Plural(len(f.live), "contact"), connectors.Plural(users, "user"),
		connectors.Plural(len(f.live)-users, "lead"), f.archive)
}

// find searches by email and external_id and, with the probe, looks for
// an archived user with the external_id.
func (c *conn) find(ctx context.Context, s connectors.Subject) (found, error) {
	uid := s.UserIDs[c.system]
	if s.Email == "" && uid == "" {
		return found{}, connectors.Permanentf("the subject has no email and no user id (user_ids.%s) to find Intercom contacts by", c.system)
	}
	var f found
	for _, q := range [][2]string{{"email", s.Email}, {"external_id", uid}} {
		if q[1] == "" {
			continue
		}
		cts, err := c.search(ctx, q[0], q[1])
		if err != nil {
			return found{}, err
		}
		for _, ct := range cts {
			f.add(ct)
		}
	}
	switch {
	case !c.probe:
		f.archive = "archived users not looked for (archived_lookup: off)"
	case uid == "":
		f.archive = "archived contacts not looked for (no user id; Intercom's search omits them)"
	case f.has(uid):
		f.archive = "the external_id belongs to a live user"
	default:
		return f, c.probeArchived(ctx, uid, &f)
	}
	return f, nil
}

func (f *found) add(ct contact) {
	for _, g := range f.live {
		if g.ID == ct.ID {
			return
		}
	}
	f.live = append(f.live, ct)
}

func (f *found) has(externalID string) bool {
	for _, ct := range f.live {
		if ct.ExternalID == externalID {
			return true
		}
	}
	return false
}

// maxPages bounds a search's pages (50 contacts each).
const maxPages = 20

// search lists the live contacts whose field equals value, every page.
// Intercom's search omits archived contacts.
func (c *conn) search(ctx context.Context, field, value string) ([]contact, error) {
	var out []contact
	pagination := map[string]any{"per_page": 50}
	for range maxPages {
		body := map[string]any{"query": map[string]string{"field": field, "operator": "=", "value": value}, "pagination": pagination}
		var list struct {
			Type  string    `json:"type"`
			Data  []contact `json:"data"`
			Pages struct {
				Next *struct {
					StartingAfter string `json:"starting_after"`
				} `json:"next"`
			} `json:"pages"`
		}
		if _, err := c.send(ctx, http.MethodPost, "/contacts/search", body, &list, "contact search by "+field); err != nil {
			return nil, err
		}
		if list.Type != "list" {
			return nil, connectors.Permanentf("Intercom contact search by %s: the answer is not a contact list; check base_url points at the Intercom API", field)
		}
		for _, ct := range list.Data {
			if !idRe.MatchString(ct.ID) {
				return nil, connectors.Retryable(fmt.Errorf("intercom contact search by %s: a contact without a valid id", field), 0)
			}
			// Only exact matches: a search that matched more loosely must
			// not erase somebody else.
			if (field == "email" && strings.EqualFold(ct.Email, value)) || (field == "external_id" && ct.ExternalID == value) {
				out = append(out, ct)
			}
		}
		if list.Pages.Next == nil || list.Pages.Next.StartingAfter == "" {
			return out, nil
		}
		pagination = map[string]any{"per_page": 50, "starting_after": list.Pages.Next.StartingAfter}
	}
	return nil, connectors.Permanentf("Intercom contact search by %s: more than %d contacts match; erase them in Intercom by hand", field, maxPages*50)
}

var conflictRe = regexp.MustCompile(`^(An archived|A) contact matching those details already exists with id=([A-Za-z0-9_-]{1,64})$`)

// probeArchived asks Intercom to create a user with the external_id: its
// 409 names the archived (or live, not yet searchable) user holding it.
// A user created instead is deleted at once.
func (c *conn) probeArchived(ctx context.Context, uid string, f *found) error {
	var created contact
	resp, err := c.send(ctx, http.MethodPost, "/contacts", map[string]string{"role": "user", "external_id": uid}, &created,
		"archived user probe", http.StatusConflict)
	if err != nil {
		return err
	}
	if resp.Status == http.StatusConflict {
		e := parseError(resp.Body)
		m := conflictRe.FindStringSubmatch(e.message)
		switch {
		case m == nil:
			return connectors.Retryable(fmt.Errorf("intercom archived user probe: 409 without a contact id%s", e), 0)
		case m[1] == "A":
			f.add(contact{ID: m[2], Role: "user", ExternalID: uid})
			f.archive = "the external_id belongs to a live user not yet searchable"
		default:
			f.archived = append(f.archived, m[2])
			f.archive = "1 archived user found by probe"
		}
		return nil
	}
	if !idRe.MatchString(created.ID) {
		return connectors.Retryable(fmt.Errorf("intercom archived user probe: the created contact has no valid id (status %d)", resp.Status), 0)
	}
	if _, err := c.deleteContact(ctx, created.ID, "probe contact delete"); err != nil {
		return err
	}
	f.archive = "no archived user (the probe's contact was deleted)"
	return nil
}

// deleteContact permanently deletes a contact, archived ones included
// (DELETE /contacts/{id}, API 2.6 and later); gone is false when Intercom
// answered not_found.
func (c *conn) deleteContact(ctx context.Context, id, op string) (gone bool, err error) {
	var ack struct {
		ID      string `json:"id"`
		Deleted bool   `json:"deleted"`
	}
	resp, err := c.send(ctx, http.MethodDelete, "/contacts/"+url.PathEscape(id), nil, &ack, op, http.StatusNotFound)
	if err != nil {
		return false, err
	}
	if resp.Status == http.StatusNotFound {
		return false, notFound(op, resp)
	}
	if !ack.Deleted || ack.ID != id {
		return false, connectors.Retryable(fmt.Errorf("intercom %s: not acknowledged as deleted (status %d)", op, resp.Status), 0)
	}
	return true, nil
}

// Erase permanently deletes every contact found, live and archived, with
// DELETE /contacts/{id}, and counts those Intercom answered deleted.
func (c *conn) Erase(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	f, err := c.find(ctx, s)
	if err != nil {
		return connectors.Outcome{}, err
	}
	ev := []connectors.Evidence{{Kind: "lookup", Value: f.String()}}
	archived := 0
	for _, id := range f.archived {
		gone, err := c.deleteContact(ctx, id, "archived user delete")
		if err != nil {
			return connectors.Outcome{}, err
		}
		if !gone { // the probe has just named it: it is there
			return connectors.Outcome{}, connectors.Permanentf("Intercom archived user delete: not_found for the archived user the probe found; " +
				"check that intercom_version is 2.6 or later, or delete the person in Intercom (Settings, Deleting people data)")
		}
		archived++
	}
	live := 0
	for _, ct := range f.live {
		gone, err := c.deleteContact(ctx, ct.ID, "contact delete")
		if err != nil {
			return connectors.Outcome{}, err
		}
		if gone { // not_found: deleted since the search, by someone else
			live++
		}
	}
	if n := live + archived; n > 0 {
		ev = append(ev, connectors.Evidence{Kind: "contact_delete", Value: fmt.Sprintf("%s permanently deleted (%d archived); "+
			"Intercom answered deleted: true and support can restore a contact for 7 days, then the data is destroyed", connectors.Plural(n, "contact"), archived)})
	}
	return connectors.Erased(int64(live+archived), ev...), nil
}

// Verify looks the person up again, the archived probe included: every
// contact still found remains.
func (c *conn) Verify(ctx context.Context, s connectors.Subject) (connectors.Verification, error) {
	f, err := c.find(ctx, s)
	if err != nil {
		return connectors.Verification{}, err
	}
	return connectors.Verification{Remaining: int64(len(f.live) + len(f.archived)),
		Evidence: []connectors.Evidence{{Kind: "lookup_after_erase", Value: f.String()}}}, nil
}

// Resolve gives the external_id of each user an email finds.
func (c *conn) Resolve(ctx context.Context, s connectors.Subject) (connectors.Resolution, error) {
	var r connectors.Resolution
	if s.Email == "" {
		return r, nil
	}
	cts, err := c.search(ctx, "email", s.Email)
	if err != nil {
		return r, err
	}
	for _, ct := range cts {
		if ct.Role == "user" {
			r.Add(connectors.UserIDKind(c.system), ct.ExternalID)
		}
	}
	r.Evidence = []connectors.Evidence{{Kind: "lookup", Value: connectors.Plural(len(cts), "contact") + " found by email"}}
	return r, nil
}

// apiError is Intercom's error list; the message can quote what was sent,
// so only the code and the request id reach an error.
type apiError struct {
	typ, code, message, requestID string
}

var codeRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

func parseError(b []byte) apiError {
	var body struct {
		Type      string `json:"type"`
		RequestID string `json:"request_id"`
		Errors    []struct{ Code, Message string }
	}
	if json.Unmarshal(b, &body) != nil {
		return apiError{}
	}
	e := apiError{typ: body.Type}
	if codeRe.MatchString(body.RequestID) {
		e.requestID = body.RequestID
	}
	if len(body.Errors) > 0 {
		e.message = body.Errors[0].Message
		if codeRe.MatchString(body.Errors[0].Code) {
			e.code = body.Errors[0].Code
		}
	}
	return e
}

// String names the code and request id for staff and Intercom support.
func (e apiError) String() string {
	var parts []string
	if e.code != "" {
		parts = append(parts, "code "+e.code)
	}
	if e.requestID != "" {
		parts = append(parts, "request_id "+e.requestID)
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// notFound accepts Intercom's own "not found" and refuses any other 404
// (a wrong base_url or proxy), which proves nothing about the contact.
func notFound(op string, resp *vendorhttp.Response) error {
	if e := parseError(resp.Body); e.typ == "error.list" && e.code == "not_found" {
		return nil
	}
	return connectors.Permanentf("Intercom %s: 404 that is not Intercom's not_found; check base_url points at the Intercom API", op)
}

// send is vendorhttp's Send with Intercom's error code and request id
// added, and refused credentials explained.
func (c *conn) send(ctx context.Context, method, path string, body, out any, op string, ok ...int) (*vendorhttp.Response, error) {
	resp, err := c.api.Send(ctx, method, c.base+path, body, out, op, ok...)
	if err == nil || resp == nil || resp.Status/100 == 2 {
		return resp, err
	}
	perm, after := connectors.Classify(err)
	e := parseError(resp.Body)
	explained := fmt.Errorf("%w%s", errors.Unwrap(err), e)
	switch resp.Status {
	case http.StatusUnauthorized:
		explained = fmt.Errorf("%s %s: 401: the access token was refused; check access_token (the app's token, not revoked)%s", c.api.Vendor, op, e)
	case http.StatusForbidden:
		explained = fmt.Errorf("%s %s: 403: the access token may not do this; check access_token (the app needs read and write access to users and companies)%s", c.api.Vendor, op, e)
	}
	return resp, &connectors.Error{Permanent: perm, RetryAfter: after, Err: explained}
}
