package hubspot

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// fakeHubSpot follows HubSpot's contact lookup and GDPR delete contract
// (docs/connectors/hubspot.md, VENDOR_APIS.md): Bearer private app
// tokens, 404 OBJECT_NOT_FOUND bodies that quote what was looked up (as
// HubSpot's do), 204 GDPR deletes that blocklist unknown emails, and
// 429s with HubSpot's RATE_LIMIT body and X-HubSpot-RateLimit-* headers.
type fakeHubSpot struct {
	*fakevendor.Server
	token string

	mu        sync.Mutex
	contacts  map[string]string // record id → email
	nextID    int
	blocklist []string
}

// correlationSeq makes correlation ids unique across fakes.
var correlationSeq atomic.Int64

func correlationID() string {
	return fmt.Sprintf("0a1b2c3d-0000-4000-8000-%012d", correlationSeq.Add(1))
}

func newFakeHubSpot(t *testing.T, token string) *fakeHubSpot {
	t.Helper()
	f := &fakeHubSpot{Server: fakevendor.New(t), token: token, contacts: map[string]string{}, nextID: 1001}
	f.RequireAuth(func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer "+f.token }, hubspotUnauthorized)
	// Private apps: 100 requests per 10 seconds.
	f.RateLimit(10, 100, hubspotTooMany("SECONDLY", 0))
	f.Handle("GET /crm/v3/objects/contacts/{contactId}", f.get)
	f.Handle("POST /crm/v3/objects/contacts/gdpr-delete", f.gdprDelete)
	return f
}

// config is a YAML config block for a connector against f.
func (f *fakeHubSpot) config(extra ...string) string {
	return fmt.Sprintf("base_url: %s\naccess_token: %s\n%s", f.URL, f.token, strings.Join(extra, "\n"))
}

func (f *fakeHubSpot) add(email string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := strconv.Itoa(f.nextID)
	f.nextID++
	f.contacts[id] = strings.ToLower(email)
	return id
}

func (f *fakeHubSpot) count(email string) int64 {
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

func (f *fakeHubSpot) blocklisted() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.blocklist...)
}

func (f *fakeHubSpot) byEmail(email string) (string, bool) {
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
func (f *fakeHubSpot) get(w http.ResponseWriter, r *http.Request) {
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
func (f *fakeHubSpot) gdprDelete(w http.ResponseWriter, r *http.Request) {
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

// hubspotTooMany answers as HubSpot does over a rate limit: 429 with
// {"status":"error","errorType":"RATE_LIMIT","policyName":…} and the
// X-HubSpot-RateLimit-* headers; retryAfter > 0 adds a Retry-After (as a
// proxy in front of HubSpot might).
func hubspotTooMany(policy string, retryAfter int) fakevendor.Fault {
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

func hubspotUnauthorized(w http.ResponseWriter, r *http.Request) {
	hubspotError(w, 401, "INVALID_AUTHENTICATION", "Authentication credentials not found.", nil)
}

func hubspotMissingScopes(w http.ResponseWriter, r *http.Request) {
	hubspotError(w, 403, "MISSING_SCOPES", "This app hasn't been granted all required scopes to make this call.", nil)
}

func hubspotInternal(w http.ResponseWriter, r *http.Request) {
	hubspotError(w, 502, "", "internal error", nil)
}
