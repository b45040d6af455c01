package webhook

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest/fakevendor"
)

// The fake processor's identity, as callbacks name it.
const (
	fakeDomain       = "dsr.billing.example"
	fakeControllerID = "lethe-test-controller"
	fakeInstance     = "billing" // the connector instance the tests build
	seededRecords    = 3
)

var uuidV4Re = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// processor is a fake OpenDSR 2.0 processor: POST /requests files a
// request, GET /requests/{id} reports it pending, then in_progress, then
// (after completeAfter polls) completed, erasing the people it matched;
// DELETE /requests/{id} cancels; GET /discovery describes it. It POSTs a
// signed callback to the request's status_callback_urls on every change.
//
// Lethe's extension: a completed status carries "records", how many
// records were erased (0 when the processor held nothing about them).
type processor struct {
	*fakevendor.Server
	token  string
	priv   ed25519.PrivateKey
	pubPEM string

	mu            sync.Mutex
	completeAfter int
	omitRecords   bool // leave "records" out, as a plain OpenDSR processor does
	cancelAll     bool // cancel requests instead of completing them
	people        []*person
	requests      map[string]*dsr
}

type person struct {
	ids     map[string]string // identity_type → raw value
	records int64
}

type dsr struct {
	body     createRequest
	received time.Time
	polls    int
	status   string
	records  int64
}

func newProcessor(t testing.TB, token string) *processor {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &processor{
		Server: fakevendor.New(t), token: token, priv: priv, pubPEM: publicPEM(t, pub),
		completeAfter: 2, requests: map[string]*dsr{},
	}
	// OpenDSR names no rate limit; this one is generous enough for the
	// suite, and tests that need 429s set a tighter one.
	p.RateLimit(1000, 100, p.tooMany)
	if token != "" {
		p.RequireAuth(func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer "+token },
			func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="opendsr"`)
				p.fail(w, http.StatusUnauthorized, "invalid bearer token")
			})
	}
	p.Handle("GET /discovery", p.discovery)
	p.Handle("POST /requests", p.create)
	p.Handle("GET /requests/{id}", p.status)
	p.Handle("DELETE /requests/{id}", p.cancel)
	// The same under a path prefix, for base URLs such as https://host/opendsr.
	p.Handle("POST /opendsr/requests", p.create)
	p.Handle("GET /opendsr/requests/{id}", p.status)
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

// tooMany is the fake's 429: OpenDSR defines no body, so it answers as
// most HTTP services do, with Retry-After.
func (p *processor) tooMany(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", "1")
	p.fail(w, http.StatusTooManyRequests, "rate limit exceeded")
}

func (p *processor) fail(w http.ResponseWriter, status int, msg string) {
	fakevendor.JSON(w, status, map[string]any{"error": map[string]any{"code": status, "message": msg}})
}

// config is the YAML of a connector pointed at p.
func (p *processor) config(extra ...string) string {
	lines := []string{"base_url: " + p.URL}
	if !slices.ContainsFunc(extra, func(l string) bool { return strings.HasPrefix(l, "poll_interval:") }) {
		lines = append(lines, "poll_interval: 10ms")
	}
	lines = append(lines, "processor_domain: "+fakeDomain, "processor_public_key: |")
	for l := range strings.SplitSeq(strings.TrimSpace(p.pubPEM), "\n") {
		lines = append(lines, "  "+l)
	}
	if p.token != "" {
		lines = append(lines, "token: "+p.token)
	}
	return strings.Join(append(lines, extra...), "\n") + "\n"
}

// seed gives the processor records about s.
func (p *processor) seed(t *testing.T, s connectors.Subject) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := map[string]string{}
	if s.Email != "" {
		ids["email"] = s.Email
	}
	if s.Phone != "" {
		ids["phone"] = s.Phone
	}
	if id := s.UserIDs[fakeInstance]; id != "" {
		ids["controller_customer_id"] = id
	}
	p.people = append(p.people, &person{ids: ids, records: seededRecords})
	return seededRecords
}

// count is how many records about s the processor holds.
func (p *processor) count(t *testing.T, s connectors.Subject) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, ps := range p.people {
		if (s.Email != "" && ps.ids["email"] == s.Email) || (s.Phone != "" && ps.ids["phone"] == s.Phone) {
			n += ps.records
		}
	}
	return n
}

func (p *processor) setCompleteAfter(n int) { p.mu.Lock(); p.completeAfter = n; p.mu.Unlock() }
func (p *processor) setOmitRecords()        { p.mu.Lock(); p.omitRecords = true; p.mu.Unlock() }
func (p *processor) setCancelAll()          { p.mu.Lock(); p.cancelAll = true; p.mu.Unlock() }

func (p *processor) discovery(w http.ResponseWriter, r *http.Request) {
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
		"processor_certificate":           p.URL + "/cert.pem",
	})
}

// checkCreate holds a create request to the contract, returning what is wrong.
func checkCreate(raw []byte, body *createRequest) string {
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
	case !uuidV4Re.MatchString(body.SubjectRequestID):
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

func (p *processor) create(w http.ResponseWriter, r *http.Request) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		p.fail(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return
	}
	var raw bytes.Buffer
	_, _ = raw.ReadFrom(r.Body)
	var body createRequest
	if msg := checkCreate(raw.Bytes(), &body); msg != "" {
		p.fail(w, http.StatusBadRequest, msg)
		return
	}
	p.mu.Lock()
	if _, dup := p.requests[body.SubjectRequestID]; dup {
		p.mu.Unlock()
		p.fail(w, http.StatusConflict, "subject_request_id already used")
		return
	}
	now := time.Now().UTC()
	p.requests[body.SubjectRequestID] = &dsr{body: body, received: now, status: "pending"}
	p.mu.Unlock()
	encoded := base64.StdEncoding.EncodeToString(raw.Bytes())
	fakevendor.JSON(w, http.StatusCreated, map[string]any{
		"controller_id":            fakeControllerID,
		"expected_completion_time": now.Add(30 * 24 * time.Hour).Format(time.RFC3339),
		"received_time":            now.Format(time.RFC3339),
		"encoded_request":          encoded,
		"subject_request_id":       body.SubjectRequestID,
		"processor_signature":      base64.StdEncoding.EncodeToString(ed25519.Sign(p.priv, []byte(encoded))),
	})
}

// matches reports whether the request names ps by any identity.
func matches(ps *person, ids []identity) bool {
	for _, id := range ids {
		v, ok := ps.ids[id.Type]
		if !ok {
			continue
		}
		switch id.Format {
		case "sha256":
			sum := sha256.Sum256([]byte(v))
			v = hex.EncodeToString(sum[:])
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
func (p *processor) advance(d *dsr) bool {
	if d.status == "completed" || d.status == "cancelled" {
		return false
	}
	d.polls++
	prev := d.status
	switch {
	case p.cancelAll:
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

func (p *processor) statusBody(id string, d *dsr) map[string]any {
	m := map[string]any{
		"controller_id":            fakeControllerID,
		"expected_completion_time": d.received.Add(30 * 24 * time.Hour).Format(time.RFC3339),
		"subject_request_id":       id,
		"request_status":           d.status,
		"api_version":              "2.0",
	}
	if d.status == "completed" && !p.omitRecords {
		m["records"] = d.records
	}
	return m
}

func (p *processor) status(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	p.mu.Lock()
	d, ok := p.requests[id]
	if !ok {
		p.mu.Unlock()
		p.fail(w, http.StatusNotFound, "no such request")
		return
	}
	changed := p.advance(d)
	body := p.statusBody(id, d)
	urls := d.body.StatusCallbackURLs
	p.mu.Unlock()
	if changed {
		p.callback(urls, body)
	}
	fakevendor.JSON(w, http.StatusOK, body)
}

func (p *processor) cancel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	p.mu.Lock()
	d, ok := p.requests[id]
	if !ok {
		p.mu.Unlock()
		p.fail(w, http.StatusNotFound, "no such request")
		return
	}
	changed := d.status == "pending" || d.status == "in_progress"
	if changed {
		d.status = "cancelled"
	}
	body := p.statusBody(id, d)
	urls := d.body.StatusCallbackURLs
	p.mu.Unlock()
	if changed {
		p.callback(urls, body)
	}
	fakevendor.JSON(w, http.StatusAccepted, map[string]any{"subject_request_id": id, "received_time": time.Now().UTC().Format(time.RFC3339)})
}

// callback POSTs a signed status change to each callback URL, as OpenDSR
// processors do; failures are the receiver's problem.
func (p *processor) callback(urls []string, status map[string]any) {
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
		req.Header.Set(headerDomain, fakeDomain)
		req.Header.Set(headerSignature, base64.StdEncoding.EncodeToString(ed25519.Sign(p.priv, b)))
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
}

// created returns the create requests the fake received, decoded.
func (p *processor) created(t *testing.T) []createRequest {
	t.Helper()
	var out []createRequest
	for _, c := range p.Calls() {
		if c.Method == http.MethodPost && strings.HasSuffix(c.Path, "/requests") {
			var b createRequest
			if err := json.Unmarshal(c.Body, &b); err != nil {
				t.Fatalf("create body: %v", err)
			}
			out = append(out, b)
		}
	}
	return out
}
