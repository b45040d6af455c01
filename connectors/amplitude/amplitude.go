// Package amplitude is the amplitude connector: it asks Amplitude's User
// Privacy API to delete a person's events and user properties. Amplitude
// batches deletion requests into a job that runs 10 to 13 days later, so
// Erase schedules and Poll follows the job until it is done.
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

func init() {
	// Amplitude allows the User Privacy API one request a second.
	connectors.Register("amplitude", "Amplitude: a User Privacy API deletion of a user's events and properties (runs 10–13 days later)",
		connectors.Limits{Concurrency: 2, RatePerSecond: 1, Burst: 1}, build)
}

// Config is the `config:` block of an amplitude instance.
//
//	api_key: {env: AMPLITUDE_API_KEY}
//	secret_key: {env: AMPLITUDE_SECRET_KEY}
//	base_url: https://analytics.eu.amplitude.com   # default https://amplitude.com
//	user_id_system: app
//	amplitude_id_system: amplitude
//	requester: privacy@example.com
//	poll_interval: 24h
type Config struct {
	// APIKey and SecretKey are the project's keys (Basic authentication).
	APIKey    config.Secret `yaml:"api_key"`
	SecretKey config.Secret `yaml:"secret_key"`
	// BaseURL is https://amplitude.com by default,
	// https://analytics.eu.amplitude.com for EU data residency.
	BaseURL string `yaml:"base_url"`
	// UserIDSystem is the subject.user_ids key holding the Amplitude
	// user_id; default: the instance name.
	UserIDSystem string `yaml:"user_id_system"`
	// AmplitudeIDSystem, if set, is the subject.user_ids key holding the
	// person's numeric Amplitude ID, deleted too.
	AmplitudeIDSystem string `yaml:"amplitude_id_system"`
	// Requester is recorded by Amplitude for its audit ("lethe" by default).
	Requester string `yaml:"requester"`
	// PollInterval is how long to wait between status checks (default 24h).
	PollInterval time.Duration `yaml:"poll_interval"`
}

// Validate fills in defaults and reports every problem at once, each
// naming its key.
func (c *Config) Validate() error {
	var p vendorkit.Problems
	p.Secret("api_key", c.APIKey, "the project's API key")
	p.Secret("secret_key", c.SecretKey, "the project's secret key")
	p.BaseURL(&c.BaseURL, vendorkit.URLRule{Default: defaultBaseURL})
	p.Namespace("user_id_system", c.UserIDSystem)
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
	p.Interval("poll_interval", &c.PollInterval, defaultPollInterval)
	return p.Err()
}

// system is the subject.user_ids key holding the user_id.
func (c Config) system(name string) string { return vendorkit.System(c.UserIDSystem, name) }

// Plan: Amplitude erases by user_id, or by Amplitude ID when
// amplitude_id_system is set; either one is enough.
func (c Config) Plan(name string) connectors.Plan {
	either := connectors.Requirement{connectors.UserIDKind(c.system(name))}
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
	return &connector{base: cfg.BaseURL, system: cfg.system(name), ampSystem: cfg.AmplitudeIDSystem,
		requester: cfg.Requester, poll: cfg.PollInterval, api: api, refKey: refKey(secret)}, nil
}

// jobRef is what Poll needs: the day Amplitude's deletion job runs and
// the Amplitude IDs it scheduled, as short keyed hashes: the ref is stored
// and logged, and an Amplitude ID identifies the person. Amplitude IDs are
// near-sequential numbers, so an unkeyed hash of one is reversed by trying
// them all: version 2 refs key the hash with a key derived from the
// instance's secret key. Refs without a version (made before) are still
// read, with the unkeyed hash they were made with.
type jobRef struct {
	V   int      `json:"v,omitempty"`
	Day string   `json:"day"`
	IDs []string `json:"ids"`
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
// precision is lost.
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

// entry is one user in a deletion job.
type entry struct {
	AmplitudeID    ampID  `json:"amplitude_id"`
	RequestedOnDay string `json:"requested_on_day"`
}

// job is a deletion job as Amplitude lists it.
type job struct {
	Day          string  `json:"day"`
	Status       string  `json:"status"`
	AmplitudeIDs []entry `json:"amplitude_ids"`
}

// Erase schedules the deletion of the subject's user id (and Amplitude ID
// when configured). Ids Amplitude does not know are ignored; when it knows
// none, the subject is not found.
func (c *connector) Erase(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	userID, amplitudeID, err := c.ids(ctx, s)
	if err != nil {
		return connectors.Outcome{}, err
	}
	body := map[string]any{"requester": c.requester, "ignore_invalid_id": "true"} // booleans as strings, as documented
	if userID != "" {
		body["user_ids"] = []string{userID}
	}
	if amplitudeID != "" {
		n, err := strconv.ParseUint(amplitudeID, 10, 63)
		if err != nil {
			return connectors.Outcome{}, connectors.Permanentf("the subject's id for %s is not a numeric Amplitude ID", c.ampSystem)
		}
		body["amplitude_ids"] = []uint64{n}
	}
	var j job
	resp, err := c.api.Send(ctx, http.MethodPost, c.base+deletionsPath, body, &j, "schedule deletion", http.StatusNotFound)
	if err != nil {
		return connectors.Outcome{}, err
	}
	if resp.Status == http.StatusNotFound {
		return connectors.Outcome{}, connectors.Permanentf("Amplitude schedule deletion: 404 Not Found: check base_url (e.g. %s, or https://analytics.eu.amplitude.com)", defaultBaseURL)
	}
	if len(j.AmplitudeIDs) == 0 {
		return connectors.NotFound(connectors.Evidence{Kind: "amplitude_deletion", Value: "Amplitude knows no user under the subject's ids; nothing scheduled"}), nil
	}
	if !validDay(j.Day) {
		return connectors.Outcome{}, connectors.Retryable(fmt.Errorf("%s schedule deletion: status %d without a job day", vendor, resp.Status), 0)
	}
	ref := jobRef{V: 2, Day: j.Day}
	for _, e := range j.AmplitudeIDs {
		if h := c.refHash(ref.V, e.AmplitudeID); !slices.Contains(ref.IDs, h) {
			ref.IDs = append(ref.IDs, h)
		}
	}
	return connectors.Running(vendorkit.EncodeRef(ref), c.poll, connectors.Evidence{Kind: "amplitude_deletion",
		Value: fmt.Sprintf("job of %s: %s, %s scheduled", j.Day, j.Status, connectors.Plural(len(ref.IDs), "Amplitude ID"))}), nil
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

// Poll lists the deletion jobs of the ref's day and finds the scheduled
// Amplitude IDs in them.
func (c *connector) Poll(ctx context.Context, ref string) (connectors.Outcome, error) {
	var j jobRef
	if err := vendorkit.DecodeRef(ref, &j, func() bool { return len(j.IDs) > 0 && validDay(j.Day) }, "amplitude"); err != nil {
		return connectors.Outcome{}, err
	}
	q := url.Values{"start_day": {j.Day}, "end_day": {j.Day}}
	var jobs []job
	if _, err := c.api.Send(ctx, http.MethodGet, c.base+deletionsPath+"?"+q.Encode(), nil, &jobs, "list deletion jobs"); err != nil {
		return connectors.Outcome{}, err
	}
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
	ev := []connectors.Evidence{{Kind: "amplitude_deletion", Value: fmt.Sprintf("job of %s: %s, %s", j.Day, status, connectors.Plural(found, "Amplitude ID"))}}
	switch strings.ToLower(status) {
	case "staging", "submitted":
		return connectors.Running(vendorkit.EncodeRef(j), c.poll, ev...), nil
	case "done":
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
		resp, err := c.api.Send(ctx, http.MethodGet, c.base+searchPath+"?user="+url.QueryEscape(id), nil, &body, "user search")
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
