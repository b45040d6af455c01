// Package intercomfake is a local Intercom API for tests: contact search,
// create, archive and delete, archived users that search does not return, Intercom's rate-limit answer and faults to
// inject.
package intercomfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// DefaultToken is the access token a fake accepts.
const DefaultToken = "intercom-test-token"

// Options tunes a fake; its rate limit answers as Intercom does (429 with
// X-RateLimit-Limit, -Remaining and -Reset, a unix time).
type Options = fakevendor.Options

// Fake follows Intercom's REST API (docs/connectors/intercom.md): Bearer
// tokens; POST /contacts/search with {"query":{"field","operator":"=",
// "value"}} and cursor pagination, archived contacts left out; POST
// /contacts answering 409 "An archived contact matching those details
// already exists with id=…" for a user's external_id or email; DELETE
// /contacts/{id} → {"type":"contact","id","external_id","deleted":true},
// archived contacts included (API 2.6 and later), 404 not_found for an
// unknown id; POST /contacts/{id}/archive; errors as
// {"type":"error.list","errors":[{"code","message"}]}.
type Fake struct {
	fakevendor.Controls
	token    *fakevendor.Key
	pageSize *fakevendor.Setting[int]

	mu       sync.Mutex
	contacts map[string]*contact
	next     int
	deletes  int
}

type contact struct {
	id, email, externalID, role string
	archived                    bool
}

var _ connectortest.RecoverableVendor = (*Fake)(nil)

// Start starts a fake that stops when the test ends.
func Start(t testing.TB, opt Options) *Fake {
	f := &Fake{token: fakevendor.NewKey(DefaultToken), contacts: map[string]*contact{}, pageSize: fakevendor.NewSetting(150)}
	srv := fakevendor.Start(t, opt, fakevendor.Vendor{TooMany: TooMany, Auth: fakevendor.BearerAuth(f.token, Refused)})
	f.Controls = srv.Controls()
	srv.Handle("POST /contacts/search", f.version(f.search))
	srv.Handle("POST /contacts", f.version(f.create))
	srv.Handle("DELETE /contacts/{id}", f.version(f.delete))
	srv.Handle("POST /contacts/{id}/archive", f.version(f.archive))
	return f
}

// Intercom's answers to a token it does not accept, past its rate limit
// and when it fails.
var (
	Refused     = Answer(http.StatusUnauthorized, "unauthorized", "Access Token Invalid")
	Unavailable = Answer(http.StatusServiceUnavailable, "service_unavailable", "Sorry, the API service is temporarily unavailable")
)

// TooMany is Intercom's 429: the window resets within two seconds.
func TooMany(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-RateLimit-Limit", "1666")
	h.Set("X-RateLimit-Remaining", "0")
	h.Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(2*time.Second).Unix(), 10))
	Answer(http.StatusTooManyRequests, "rate_limit_exceeded", "Exceeded rate limit of 1666 in 10_seconds")(w, r)
}

// Answer is a fault answering Intercom's error list with status.
func Answer(status int, code, message string) fakevendor.Fault {
	return func(w http.ResponseWriter, _ *http.Request) {
		fakevendor.JSON(w, status, map[string]any{"type": "error.list", "request_id": "00000000-0000-4000-8000-000000000000",
			"errors": []map[string]string{{"code": code, "message": message}}})
	}
}

// Config is an intercom config against f, user ids read from
// connectortest.UserIDSystem.
func (f *Fake) Config() string {
	return fmt.Sprintf("access_token: %q\nbase_url: %q\nuser_id_system: %s\narchived_lookup: probe\n", f.token.Get(), f.URL(), connectortest.UserIDSystem)
}

// PageSize caps how many contacts a search page holds (default 150).
func (f *Fake) PageSize(n int) { f.pageSize.Set(n) }

// Seed stores the subject's contact: a user when it has a user id
// (external_id), else a lead.
func (f *Fake) Seed(s connectors.Subject) int64 {
	f.Add(s.Email, s.UserIDs[connectortest.UserIDSystem], "")
	return 1
}

// SeedRecoverable stores an archived user with the subject's email and
// external_id: Intercom restores it when the person comes back.
func (f *Fake) SeedRecoverable(s connectors.Subject) int64 {
	f.Archive(f.Add(s.Email, fakevendor.NeedUserID("intercomfake: SeedRecoverable", s), "user"))
	return 1
}

// Count is how many contacts hold the subject's email or external_id,
// archived ones included.
func (f *Fake) Count(s connectors.Subject) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return int64(len(f.match(func(c *contact) bool { return c.is(s.Email, s.UserIDs[connectortest.UserIDSystem]) })))
}

// Add stores a live contact (role "" picks user with an external_id, lead
// without) and returns its id.
func (f *Fake) Add(email, externalID, role string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.add(email, externalID, role).id
}

// Archive archives contact id, as POST /contacts/{id}/archive does.
func (f *Fake) Archive(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.contacts[id].archived = true
}

// Deletes counts the contacts DELETE /contacts/{id} deleted.
func (f *Fake) Deletes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deletes
}

func (f *Fake) add(email, externalID, role string) *contact {
	if role == "" {
		role = map[bool]string{true: "user", false: "lead"}[externalID != ""]
	}
	f.next++
	c := &contact{id: fmt.Sprintf("6762f0dd1bb69f9f%08x", f.next), email: email, externalID: externalID, role: role}
	f.contacts[c.id] = c
	return c
}

func (c *contact) is(email, externalID string) bool {
	return (email != "" && strings.EqualFold(c.email, email)) || (externalID != "" && c.externalID == externalID)
}

// match lists the contacts keep accepts, by id; f.mu is held.
func (f *Fake) match(keep func(*contact) bool) []*contact {
	var out []*contact
	for _, c := range f.contacts {
		if keep(c) {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b *contact) int { return strings.Compare(a.id, b.id) })
	return out
}

func (c *contact) body() map[string]any {
	return map[string]any{"type": "contact", "id": c.id, "workspace_id": "ecahpwf5", "external_id": nullable(c.externalID),
		"role": c.role, "email": c.email, "name": nil}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

var versionRe = regexp.MustCompile(`^([0-9]\.[0-9]{1,2}|Unstable)$`)

// version refuses an Intercom-Version Intercom does not know.
func (f *Fake) version(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get("Intercom-Version"); v != "" && !versionRe.MatchString(v) {
			Answer(http.StatusBadRequest, "intercom_version_invalid", "The requested version could not be found")(w, r)
			return
		}
		h(w, r)
	}
}

var notFound = Answer(http.StatusNotFound, "not_found", "Contact Not Found")

func (f *Fake) search(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Query struct {
			Field, Operator string
			Value           any
		}
		Pagination struct {
			PerPage       int    `json:"per_page"`
			StartingAfter string `json:"starting_after"`
		}
	}
	err := json.NewDecoder(r.Body).Decode(&body)
	value, isString := body.Query.Value.(string)
	if err != nil || body.Query.Operator != "=" || !isString || !slices.Contains([]string{"email", "external_id", "id", "role"}, body.Query.Field) {
		Answer(http.StatusBadRequest, "bad_request", "Invalid query: the fake supports one field with '='")(w, r)
		return
	}
	f.mu.Lock()
	all := f.match(func(c *contact) bool {
		if c.archived { // Intercom's search omits archived contacts
			return false
		}
		switch body.Query.Field {
		case "email":
			return strings.EqualFold(c.email, value)
		case "external_id":
			return c.externalID == value
		case "id":
			return c.id == value
		}
		return c.role == value
	})
	var data []map[string]any
	for _, c := range all {
		data = append(data, c.body())
	}
	f.mu.Unlock()
	per := min(max(body.Pagination.PerPage, 1), f.pageSize.Get())
	if body.Pagination.PerPage == 0 {
		per = min(50, f.pageSize.Get())
	}
	start, _ := strconv.Atoi(strings.TrimPrefix(body.Pagination.StartingAfter, "cursor-"))
	start = min(max(start, 0), len(data))
	end := min(start+per, len(data))
	pages := map[string]any{"type": "pages", "page": start/per + 1, "per_page": per, "total_pages": (len(data) + per - 1) / per}
	if end < len(data) {
		pages["next"] = map[string]any{"page": start/per + 2, "starting_after": "cursor-" + strconv.Itoa(end)}
	}
	fakevendor.JSON(w, http.StatusOK, map[string]any{"type": "list", "data": append([]map[string]any{}, data[start:end]...),
		"total_count": len(data), "pages": pages})
}

// create is POST /contacts. A user's external_id and email are unique
// among users, archived ones included; leads never conflict.
func (f *Fake) create(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Role, Email string
		ExternalID  string `json:"external_id"`
	}
	if json.NewDecoder(r.Body).Decode(&body) != nil || body.Role+body.Email+body.ExternalID == "" {
		Answer(http.StatusBadRequest, "parameter_invalid", "Requires one of email, external_id, role")(w, r)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if same := f.match(func(c *contact) bool { return c.role == "user" && c.is(body.Email, body.ExternalID) }); body.Role != "lead" && len(same) > 0 {
		what := "A contact"
		if same[0].archived {
			what = "An archived contact"
		}
		Answer(http.StatusConflict, "conflict", what+" matching those details already exists with id="+same[0].id)(w, r)
		return
	}
	fakevendor.JSON(w, http.StatusOK, f.add(body.Email, body.ExternalID, body.Role).body())
}

// delete is DELETE /contacts/{id}: permanent, archived contacts included.
func (f *Fake) delete(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.contacts[r.PathValue("id")]
	if c == nil {
		notFound(w, r)
		return
	}
	delete(f.contacts, c.id)
	f.deletes++
	fakevendor.JSON(w, http.StatusOK, map[string]any{"type": "contact", "id": c.id, "external_id": nullable(c.externalID), "deleted": true})
}

func (f *Fake) archive(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.contacts[r.PathValue("id")]
	if c == nil || c.archived {
		notFound(w, r)
		return
	}
	c.archived = true
	fakevendor.JSON(w, http.StatusOK, map[string]any{"type": "contact", "id": c.id, "external_id": nullable(c.externalID), "archived": true})
}
