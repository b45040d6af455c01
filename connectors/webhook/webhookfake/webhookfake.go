// Package webhookfake is a local OpenDSR 2.0 processor for tests: it
// takes erasure requests, reports them pending, in progress and completed
// over status polls, erases the people they name, and signs the status
// callbacks it sends, with a rate-limit answer and faults to inject.
//
//	f := webhookfake.Start(t, webhookfake.Options{})
//	f.Seed(connectors.Subject{Email: "ada@example.com"})
//	c := connectortest.Build(t, "webhook", "billing", f.Config())
package webhookfake

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
	"github.com/lethe-dev/lethe/connectors/webhook/opendsr"
)

// The fake processor's identity, as callbacks name it, and its defaults.
const (
	// Domain is the processor's domain: X-OpenDSR-Processor-Domain of
	// its callbacks, processor_domain in Config.
	Domain       = "dsr.billing.example"
	ControllerID = "lethe-test-controller"
	// DefaultToken is the Bearer token a fake accepts until SetToken.
	DefaultToken = "tok-billing-123"
	// Records is how many records Seed gives the processor per subject.
	Records = 3
)

// Options tunes a fake: its rate limit answers as most HTTP services do
// (OpenDSR defines no rate-limit answer), 429 with Retry-After: 1; a
// request stays unfinished (pending, then in_progress) for Polls status
// polls (default 1) before it completes.
type Options = fakevendor.Options

// Fake is a fake OpenDSR 2.0 processor: POST /requests files a request,
// GET /requests/{id} reports it pending, then in_progress, then (after
// Options.Polls polls) completed, erasing the people it matched; DELETE
// /requests/{id} cancels; GET /discovery describes it. It POSTs a signed
// callback to the request's status_callback_urls on every change.
//
// Lethe's extension: a completed status carries "records", how many
// records were erased (0 when the processor held nothing about them).
type Fake struct {
	fakevendor.Controls
	priv   ed25519.PrivateKey
	pubPEM string

	mu            sync.Mutex
	token         *fakevendor.Key
	completeAfter int
	omitRecords   fakevendor.Setting[bool] // leave "records" out, as a plain OpenDSR processor does
	cancelAll     fakevendor.Setting[bool] // cancel requests instead of completing them
	people        []*person
	requests      map[string]*dsr
}

type person struct {
	ids     map[string]string // identity_type → raw value
	records int64
}

type dsr struct {
	body     opendsr.CreateRequest
	received time.Time
	polls    int
	status   string
	records  int64
}

// Start starts a fake processor, with a fresh Ed25519 key, that stops
// when the test ends.
func Start(t testing.TB, opt Options) *Fake {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &Fake{token: fakevendor.NewKey(DefaultToken), priv: priv, pubPEM: publicPEM(t, pub), requests: map[string]*dsr{}}
	bearer := fakevendor.BearerAuth(p.token, nil)
	srv := fakevendor.Start(t, opt, fakevendor.Vendor{TooMany: TooMany, Polls: 1, Auth: fakevendor.Auth{
		OK:     func(r *http.Request) bool { return p.token.Get() == "" || bearer.OK(r) },
		Refuse: Refused,
		Keys:   bearer.Keys,
	}})
	p.Controls, p.completeAfter = srv.Controls(), srv.JobPolls+1
	srv.Handle("GET /discovery", p.discovery)
	srv.Handle("POST /requests", p.create)
	srv.Handle("GET /requests/{id}", p.status)
	srv.Handle("DELETE /requests/{id}", p.cancel)
	// The same under a path prefix, for base URLs such as https://host/opendsr.
	srv.Handle("POST /opendsr/requests", p.create)
	srv.Handle("GET /opendsr/requests/{id}", p.status)
	return p
}

func publicPEM(t testing.TB, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// TooMany is the fake's 429: OpenDSR defines no body, so it answers as
// most HTTP services do, with Retry-After: 1.
func TooMany(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", "1")
	WriteError(w, http.StatusTooManyRequests, "rate limit exceeded")
}

// WriteError writes the processor's error body.
func WriteError(w http.ResponseWriter, status int, msg string) {
	fakevendor.JSON(w, status, map[string]any{"error": map[string]any{"code": status, "message": msg}})
}

// Token is the Bearer token the fake accepts ("": any request).
func (p *Fake) Token() string { return p.token.Get() }

// SetToken changes the Bearer token the fake accepts; "" accepts any
// request, as a processor without authentication.
func (p *Fake) SetToken(token string) { p.token.Set(token) }

// Refused is the processor's answer to a token it does not accept.
func Refused(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="opendsr"`)
	WriteError(w, http.StatusUnauthorized, "invalid bearer token")
}

// PublicKeyPEM is the PEM of the key the processor signs with.
func (p *Fake) PublicKeyPEM() string { return p.pubPEM }

// Config is a webhook connector config against p, with its domain and
// public key for callbacks, polling every 10ms. It sends the email, the
// phone and UserIDs["app"] (fakevendor.UserIDSystem) as
// controller_customer_id.
func (p *Fake) Config() string {
	lines := []string{"base_url: " + p.URL(), "poll_interval: 10ms", "processor_domain: " + Domain, "processor_public_key: |"}
	for l := range strings.SplitSeq(strings.TrimSpace(p.pubPEM), "\n") {
		lines = append(lines, "  "+l)
	}
	if token := p.Token(); token != "" {
		lines = append(lines, "token: "+token)
	}
	lines = append(lines, "user_id_system: "+fakevendor.UserIDSystem)
	return strings.Join(lines, "\n") + "\n"
}

// ConfigWith is Config with top-level keys set (fakevendor.MergeYAML).
func (p *Fake) ConfigWith(lines ...string) string { return fakevendor.MergeYAML(p.Config(), lines...) }

// Seed gives the processor Records records about the subject, known by
// its email, phone and UserIDs["app"] (it needs one of them).
func (p *Fake) Seed(s connectors.Subject) int64 {
	ids := map[string]string{}
	if s.Email != "" {
		ids["email"] = strings.ToLower(s.Email) // as OpenDSR controllers normalise it
	}
	if s.Phone != "" {
		ids["phone"] = s.Phone
	}
	if id := s.UserIDs[fakevendor.UserIDSystem]; id != "" {
		ids["controller_customer_id"] = id
	}
	if len(ids) == 0 {
		panic("webhookfake: Seed needs a subject with an email, a phone or UserIDs[\"" + fakevendor.UserIDSystem + "\"]")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.people = append(p.people, &person{ids: ids, records: Records})
	return Records
}

// Count is how many records about the subject the processor holds, found
// by its email, phone or UserIDs["app"].
func (p *Fake) Count(s connectors.Subject) int64 {
	id := s.UserIDs[fakevendor.UserIDSystem]
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, ps := range p.people {
		if (s.Email != "" && ps.ids["email"] == strings.ToLower(s.Email)) || (s.Phone != "" && ps.ids["phone"] == s.Phone) ||
			(id != "" && ps.ids["controller_customer_id"] == id) {
			n += ps.records
		}
	}
	return n
}

// NoRecoverableState is why a harness seeds no restorable records here.
func (p *Fake) NoRecoverableState() string {
	return "OpenDSR has no notion of a restorable state: a processor only reports a request pending, in progress, completed or cancelled, and whatever it keeps afterwards (backups, a trash) is its own, under its contract"
}

// OmitRecords leaves "records" out of completed statuses, as a plain
// OpenDSR processor does.
func (p *Fake) OmitRecords() { p.omitRecords.Set(true) }

// CancelAll makes the processor cancel requests instead of completing
// them.
func (p *Fake) CancelAll() { p.cancelAll.Set(true) }

func (p *Fake) discovery(w http.ResponseWriter, r *http.Request) {
	var ids []map[string]string
	for _, typ := range []string{"email", "phone", "controller_customer_id"} {
		for _, f := range []string{"raw", "sha256"} {
			ids = append(ids, map[string]string{"identity_type": typ, "identity_format": f})
		}
	}
	fakevendor.JSON(w, http.StatusOK, map[string]any{
		"api_version":                     "2.0",
		"supported_identities":            ids,
		"supported_subject_request_types": []string{"erasure"},
		"processor_certificate":           p.URL() + "/cert.pem",
	})
}

// checkCreate holds a create request to the contract, returning what is wrong.
func checkCreate(raw []byte, body *opendsr.CreateRequest) string {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return "the body is not a JSON object"
	}
	for _, k := range []string{"subject_request_id", "subject_request_type", "regulation", "subject_identities", "submitted_time", "api_version"} {
		if _, ok := fields[k]; !ok {
			return k + " is required"
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(body); err != nil {
		return "the body does not match the schema"
	}
	switch {
	case !opendsr.IsRequestID(body.SubjectRequestID):
		return "subject_request_id must be a UUID v4"
	case body.SubjectRequestType != "erasure" && body.SubjectRequestType != "access" && body.SubjectRequestType != "portability":
		return "subject_request_type must be erasure, access or portability"
	case body.Regulation != "gdpr" && body.Regulation != "ccpa":
		return "regulation must be gdpr or ccpa"
	case body.APIVersion != "2.0":
		return "api_version must be 2.0"
	case len(body.SubjectIdentities) == 0:
		return "subject_identities must not be empty"
	}
	if _, err := time.Parse(time.RFC3339, body.SubmittedTime); err != nil {
		return "submitted_time must be RFC 3339"
	}
	for _, id := range body.SubjectIdentities {
		switch id.Format {
		case "raw", "sha1", "md5", "sha256":
		default:
			return "identity_format must be raw, sha1, md5 or sha256"
		}
		if id.Type == "" || id.Value == "" {
			return "identity_type and identity_value are required"
		}
	}
	return ""
}

func (p *Fake) create(w http.ResponseWriter, r *http.Request) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		WriteError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return
	}
	var raw bytes.Buffer
	_, _ = raw.ReadFrom(r.Body)
	var body opendsr.CreateRequest
	if msg := checkCreate(raw.Bytes(), &body); msg != "" {
		WriteError(w, http.StatusBadRequest, msg)
		return
	}
	p.mu.Lock()
	if _, dup := p.requests[body.SubjectRequestID]; dup {
		p.mu.Unlock()
		WriteError(w, http.StatusConflict, "subject_request_id already used")
		return
	}
	now := time.Now().UTC()
	p.requests[body.SubjectRequestID] = &dsr{body: body, received: now, status: "pending"}
	p.mu.Unlock()
	encoded := base64.StdEncoding.EncodeToString(raw.Bytes())
	fakevendor.JSON(w, http.StatusCreated, map[string]any{
		"controller_id":            ControllerID,
		"expected_completion_time": now.Add(30 * 24 * time.Hour).Format(time.RFC3339),
		"received_time":            now.Format(time.RFC3339),
		"encoded_request":          encoded,
		"subject_request_id":       body.SubjectRequestID,
		"processor_signature":      base64.StdEncoding.EncodeToString(ed25519.Sign(p.priv, []byte(encoded))),
	})
}

// matches reports whether the request names ps by any identity.
func matches(ps *person, ids []opendsr.Identity) bool {
	for _, id := range ids {
		v, ok := ps.ids[id.Type]
		if !ok {
			continue
		}
		switch id.Format {
		case "sha256":
			v = opendsr.SHA256(v)
		case "raw":
		default:
			continue
		}
		if v == id.Value {
			return true
		}
	}
	return false
}

// advance moves a request on by one poll; the processor erases when it
// completes. It reports whether the status changed.
func (p *Fake) advance(d *dsr) bool {
	if d.status == "completed" || d.status == "cancelled" {
		return false
	}
	d.polls++
	prev := d.status
	switch {
	case p.cancelAll.Get():
		d.status = "cancelled"
	case d.polls >= p.completeAfter:
		d.status = "completed"
		kept := p.people[:0]
		for _, ps := range p.people {
			if d.body.SubjectRequestType == "erasure" && matches(ps, d.body.SubjectIdentities) {
				d.records += ps.records
				continue
			}
			kept = append(kept, ps)
		}
		p.people = kept
	case d.polls > 1:
		d.status = "in_progress"
	}
	return d.status != prev
}

func (p *Fake) statusBody(id string, d *dsr) map[string]any {
	m := map[string]any{
		"controller_id":            ControllerID,
		"expected_completion_time": d.received.Add(30 * 24 * time.Hour).Format(time.RFC3339),
		"subject_request_id":       id,
		"request_status":           d.status,
		"api_version":              "2.0",
	}
	if d.status == "completed" && !p.omitRecords.Get() {
		m["records"] = d.records
	}
	return m
}

func (p *Fake) status(w http.ResponseWriter, r *http.Request) {
	if body, ok := p.update(w, r.PathValue("id"), p.advance); ok {
		fakevendor.JSON(w, http.StatusOK, body)
	}
}

func (p *Fake) cancel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	_, ok := p.update(w, id, func(d *dsr) bool {
		if d.status != "pending" && d.status != "in_progress" {
			return false
		}
		d.status = "cancelled"
		return true
	})
	if ok {
		fakevendor.JSON(w, http.StatusAccepted, map[string]any{"subject_request_id": id, "received_time": time.Now().UTC().Format(time.RFC3339)})
	}
}

// update applies change to request id and, when change reports that the
// status changed, sends the callbacks; it returns the request's status
// body, or false after answering 404 for an unknown id.
func (p *Fake) update(w http.ResponseWriter, id string, change func(*dsr) bool) (map[string]any, bool) {
	p.mu.Lock()
	d, ok := p.requests[id]
	if !ok {
		p.mu.Unlock()
		WriteError(w, http.StatusNotFound, "no such request")
		return nil, false
	}
	changed := change(d)
	body := p.statusBody(id, d)
	urls := d.body.StatusCallbackURLs
	p.mu.Unlock()
	if changed {
		p.callback(urls, body)
	}
	return body, true
}

// callback POSTs a signed status change to each callback URL, as OpenDSR
// processors do; failures are the receiver's problem.
func (p *Fake) callback(urls []string, status map[string]any) {
	for _, u := range urls {
		m := map[string]any{"status_callback_url": u}
		for k, v := range status {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(b))
		if err != nil {
			continue
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(opendsr.HeaderDomain, Domain)
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req.Header.Set(opendsr.HeaderTimestamp, ts)
		req.Header.Set(opendsr.HeaderSignature, base64.StdEncoding.EncodeToString(ed25519.Sign(p.priv, []byte(ts+"."+string(b)))))
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
}
