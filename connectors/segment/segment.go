// Package segment is the segment connector: it asks Segment, through its
// Public API, to delete and suppress a person known by their userId. Segment
// carries the regulation out in its own systems and forwards it to the
// connected destinations over days, so Erase starts a job and Poll follows
// it. With the Unify Profile API configured it also finds a person's userIds
// by email, before anything is erased.
package segment

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/vendorhttp"
	"github.com/lethe-dev/lethe/connectors/vendorkit"
)

const (
	defaultBaseURL         = "https://api.segmentapis.com"
	defaultProfilesBaseURL = "https://profiles.segment.com"
	defaultPollInterval    = 6 * time.Hour
	defaultRegulationType  = "SUPPRESS_WITH_DELETE"
	// mediaType selects version 1 of the Public API.
	mediaType = "application/vnd.segment.v1+json"
	vendor    = "Segment"
)

// regulationTypes are the deleting regulation types the Public API accepts.
var regulationTypes = []string{"SUPPRESS_WITH_DELETE", "DELETE_ONLY", "SUPPRESS_WITH_DELETE_INTERNAL", "DELETE_INTERNAL"}

func init() {
	// Segment's Public API allows 600 requests a minute per token.
	connectors.Register("segment", "Segment: delete and suppress a userId in Segment and its destinations (a regulation)",
		connectors.Limits{Concurrency: 4, RatePerSecond: 10, Burst: 10}, build)
}

// Config is the `config:` block of a segment instance.
//
//	token: {env: SEGMENT_PUBLIC_API_TOKEN}
//	base_url: https://eu1.api.segmentapis.com   # the Public API (EU workspaces); default https://api.segmentapis.com
//	user_id_system: app                         # subject.user_ids key of the Segment userId
//	poll_interval: 6h                           # between status checks (the default)
//	profiles:                                  # optional, with Unify
//	  space_id: spa_123
//	  token: {env: SEGMENT_PROFILES_TOKEN}
//	  resolve_by_email: true                   # the default with profiles
type Config struct {
	// Token is a Public API token allowed to create deletion requests
	// (Workspace Owner); sent as a Bearer token.
	Token            config.Secret `yaml:"token"`
	vendorkit.Fields `yaml:",inline"`
	// RegulationType is SUPPRESS_WITH_DELETE (default), DELETE_ONLY,
	// SUPPRESS_WITH_DELETE_INTERNAL or DELETE_INTERNAL.
	RegulationType string `yaml:"regulation_type"`
	// Profiles, when set, looks the person up in Unify before and after
	// the regulation: without it Lethe cannot tell "erased" from "Segment
	// never saw them", and cannot verify. It also finds the userIds of a
	// person known only by email (ResolveByEmail).
	Profiles *ProfilesConfig `yaml:"profiles"`
}

// ProfilesConfig is the optional Unify Profile API lookup.
type ProfilesConfig struct {
	SpaceID string        `yaml:"space_id"`
	Token   config.Secret `yaml:"token"`
	// BaseURL is https://profiles.segment.com by default
	// (https://profiles.euw1.segment.com for EU spaces).
	BaseURL string `yaml:"base_url"`
	// ResolveByEmail (default true) looks people up by email
	// (email:<address>/external_ids) to find their userIds. Set false to
	// keep email addresses out of Profile API URLs: Segment advises
	// against looking profiles up by email, as URLs reach server logs.
	ResolveByEmail *bool `yaml:"resolve_by_email"`
}

// resolves reports whether p finds userIds by email.
func (p *ProfilesConfig) resolves() bool {
	return p != nil && (p.ResolveByEmail == nil || *p.ResolveByEmail)
}

// Plan: Segment erases by userId only. With the Profile API (and
// resolve_by_email left on) the instance also finds userIds by email.
func (c Config) Plan(name string) connectors.Plan {
	id := c.IDKind(name)
	p := connectors.Plan{Keys: []connectors.Requirement{{id}}}
	if c.Profiles.resolves() {
		p.ResolveBy = []connectors.Kind{connectors.Email}
		p.Gives = []connectors.Kind{id}
	}
	return p
}

var spaceIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Validate fills in defaults and reports every problem at once, each
// naming its key.
func (c *Config) Validate() error {
	var p vendorkit.Problems
	p.Secret("token", c.Token, "a Public API token")
	c.Check(&p, &vendorkit.URLRule{Default: defaultBaseURL}, defaultPollInterval)
	p.OneOf("regulation_type", &c.RegulationType, regulationTypes...)
	if pc := c.Profiles; pc != nil {
		if !spaceIDRe.MatchString(pc.SpaceID) {
			p.Add("profiles.space_id", "required: the Unify space id (letters, digits, '_' or '-')")
		}
		p.Secret("profiles.token", pc.Token, "a Profile API access token")
		p.BaseURL(&pc.BaseURL, vendorkit.URLRule{Key: "profiles.base_url", Default: defaultProfilesBaseURL})
	}
	return p.Err()
}

// connector is an instance without a profile lookup.
type connector struct {
	base     string
	system   string
	regType  string
	poll     time.Duration
	api      *vendorhttp.Client
	profiles *profiles
}

// verifying adds Verify; it is built only with a profile lookup, so the
// runtime knows when no post-erasure lookup is possible.
type verifying struct{ *connector }

// resolving adds Resolve: userIds found by email through the Profile API.
type resolving struct{ verifying }

// profiles looks users up in a Unify space.
type profiles struct {
	base  string
	space string
	api   *vendorhttp.Client
}

func build(_ context.Context, name string, cfg Config, deps connectors.Deps) (connectors.Connector, error) {
	token, err := vendorkit.Reveal(deps, "token", cfg.Token)
	if err != nil {
		return nil, err
	}
	api := vendorkit.Client(deps, vendor, vendorkit.Bearer(token))
	api.ResetHeader = "X-RateLimit-Reset"
	c := &connector{base: cfg.BaseURL, system: cfg.System(name), regType: cfg.RegulationType, poll: cfg.PollInterval, api: api}
	if cfg.Profiles == nil {
		return c, nil
	}
	ptoken, err := vendorkit.Reveal(deps, "profiles.token", cfg.Profiles.Token)
	if err != nil {
		return nil, err
	}
	// The access token is the user name, the password is empty.
	papi := vendorkit.Client(deps, "Segment Profile API", vendorkit.Basic(ptoken, ""))
	// The Profile API's 429 names no delay.
	papi.MinRetryAfter = time.Second
	c.profiles = &profiles{base: cfg.Profiles.BaseURL, space: cfg.Profiles.SpaceID, api: papi}
	if cfg.Profiles.resolves() {
		return resolving{verifying{c}}, nil
	}
	return verifying{c}, nil
}

// Profile lookup results kept in the job ref.
const (
	profileFound = "found"
	profileNone  = "none"
)

// batchLimit is how many userIds one regulation takes: "You can delete up
// to 5000 userIds per call using the Public API".
const batchLimit = 5000

var (
	_ connectors.BatchEraser = (*connector)(nil)
	_ connectors.BatchPoller = (*connector)(nil)
	_ connectors.BatchPoller = resolving{}
)

// jobRef is what Poll needs, stored by the runtime while the regulation
// runs: Segment's regulation id, what the profile lookup found before it
// (empty without a lookup) and, for a regulation filed for several
// people, how many userIds it holds. It holds no identifier of the person.
// Refs written before batches lack Subjects and read as one userId.
type jobRef struct {
	Regulation string `json:"regulation"`
	Profile    string `json:"profile,omitempty"`
	Subjects   int    `json:"subjects,omitempty"`
}

// Erase creates a regulation for the subject's userId: a batch of one. The
// plan makes the runtime wait for one; a subject without it is refused,
// never reported not found: nothing was searched.
func (c *connector) Erase(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	return connectors.One(ctx, c.EraseBatch, s)
}

// profileBatchLimit bounds a batch when every subject is first looked
// up in the Profile API, one call each (it has no bulk lookup): at the
// default 10 calls a second, a batch's calls take about 20 seconds, well
// inside the runtime's timeout of one call, instead of 500 for 5,000.
const profileBatchLimit = 200

// BatchLimit is the most userIds Segment takes in one regulation, or
// profileBatchLimit when each subject is looked up first.
func (c *connector) BatchLimit() int {
	if c.profiles != nil {
		return profileBatchLimit
	}
	return batchLimit
}

// EraseBatch files one regulation for the userIds of all subjects (one per
// 5,000 distinct userIds, should it be given more than BatchLimit). Each
// subject gets its own job ref: the regulation and what its own profile
// lookup found. A subject without a userId fails alone; the same userId
// twice is sent once.
//
// An error before any regulation exists (a profile lookup or the first
// create failing) fails the whole call, so the runtime can split the batch;
// once a regulation was filed, a later chunk that fails fails only its own
// subjects, and the filed regulation is not lost.
func (c *connector) EraseBatch(ctx context.Context, subjects []connectors.Subject) ([]connectors.Item, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	items := make([]connectors.Item, len(subjects))
	// ids are the distinct userIds in order; who[k] the subjects holding ids[k].
	var ids []string
	var who [][]int
	seen := map[string]int{}
	for i, s := range subjects {
		id, err := c.userIDOf(s)
		if err != nil {
			items[i].Err = err
			continue
		}
		k, ok := seen[id]
		if !ok {
			k = len(ids)
			seen[id] = k
			ids = append(ids, id)
			who = append(who, nil)
		}
		who[k] = append(who[k], i)
	}
	if len(ids) == 0 {
		return items, nil
	}
	// Before anything is erased: which userIds have a profile. The Profile
	// API looks up one profile a call.
	var before []string
	if c.profiles != nil {
		before = make([]string, len(ids))
		for k, id := range ids {
			found, err := c.profiles.lookup(ctx, id)
			if err != nil {
				return nil, err
			}
			before[k] = profileNone
			if found {
				before[k] = profileFound
			}
		}
	}
	chunks := connectors.Chunks(len(ids), batchLimit)
	for n, ch := range chunks {
		reg, err := c.createRegulation(ctx, ids[ch[0]:ch[1]])
		if err != nil {
			if n == 0 {
				return nil, err
			}
			// The regulations already filed stand; the subjects of this
			// chunk and the next ones fail alone, to be erased again.
			for k := ch[0]; k < len(ids); k++ {
				for _, i := range who[k] {
					items[i].Err = err
				}
			}
			break
		}
		size := ch[1] - ch[0]
		created := connectors.Evidence{Kind: "segment_regulation", Value: reg + ": created (" + c.regType + ") for " + connectors.Plural(size, "user id")}
		for k := ch[0]; k < ch[1]; k++ {
			ref := jobRef{Regulation: reg}
			if size > 1 {
				ref.Subjects = size
			}
			var ev []connectors.Evidence
			if before != nil {
				ref.Profile = before[k]
				ev = append(ev, connectors.Evidence{Kind: "segment_profile", Value: "before erasure: " + describeProfile(before[k] == profileFound)})
			}
			ev = append(ev, created)
			for _, i := range who[k] {
				items[i].Outcome = connectors.Running(vendorkit.EncodeRef(ref), c.poll, ev...)
			}
		}
	}
	return items, nil
}

// createRegulation files one regulation for ids and returns its id.
func (c *connector) createRegulation(ctx context.Context, ids []string) (string, error) {
	var body struct {
		Data struct {
			RegulateID string `json:"regulateId"`
		} `json:"data"`
	}
	resp, err := c.send(ctx, http.MethodPost, c.base+"/regulations", map[string]any{
		"regulationType": c.regType,
		"subjectType":    "USER_ID",
		"subjectIds":     ids,
	}, &body, "create regulation")
	if err != nil {
		return "", err
	}
	if resp.Status == http.StatusNotFound {
		return "", connectors.Permanentf("Segment create regulation: 404 Not Found: check base_url (it must be the Public API, e.g. %s)", defaultBaseURL)
	}
	if body.Data.RegulateID == "" {
		return "", connectors.Retryable(fmt.Errorf("%s create regulation: status %d without a regulateId", vendor, resp.Status), 0)
	}
	return body.Data.RegulateID, nil
}

// regulation is the part of GET /regulations/{id} the connector reads.
type regulation struct {
	ID            string `json:"id"`
	OverallStatus string `json:"overallStatus"`
	FinishedAt    string `json:"finishedAt"`
	StreamStatus  []struct {
		DestinationStatus []destination `json:"destinationStatus"`
	} `json:"streamStatus"`
}

type destination struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	// ErrString is Segment's reason for a failure. It is left out of
	// evidence and errors: a destination's message may echo the userId.
	ErrString  string `json:"errString"`
	FinishedAt string `json:"finishedAt"`
}

// Poll reads the regulation and judges it destination by destination: a
// batch of one.
func (c *connector) Poll(ctx context.Context, ref string) (connectors.Outcome, error) {
	return connectors.One(ctx, c.PollBatch, ref)
}

// PollBatch reads each regulation the refs name once, and judges it for
// every ref: Segment reports a regulation's status, destination by
// destination, for all its userIds together, so each of them gets the
// regulation's verdict (and their own profile lookup's). A malformed ref,
// or a regulation Segment no longer has, fails its refs alone; any other
// failure fails the call.
func (c *connector) PollBatch(ctx context.Context, refs []string) ([]connectors.Item, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	g := connectors.GroupRefs(refs, func(ref string) (jobRef, string, error) {
		var j jobRef
		err := vendorkit.DecodeRef(ref, &j, func() bool { return j.Regulation != "" }, "segment")
		return j, j.Regulation, err
	})
	for _, id := range g.Jobs {
		r, found, err := c.getRegulation(ctx, id)
		if err != nil {
			return nil, err
		}
		for _, i := range g.ByJob[id] {
			if !found {
				g.Items[i].Err = connectors.Permanentf("Segment regulation %s not found: it was deleted, or token and base_url belong to another workspace", id)
				continue
			}
			out, err := c.judge(g.Refs[i], r)
			g.Items[i] = connectors.Item{Outcome: out, Err: err}
		}
	}
	return g.Items, nil
}

// getRegulation reads regulation id; found is false when Segment answers
// 404.
func (c *connector) getRegulation(ctx context.Context, id string) (r regulation, found bool, err error) {
	var body struct {
		Data struct {
			Regulation regulation `json:"regulation"`
		} `json:"data"`
	}
	resp, err := c.send(ctx, http.MethodGet, c.base+"/regulations/"+url.PathEscape(id), nil, &body, "get regulation")
	if err != nil {
		return regulation{}, false, err
	}
	if resp.Status == http.StatusNotFound {
		return regulation{}, false, nil
	}
	return body.Data.Regulation, true, nil
}

// send is vendorhttp's Send speaking version 1 of the Public API (its
// media type asked for, and sent with a body); a 404 comes back for the
// caller to explain.
func (c *connector) send(ctx context.Context, method, url string, body, out any, op string) (*vendorhttp.Response, error) {
	req, err := vendorhttp.JSONRequest(method, url, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", mediaType)
	}
	req.Header.Set("Accept", mediaType+", application/json")
	resp, err := c.api.Do(ctx, req, op, http.StatusNotFound)
	if err == nil && resp.Status/100 == 2 {
		err = resp.JSON(out)
	}
	return resp, err
}

// judge is the regulation's verdict for one ref. A regulation filed for
// several userIds reports on all of them at once, so whatever it says
// applies to each of them alike: a destination that failed fails every
// one (Segment does not say for whom it failed), and "erased" is claimed
// only when the regulation finished everywhere.
func (c *connector) judge(j jobRef, r regulation) (connectors.Outcome, error) {
	var dests []destination
	for _, s := range r.StreamStatus {
		dests = append(dests, s.DestinationStatus...)
	}
	overall := r.OverallStatus
	head := j.Regulation + ": " + overall
	if r.FinishedAt != "" {
		head += " at " + r.FinishedAt
	}
	ev := []connectors.Evidence{{Kind: "segment_regulation", Value: head}}
	if j.Subjects > 1 {
		ev = append(ev, connectors.Evidence{Kind: "segment_regulation", Value: j.Regulation + " holds " + connectors.Plural(j.Subjects, "user id") +
			": its statuses are for all of them together"})
	}
	var failed, refused []string
	for _, d := range dests {
		v := d.Name + ": " + d.Status
		if d.FinishedAt != "" {
			v += " at " + d.FinishedAt
		}
		ev = append(ev, connectors.Evidence{Kind: "segment_destination", Value: v})
		switch d.Status {
		case "FAILED", "PARTIAL_SUCCESS":
			failed = append(failed, d.Name)
		case "INVALID", "NOT_SUPPORTED":
			refused = append(refused, d.Name)
		}
	}
	partial := connectors.Outcome{Evidence: ev}
	switch overall {
	case "INITIALIZED", "RUNNING":
		return connectors.Running(vendorkit.EncodeRef(j), c.poll, ev...), nil
	case "FINISHED", "PARTIAL_SUCCESS", "FAILED":
		if len(failed) > 0 {
			// A new regulation sends the deletion to the destinations again.
			return partial, connectors.Retryable(fmt.Errorf("%s regulation %s %s: deletion failed at %s (Segment's reasons are in the workspace under Privacy)", vendor,
				j.Regulation, overall, strings.Join(failed, ", ")), 0)
		}
		// A regulation Segment calls failed or partly successful did not
		// succeed everywhere, even when no destination says where: never
		// "erased" on the strength of it.
		if overall != "FINISHED" && len(refused) == 0 {
			return partial, connectors.Retryable(fmt.Errorf("%s regulation %s %s, no destination named as failing", vendor, j.Regulation, overall), 0)
		}
		// A destination that cannot delete still holds the person, even
		// when Segment calls the regulation FINISHED: never "erased".
		if len(refused) > 0 {
			return partial, connectors.Permanentf("Segment regulation %s %s: %s cannot delete users through Segment: erase there by other means or record an exemption",
				j.Regulation, overall, strings.Join(refused, ", "))
		}
		if j.Profile == profileNone {
			return connectors.NotFound(ev...), nil
		}
		// Segment reports the regulation done, not what it removed.
		return connectors.ErasedUncounted(ev...), nil
	case "INVALID", "NOT_SUPPORTED":
		return partial, connectors.Permanentf("Segment regulation %s is %s: Segment refused it; check regulation_type and that user_id_system holds Segment userIds", j.Regulation, overall)
	}
	return partial, connectors.Retryable(fmt.Errorf("%s regulation %s has an unknown status %q", vendor, j.Regulation, overall), 0)
}

// Verify looks the person's profile up in Unify.
func (v verifying) Verify(ctx context.Context, s connectors.Subject) (connectors.Verification, error) {
	id, err := v.userID(ctx, s)
	if err != nil {
		return connectors.Verification{}, err
	}
	found, err := v.profiles.lookup(ctx, id)
	if err != nil {
		return connectors.Verification{}, err
	}
	out := connectors.Verification{Evidence: []connectors.Evidence{{Kind: "segment_profile", Value: "after erasure: " + describeProfile(found)}}}
	if found {
		out.Remaining = 1
	}
	return out, nil
}

// userID is the subject's userId. A subject without the userId the plan
// requires is refused: the runtime should not have sent it (or the
// instance's keys were changed).
func (c *connector) userID(ctx context.Context, s connectors.Subject) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	return c.userIDOf(s)
}

// userIDOf is userID without the context check, for a batch.
func (c *connector) userIDOf(s connectors.Subject) (string, error) {
	if id := s.UserIDs[c.system]; id != "" {
		return id, nil
	}
	return "", connectors.Permanentf("the subject has no user id for %s: Segment erases and looks people up by userId only (check the instance's keys)", c.system)
}

// profileURL is the Profile API route for the profile known by external id
// kind:value. The value is escaped byte by byte, '+' and '@' included:
// Segment reads a bare '+' as a space and may answer 500 to other
// punctuation.
func (p *profiles) profileURL(kind, value, route string) string {
	return p.base + "/v1/spaces/" + url.PathEscape(p.space) + "/collections/users/profiles/" +
		kind + ":" + escapeID(value) + "/" + route
}

// escapeID percent-encodes every byte of v outside RFC 3986's unreserved
// set, so no identifier can add a path segment, a query or a fragment.
func escapeID(v string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// lookup reports whether the space holds a profile for the userId.
func (p *profiles) lookup(ctx context.Context, userID string) (bool, error) {
	resp, err := p.api.Send(ctx, http.MethodGet, p.profileURL("user_id", userID, "traits?limit=1"), nil, nil, "profile lookup", http.StatusNotFound)
	if err != nil {
		return false, err
	}
	return resp.Status != http.StatusNotFound, nil
}

// maxIDPages bounds how many pages of external ids Resolve reads for one
// profile (100 a page).
const maxIDPages = 20

// Resolve finds the userIds of the profile the subject's email belongs to
// (GET …/profiles/email:<address>/external_ids). No profile is an empty
// resolution; several userIds on one profile are all reported.
func (r resolving) Resolve(ctx context.Context, s connectors.Subject) (connectors.Resolution, error) {
	if err := ctx.Err(); err != nil {
		return connectors.Resolution{}, err
	}
	var res connectors.Resolution
	if s.Email == "" {
		res.Evidence = []connectors.Evidence{{Kind: "segment_lookup", Value: "not looked up: the subject has no email"}}
		return res, nil
	}
	kind := connectors.UserIDKind(r.system)
	next := ""
	for page := 0; ; page++ {
		if page == maxIDPages {
			return connectors.Resolution{}, connectors.Permanentf("Segment Profile API: the profile found by email lists more than %d pages of external ids; look its userIds up in Segment and add them to the request", maxIDPages)
		}
		u := r.profiles.profileURL("email", s.Email, "external_ids?include=user_id&limit=100")
		if next != "" {
			u += "&next=" + url.QueryEscape(next)
		}
		var body struct {
			Data []struct {
				Type string `json:"type"`
				ID   string `json:"id"`
			} `json:"data"`
			Cursor struct {
				HasMore bool   `json:"has_more"`
				Next    string `json:"next"`
			} `json:"cursor"`
		}
		resp, err := r.profiles.api.Send(ctx, http.MethodGet, u, nil, &body, "external ids lookup", http.StatusNotFound)
		if err != nil {
			return connectors.Resolution{}, err
		}
		if resp.Status == http.StatusNotFound {
			res.Evidence = []connectors.Evidence{{Kind: "segment_lookup", Value: "no profile found by email"}}
			return res, nil
		}
		for _, d := range body.Data {
			if d.Type == "user_id" {
				res.Add(kind, d.ID)
			}
		}
		if !body.Cursor.HasMore || body.Cursor.Next == "" || body.Cursor.Next == next {
			break
		}
		next = body.Cursor.Next
	}
	res.Evidence = []connectors.Evidence{{Kind: "segment_lookup", Value: "profile found by email; " + connectors.Plural(len(res.Found[kind]), "user id") + " read"}}
	return res, nil
}

func describeProfile(found bool) string {
	if found {
		return "a profile was found"
	}
	return "no profile"
}
