// Package amplitude is the amplitude connector: it asks Amplitude's User
// Privacy API to delete a person's events and user properties. Amplitude
// batches deletion requests into a job that runs 10 to 13 days later, so
// Erase schedules and Poll follows the job until it is done. A request
// takes up to 100 ids: EraseBatch schedules many people at once, and
// PollBatch lists each job day once for all of them.
package amplitude

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/vendorhttp"
	"github.com/lethe-dev/lethe/connectors/vendorkit"
)

const (
	defaultBaseURL      = "https://amplitude.com"
	defaultPollInterval = 24 * time.Hour
	defaultRequester    = "lethe"
	deletionsPath       = "/api/2/deletions/users"
	searchPath          = "/api/2/usersearch"
	dayLayout           = "2006-01-02"
	vendor              = "Amplitude"
)

// searchOp names the user search requests, which have a limit of their
// own.
const searchOp = "user search"

func init() {
	// Amplitude allows the User Privacy API one request a second, and
	// the post-erasure lookups (Dashboard REST API user search) 360 an
	// hour, 10 at a time: a burst of 10, then 350 an hour, so that no
	// hour holds more than 360.
	connectors.Register("amplitude", "Amplitude: a User Privacy API deletion of a user's events and properties (runs 10–13 days later)",
		connectors.Limits{Concurrency: 2, RatePerSecond: 1, Burst: 1,
			Endpoints: map[string]connectors.Rate{searchOp: {PerSecond: 350.0 / 3600, Burst: 10}}}, build)
}

// Config is the `config:` block of an amplitude instance.
//
//	api_key: {env: AMPLITUDE_API_KEY}
//	secret_key: {env: AMPLITUDE_SECRET_KEY}
//	base_url: https://analytics.eu.amplitude.com   # EU data residency; default https://amplitude.com
//	user_id_system: app                            # subject.user_ids key of the Amplitude user_id
//	amplitude_id_system: amplitude
//	requester: privacy@example.com
//	poll_interval: 24h                             # between status checks (the default)
type Config struct {
	// APIKey and SecretKey are the project's keys (Basic authentication).
	APIKey           config.Secret `yaml:"api_key"`
	SecretKey        config.Secret `yaml:"secret_key"`
	vendorkit.Fields `yaml:",inline"`
	// AmplitudeIDSystem, if set, is the subject.user_ids key holding the
	// person's numeric Amplitude ID, deleted too.
	AmplitudeIDSystem string `yaml:"amplitude_id_system"`
	// Requester is recorded by Amplitude for its audit ("lethe" by default).
	Requester string `yaml:"requester"`
}

// Validate fills in defaults and reports every problem at once, each
// naming its key.
func (c *Config) Validate() error {
	var p vendorkit.Problems
	p.Secret("api_key", c.APIKey, "the project's API key")
	p.Secret("secret_key", c.SecretKey, "the project's secret key")
	c.Check(&p, &vendorkit.URLRule{Default: defaultBaseURL}, defaultPollInterval)
	p.Namespace("amplitude_id_system", c.AmplitudeIDSystem)
	if c.AmplitudeIDSystem != "" && c.AmplitudeIDSystem == c.UserIDSystem {
		p.Add("amplitude_id_system", "must differ from user_id_system")
	}
	c.Requester = strings.TrimSpace(c.Requester)
	if c.Requester == "" {
		c.Requester = defaultRequester
	}
	if len(c.Requester) > 254 {
		p.Add("requester", "at most 254 characters")
	}
	return p.Err()
}

// Plan: Amplitude erases by user_id, or by Amplitude ID when
// amplitude_id_system is set; either one is enough.
func (c Config) Plan(name string) connectors.Plan {
	either := connectors.Requirement{c.IDKind(name)}
	if c.AmplitudeIDSystem != "" {
		either = append(either, connectors.UserIDKind(c.AmplitudeIDSystem))
	}
	return connectors.Plan{Keys: []connectors.Requirement{either}}
}

type connector struct {
	base      string
	system    string
	ampSystem string
	requester string
	poll      time.Duration
	api       *vendorhttp.Client
	// refKey keys the hashes of Amplitude IDs in job refs.
	refKey []byte
}

func build(_ context.Context, name string, cfg Config, deps connectors.Deps) (connectors.Connector, error) {
	key, secret, err := vendorkit.RevealPair(deps, "api_key", cfg.APIKey, "secret_key", cfg.SecretKey)
	if err != nil {
		return nil, err
	}
	api := vendorkit.Client(deps, vendor, vendorkit.Basic(key, secret))
	// A 429 names no delay; the documented rate is one request a second.
	api.MinRetryAfter = time.Second
	return &connector{base: cfg.BaseURL, system: cfg.System(name), ampSystem: cfg.AmplitudeIDSystem,
		requester: cfg.Requester, poll: cfg.PollInterval, api: api, refKey: refKey(secret)}, nil
}

// jobRef is what Poll needs: the day Amplitude's deletion job runs and
// the Amplitude IDs it scheduled, as short keyed hashes: the ref is stored
// and logged, and an Amplitude ID identifies the person. Amplitude IDs are
// near-sequential numbers, so an unkeyed hash of one is reversed by trying
// them all: version 2 refs key the hash with a key derived from the
// instance's secret key. Refs without a version (made before) are still
// read, with the unkeyed hash they were made with.
//
// Shared marks a ref of a batch whose answer did not say which of its
// Amplitude IDs were whose: IDs then holds this subject's own and those
// of the batch no one could be given, the job is followed for them all,
// and its end reports the erasure without a count.
type jobRef struct {
	V      int      `json:"v,omitempty"`
	Day    string   `json:"day"`
	IDs    []string `json:"ids"`
	Shared bool     `json:"shared,omitempty"`
}

// refKey derives the job-ref hash key from the instance's secret key. A
// secret rotated while a job runs makes its ref unreadable: Poll says so.
func refKey(secret string) []byte {
	sum := sha256.Sum256([]byte("lethe/amplitude-ref-key/v2/" + secret))
	return sum[:]
}

// refHash is how a job ref of version v remembers an Amplitude ID.
func (c *connector) refHash(v int, id ampID) string {
	if v < 2 {
		return idHash(id)
	}
	m := hmac.New(sha256.New, c.refKey)
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

func validDay(s string) bool {
	_, err := time.Parse(dayLayout, s)
	return err == nil
}

// idHash is how a version 1 job ref remembers an Amplitude ID.
func idHash(id ampID) string {
	sum := sha256.Sum256([]byte("lethe/amplitude-id/" + string(id)))
	return hex.EncodeToString(sum[:8])
}

// ampID is an Amplitude ID; Amplitude sends numbers, read as text so no
// precision is lost. It also reads a user_id, which Amplitude's examples
// send as numbers and as strings.
type ampID string

func (a *ampID) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		*a = ampID(n.String())
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*a = ampID(s)
	return nil
}

// entry is one user in a deletion job. UserID is in a deletion's answer
// only, when include_mapped_user_ids is sent and Amplitude matched the
// Amplitude ID to a user_id.
type entry struct {
	AmplitudeID    ampID  `json:"amplitude_id"`
	RequestedOnDay string `json:"requested_on_day"`
	UserID         ampID  `json:"user_id"`
}

// job is a deletion job as Amplitude lists it.
type job struct {
	Day          string  `json:"day"`
	Status       string  `json:"status"`
	AmplitudeIDs []entry `json:"amplitude_ids"`
}

// scheduled is Amplitude's answer to a deletion request: the job the
// request joined, and (with ignore_invalid_id) the ids it did not find.
// Amplitude's page does not show the form of invalid_ids: it is read
// leniently (see invalidIDs), and an unreadable one says nothing.
type scheduled struct {
	job
	InvalidIDs json.RawMessage `json:"invalid_ids"`
}

// invalidIDs are the ids the answer says were not found, as text; none
// when the answer has no list of strings and numbers.
func (s scheduled) invalidIDs() map[string]bool {
	var raw []json.RawMessage
	if json.Unmarshal(s.InvalidIDs, &raw) != nil {
		return nil
	}
	out := map[string]bool{}
	for _, r := range raw {
		var id ampID
		if json.Unmarshal(r, &id) == nil && id != "" {
			out[string(id)] = true
		}
	}
	return out
}

// maxIDs is how many ids one deletion request takes: Amplitude's page
// says "up to 100 users at a time" and "up to 100 amplitude_ids or
// user_ids" a request; Lethe counts both lists together, which satisfies
// either reading.
const maxIDs = 100

// BatchLimit is the most subjects one EraseBatch takes: 100, one
// deletion request when each has one id. A batch whose subjects have a
// user_id and an Amplitude ID each is sent in two or more requests.
func (c *connector) BatchLimit() int { return maxIDs }

// wanted is a subject's ids in a batch: either may be empty.
type wanted struct {
	userID, amplitudeID string
	n                   uint64 // amplitudeID as a number
}

// Erase schedules the deletion of the subject's user id (and Amplitude ID
// when configured): a batch of one.
func (c *connector) Erase(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	return connectors.One(ctx, c.EraseBatch, s)
}

// EraseBatch schedules the deletion of every subject's user id (and
// Amplitude ID when configured) with as few requests as the 100-id limit
// allows. Ids Amplitude does not know are ignored. Each subject's part is
// the Amplitude IDs the answer attributes to them (see attribute); a
// subject none are attributed to is not found, unless the answer leaves
// open whether some are theirs.
func (c *connector) EraseBatch(ctx context.Context, subjects []connectors.Subject) ([]connectors.Item, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	items := make([]connectors.Item, len(subjects))
	wants := make([]wanted, len(subjects))
	var usable []int
	for i, s := range subjects {
		w, err := c.wanted(s)
		if err != nil {
			items[i].Err = err
			continue
		}
		wants[i] = w
		usable = append(usable, i)
	}
	for _, chunk := range chunkByIDs(usable, wants) {
		if err := c.schedule(ctx, chunk, wants, items); err != nil {
			return nil, err
		}
	}
	return items, nil
}

// wanted reads the subject's ids, refusing a subject without any (see
// ids) or with an Amplitude ID that is not a number.
func (c *connector) wanted(s connectors.Subject) (wanted, error) {
	userID, amplitudeID, err := c.ids(context.Background(), s)
	if err != nil {
		return wanted{}, err
	}
	w := wanted{userID: userID}
	if amplitudeID != "" {
		n, err := strconv.ParseUint(amplitudeID, 10, 63)
		if err != nil {
			return wanted{}, connectors.Permanentf("the subject's id for %s is not a numeric Amplitude ID", c.ampSystem)
		}
		w.n, w.amplitudeID = n, strconv.FormatUint(n, 10)
	}
	return w, nil
}

// chunkByIDs splits the subjects (indexes into wants) into runs that send
// at most maxIDs distinct ids each.
func chunkByIDs(usable []int, wants []wanted) [][]int {
	var out [][]int
	var cur []int
	users, amps := map[string]bool{}, map[string]bool{}
	for _, i := range usable {
		w := wants[i]
		add := 0
		if w.userID != "" && !users[w.userID] {
			add++
		}
		if w.amplitudeID != "" && !amps[w.amplitudeID] {
			add++
		}
		if len(users)+len(amps)+add > maxIDs {
			out, cur = append(out, cur), nil
			users, amps = map[string]bool{}, map[string]bool{}
		}
		cur = append(cur, i)
		if w.userID != "" {
			users[w.userID] = true
		}
		if w.amplitudeID != "" {
			amps[w.amplitudeID] = true
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// schedule sends one deletion request for the subjects of chunk and sets
// their items.
func (c *connector) schedule(ctx context.Context, chunk []int, wants []wanted, items []connectors.Item) error {
	var userIDs []string
	var ampIDs []uint64
	for _, i := range chunk {
		w := wants[i]
		if w.userID != "" && !slices.Contains(userIDs, w.userID) {
			userIDs = append(userIDs, w.userID)
		}
		if w.amplitudeID != "" && !slices.Contains(ampIDs, w.n) {
			ampIDs = append(ampIDs, w.n)
		}
	}
	body := map[string]any{"requester": c.requester, "ignore_invalid_id": "true"} // booleans as strings, as documented
	if len(userIDs) > 0 {
		body["user_ids"] = userIDs
	}
	if len(ampIDs) > 0 {
		body["amplitude_ids"] = ampIDs
	}
	if len(userIDs) > 1 {
		// Which user_id each Amplitude ID came from; with one user_id
		// the answer needs no telling.
		body["include_mapped_user_ids"] = "true"
	}
	var j scheduled
	resp, err := c.api.Send(ctx, http.MethodPost, c.base+deletionsPath, body, &j, "schedule deletion", http.StatusNotFound)
	if err != nil {
		return err
	}
	if resp.Status == http.StatusNotFound {
		return connectors.Permanentf("Amplitude schedule deletion: 404 Not Found: check base_url (e.g. %s, or https://analytics.eu.amplitude.com)", defaultBaseURL)
	}
	if len(j.AmplitudeIDs) > 0 && !validDay(j.Day) {
		return connectors.Retryable(fmt.Errorf("%s schedule deletion: status %d without a job day", vendor, resp.Status), 0)
	}
	sub := make([]wanted, len(chunk))
	for k, i := range chunk {
		sub[k] = wants[i]
	}
	for k, part := range attribute(sub, j.AmplitudeIDs, j.invalidIDs()) {
		items[chunk[k]].Outcome = c.scheduledOutcome(j.job, part, len(chunk))
	}
	return nil
}

// share is a subject's part of a deletion request's answer.
type share struct {
	ids []ampID
	// shared: ids holds Amplitude IDs the answer did not attribute, which
	// may be this subject's or another's of the request.
	shared bool
}

// attribute gives each subject the Amplitude IDs of the answer that are
// theirs: those equal to the Amplitude ID they sent, and those the answer
// says came from their user_id. Amplitude IDs the answer attributes to no
// one (it left out their user_id) are given to the one user_id of the
// request they can have come from; when several can, to each of them as
// shared. A user_id the answer lists as invalid can have none. The
// answer is taken to list only this request's users (⚠ Amplitude's page
// says "List of the Amplitude IDs to delete").
func attribute(wants []wanted, entries []entry, invalid map[string]bool) []share {
	out := make([]share, len(wants))
	var pool []ampID
	for _, e := range entries {
		mine := false
		for k, w := range wants {
			if (w.amplitudeID != "" && string(e.AmplitudeID) == w.amplitudeID) || (w.userID != "" && string(e.UserID) == w.userID) {
				out[k].ids = append(out[k].ids, e.AmplitudeID)
				mine = true
			}
		}
		if !mine {
			pool = append(pool, e.AmplitudeID)
		}
	}
	if len(pool) == 0 {
		return out
	}
	owners := map[string]bool{}
	for _, w := range wants {
		if w.userID != "" && !invalid[w.userID] {
			owners[w.userID] = true
		}
	}
	for k, w := range wants {
		if owners[w.userID] {
			out[k].ids = append(out[k].ids, pool...)
			out[k].shared = len(owners) > 1
		}
	}
	return out
}

// scheduledOutcome is a subject's outcome of a deletion request for n
// subjects: not found when none of the job's Amplitude IDs are theirs,
// else running with a ref to their part.
func (c *connector) scheduledOutcome(j job, part share, n int) connectors.Outcome {
	if len(part.ids) == 0 {
		return connectors.NotFound(connectors.Evidence{Kind: "amplitude_deletion", Value: "Amplitude knows no user under the subject's ids; nothing scheduled"})
	}
	ref := jobRef{V: 2, Day: j.Day, Shared: part.shared}
	for _, id := range part.ids {
		if h := c.refHash(ref.V, id); !slices.Contains(ref.IDs, h) {
			ref.IDs = append(ref.IDs, h)
		}
	}
	value := fmt.Sprintf("job of %s: %s, %s scheduled", j.Day, j.Status, connectors.Plural(len(ref.IDs), "Amplitude ID"))
	if part.shared {
		value = fmt.Sprintf("job of %s: %s, %s scheduled for %d people together; Amplitude did not say which are this person's",
			j.Day, j.Status, connectors.Plural(len(ref.IDs), "Amplitude ID"), n)
	}
	return connectors.Running(vendorkit.EncodeRef(ref), c.poll, connectors.Evidence{Kind: "amplitude_deletion", Value: value})
}

// ids are the subject's user id and Amplitude ID, either possibly empty.
// The plan makes the runtime wait for one: a subject with neither (the
// instance's keys were changed) is refused, never reported not found or
// clean, as nothing was searched.
func (c *connector) ids(ctx context.Context, s connectors.Subject) (userID, amplitudeID string, err error) {
	if err := ctx.Err(); err != nil {
		return "", "", err
	}
	userID = s.UserIDs[c.system]
	systems := c.system
	if c.ampSystem != "" {
		amplitudeID = s.UserIDs[c.ampSystem]
		systems += " or " + c.ampSystem
	}
	if userID == "" && amplitudeID == "" {
		return "", "", connectors.Permanentf("the subject has no user id for %s: Amplitude erases and looks people up by those ids only (check the instance's keys)", systems)
	}
	return userID, amplitudeID, nil
}

// decodeRef reads a job ref of any version.
func decodeRef(ref string) (jobRef, error) {
	var j jobRef
	err := vendorkit.DecodeRef(ref, &j, func() bool { return len(j.IDs) > 0 && validDay(j.Day) }, "amplitude")
	return j, err
}

// Poll lists the deletion jobs of the ref's day and finds the scheduled
// Amplitude IDs in them.
func (c *connector) Poll(ctx context.Context, ref string) (connectors.Outcome, error) {
	j, err := decodeRef(ref)
	if err != nil {
		return connectors.Outcome{}, err
	}
	jobs, err := c.list(ctx, j.Day)
	if err != nil {
		return connectors.Outcome{}, err
	}
	return c.polled(j, jobs)
}

// PollBatch lists the deletion jobs of each day the refs name once, and
// reports on every ref from its day's list. A ref that cannot be read, or
// whose day's list failed, fails alone.
func (c *connector) PollBatch(ctx context.Context, refs []string) ([]connectors.Item, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	g := connectors.GroupRefs(refs, func(ref string) (jobRef, string, error) {
		j, err := decodeRef(ref)
		return j, j.Day, err
	})
	for _, day := range g.Jobs {
		jobs, err := c.list(ctx, day)
		for _, i := range g.ByJob[day] {
			if err != nil {
				g.Items[i].Err = err
				continue
			}
			g.Items[i].Outcome, g.Items[i].Err = c.polled(g.Refs[i], jobs)
		}
	}
	return g.Items, nil
}

// list is Amplitude's deletion jobs of day.
func (c *connector) list(ctx context.Context, day string) ([]job, error) {
	q := url.Values{"start_day": {day}, "end_day": {day}}
	var jobs []job
	if _, err := c.api.Send(ctx, http.MethodGet, c.base+deletionsPath+"?"+q.Encode(), nil, &jobs, "list deletion jobs"); err != nil {
		return nil, err
	}
	return jobs, nil
}

// polled is the ref's outcome from its day's jobs.
func (c *connector) polled(j jobRef, jobs []job) (connectors.Outcome, error) {
	want := map[string]bool{}
	for _, h := range j.IDs {
		want[h] = true
	}
	var found int
	status := ""
	for _, jb := range jobs {
		if jb.Day != j.Day {
			continue
		}
		for _, e := range jb.AmplitudeIDs {
			if h := c.refHash(j.V, e.AmplitudeID); want[h] {
				want[h] = false
				found++
				status = jb.Status
			}
		}
	}
	if found == 0 {
		return connectors.Outcome{}, connectors.Permanentf("Amplitude's deletion job of %s no longer holds this request: it was removed from staging, or the instance's secret_key changed since it was scheduled; erase the person again", j.Day)
	}
	value := fmt.Sprintf("job of %s: %s, %s", j.Day, status, connectors.Plural(found, "Amplitude ID"))
	if j.Shared {
		value += " of several people's; Amplitude did not say which are this person's"
	}
	ev := []connectors.Evidence{{Kind: "amplitude_deletion", Value: value}}
	switch strings.ToLower(status) {
	case "staging", "submitted":
		return connectors.Running(vendorkit.EncodeRef(j), c.poll, ev...), nil
	case "done":
		if j.Shared {
			return connectors.ErasedUncounted(ev...), nil
		}
		return connectors.Erased(int64(found), ev...), nil
	}
	return connectors.Outcome{Evidence: ev}, connectors.Retryable(fmt.Errorf("%s deletion job of %s has status %q", vendor, j.Day, status), 0)
}

// Verify searches Amplitude for the subject's user id (or Amplitude ID).
func (c *connector) Verify(ctx context.Context, s connectors.Subject) (connectors.Verification, error) {
	userID, amplitudeID, err := c.ids(ctx, s)
	if err != nil {
		return connectors.Verification{}, err
	}
	seen := map[ampID]bool{}
	for _, id := range []string{userID, amplitudeID} {
		if id == "" {
			continue
		}
		var body struct {
			Matches *[]struct {
				AmplitudeID ampID `json:"amplitude_id"`
			} `json:"matches"`
		}
		resp, err := c.api.Send(ctx, http.MethodGet, c.base+searchPath+"?user="+url.QueryEscape(id), nil, &body, searchOp)
		if err != nil {
			return connectors.Verification{}, err
		}
		if body.Matches == nil {
			return connectors.Verification{}, connectors.Retryable(fmt.Errorf("%s user search: status %d without matches", vendor, resp.Status), 0)
		}
		for _, m := range *body.Matches {
			seen[m.AmplitudeID] = true
		}
	}
	return connectors.Verification{Remaining: int64(len(seen)), Evidence: []connectors.Evidence{{Kind: "amplitude_search",
		Value: "after erasure: " + connectors.Plural(len(seen), "matching user")}}}, nil
}

var (
	_ connectors.BatchEraser = (*connector)(nil)
	_ connectors.BatchPoller = (*connector)(nil)
)
