// Package klaviyofake is a local Klaviyo API for tests: profile look-ups
// by filter and the Data Privacy API's deletion job as Klaviyo documents
// them, its JSON:API error answers (429 throttled with Retry-After) and
// faults to inject.
package klaviyofake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// DefaultKey is the private API key a fake accepts.
const DefaultKey = "pk_klaviyofake_0123456789abcdef"

// Options tunes a fake; its rate limit answers as Klaviyo does (429
// throttled, Retry-After: 1).
type Options = fakevendor.Options

// Fake is a Klaviyo account: "Authorization: Klaviyo-API-Key <key>" and a
// revision header on every request; GET /api/profiles?filter=equals(field,
// "value") (email, phone_number or id; double or single quotes) answering
// {"data":[…]}; POST /api/data-privacy-deletion-jobs with exactly one of
// email, phone_number or id answering 202 without a body and deleting
// every matching profile once Options.Polls later look-ups have passed
// (default 1). Deleted profiles cannot be restored.
type Fake struct {
	fakevendor.Controls
	key   *fakevendor.Key
	polls int

	mu       sync.Mutex
	next     int
	profiles []profile
	jobs     []*job
}

type profile struct{ id, email, phone string }

// job is a deletion job: the profiles it deletes once it ends.
type job struct {
	fakevendor.Job
	field, value string
}

var _ connectortest.Vendor = (*Fake)(nil)

// Start starts a fake that stops when the test ends.
func Start(t testing.TB, opt Options) *Fake {
	f := &Fake{key: fakevendor.NewKey(DefaultKey)}
	srv := fakevendor.Start(t, opt, fakevendor.Vendor{TooMany: TooMany, Polls: 1, Auth: fakevendor.Auth{
		OK:     func(r *http.Request) bool { return r.Header.Get("Authorization") == "Klaviyo-API-Key "+f.key.Get() },
		Refuse: Refused, Keys: []*fakevendor.Key{f.key}}})
	f.Controls, f.polls = srv.Controls(), srv.JobPolls
	srv.Handle("GET /api/profiles", f.lookup)
	srv.Handle("POST /api/data-privacy-deletion-jobs", f.deletionJob)
	return f
}

// Klaviyo's answers to a key it does not accept, past its rate limit, and
// to a key without the scope an endpoint needs.
var (
	Refused   = Answer(http.StatusUnauthorized, "authentication_failed", "Incorrect authentication credentials.")
	Forbidden = Answer(http.StatusForbidden, "permission_denied", "You do not have permission to perform this action.")
	TooMany   = fakevendor.Fault(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "1")
		Answer(http.StatusTooManyRequests, "throttled", "Request was throttled.")(w, r)
	})
)

// Answer is Klaviyo's JSON:API error {"errors":[{id,status,code,title,detail}]}.
func Answer(status int, code, title string) fakevendor.Fault {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.api+json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]any{{
			"id": "6f1b2c3d-0000-4000-8000-000000000000", "status": status, "code": code, "title": title, "detail": title}}})
	}
}

// Config is a klaviyo config against f.
func (f *Fake) Config() string {
	return fmt.Sprintf("api_key: %q\nbase_url: %q\nuser_id_system: %s\npoll_interval: 10ms\n", f.key.Get(), f.URL(), connectortest.UserIDSystem)
}

// NoRecoverableState cites why a deleted profile cannot come back.
func (f *Fake) NoRecoverableState() string {
	return "Klaviyo: once a profile is deleted the action cannot be undone and deleted data cannot be recovered (Data Privacy API overview; help center, bulk delete profiles)"
}

// Seed stores one profile with the subject's email and phone; Klaviyo
// issues its id (ProfileID).
func (f *Fake) Seed(s connectors.Subject) int64 {
	if s.Email == "" && s.Phone == "" {
		fakevendor.NeedEmail("klaviyofake: Seed", s)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	f.profiles = append(f.profiles, profile{id: fmt.Sprintf("01KFAKE%019d", f.next), email: s.Email, phone: s.Phone})
	return 1
}

// Count is how many profiles hold the subject's email, phone or profile id.
func (f *Fake) Count(s connectors.Subject) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for _, p := range f.profiles {
		if p.matches("email", s.Email) || p.matches("phone_number", s.Phone) || p.matches("id", s.UserIDs[connectortest.UserIDSystem]) {
			n++
		}
	}
	return n
}

// ProfileID is the Klaviyo id of the subject's profile found by email ("" if none).
func (f *Fake) ProfileID(s connectors.Subject) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.profiles {
		if p.matches("email", s.Email) {
			return p.id
		}
	}
	return ""
}

func (p profile) matches(field, value string) bool {
	switch field {
	case "email":
		return value != "" && strings.EqualFold(p.email, value)
	case "phone_number":
		return value != "" && p.phone == value
	}
	return value != "" && p.id == value
}

// filterRe is the one filter the fake supports: equals on a profile
// identifier, the value in double quotes (the filtering guide) or single
// quotes (the API reference's example).
var filterRe = regexp.MustCompile(`^equals\((email|phone_number|id),(?:"([^"]*)"|'([^']*)')\)$`)

func (f *Fake) lookup(w http.ResponseWriter, r *http.Request) {
	m := filterRe.FindStringSubmatch(r.URL.Query().Get("filter"))
	if m == nil || r.Header.Get("revision") == "" {
		Answer(http.StatusBadRequest, "invalid", "Invalid filter or missing revision header.")(w, r)
		return
	}
	field, value := m[1], m[2]+m[3]
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advanceJobs()
	data := []map[string]any{}
	for _, p := range f.profiles {
		if p.matches(field, value) {
			data = append(data, map[string]any{"type": "profile", "id": p.id,
				"attributes": map[string]any{"email": p.email, "phone_number": p.phone}})
		}
	}
	w.Header().Set("Content-Type", "application/vnd.api+json")
	_ = json.NewEncoder(w).Encode(map[string]any{"data": data, "links": map[string]any{"self": r.URL.String(), "next": nil, "prev": nil}})
}

// advanceJobs counts a look-up as a poll of every pending job; a job that
// ends deletes its profiles.
func (f *Fake) advanceJobs() {
	pending := f.jobs[:0]
	for _, j := range f.jobs {
		if !j.Poll() {
			pending = append(pending, j)
			continue
		}
		kept := f.profiles[:0]
		for _, p := range f.profiles {
			if !p.matches(j.field, j.value) {
				kept = append(kept, p)
			}
		}
		f.profiles = kept
	}
	f.jobs = pending
}

func (f *Fake) deletionJob(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Data struct {
			Type       string
			Attributes struct {
				Profile struct {
					Data struct {
						Type       string
						ID         string
						Attributes struct {
							Email       string
							PhoneNumber string `json:"phone_number"`
						}
					}
				}
			}
		}
	}
	if json.NewDecoder(r.Body).Decode(&body) != nil || r.Header.Get("revision") == "" ||
		body.Data.Type != "data-privacy-deletion-job" || body.Data.Attributes.Profile.Data.Type != "profile" {
		Answer(http.StatusBadRequest, "invalid", "Invalid input.")(w, r)
		return
	}
	p := body.Data.Attributes.Profile.Data
	var ids [][2]string
	for _, q := range [][2]string{{"email", p.Attributes.Email}, {"phone_number", p.Attributes.PhoneNumber}, {"id", p.ID}} {
		if q[1] != "" {
			ids = append(ids, q)
		}
	}
	if len(ids) != 1 {
		Answer(http.StatusBadRequest, "invalid", "Exactly one of email, phone_number or id is required.")(w, r)
		return
	}
	f.mu.Lock()
	f.jobs = append(f.jobs, &job{Job: fakevendor.NewJob(f.polls), field: ids[0][0], value: ids[0][1]})
	f.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}
