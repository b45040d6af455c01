// Package hubspotfake is a local HubSpot CRM API for tests: contact
// lookups (live and archived) and GDPR deletes as HubSpot documents them,
// archived contacts (HubSpot's recycle bin), HubSpot's rate-limit answer
// and faults to inject.
//
//	f := hubspotfake.Start(t, hubspotfake.Options{})
//	f.Seed(connectors.Subject{Email: "ada@example.com"})
//	c := connectortest.Build(t, "hubspot", "crm", f.Config())
package hubspotfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// DefaultToken is the private app token a fake accepts until SetToken.
const DefaultToken = "pat-eu1-test-token"

// UserIDSystem is the subject.user_ids key Config names for HubSpot record
// ids. It is not fakevendor.UserIDSystem on purpose: an application's
// user id is not a HubSpot record id (digits), which the connector refuses.
const UserIDSystem = "hubspot"

// AppUserIDProperty is the contact property Seed stores the subject's
// fakevendor.UserIDSystem id in, for resolver tests.
const AppUserIDProperty = "app_user_id"

// ResolveConfig is a resolve block reading AppUserIDProperty as
// user_ids.<fakevendor.UserIDSystem> and the record id as
// user_ids.<UserIDSystem>; add it with ConfigWith.
const ResolveConfig = "resolve:\n  properties:\n    " + AppUserIDProperty + ": user_ids." + fakevendor.UserIDSystem + "\n  record_id: true"

// ArchivedDelete is how a fake answers a GDPR delete of an archived
// contact by record id. HubSpot does not document it (⚠): the fake can
// play each reading.
type ArchivedDelete string

// Readings of a GDPR delete of an archived contact.
const (
	// ArchivedPurged: the contact leaves the recycle bin for good (the
	// default).
	ArchivedPurged ArchivedDelete = "purged"
	// ArchivedNotFound: 404 OBJECT_NOT_FOUND, the contact stays archived.
	ArchivedNotFound ArchivedDelete = "not_found"
	// ArchivedIgnored: 204, but the contact stays archived.
	ArchivedIgnored ArchivedDelete = "ignored"
)

// Options tunes a fake: its rate limit answers as HubSpot does (429 with
// a RATE_LIMIT body, policy SECONDLY, and the X-HubSpot-RateLimit-*
// headers, no Retry-After). Polls is unused: HubSpot's GDPR delete is
// synchronous.
type Options = fakevendor.Options

// Fake follows HubSpot's contact lookup and GDPR delete contract
// (docs/connectors/hubspot.md, VENDOR_APIS.md): Bearer private app
// tokens, 404 OBJECT_NOT_FOUND bodies that quote what was looked up (as
// HubSpot's do), 204 GDPR deletes that blocklist unknown emails, and
// 429s with HubSpot's RATE_LIMIT body and X-HubSpot-RateLimit-* headers.
// A plain DELETE archives a contact: it goes to the recycle bin, where
// reads see it only with archived=true (and then only it), and Count
// still counts it; an email stays unique among live contacts only.
type Fake struct {
	fakevendor.Controls

	mu             sync.Mutex
	token          *fakevendor.Key
	contacts       map[string]*hsContact // record id → contact
	nextID         int
	blocklist      []string
	archivedDelete ArchivedDelete
}

type hsContact struct {
	email    string
	props    map[string]string
	archived bool
}

var _ connectortest.RecoverableVendor = (*Fake)(nil)

// correlationID is a fresh id, unique across fakes, as HubSpot's are.
func correlationID() string { return uuid.NewString() }

// Start starts a fake that stops when the test ends.
func Start(t testing.TB, opt Options) *Fake {
	t.Helper()
	f := &Fake{token: fakevendor.NewKey(DefaultToken), contacts: map[string]*hsContact{}, nextID: 1001, archivedDelete: ArchivedPurged}
	srv := fakevendor.Start(t, opt, fakevendor.Vendor{TooMany: TooMany("SECONDLY", 0), Auth: fakevendor.BearerAuth(f.token, Unauthorized)})
	f.Controls = srv.Controls()
	srv.Handle("GET /crm/v3/objects/contacts/{contactId}", f.get)
	srv.Handle("DELETE /crm/v3/objects/contacts/{contactId}", f.archive)
	srv.Handle("POST /crm/v3/objects/contacts/gdpr-delete", f.gdprDelete)
	return f
}

// AnswerArchivedDelete sets how a GDPR delete of an archived contact is
// answered (default ArchivedPurged).
func (f *Fake) AnswerArchivedDelete(a ArchivedDelete) { f.locked(func() { f.archivedDelete = a }) }

// Token is the token the fake accepts.
func (f *Fake) Token() string { return f.token.Get() }

// SetToken changes the token the fake accepts (another HubSpot account).
func (f *Fake) SetToken(token string) { f.token.Set(token) }

// Config is a hubspot connector config against f. Subjects are found by
// Email; a HubSpot record id would be read from UserIDs["hubspot"].
func (f *Fake) Config() string {
	return fmt.Sprintf("base_url: %s\naccess_token: %s\nuser_id_system: %s\n", f.URL(), f.Token(), UserIDSystem)
}

// ConfigWith is Config with top-level keys set (fakevendor.MergeYAML).
func (f *Fake) ConfigWith(lines ...string) string { return fakevendor.MergeYAML(f.Config(), lines...) }

// Seed stores a contact with the subject's email (it needs one) and, in
// AppUserIDProperty, its fakevendor.UserIDSystem id if it has one.
func (f *Fake) Seed(s connectors.Subject) int64 {
	id := f.Add(fakevendor.NeedEmail("hubspotfake: Seed", s))
	if v := s.UserIDs[fakevendor.UserIDSystem]; v != "" {
		f.SetProperty(id, AppUserIDProperty, v)
	}
	return 1
}

// SeedRecoverable stores an archived contact with the subject's email: a
// contact someone deleted the ordinary way, restorable from HubSpot's
// recycle bin for 90 days.
func (f *Fake) SeedRecoverable(s connectors.Subject) int64 {
	f.Archive(f.Add(fakevendor.NeedEmail("hubspotfake: SeedRecoverable", s)))
	return 1
}

// Count is how many contacts hold the subject's email, archived ones
// included: HubSpot can restore them.
func (f *Fake) Count(s connectors.Subject) int64 { return f.CountEmail(s.Email) }

// Add stores a live contact and returns its record id.
func (f *Fake) Add(email string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := strconv.Itoa(f.nextID)
	f.nextID++
	f.contacts[id] = &hsContact{email: strings.ToLower(email), props: map[string]string{}}
	return id
}

// SetProperty sets a property of contact id.
func (f *Fake) SetProperty(id, name, value string) {
	f.locked(func() { f.contacts[id].props[name] = value })
}

// Archive moves contact id to the recycle bin, as a plain DELETE does.
func (f *Fake) Archive(id string) { f.locked(func() { f.contacts[id].archived = true }) }

// CountEmail is how many contacts hold email, archived ones included.
func (f *Fake) CountEmail(email string) int64 { return int64(len(f.RecordIDs(email))) }

// CountArchived is how many archived contacts hold email.
func (f *Fake) CountArchived(email string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return int64(len(f.ids(email, func(c *hsContact) bool { return c.archived })))
}

// RecordIDs lists the record ids of the contacts holding email, archived
// ones included, in order.
func (f *Fake) RecordIDs(email string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ids(email, func(*hsContact) bool { return true })
}

// locked runs fn with f.mu held.
func (f *Fake) locked(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

// ids lists the record ids of the contacts holding email that keep
// accepts, oldest first; f.mu is held.
func (f *Fake) ids(email string, keep func(*hsContact) bool) []string {
	var ids []string
	for id, c := range f.contacts {
		if email != "" && strings.EqualFold(c.email, email) && keep(c) {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	})
	return ids
}

// Blocklisted lists the emails a GDPR delete blocklisted without a contact.
func (f *Fake) Blocklisted() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.blocklist...)
}

// byEmail finds the contact with email among the live (or the archived)
// ones: the oldest, when the recycle bin holds several.
func (f *Fake) byEmail(email string, archived bool) (string, bool) {
	ids := f.ids(email, func(c *hsContact) bool { return c.archived == archived })
	if len(ids) == 0 {
		return "", false
	}
	return ids[0], true
}

func hubspotError(w http.ResponseWriter, status int, category, message string, context map[string][]string) {
	w.Header().Set("X-HubSpot-Correlation-Id", correlationID())
	fakevendor.JSON(w, status, map[string]any{
		"status": "error", "message": message, "correlationId": correlationID(),
		"category": category, "context": context, "errors": []any{}, "links": map[string]string{},
	})
}

// get is GET /crm/v3/objects/contacts/{contactId}[?idProperty=email]
// [&archived=true][&properties=a,b]: live contacts, or with archived=true
// archived ones only.
func (f *Fake) get(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("contactId")
	q := r.URL.Query()
	archived := q.Get("archived") == "true"
	if a := q.Get("archived"); a != "" && a != "true" && a != "false" {
		hubspotError(w, 400, "VALIDATION_ERROR", "archived must be true or false", nil)
		return
	}
	f.mu.Lock()
	var id string
	var ok bool
	switch q.Get("idProperty") {
	case "email":
		id, ok = f.byEmail(key, archived)
	case "", "hs_object_id":
		c := f.contacts[key]
		ok = c != nil && c.archived == archived
		id = key
	default:
		f.mu.Unlock()
		hubspotError(w, 400, "VALIDATION_ERROR", "Property "+q.Get("idProperty")+" is not a unique identifier", nil)
		return
	}
	if !ok {
		f.mu.Unlock()
		// HubSpot's 404 quotes the key it was given: the email.
		hubspotError(w, 404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.", map[string][]string{"id": {key}})
		return
	}
	c := f.contacts[id]
	now := time.Now().UTC().Format(time.RFC3339)
	props := map[string]any{"email": c.email, "hs_object_id": id, "createdate": now, "lastmodifieddate": now}
	if list := q.Get("properties"); list != "" {
		for p := range strings.SplitSeq(list, ",") {
			// A property the contact has no value for comes back null;
			// one that does not exist is left out.
			if v, ok := c.props[p]; ok {
				props[p] = v
			} else if p == AppUserIDProperty || p == "hs_additional_emails" {
				props[p] = nil
			}
		}
	}
	body := map[string]any{"id": id, "properties": props, "createdAt": now, "updatedAt": now, "archived": c.archived}
	if c.archived {
		body["archivedAt"] = now
	}
	f.mu.Unlock()
	w.Header().Set("X-HubSpot-Correlation-Id", correlationID())
	fakevendor.JSON(w, 200, body)
}

// archive is DELETE /crm/v3/objects/contacts/{contactId}: the contact goes
// to the recycle bin.
func (f *Fake) archive(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.contacts[r.PathValue("contactId")]
	if c != nil {
		c.archived = true
	}
	// HubSpot answers 204 for an id it does not hold too.
	w.WriteHeader(http.StatusNoContent)
}

// gdprDelete is POST /crm/v3/objects/contacts/gdpr-delete.
func (f *Fake) gdprDelete(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		hubspotError(w, 415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json", nil)
		return
	}
	var body struct {
		ObjectID   *string `json:"objectId"`
		IDProperty string  `json:"idProperty"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || body.ObjectID == nil || *body.ObjectID == "" {
		hubspotError(w, 400, "VALIDATION_ERROR", "Invalid input JSON: objectId is required", nil)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch body.IDProperty {
	case "email":
		// ⚠ By email, only a live contact is deleted (the fake's
		// reading); an archived one with that email stays.
		if id, ok := f.byEmail(*body.ObjectID, false); ok {
			delete(f.contacts, id)
		} else {
			f.blocklist = append(f.blocklist, strings.ToLower(*body.ObjectID))
		}
	case "":
		c, ok := f.contacts[*body.ObjectID]
		if !ok || (c.archived && f.archivedDelete == ArchivedNotFound) {
			hubspotError(w, 404, "OBJECT_NOT_FOUND", "Object not found", map[string][]string{"id": {*body.ObjectID}})
			return
		}
		if !c.archived || f.archivedDelete == ArchivedPurged {
			delete(f.contacts, *body.ObjectID)
		}
	default:
		hubspotError(w, 400, "VALIDATION_ERROR", "idProperty must be email", nil)
		return
	}
	w.Header().Set("X-HubSpot-Correlation-Id", correlationID())
	w.WriteHeader(http.StatusNoContent)
}

// TooMany answers as HubSpot does over a rate limit: 429 with
// {"status":"error","errorType":"RATE_LIMIT","policyName":…} and the
// X-HubSpot-RateLimit-* headers; retryAfter > 0 adds a Retry-After (as a
// proxy in front of HubSpot might).
func TooMany(policy string, retryAfter int) fakevendor.Fault {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-HubSpot-RateLimit-Daily", "250000")
		h.Set("X-HubSpot-RateLimit-Secondly", "10")
		h.Set("X-HubSpot-RateLimit-Secondly-Remaining", "0")
		if policy == "DAILY" {
			h.Set("X-HubSpot-RateLimit-Daily-Remaining", "0")
		} else {
			h.Set("X-HubSpot-RateLimit-Daily-Remaining", "249000")
		}
		if retryAfter > 0 {
			h.Set("Retry-After", strconv.Itoa(retryAfter))
		}
		fakevendor.JSON(w, http.StatusTooManyRequests, map[string]any{
			"status": "error", "message": "You have reached your " + strings.ToLower(policy) + " limit.",
			"errorType": "RATE_LIMIT", "correlationId": correlationID(), "policyName": policy,
			"requestId": correlationID(),
		})
	}
}

// Unauthorized is HubSpot's 401 for a refused token.
func Unauthorized(w http.ResponseWriter, r *http.Request) {
	hubspotError(w, 401, "INVALID_AUTHENTICATION", "Authentication credentials not found.", nil)
}

// MissingScopes is HubSpot's 403 for a private app without the scopes.
func MissingScopes(w http.ResponseWriter, r *http.Request) {
	hubspotError(w, 403, "MISSING_SCOPES", "This app hasn't been granted all required scopes to make this call.", nil)
}

// Internal is a 502 from HubSpot.
func Internal(w http.ResponseWriter, r *http.Request) {
	hubspotError(w, 502, "", "internal error", nil)
}
