// Package segmentfake is a local Segment for tests: the Public API's
// regulations (deletion requests) and the Unify Profile API, as Segment
// documents them, with its rate-limit answer and faults to inject.
//
//	f := segmentfake.Start(t, segmentfake.Options{})
//	f.Seed(connectors.Subject{UserIDs: map[string]string{"app": "user-1"}})
//	c := connectortest.Build(t, "segment", "segment", f.Config())
package segmentfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// Credentials a fake accepts until SetTokens, and its Unify space.
const (
	DefaultToken         = "sgp_token"
	DefaultProfilesToken = "prof_token"
	SpaceID              = "spa_1"
)

// mediaType is version 1 of the Public API.
const mediaType = "application/vnd.segment.v1+json"

// Options tunes a fake.
type Options struct {
	// RateLimit, when > 0, refuses requests beyond this many per second
	// (burst Burst, default 1) on each of the two APIs, as Segment does:
	// the Public API with 429, X-RateLimit-Remaining: 0 and
	// X-RateLimit-Reset as an RFC 5322 date; the Profile API with a bare
	// 429.
	RateLimit float64
	Burst     int
	// Polls is how many status polls a regulation stays unfinished
	// (INITIALIZED, then RUNNING) before it is FINISHED: default 2;
	// negative: none.
	Polls int
}

// Fake is Segment's Public API (regulations) and Profile API as
// documented: POST /regulations → {"data":{"regulateId"}}, GET
// /regulations/{id} → data.regulation with overallStatus and per
// destination statuses advancing INITIALIZED → RUNNING → final over polls,
// 600 requests a minute answered by 429 with X-RateLimit-Reset as an RFC
// 5322 date, and profiles looked up by user_id:<id> (404 when none).
type Fake struct {
	fakevendor.Controls                    // the Public API
	prof                *fakevendor.Server // the Profile API, another host

	mu                          sync.Mutex
	token, profilesToken, space string
	polls                       int
	users                       map[string]int64 // userId → records held (profile and events)
	regs                        map[string]*fakeRegulation
	next                        int
	destinations                []string
	failAt                      string // a destination whose deletion fails
	refuseAt                    string // a destination that cannot delete (NOT_SUPPORTED)
	overall                     string // a final overall status forced for every regulation
}

var _ connectortest.Vendor = (*Fake)(nil)

type fakeRegulation struct {
	typ   string
	ids   []string
	polls int
}

// Start starts a fake, both APIs, that stops when the test ends. Segment
// allows the Public API 600 requests a minute and the Profile API 100 a
// second; Options.RateLimit models them.
func Start(t testing.TB, opt Options) *Fake {
	t.Helper()
	srv := fakevendor.New(t)
	f := &Fake{Controls: srv.Controls(), prof: fakevendor.New(t), token: DefaultToken, profilesToken: DefaultProfilesToken, space: SpaceID,
		polls: fakevendor.Polls(opt.Polls, 2),
		users: map[string]int64{}, regs: map[string]*fakeRegulation{}, destinations: []string{"Amplitude", "Braze"}}
	if opt.RateLimit > 0 {
		srv.RateLimit(opt.RateLimit, max(opt.Burst, 1), TooMany)
		f.prof.RateLimit(opt.RateLimit, max(opt.Burst, 1), ProfilesTooMany)
	}
	srv.RequireAuth(func(r *http.Request) bool {
		token, _ := f.tokens()
		return r.Header.Get("Authorization") == "Bearer "+token
	}, func(w http.ResponseWriter, r *http.Request) {
		fakevendor.JSON(w, http.StatusUnauthorized, errorsBody("unauthorized", "Unauthorized"))
	})
	srv.Handle("POST /regulations", f.createRegulation)
	srv.Handle("GET /regulations/{id}", f.getRegulation)
	f.prof.RequireAuth(func(r *http.Request) bool {
		user, pass, ok := r.BasicAuth()
		_, token := f.tokens()
		return ok && user == token && pass == ""
	}, func(w http.ResponseWriter, r *http.Request) {
		fakevendor.JSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]string{"code": "unauthorized", "message": "Unauthorized"}})
	})
	f.prof.Handle("GET /v1/spaces/{space}/collections/users/profiles/{ext}/traits", f.profileTraits)
	return f
}

// ProfilesTooMany is the Profile API's 429: it names no delay.
func ProfilesTooMany(w http.ResponseWriter, r *http.Request) {
	fakevendor.JSON(w, http.StatusTooManyRequests, map[string]any{"error": map[string]string{"code": "too_many_requests", "message": "Too Many Requests"}})
}

// TooMany is the Public API's 429: X-RateLimit-Remaining 0 and the reset
// as an RFC 5322 date (3s ahead).
func TooMany(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-RateLimit-Remaining", "0")
	w.Header().Set("X-RateLimit-Reset", time.Now().Add(3*time.Second).UTC().Format(time.RFC1123Z))
	fakevendor.JSON(w, http.StatusTooManyRequests, errorsBody("too-many-requests", "Too many requests"))
}

func errorsBody(typ, msg string) map[string]any {
	return map[string]any{"errors": []map[string]string{{"type": typ, "message": msg}}}
}

// acceptedTypes are the regulation types the Public API takes.
func acceptedTypes() []string {
	return []string{"DELETE_INTERNAL", "DELETE_ONLY", "SUPPRESS_ONLY", "SUPPRESS_WITH_DELETE", "SUPPRESS_WITH_DELETE_INTERNAL", "UNSUPPRESS"}
}

func (f *Fake) createRegulation(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != mediaType && ct != "application/json" {
		fakevendor.JSON(w, http.StatusUnsupportedMediaType, errorsBody("unsupported-media-type", "Unsupported content type"))
		return
	}
	var body struct {
		RegulationType string   `json:"regulationType"`
		SubjectType    string   `json:"subjectType"`
		SubjectIDs     []string `json:"subjectIds"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		fakevendor.JSON(w, http.StatusBadRequest, errorsBody("bad-request", "Invalid JSON"))
		return
	}
	if !slices.Contains(acceptedTypes(), body.RegulationType) || (body.SubjectType != "USER_ID" && body.SubjectType != "OBJECT_ID") ||
		len(body.SubjectIDs) == 0 || len(body.SubjectIDs) > 5000 {
		fakevendor.JSON(w, http.StatusUnprocessableEntity, errorsBody("validation", "Validation failure"))
		return
	}
	f.mu.Lock()
	f.next++
	id := fmt.Sprintf("reg%04d", f.next)
	f.regs[id] = &fakeRegulation{typ: body.RegulationType, ids: body.SubjectIDs}
	f.mu.Unlock()
	fakevendor.JSON(w, http.StatusOK, map[string]any{"data": map[string]string{"regulateId": id}})
}

func (f *Fake) getRegulation(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	reg, ok := f.regs[r.PathValue("id")]
	if !ok {
		fakevendor.JSON(w, http.StatusNotFound, errorsBody("not-found", "Resource not found"))
		return
	}
	reg.polls++
	state := "FINISHED"
	switch {
	case reg.polls > f.polls:
	case reg.polls == 1:
		state = "INITIALIZED"
	default:
		state = "RUNNING"
	}
	overall := state
	var dests []map[string]string
	if state == "FINISHED" && f.overall != "" {
		overall = f.overall // forced statuses carry no destinations
	} else {
		for _, name := range f.destinations {
			d := map[string]string{"id": "dst_" + name, "name": name, "status": state, "errString": "", "finishedAt": ""}
			if state == "FINISHED" {
				d["finishedAt"] = "2026-01-02T03:04:05Z"
				switch name {
				case f.failAt:
					d["status"] = "FAILED"
					// Partners' messages can echo the user: the connector must not repeat them.
					d["errString"] = "user " + strings.Join(reg.ids, ",") + " could not be deleted"
					overall = "PARTIAL_SUCCESS"
				case f.refuseAt:
					d["status"] = "NOT_SUPPORTED"
					overall = "PARTIAL_SUCCESS"
				}
			}
			dests = append(dests, d)
		}
	}
	if state == "FINISHED" && overall != "INVALID" && overall != "NOT_SUPPORTED" && strings.Contains(reg.typ, "DELETE") {
		for _, id := range reg.ids {
			delete(f.users, id)
		}
	}
	rg := map[string]any{"id": r.PathValue("id"), "workspaceId": "ws_1", "overallStatus": overall,
		"createdAt": "2026-01-01T00:00:00Z", "streamStatus": []map[string]any{{"id": "st_1", "status": overall, "destinationStatus": dests}}}
	if state == "FINISHED" {
		rg["finishedAt"] = "2026-01-02T03:04:05Z"
	}
	fakevendor.JSON(w, http.StatusOK, map[string]any{"data": map[string]any{"regulation": rg}})
}

func (f *Fake) profileTraits(w http.ResponseWriter, r *http.Request) {
	notFound := map[string]any{"error": map[string]string{"code": "not_found", "message": "Profile not found"}}
	id, ok := strings.CutPrefix(r.PathValue("ext"), "user_id:")
	f.mu.Lock()
	n := f.users[id]
	f.mu.Unlock()
	if r.PathValue("space") != f.space || !ok || n == 0 {
		fakevendor.JSON(w, http.StatusNotFound, notFound)
		return
	}
	fakevendor.JSON(w, http.StatusOK, map[string]any{"traits": map[string]string{"plan": "pro"}, "cursor": map[string]any{"has_more": false}})
}

// tokens is the credentials the fake accepts.
func (f *Fake) tokens() (token, profilesToken string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.token, f.profilesToken
}

// SetTokens changes the Public API and Profile API tokens the fake
// accepts (another workspace).
func (f *Fake) SetTokens(token, profilesToken string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.token, f.profilesToken = token, profilesToken
}

// ProfilesURL is where the fake's Profile API listens.
func (f *Fake) ProfilesURL() string { return f.prof.URL }

// Config is a segment connector config against f, with the profile
// lookup, polling every 2ms. It reads the Segment userId from
// UserIDs["app"] (connectortest.UserIDSystem).
func (f *Fake) Config() string {
	token, profilesToken := f.tokens()
	return fmt.Sprintf("token: %s\nbase_url: %s\nprofiles:\n  space_id: %s\n  token: %s\n  base_url: %s\npoll_interval: 2ms\nuser_id_system: %s\n",
		token, f.URL(), f.space, profilesToken, f.ProfilesURL(), connectortest.UserIDSystem)
}

// ConfigWith is Config with top-level keys set (fakevendor.MergeYAML);
// "profiles:" leaves the profile lookup out.
func (f *Fake) ConfigWith(lines ...string) string { return fakevendor.MergeYAML(f.Config(), lines...) }

// Seed gives Segment a profile and events for the subject's
// UserIDs["app"] (it needs one).
func (f *Fake) Seed(s connectors.Subject) int64 {
	id := s.UserIDs[connectortest.UserIDSystem]
	if id == "" {
		panic("segmentfake: Seed needs a subject with UserIDs[\"" + connectortest.UserIDSystem + "\"]")
	}
	f.AddUser(id)
	return 1
}

// Count is what Segment holds about the subject's UserIDs["app"].
func (f *Fake) Count(s connectors.Subject) int64 {
	return f.CountUser(s.UserIDs[connectortest.UserIDSystem])
}

// Limited counts the requests the rate limits of both APIs refused.
func (f *Fake) Limited() int { return f.Controls.Limited() + f.prof.Limited() }

// Requests counts the requests both APIs received.
func (f *Fake) Requests() int { return f.Controls.Requests() + f.prof.Requests() }

// ProfileCalls returns what the Profile API was sent.
func (f *Fake) ProfileCalls() []fakevendor.Call { return f.prof.Calls() }

// InjectProfiles makes the Profile API's next n requests meet fault.
func (f *Fake) InjectProfiles(n int, fault fakevendor.Fault) { f.prof.Inject(n, fault) }

// AddUser gives Segment a profile and events for userID.
func (f *Fake) AddUser(userID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[userID] = 1
}

// CountUser is how many records (0 or 1) Segment holds for userID.
func (f *Fake) CountUser(userID string) int64 {
	if userID == "" {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.users[userID]
}

// FailAt makes the deletion fail at destination (Amplitude or Braze):
// the regulation ends PARTIAL_SUCCESS.
func (f *Fake) FailAt(destination string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failAt = destination
}

// RefuseAt makes destination (Amplitude or Braze) unable to delete
// (NOT_SUPPORTED): the regulation ends PARTIAL_SUCCESS.
func (f *Fake) RefuseAt(destination string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuseAt = destination
}

// EndRegulationsAs forces the final overallStatus of every regulation
// (FAILED, INVALID, …), without destination statuses.
func (f *Fake) EndRegulationsAs(status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.overall = status
}
