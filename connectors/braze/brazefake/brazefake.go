// Package brazefake is a local Braze REST API for tests: the user export
// by identifier and the user delete as Braze documents them, deletions
// that exports keep showing for a while, Braze's rate-limit answer and
// faults to inject.
package brazefake

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

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// DefaultKey is the REST API key a fake accepts.
const DefaultKey = "braze-rest-api-key"

// Options tunes a fake; Polls is how many exports keep showing a profile
// queued for deletion (default 1). Its rate limit answers as Braze does.
type Options = fakevendor.Options

// Profile is a user profile a fake holds; any field may be empty.
type Profile struct {
	ExternalID, Email, Phone string
	AliasName, AliasLabel    string
}

// user is a stored profile; deleting, once set, is the queued deletion,
// which ends (the profile goes) at an export after Options.Polls others
// have still shown it.
type user struct {
	Profile
	brazeID  string
	deleting *fakevendor.Job
}

// Fake is a Braze workspace: Bearer auth; POST /users/export/ids
// (external_ids and user_aliases up to 50, or one of braze_id, device_id,
// email_address, phone; fields_to_export required) answering
// {"message":"success","users":[…],"invalid_user_ids":[…]}; POST
// /users/delete (up to 50 external_ids, user_aliases or braze_ids; both
// readings of the docs: one type a request, or several as in their
// example) answering {"deleted":n,"message":"success"}.
type Fake struct {
	fakevendor.Controls
	key   *fakevendor.Key
	polls int
	mu    sync.Mutex
	users []*user
	next  int
}

var _ connectortest.Vendor = (*Fake)(nil)

// Start starts a fake that stops when the test ends.
func Start(t testing.TB, opt Options) *Fake {
	f := &Fake{key: fakevendor.NewKey(DefaultKey)}
	srv := fakevendor.Start(t, opt, fakevendor.Vendor{TooMany: TooMany, Polls: 1, Auth: fakevendor.BearerAuth(f.key, Refused)})
	f.Controls, f.polls = srv.Controls(), srv.JobPolls
	srv.Handle("POST /users/export/ids", f.export)
	srv.Handle("POST /users/delete", f.delete)
	return f
}

// Refused is Braze's 401 for an unknown or missing REST API key.
func Refused(w http.ResponseWriter, _ *http.Request) {
	message(w, http.StatusUnauthorized, "Invalid API key")
}

// TooMany is Braze's 429: no Retry-After, the window's X-RateLimit-*
// headers, its reset in UTC epoch seconds (here one to two seconds on).
func TooMany(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("X-RateLimit-Limit", "250")
	w.Header().Set("X-RateLimit-Remaining", "0")
	w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Unix()+2, 10))
	message(w, http.StatusTooManyRequests, "Rate limit exceeded")
}

func message(w http.ResponseWriter, status int, msg string) {
	fakevendor.JSON(w, status, map[string]any{"message": msg})
}

// Config is a braze config against f.
func (f *Fake) Config() string {
	return fmt.Sprintf("api_key: %q\nbase_url: %q\nuser_id_system: %s\npoll_interval: 10ms\n", f.key.Get(), f.URL(), connectortest.UserIDSystem)
}

// NoRecoverableState cites why a deleted profile cannot come back.
func (f *Fake) NoRecoverableState() string {
	return "Braze: deleting user profiles cannot be undone (braze.com/docs/api/endpoints/user_data/post_user_delete); no API restores them"
}

// AddProfile stores p and returns the braze_id it was given.
func (f *Fake) AddProfile(p Profile) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	u := &user{Profile: p, brazeID: fmt.Sprintf("65f0%020x", f.next)}
	f.users = append(f.users, u)
	return u.brazeID
}

// Seed stores one profile with the subject's email, phone and external_id.
func (f *Fake) Seed(s connectors.Subject) int64 {
	f.AddProfile(Profile{ExternalID: s.UserIDs[connectortest.UserIDSystem], Email: s.Email, Phone: s.Phone})
	return 1
}

// Count is how many profiles (queued for deletion included) hold the
// subject's email, phone or external_id.
func (f *Fake) Count(s connectors.Subject) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for _, u := range f.users {
		if eq(u.ExternalID, s.UserIDs[connectortest.UserIDSystem]) || eqFold(u.Email, s.Email) || eq(u.Phone, s.Phone) {
			n++
		}
	}
	return n
}

// Held is how many profiles the fake holds, queued ones included.
func (f *Fake) Held() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.users)
}

func eq(a, b string) bool     { return a != "" && a == b }
func eqFold(a, b string) bool { return a != "" && strings.EqualFold(a, b) }

type alias struct {
	Name  string `json:"alias_name"`
	Label string `json:"alias_label"`
}

// query is a request body of either endpoint (each reads its own fields).
type query struct {
	ExternalIDs  []string `json:"external_ids"`
	UserAliases  []alias  `json:"user_aliases"`
	BrazeIDs     []string `json:"braze_ids"`
	BrazeID      string   `json:"braze_id"`
	DeviceID     string   `json:"device_id"`
	EmailAddress string   `json:"email_address"`
	Phone        string   `json:"phone"`
	Fields       []string `json:"fields_to_export"`
}

func decode(w http.ResponseWriter, r *http.Request, q *query) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(q); err != nil {
		message(w, http.StatusBadRequest, "Bad Request")
		return false
	}
	if len(q.ExternalIDs) > 50 || len(q.UserAliases) > 50 || len(q.BrazeIDs) > 50 {
		message(w, http.StatusBadRequest, "The max number of ids per request was exceeded")
		return false
	}
	return true
}

// matches reports whether u is one of q's identifiers, and which.
func (u *user) matches(q query) (string, bool) {
	switch {
	case slices.Contains(q.ExternalIDs, u.ExternalID) && u.ExternalID != "":
		return u.ExternalID, true
	case slices.Contains(q.UserAliases, alias{u.AliasName, u.AliasLabel}) && u.AliasName != "":
		return u.AliasName, true
	case slices.Contains(q.BrazeIDs, u.brazeID), q.BrazeID == u.brazeID:
		return u.brazeID, true
	}
	return "", eqFold(u.Email, q.EmailAddress) || eq(u.Phone, q.Phone)
}

func (f *Fake) export(w http.ResponseWriter, r *http.Request) {
	var q query
	if !decode(w, r, &q) {
		return
	}
	singles := len(slices.DeleteFunc([]string{q.BrazeID, q.DeviceID, q.EmailAddress, q.Phone}, func(s string) bool { return s == "" }))
	switch {
	case q.BrazeIDs != nil:
		message(w, http.StatusBadRequest, "Bad Request")
		return
	case singles > 1:
		message(w, http.StatusBadRequest, "Only one of device_id, braze_id, email_address or phone may be given")
		return
	case singles+len(q.ExternalIDs)+len(q.UserAliases) == 0:
		message(w, http.StatusBadRequest, "No identifiers given")
		return
	case len(q.Fields) == 0: // required for workspaces onboarded since 22 August 2024
		message(w, http.StatusBadRequest, "fields_to_export is required")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	users, hit := []map[string]any{}, map[string]bool{}
	for _, u := range slices.Clone(f.users) {
		id, ok := u.matches(q)
		if !ok {
			continue
		}
		if u.deleting != nil && u.deleting.Poll() {
			f.users = slices.DeleteFunc(f.users, func(v *user) bool { return v == u })
			continue
		}
		hit[id] = true
		users = append(users, u.export(q.Fields))
	}
	invalid := []string{}
	for _, id := range append(append(slices.Clone(q.ExternalIDs), q.BrazeID), names(q.UserAliases)...) {
		if id != "" && !hit[id] {
			invalid = append(invalid, id)
		}
	}
	ans := map[string]any{"message": "success", "users": users}
	if len(invalid) > 0 {
		ans["invalid_user_ids"] = invalid
	}
	fakevendor.JSON(w, http.StatusOK, ans)
}

func names(as []alias) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Name)
	}
	return out
}

// export is u as the export answers it: only the fields asked for.
func (u *user) export(fields []string) map[string]any {
	all := map[string]any{"braze_id": u.brazeID, "external_id": u.ExternalID, "email": u.Email, "phone": u.Phone}
	if u.AliasName != "" {
		all["user_aliases"] = []alias{{u.AliasName, u.AliasLabel}}
	}
	out := map[string]any{}
	for _, k := range fields {
		if v, ok := all[k]; ok && v != "" {
			out[k] = v
		}
	}
	return out
}

func (f *Fake) delete(w http.ResponseWriter, r *http.Request) {
	var q query
	if !decode(w, r, &q) {
		return
	}
	if q.BrazeID+q.DeviceID+q.EmailAddress+q.Phone != "" || q.Fields != nil ||
		len(q.ExternalIDs)+len(q.UserAliases)+len(q.BrazeIDs) == 0 {
		message(w, http.StatusBadRequest, "Bad Request")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, u := range f.users {
		if _, ok := u.matches(q); ok {
			n++
			if u.deleting == nil {
				j := fakevendor.NewJob(f.polls)
				u.deleting = &j
			}
		}
	}
	fakevendor.JSON(w, http.StatusOK, map[string]any{"deleted": n, "message": "success"})
}
