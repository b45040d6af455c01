// Package amplitudefake is a local Amplitude User Privacy API for tests:
// deletion jobs as Amplitude documents them, staged for a day ahead and
// advancing over status polls, with its rate-limit answer and faults to
// inject.
//
//	f := amplitudefake.Start(t, amplitudefake.Options{})
//	f.Seed(connectors.Subject{UserIDs: map[string]string{"app": "user-1"}})
//	c := connectortest.Build(t, "amplitude", "amplitude", f.Config())
package amplitudefake

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
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// Keys a fake accepts until SetKeys.
const (
	DefaultAPIKey    = "amp_key"
	DefaultSecretKey = "amp_secret"
)

// dayLayout is how Amplitude writes days.
const dayLayout = "2006-01-02"

// MaxIDs is how many ids one deletion request takes: "up to 100 users at
// a time", user_ids and amplitude_ids together (the stricter reading of
// Amplitude's page).
const MaxIDs = 100

// Options tunes a fake: its rate limit answers as Amplitude does (429
// naming no delay; Amplitude allows the User Privacy API one request a
// second), and a deletion job is listed unfinished (staging, then
// submitted) Polls times (default 2) before it is done.
type Options = fakevendor.Options

// Fake is Amplitude's User Privacy API (v1) as documented: POST
// /api/2/deletions/users with Basic api_key:secret_key and {"user_ids",
// "amplitude_ids","requester","ignore_invalid_id","include_mapped_user_ids"}
// (booleans as strings; at most MaxIDs ids, both lists together, else
// 400) puts the users into the staging job of a day 10 days ahead and
// answers {"day","status":"staging","amplitude_ids":[…]}: the Amplitude
// IDs of this request, each with its "user_id" when
// include_mapped_user_ids is true, and "invalid_ids" (the ids requested
// but not found) when invalid ids are ignored. GET with start_day and
// end_day lists jobs, each moving staging → submitted → done as it is
// listed (done erases its users); GET /api/2/usersearch?user= finds users.
// Its today is 2026-03-01.
// It is a connectortest.FaultyVendor, as the connector's TestVendor
// takes it.
type Fake struct {
	fakevendor.Controls

	mu                sync.Mutex
	apiKey, secretKey *fakevendor.Key
	polls             int
	users             map[string]int64 // user_id → Amplitude ID
	nextID            int64
	jobs              []*fakeJob
	today             time.Time
	final             fakevendor.Setting[string] // a final job status forced instead of done
	unmapped          fakevendor.Setting[bool]   // user_id left out of answers whatever include_mapped_user_ids says
	noInvalid         fakevendor.Setting[bool]   // invalid_ids left out of answers
}

// fakeJob is a deletion job; each listing of it is a status poll.
type fakeJob struct {
	fakevendor.Job
	day     string
	status  string
	entries []fakeEntry
}

type fakeEntry struct {
	AmplitudeID    int64  `json:"amplitude_id"`
	RequestedOnDay string `json:"requested_on_day"`
	Requester      string `json:"requester"`
	userID         string
}

// Start starts a fake that stops when the test ends.
func Start(t testing.TB, opt Options) *Fake {
	t.Helper()
	f := &Fake{apiKey: fakevendor.NewKey(DefaultAPIKey), secretKey: fakevendor.NewKey(DefaultSecretKey),
		users: map[string]int64{}, nextID: 356896327775, today: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	srv := fakevendor.Start(t, opt, fakevendor.Vendor{TooMany: TooMany, Polls: 2, Auth: fakevendor.BasicAuth(f.apiKey, f.secretKey, Refused)})
	f.Controls, f.polls = srv.Controls(), srv.JobPolls
	srv.Handle("POST /api/2/deletions/users", f.schedule)
	srv.Handle("GET /api/2/deletions/users", f.list)
	srv.Handle("GET /api/2/usersearch", f.search)
	return f
}

// Refused is Amplitude's answer to keys it does not accept.
func Refused(w http.ResponseWriter, _ *http.Request) {
	fakevendor.JSON(w, http.StatusUnauthorized, map[string]string{"error": "Invalid API key or secret key"})
}

// TooMany is Amplitude's 429; it names no delay.
func TooMany(w http.ResponseWriter, r *http.Request) {
	fakevendor.JSON(w, http.StatusTooManyRequests, map[string]string{"error": "Too many requests"})
}

func badRequest(w http.ResponseWriter, msg string) {
	fakevendor.JSON(w, http.StatusBadRequest, map[string]string{"error": msg})
}

// stringBool reads a boolean Amplitude wants as a string ("true", "True").
func stringBool(raw json.RawMessage) (value, ok bool) {
	if raw == nil {
		return false, true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return false, false
	}
	switch strings.ToLower(s) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

func (f *Fake) schedule(w http.ResponseWriter, r *http.Request) {
	var raw map[string]json.RawMessage
	if json.NewDecoder(r.Body).Decode(&raw) != nil {
		badRequest(w, "Invalid JSON body")
		return
	}
	var userIDs []string
	var ampIDs []int64
	var requester string
	for k, v := range raw {
		var err error
		switch k {
		case "user_ids":
			err = json.Unmarshal(v, &userIDs)
		case "amplitude_ids":
			err = json.Unmarshal(v, &ampIDs)
		case "requester":
			err = json.Unmarshal(v, &requester)
		case "ignore_invalid_id", "ignore_invalid_ids", "delete_from_org", "include_mapped_user_ids":
			if _, ok := stringBool(v); !ok {
				badRequest(w, k+" must be the string True or False")
				return
			}
		default:
			badRequest(w, "Unknown parameter "+k)
			return
		}
		if err != nil {
			badRequest(w, "Invalid "+k)
			return
		}
	}
	ignore, _ := stringBool(raw["ignore_invalid_id"])
	if alt, _ := stringBool(raw["ignore_invalid_ids"]); alt {
		ignore = true
	}
	mapped, _ := stringBool(raw["include_mapped_user_ids"])
	if len(userIDs)+len(ampIDs) > MaxIDs {
		badRequest(w, fmt.Sprintf("Too many ids: at most %d users a request", MaxIDs))
		return
	}
	if len(userIDs)+len(ampIDs) == 0 || requester == "" {
		badRequest(w, "Invalid request")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	type found struct {
		id   int64
		user string
	}
	var ids []found
	invalid := []any{}
	for _, u := range userIDs {
		id, ok := f.users[u]
		if !ok && !ignore {
			badRequest(w, "Invalid user ids")
			return
		}
		if ok {
			ids = append(ids, found{id, u})
		} else {
			invalid = append(invalid, u)
		}
	}
	for _, a := range ampIDs {
		user := ""
		for u, id := range f.users {
			if id == a {
				user = u
			}
		}
		if user == "" && !ignore {
			badRequest(w, "Invalid amplitude ids")
			return
		}
		if user != "" {
			ids = append(ids, found{a, user})
		} else {
			invalid = append(invalid, a)
		}
	}
	// Requests join the staging job; once it is submitted, a new one.
	var jb *fakeJob
	if n := len(f.jobs); n > 0 && f.jobs[n-1].status == "staging" {
		jb = f.jobs[n-1]
	} else {
		jb = &fakeJob{Job: fakevendor.NewJob(f.polls), day: f.today.AddDate(0, 0, 10+n).Format(dayLayout), status: "staging"}
		f.jobs = append(f.jobs, jb)
	}
	answer := []map[string]any{}
	var seen []int64
	for _, id := range ids {
		i := slices.IndexFunc(jb.entries, func(e fakeEntry) bool { return e.AmplitudeID == id.id })
		if i < 0 {
			jb.entries = append(jb.entries, fakeEntry{AmplitudeID: id.id, RequestedOnDay: f.today.Format(dayLayout), Requester: requester, userID: id.user})
			i = len(jb.entries) - 1
		}
		if slices.Contains(seen, id.id) {
			continue
		}
		seen = append(seen, id.id)
		e := jb.entries[i]
		a := map[string]any{"amplitude_id": e.AmplitudeID, "requested_on_day": e.RequestedOnDay, "requester": e.Requester}
		if mapped && !f.unmapped.Get() {
			a["user_id"] = e.userID
		}
		answer = append(answer, a)
	}
	out := map[string]any{"day": jb.day, "status": jb.status, "amplitude_ids": answer}
	if ignore && !f.noInvalid.Get() {
		out["invalid_ids"] = invalid
	}
	fakevendor.JSON(w, http.StatusOK, out)
}

func (f *Fake) list(w http.ResponseWriter, r *http.Request) {
	start, err1 := time.Parse(dayLayout, r.URL.Query().Get("start_day"))
	end, err2 := time.Parse(dayLayout, r.URL.Query().Get("end_day"))
	if err1 != nil || err2 != nil || end.Before(start) || end.After(start.AddDate(0, 6, 0)) {
		badRequest(w, "start_day and end_day are required (YYYY-MM-DD, at most six months apart)")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []map[string]any{}
	for _, jb := range f.jobs {
		day, _ := time.Parse(dayLayout, jb.day)
		if day.Before(start) || day.After(end) {
			continue
		}
		stage := jb.Stage("staging", "submitted")
		jb.Poll()
		switch {
		case !jb.Ended:
			jb.status = stage
		case f.final.Get() != "":
			jb.status = f.final.Get()
		case jb.status != "done":
			jb.status = "done"
			for _, e := range jb.entries {
				delete(f.users, e.userID)
			}
		}
		out = append(out, map[string]any{"day": jb.day, "status": jb.status, "amplitude_ids": jb.entries})
	}
	fakevendor.JSON(w, http.StatusOK, out)
}

func (f *Fake) search(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query().Get("user")
	if q == "" {
		badRequest(w, "user is required")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	matches := []map[string]any{}
	for u, id := range f.users {
		if u == q || strconv.FormatInt(id, 10) == q {
			matches = append(matches, map[string]any{"user_id": u, "amplitude_id": id, "platform": "Web", "country": "Germany", "last_seen": "2026-02-27"})
		}
	}
	typ := "match_user_or_device_id"
	if len(matches) == 0 {
		typ = "nomatch"
	}
	fakevendor.JSON(w, http.StatusOK, map[string]any{"matches": matches, "type": typ})
}

// Keys are the API key and secret key the fake accepts.
func (f *Fake) Keys() (apiKey, secretKey string) { return f.apiKey.Get(), f.secretKey.Get() }

// SetKeys changes the API key and secret key the fake accepts (another
// project).
func (f *Fake) SetKeys(apiKey, secretKey string) { f.apiKey.Set(apiKey); f.secretKey.Set(secretKey) }

// Config is an amplitude connector config against f, polling every 2ms.
// It reads the Amplitude user_id from UserIDs["app"]
// (fakevendor.UserIDSystem).
func (f *Fake) Config() string {
	key, secret := f.Keys()
	return fmt.Sprintf("api_key: %s\nsecret_key: %s\nbase_url: %s\npoll_interval: 2ms\nuser_id_system: %s\n",
		key, secret, f.URL(), fakevendor.UserIDSystem)
}

// ConfigWith is Config with top-level keys set (fakevendor.MergeYAML).
func (f *Fake) ConfigWith(lines ...string) string { return fakevendor.MergeYAML(f.Config(), lines...) }

// Seed gives Amplitude a user with the subject's UserIDs["app"] as
// user_id (it needs one).
func (f *Fake) Seed(s connectors.Subject) int64 {
	f.AddUser(fakevendor.NeedUserID("amplitudefake: Seed", s))
	return 1
}

// NoRecoverableState is why Amplitude keeps nothing a deleted user can be
// restored from.
func (f *Fake) NoRecoverableState() string {
	return "Amplitude's deletion job removes a user's events and properties for good; until the job runs the data is simply still there (the task is running), and Amplitude documents no way to restore deleted users"
}

// Count is whether (1) or not (0) Amplitude holds the subject's
// UserIDs["app"].
func (f *Fake) Count(s connectors.Subject) int64 {
	return f.CountUser(s.UserIDs[fakevendor.UserIDSystem])
}

// AddUser gives Amplitude a user and returns its Amplitude ID.
func (f *Fake) AddUser(userID string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	f.users[userID] = f.nextID
	return f.nextID
}

// CountUser is whether (1) or not (0) Amplitude holds userID.
func (f *Fake) CountUser(userID string) int64 {
	if userID == "" {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.users[userID]; ok {
		return 1
	}
	return 0
}

// Unmapped makes the fake answer without the user_id of each Amplitude
// ID even when include_mapped_user_ids asks for it: Amplitude's page
// leaves open whether ids found by user_id carry it. The answer then says
// which Amplitude IDs were scheduled, not for whom.
func (f *Fake) Unmapped() { f.unmapped.Set(true) }

// NoInvalidIDs makes the fake answer without invalid_ids, whose form
// Amplitude's page does not show.
func (f *Fake) NoInvalidIDs() { f.noInvalid.Set(true) }

// EndJobsAs forces the final status of every job instead of done.
func (f *Fake) EndJobsAs(status string) { f.final.Set(status) }

// Unstage removes every request from the jobs, as DELETE
// /api/2/deletions/users/{amplitude_id}/{day} does for one.
func (f *Fake) Unstage() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, jb := range f.jobs {
		jb.entries = nil
	}
}
