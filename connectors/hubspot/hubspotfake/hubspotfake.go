// Package hubspotfake is a local HubSpot CRM API for tests: contact
// lookups and GDPR deletes as HubSpot documents them, with HubSpot's
// rate-limit answer and faults to inject.
//
//	f := hubspotfake.Start(t, hubspotfake.Options{})
//	f.Seed(connectors.Subject{Email: "ada@example.com"})
//	c := connectortest.Build(t, "hubspot", "crm", f.Config())
package hubspotfake

import (
	"encoding/json"
	"fmt"
	"net/http"
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
// ids. It is not connectortest.UserIDSystem on purpose: an application's
// user id is not a HubSpot record id (digits), which the connector refuses.
const UserIDSystem = "hubspot"

// Options tunes a fake.
type Options struct {
	// RateLimit, when > 0, refuses requests beyond this many per second
	// (burst Burst, default 1) as HubSpot does: 429 with a RATE_LIMIT body
	// (policy SECONDLY) and the X-HubSpot-RateLimit-* headers, no
	// Retry-After.
	RateLimit float64
	Burst     int
	// Polls is unused: HubSpot's GDPR delete is synchronous.
	Polls int
}

// Fake follows HubSpot's contact lookup and GDPR delete contract
// (docs/connectors/hubspot.md, VENDOR_APIS.md): Bearer private app
// tokens, 404 OBJECT_NOT_FOUND bodies that quote what was looked up (as
// HubSpot's do), 204 GDPR deletes that blocklist unknown emails, and
// 429s with HubSpot's RATE_LIMIT body and X-HubSpot-RateLimit-* headers.
type Fake struct {
	fakevendor.Controls

	mu        sync.Mutex
	token     string
	contacts  map[string]string // record id → email
	nextID    int
	blocklist []string
}

var _ connectortest.Vendor = (*Fake)(nil)

// correlationID is a fresh id, unique across fakes, as HubSpot's are.
func correlationID() string { return uuid.NewString() }

// Start starts a fake that stops when the test ends.
func Start(t testing.TB, opt Options) *Fake {
	t.Helper()
	srv := fakevendor.New(t)
	f := &Fake{Controls: srv.Controls(), token: DefaultToken, contacts: map[string]string{}, nextID: 1001}
	srv.RequireAuth(func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer "+f.Token() }, Unauthorized)
	if opt.RateLimit > 0 {
		srv.RateLimit(opt.RateLimit, max(opt.Burst, 1), TooMany("SECONDLY", 0))
	}
	srv.Handle("GET /crm/v3/objects/contacts/{contactId}", f.get)
	srv.Handle("POST /crm/v3/objects/contacts/gdpr-delete", f.gdprDelete)
	return f
}

// Token is the token the fake accepts.
func (f *Fake) Token() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.token
}

// SetToken changes the token the fake accepts (another HubSpot account).
func (f *Fake) SetToken(token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.token = token
}

// Config is a hubspot connector config against f. Subjects are found by
// Email; a HubSpot record id would be read from UserIDs["hubspot"].
func (f *Fake) Config() string {
	return fmt.Sprintf("base_url: %s\naccess_token: %s\nuser_id_system: %s\n", f.URL(), f.Token(), UserIDSystem)
}

// ConfigWith is Config with top-level keys set (fakevendor.MergeYAML).
func (f *Fake) ConfigWith(lines ...string) string { return fakevendor.MergeYAML(f.Config(), lines...) }

// Seed stores a contact with the subject's email (it needs one).
func (f *Fake) Seed(s connectors.Subject) int64 {
	if s.Email == "" {
		panic("hubspotfake: Seed needs a subject with an email")
	}
	f.Add(s.Email)
	return 1
}

// Count is how many contacts hold the subject's email.
func (f *Fake) Count(s connectors.Subject) int64 { return f.CountEmail(s.Email) }

// Add stores a contact and returns its record id.
func (f *Fake) Add(email string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := strconv.Itoa(f.nextID)
	f.nextID++
	f.contacts[id] = strings.ToLower(email)
	return id
}

// CountEmail is how many contacts hold email.
func (f *Fake) CountEmail(email string) int64 {
	if email == "" {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for _, e := range f.contacts {
		if strings.EqualFold(e, email) {
			n++
		}
	}
	return n
}

// Blocklisted lists the emails a GDPR delete blocklisted without a contact.
func (f *Fake) Blocklisted() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.blocklist...)
}

func (f *Fake) byEmail(email string) (string, bool) {
	for id, e := range f.contacts {
		if e == strings.ToLower(email) {
			return id, true
		}
	}
	return "", false
}

func hubspotError(w http.ResponseWriter, status int, category, message string, context map[string][]string) {
	w.Header().Set("X-HubSpot-Correlation-Id", correlationID())
	fakevendor.JSON(w, status, map[string]any{
		"status": "error", "message": message, "correlationId": correlationID(),
		"category": category, "context": context, "errors": []any{}, "links": map[string]string{},
	})
}

// get is GET /crm/v3/objects/contacts/{contactId}[?idProperty=email].
func (f *Fake) get(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("contactId")
	f.mu.Lock()
	var id string
	var ok bool
	switch r.URL.Query().Get("idProperty") {
	case "email":
		id, ok = f.byEmail(key)
	case "", "hs_object_id":
		_, ok = f.contacts[key]
		id = key
	default:
		f.mu.Unlock()
		hubspotError(w, 400, "VALIDATION_ERROR", "Property "+r.URL.Query().Get("idProperty")+" is not a unique identifier", nil)
		return
	}
	email := f.contacts[id]
	f.mu.Unlock()
	if !ok {
		// HubSpot's 404 quotes the key it was given: the email.
		hubspotError(w, 404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.", map[string][]string{"id": {key}})
		return
	}
	w.Header().Set("X-HubSpot-Correlation-Id", correlationID())
	now := time.Now().UTC().Format(time.RFC3339)
	fakevendor.JSON(w, 200, map[string]any{
		"id":         id,
		"properties": map[string]string{"email": email, "hs_object_id": id, "createdate": now, "lastmodifieddate": now},
		"createdAt":  now, "updatedAt": now, "archived": false,
	})
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
		if id, ok := f.byEmail(*body.ObjectID); ok {
			delete(f.contacts, id)
		} else {
			f.blocklist = append(f.blocklist, strings.ToLower(*body.ObjectID))
		}
	case "":
		if _, ok := f.contacts[*body.ObjectID]; !ok {
			hubspotError(w, 404, "OBJECT_NOT_FOUND", "Object not found", map[string][]string{"id": {*body.ObjectID}})
			return
		}
		delete(f.contacts, *body.ObjectID)
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
