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
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
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

// MaxSubjectIDs is how many userIds one regulation takes ("You can delete
// up to 5000 userIds per call using the Public API").
const MaxSubjectIDs = 5000

// Options tunes a fake.
//
// RateLimit, when > 0, refuses requests beyond this many per second
// (burst Burst, default 1) on each of the two APIs, as Segment does:
// the Public API with 429, X-RateLimit-Remaining: 0 and
// X-RateLimit-Reset as an RFC 5322 date; the Profile API with a bare
// 429.
// Polls is how many status polls a regulation stays unfinished
// (INITIALIZED, then RUNNING) before it is FINISHED: default 2;
// negative: none.
type Options = fakevendor.Options

// Fake is Segment's Public API (regulations) and Profile API as
// documented: POST /regulations (up to 5,000 subjectIds, 422 past that) →
// {"data":{"regulateId"}}, GET
// /regulations/{id} → data.regulation with overallStatus and per
// destination statuses advancing INITIALIZED → RUNNING → final over polls,
// 600 requests a minute answered by 429 with X-RateLimit-Reset as an RFC
// 5322 date, and profiles looked up by user_id:<id> or email:<address>
// (traits, external_ids; 404 when none). As Segment documents, a bare '+'
// in a profile's external id reads as a space: clients must send %2B.
// It is a connectortest.FaultyVendor, as the connector's TestVendor
// takes it.
type Fake struct {
	fakevendor.Controls                    // the Public API
	prof                *fakevendor.Server // the Profile API, another host

	mu                   sync.Mutex
	token, profilesToken *fakevendor.Key
	space                string
	polls                int
	users                fakevendor.IDs           // the userIds with a profile and events
	emails               map[string][]string      // email → the userIds on its profile
	idsCap               *fakevendor.Setting[int] // at most this many external ids a page, whatever the limit
	regs                 map[string]*fakeRegulation
	order                []string // regulation ids, as created
	next                 int
	destinations         []string
	failAt               fakevendor.Setting[string] // a destination whose deletion fails
	refuseAt             fakevendor.Setting[string] // a destination that cannot delete (NOT_SUPPORTED)
	refusedYetFinished   fakevendor.Setting[bool]   // with refuseAt: the regulation still ends FINISHED
	overall              fakevendor.Setting[string] // a final overall status forced for every regulation
}

type fakeRegulation struct {
	fakevendor.Job
	typ string
	ids []string
}

// Start starts a fake, both APIs, that stops when the test ends. Segment
// allows the Public API 600 requests a minute and the Profile API 100 a
// second; Options.RateLimit models them.
func Start(t testing.TB, opt Options) *Fake {
	t.Helper()
	f := &Fake{token: fakevendor.NewKey(DefaultToken), profilesToken: fakevendor.NewKey(DefaultProfilesToken), space: SpaceID,
		emails: map[string][]string{}, idsCap: fakevendor.NewSetting(100),
		regs: map[string]*fakeRegulation{}, destinations: []string{"Amplitude", "Braze"}}
	auth := fakevendor.BearerAuth(f.token, Refused)
	auth.Keys = append(auth.Keys, f.profilesToken) // the Profile API's, checked by its own server
	srv := fakevendor.Start(t, opt, fakevendor.Vendor{TooMany: TooMany, Polls: 2, Auth: auth})
	f.Controls, f.polls = srv.Controls(), srv.JobPolls
	// The Profile API: the access token is the user name, the password empty.
	f.prof = fakevendor.Start(t, opt, fakevendor.Vendor{TooMany: ProfilesTooMany,
		Auth: fakevendor.BasicAuth(f.profilesToken, fakevendor.NewKey(""), func(w http.ResponseWriter, r *http.Request) {
			fakevendor.JSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]string{"code": "unauthorized", "message": "Unauthorized"}})
		})})
	srv.Handle("POST /regulations", f.createRegulation)
	srv.Handle("GET /regulations/{id}", f.getRegulation)
	f.prof.Handle("GET /v1/spaces/{space}/collections/users/profiles/{ext}/traits", f.profileTraits)
	f.prof.Handle("GET /v1/spaces/{space}/collections/users/profiles/{ext}/external_ids", f.externalIDs)
	return f
}

// Refused is the Public API's answer to a token it does not accept.
func Refused(w http.ResponseWriter, _ *http.Request) {
	fakevendor.JSON(w, http.StatusUnauthorized, errorsBody("unauthorized", "Unauthorized"))
}

// ProfilesTooMany is the Profile API's 429: it names no delay.
func ProfilesTooMany(w http.ResponseWriter, r *http.Request) {
	fakevendor.JSON(w, http.StatusTooManyRequests, map[string]any{"error": map[string]string{"code": "too_many_requests", "message": "Too Many Requests"}})
}

// TooMany is the Public API's 429: X-RateLimit-Remaining 0 and the reset
// as an RFC 5322 date (3s ahead), and the documented body with
// data.msBeforeNext.
func TooMany(w http.ResponseWriter, r *http.Request) {
	const wait = 3 * time.Second
	w.Header().Set("X-RateLimit-Remaining", "0")
	w.Header().Set("X-RateLimit-Reset", time.Now().Add(wait).UTC().Format(time.RFC1123Z))
	fakevendor.JSON(w, http.StatusTooManyRequests, map[string]any{"errors": []map[string]any{{"type": "RequestError", "message": "Too many requests",
		"data": map[string]any{"remainingPoints": 0, "msBeforeNext": wait.Milliseconds(), "consumedPoints": 600}}}})
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
	// Segment takes up to MaxSubjectIDs userIds a call; what it answers
	// to more is not documented: a 422 as for any invalid input.
	if !slices.Contains(acceptedTypes(), body.RegulationType) || (body.SubjectType != "USER_ID" && body.SubjectType != "OBJECT_ID") ||
		len(body.SubjectIDs) == 0 || len(body.SubjectIDs) > MaxSubjectIDs || slices.Contains(body.SubjectIDs, "") {
		fakevendor.JSON(w, http.StatusUnprocessableEntity, errorsBody("validation", "Validation failure"))
		return
	}
	f.mu.Lock()
	f.next++
	id := fmt.Sprintf("reg%04d", f.next)
	f.regs[id] = &fakeRegulation{Job: fakevendor.NewJob(f.polls), typ: body.RegulationType, ids: body.SubjectIDs}
	f.order = append(f.order, id)
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
	state := reg.Stage("INITIALIZED", "RUNNING")
	reg.Poll()
	if reg.Ended {
		state = "FINISHED"
	}
	overall := state
	var dests []map[string]string
	if forced := f.overall.Get(); state == "FINISHED" && forced != "" {
		overall = forced // forced statuses carry no destinations
	} else {
		for _, name := range f.destinations {
			d := map[string]string{"id": "dst_" + name, "name": name, "status": state, "errString": "", "finishedAt": ""}
			if state == "FINISHED" {
				d["finishedAt"] = "2026-01-02T03:04:05Z"
				switch name {
				case f.failAt.Get():
					d["status"] = "FAILED"
					// Partners' messages can echo the user: the connector must not repeat them.
					d["errString"] = "user " + strings.Join(reg.ids, ",") + " could not be deleted"
					overall = "PARTIAL_SUCCESS"
				case f.refuseAt.Get():
					d["status"] = "NOT_SUPPORTED"
					if !f.refusedYetFinished.Get() {
						overall = "PARTIAL_SUCCESS"
					}
				}
			}
			dests = append(dests, d)
		}
	}
	if state == "FINISHED" && overall != "INVALID" && overall != "NOT_SUPPORTED" && strings.Contains(reg.typ, "DELETE") {
		for _, id := range reg.ids {
			f.removeUser(id)
		}
	}
	rg := map[string]any{"id": r.PathValue("id"), "workspaceId": "ws_1", "overallStatus": overall,
		"createdAt": "2026-01-01T00:00:00Z", "streamStatus": []map[string]any{{"id": "st_1", "status": overall, "destinationStatus": dests}}}
	if state == "FINISHED" {
		rg["finishedAt"] = "2026-01-02T03:04:05Z"
	}
	fakevendor.JSON(w, http.StatusOK, map[string]any{"data": map[string]any{"regulation": rg}})
}

// removeUser deletes userID's data and takes it off the profiles of the
// emails it was linked to (a profile left with no userId goes too).
func (f *Fake) removeUser(userID string) {
	f.users.Remove(userID)
	for email, ids := range f.emails {
		ids = slices.DeleteFunc(ids, func(id string) bool { return id == userID })
		if len(ids) == 0 {
			delete(f.emails, email)
		} else {
			f.emails[email] = ids
		}
	}
}

func profileNotFound(w http.ResponseWriter) {
	fakevendor.JSON(w, http.StatusNotFound, map[string]any{"error": map[string]string{"code": "not_found", "message": "Profile was not found."}})
}

// externalID reads the profile's external id "<type>:<value>" from the
// escaped path, as the Profile API does: a bare '+' is a space.
func externalID(r *http.Request) (typ, value string, ok bool) {
	segs := strings.Split(r.URL.EscapedPath(), "/")
	if len(segs) < 8 {
		return "", "", false
	}
	raw, err := url.PathUnescape(strings.ReplaceAll(segs[7], "+", " "))
	if err != nil {
		return "", "", false
	}
	return strings.Cut(raw, ":")
}

// profileIDs returns the external ids of the profile known by typ:value,
// or nil when there is none. Called with f.mu held.
func (f *Fake) profileIDs(typ, value string) []map[string]string {
	entry := func(t, id string) map[string]string {
		return map[string]string{"source_id": "src_1", "collection": "users", "id": id, "type": t,
			"created_at": "2026-01-01T00:00:00Z", "encoding": "none"}
	}
	switch typ {
	case "user_id":
		if !f.users.Has(value) {
			return nil
		}
		out := []map[string]string{entry("user_id", value), entry("anonymous_id", "anon-"+value)}
		for email, ids := range f.emails {
			if slices.Contains(ids, value) {
				out = append(out, entry("email", email))
			}
		}
		return out
	case "email":
		ids := f.emails[value]
		if len(ids) == 0 {
			return nil
		}
		out := []map[string]string{entry("email", value)}
		for _, id := range ids {
			out = append(out, entry("user_id", id), entry("anonymous_id", "anon-"+id))
		}
		return out
	}
	return nil
}

func (f *Fake) profileTraits(w http.ResponseWriter, r *http.Request) {
	typ, value, ok := externalID(r)
	f.mu.Lock()
	found := ok && r.PathValue("space") == f.space && f.profileIDs(typ, value) != nil
	f.mu.Unlock()
	if !found {
		profileNotFound(w)
		return
	}
	fakevendor.JSON(w, http.StatusOK, map[string]any{"traits": map[string]string{"plan": "pro"}, "cursor": map[string]any{"has_more": false}})
}

// externalIDs is GET …/profiles/{ext}/external_ids: the profile's ids,
// filtered by include, limit (1 to 100) a page, paged with next.
func (f *Fake) externalIDs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 10 // the Profile API's default page
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			fakevendor.JSON(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "validation_error", "message": "limit must be between 1 and 100"}})
			return
		}
		limit = n
	}
	limit = min(limit, f.idsCap.Get())
	start := 0
	if v := q.Get("next"); v != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(v, "map_"))
		if err != nil || n < 0 {
			fakevendor.JSON(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "invalid_request_error", "message": "invalid cursor"}})
			return
		}
		start = n
	}
	typ, value, ok := externalID(r)
	f.mu.Lock()
	var ids []map[string]string
	if ok && r.PathValue("space") == f.space {
		ids = f.profileIDs(typ, value)
	}
	f.mu.Unlock()
	if ids == nil {
		profileNotFound(w)
		return
	}
	if inc := q.Get("include"); inc != "" {
		types := strings.Split(inc, ",")
		ids = slices.DeleteFunc(ids, func(e map[string]string) bool { return !slices.Contains(types, e["type"]) })
	}
	page := []map[string]string{}
	if start < len(ids) {
		page = ids[start:min(start+limit, len(ids))]
	}
	cursor := map[string]any{"url": r.URL.Path, "has_more": start+limit < len(ids), "next": ""}
	if start+limit < len(ids) {
		cursor["next"] = fmt.Sprintf("map_%d", start+limit)
	}
	fakevendor.JSON(w, http.StatusOK, map[string]any{"data": page, "cursor": cursor})
}

// tokens is the credentials the fake accepts.
func (f *Fake) tokens() (token, profilesToken string) { return f.token.Get(), f.profilesToken.Get() }

// SetTokens changes the Public API and Profile API tokens the fake
// accepts (another workspace).
func (f *Fake) SetTokens(token, profilesToken string) {
	f.token.Set(token)
	f.profilesToken.Set(profilesToken)
}

// ProfilesURL is where the fake's Profile API listens.
func (f *Fake) ProfilesURL() string { return f.prof.URL }

// Config is a segment connector config against f, with the profile
// lookup, polling every 2ms. It reads the Segment userId from
// UserIDs["app"] (fakevendor.UserIDSystem).
func (f *Fake) Config() string {
	token, profilesToken := f.tokens()
	return fmt.Sprintf("token: %s\nbase_url: %s\nprofiles:\n  space_id: %s\n  token: %s\n  base_url: %s\npoll_interval: 2ms\nuser_id_system: %s\n",
		token, f.URL(), f.space, profilesToken, f.ProfilesURL(), fakevendor.UserIDSystem)
}

// ConfigWith is Config with top-level keys set (fakevendor.MergeYAML);
// "profiles:" leaves the profile lookup out.
func (f *Fake) ConfigWith(lines ...string) string { return fakevendor.MergeYAML(f.Config(), lines...) }

// Seed gives Segment a profile and events for the subject's
// UserIDs["app"] (it needs one), with the subject's email on the profile
// when it has one.
func (f *Fake) Seed(s connectors.Subject) int64 {
	id := fakevendor.NeedUserID("segmentfake: Seed", s)
	f.AddUser(id)
	if s.Email != "" {
		f.LinkEmail(s.Email, id)
	}
	return 1
}

// NoRecoverableState is why Segment keeps nothing a deleted user can be
// restored from: a regulation deletes permanently, deleted data cannot be
// replayed, and UNSUPPRESS only lifts the block on new data.
func (f *Fake) NoRecoverableState() string {
	return "Segment deletes a regulated userId's data permanently; deleted data cannot be replayed, and UNSUPPRESS only lets new data in again"
}

// Count is what Segment holds about the subject's UserIDs["app"].
func (f *Fake) Count(s connectors.Subject) int64 {
	return f.CountUser(s.UserIDs[fakevendor.UserIDSystem])
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
func (f *Fake) AddUser(userID string) { f.users.Add(userID) }

// LinkEmail puts email on the profile of userID (AddUser it first), as
// identity resolution does when the user is identified with that email:
// the profile is then found by email:<address> too, and one email may
// link several userIds.
func (f *Fake) LinkEmail(email, userID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Contains(f.emails[email], userID) {
		f.emails[email] = append(f.emails[email], userID)
	}
}

// CapExternalIDsPage makes every page of external ids hold at most n,
// whatever limit the client asks for (Segment: 10 by default, up to 100),
// so that paging can be tested with a few ids.
func (f *Fake) CapExternalIDsPage(n int) { f.idsCap.Set(n) }

// CountUser is how many records (0 or 1) Segment holds for userID.
func (f *Fake) CountUser(userID string) int64 { return f.users.Count(userID) }

// FailAt makes the deletion fail at destination (Amplitude or Braze):
// the regulation ends PARTIAL_SUCCESS.
func (f *Fake) FailAt(destination string) { f.failAt.Set(destination) }

// RefuseAt makes destination (Amplitude or Braze) unable to delete
// (NOT_SUPPORTED): the regulation ends PARTIAL_SUCCESS.
func (f *Fake) RefuseAt(destination string) { f.refuseAt.Set(destination) }

// RefuseAtYetFinish is RefuseAt with the regulation still ending
// FINISHED: Segment deleted what it could, the destination nothing.
func (f *Fake) RefuseAtYetFinish(destination string) {
	f.refuseAt.Set(destination)
	f.refusedYetFinished.Set(true)
}

// EndRegulationsAs forces the final overallStatus of every regulation
// (FAILED, INVALID, …), without destination statuses.
func (f *Fake) EndRegulationsAs(status string) { f.overall.Set(status) }

// Regulations returns the subjectIds of every regulation filed, in order.
func (f *Fake) Regulations() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([][]string, len(f.order))
	for i, id := range f.order {
		out[i] = slices.Clone(f.regs[id].ids)
	}
	return out
}

// RegulationCalls counts the create calls (POST /regulations) and status
// calls (GET /regulations/{id}) the Public API received, refused ones
// included.
func (f *Fake) RegulationCalls() (creates, statuses int) {
	for _, c := range f.Calls() {
		switch {
		case c.Method == http.MethodPost && c.Path == "/regulations":
			creates++
		case c.Method == http.MethodGet && strings.HasPrefix(c.Path, "/regulations/"):
			statuses++
		}
	}
	return creates, statuses
}
