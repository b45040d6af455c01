// Package iterablefake is a local Iterable API for tests: user look-ups
// and the GDPR forget as Iterable documents them, its rate-limit answer
// and faults to inject.
package iterablefake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// DefaultKey is the API key a fake accepts.
const DefaultKey = "iterable-server-key"

// Options tunes a fake; its rate limit answers as Iterable does (429
// RateLimitExceeded, no Retry-After).
type Options = fakevendor.Options

// Fake is a hybrid Iterable project: Api-Key auth; GET
// /api/users/getByEmail?email= and GET /api/users/byUserId/{userId}
// answering {"user":{…}} or {} for no such user; POST /api/users/forget
// {"email"} or {"userId"} deleting the profile, putting it on the
// forgotten list and answering {"code":"Success"}.
type Fake struct {
	fakevendor.Controls
	key       *fakevendor.Key
	users     fakevendor.People
	mu        sync.Mutex
	forgotten map[string]bool // lower-cased email or userId
}

var _ connectortest.Vendor = (*Fake)(nil)

// Start starts a fake that stops when the test ends.
func Start(t testing.TB, opt Options) *Fake {
	f := &Fake{key: fakevendor.NewKey(DefaultKey), forgotten: map[string]bool{}}
	srv := fakevendor.Start(t, opt, fakevendor.Vendor{TooMany: TooMany, Auth: fakevendor.HeaderAuth("Api-Key", f.key, Refused)})
	f.Controls = srv.Controls()
	srv.Handle("GET /api/users/getByEmail", func(w http.ResponseWriter, r *http.Request) { f.get(w, r.URL.Query().Get("email"), "") })
	srv.Handle("GET /api/users/byUserId/{id}", func(w http.ResponseWriter, r *http.Request) { f.get(w, "", r.PathValue("id")) })
	srv.Handle("POST /api/users/forget", f.forget)
	return f
}

// Iterable's answers to a key it does not accept and past its rate limit.
var (
	Refused = answer(http.StatusUnauthorized, "BadApiKey", "Invalid API key")
	TooMany = answer(http.StatusTooManyRequests, "RateLimitExceeded", "Rate limit exceeded")
)

// answer is Iterable's reply {"msg","code","params"}.
func answer(status int, code, msg string) fakevendor.Fault {
	return func(w http.ResponseWriter, _ *http.Request) {
		fakevendor.JSON(w, status, map[string]any{"msg": msg, "code": code, "params": nil})
	}
}

// Config is an iterable config against f, for a hybrid project.
func (f *Fake) Config() string {
	return fmt.Sprintf("api_key: %q\nbase_url: %q\nproject_type: hybrid\nuser_id_system: %s\npoll_interval: 10ms\n",
		f.key.Get(), f.URL(), connectortest.UserIDSystem)
}

// NoRecoverableState cites why a forgotten user cannot come back.
func (f *Fake) NoRecoverableState() string {
	return "Iterable cannot restore deleted or forgotten users; an unforget only resumes collection (support.iterable.com, Deleting Users; Responding to GDPR Requests)"
}

// Seed stores one profile with the subject's email and userId.
func (f *Fake) Seed(s connectors.Subject) int64 {
	f.users.Add(s.Email, s.UserIDs[connectortest.UserIDSystem])
	return 1
}

// Count is how many profiles hold the subject's email or userId.
func (f *Fake) Count(s connectors.Subject) int64 {
	return f.users.Count(s.Email, s.UserIDs[connectortest.UserIDSystem])
}

// Forgotten reports whether an email or userId is on the forgotten list.
func (f *Fake) Forgotten(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.forgotten[strings.ToLower(id)]
}

func (f *Fake) get(w http.ResponseWriter, email, userID string) {
	user := map[string]any{}
	if found := f.users.Find(email, userID); len(found) > 0 {
		u := found[0]
		user["user"] = map[string]any{"email": u.Email, "dataFields": map[string]any{"email": u.Email, "userId": u.UserID}}
	}
	fakevendor.JSON(w, http.StatusOK, user)
}

func (f *Fake) forget(w http.ResponseWriter, r *http.Request) {
	var body map[string]string
	if json.NewDecoder(r.Body).Decode(&body) != nil || len(body) != 1 || body["email"]+body["userId"] == "" {
		answer(http.StatusBadRequest, "BadParams", "exactly one of email or userId required")(w, r)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range append(f.users.Remove(body["email"], body["userId"]), fakevendor.Person{Email: body["email"], UserID: body["userId"]}) {
		f.forgotten[strings.ToLower(u.Email)], f.forgotten[strings.ToLower(u.UserID)] = true, true
	}
	delete(f.forgotten, "")
	answer(http.StatusOK, "Success", "")(w, r)
}
