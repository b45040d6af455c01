// Package webhook is the connector for in-house systems and processors that
// speak OpenDSR 2.0: Lethe files an erasure request with the processor,
// polls its status and accepts the processor's signed status callbacks.
package webhook

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/vendorhttp"
	"github.com/lethe-dev/lethe/connectors/vendorkit"
	"github.com/lethe-dev/lethe/connectors/webhook/opendsr"
)

func init() {
	// OpenDSR documents no rate limit; in-house services and processors
	// are usually small, so Lethe stays gentle unless the config says more.
	connectors.Register("webhook", "Erasure requests to in-house systems and processors over OpenDSR 2.0",
		connectors.Limits{Concurrency: 4, RatePerSecond: 5, Burst: 5}, build, connectors.TakesCallbacks())
}

// Defaults of the config.
const (
	defaultRegulation   = "gdpr"
	defaultPhoneType    = "phone"
	defaultUserIDType   = "controller_customer_id"
	defaultPollInterval = time.Hour
	// defaultCallbackMaxAge is how old (or, for clock skew, how far ahead)
	// a callback's signed timestamp may be.
	defaultCallbackMaxAge = 5 * time.Minute
	maxCallbackMaxAge     = 24 * time.Hour

	formatRaw    = "raw"
	formatSHA256 = "sha256"

	apiVersion = "2.0"
)

// Config is the `config:` block of a webhook connector instance.
//
//	base_url: https://dsr.billing.internal/opendsr
//	token: {env: BILLING_DSR_TOKEN}
//	callback_url: https://lethe.example.com/v1/connectors/billing/callback
//	processor_domain: billing.internal
//	processor_public_key: {file: /etc/lethe/billing-dsr.pem}
//	user_id_system: app    # subject.user_ids key of the id sent as user_id_type
//	poll_interval: 1h      # between status polls (the default)
//
// base_url is where the processor serves OpenDSR (POST {base_url}/requests);
// OpenDSR has no central service, so it is required.
type Config struct {
	vendorkit.Fields `yaml:",inline"`
	// Token, if set, is sent as `Authorization: Bearer <token>`.
	Token config.Secret `yaml:"token"`
	// Regulation is gdpr (default) or ccpa.
	Regulation string `yaml:"regulation"`
	// IdentityFormat is raw (default) or sha256: the hex SHA-256 of each
	// normalised identifier, for processors that match on hashes.
	IdentityFormat string `yaml:"identity_format"`
	// PhoneType is the identity_type sent for the phone number (default
	// "phone"; OpenDSR names none).
	PhoneType string `yaml:"phone_type"`
	// UserIDType is the identity_type sent for the subject's user id
	// (default controller_customer_id).
	UserIDType string `yaml:"user_id_type"`
	// CallbackURL is sent as status_callback_urls: Lethe's
	// /v1/connectors/<name>/callback as the processor can reach it.
	CallbackURL string `yaml:"callback_url"`
	// ProcessorDomain must equal the X-OpenDSR-Processor-Domain of callbacks.
	ProcessorDomain string `yaml:"processor_domain"`
	// ProcessorPublicKey verifies callbacks (and the receipt signature):
	// PEM (PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE; Ed25519 or RSA),
	// inline, {file: PATH}, {env: NAME}, or a plain path to a PEM file.
	ProcessorPublicKey config.Secret `yaml:"processor_public_key"`
	// CallbackMaxAge is how far a callback's signed X-Lethe-Timestamp may
	// be from Lethe's clock (default 5m, at most 24h).
	CallbackMaxAge time.Duration `yaml:"callback_max_age"`
	// BodyOnlySignatures accepts callbacks signed over the body alone, as
	// plain OpenDSR 2.0 processors sign them, with no timestamp. Replays
	// are then refused only by the signatures Lethe remembers (7 days).
	BodyOnlySignatures bool `yaml:"body_only_signatures"`
}

var (
	identityTypeRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	domainRe       = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(:[0-9]{1,5})?$`)
)

// Validate reports every problem in the config at once, each naming its key.
func (c *Config) Validate() error {
	var p vendorkit.Problems
	// http is accepted for in-cluster processors (docs/connectors/webhook.md).
	c.Check(&p, &vendorkit.URLRule{Example: "where the processor serves OpenDSR, https://dsr.example.com/opendsr", Version: "/requests", AllowHTTP: true},
		defaultPollInterval)
	p.OneOf("regulation", &c.Regulation, defaultRegulation, "ccpa")
	switch c.IdentityFormat {
	case "md5", "sha1":
		p.Add("identity_format", "%s hashes of emails and phone numbers are easily reversed; use sha256 or raw", c.IdentityFormat)
	default:
		p.OneOf("identity_format", &c.IdentityFormat, formatRaw, formatSHA256)
	}
	if c.PhoneType != "" && !identityTypeRe.MatchString(c.PhoneType) {
		p.Add("phone_type", "must be lower-case letters, digits or '_', such as phone")
	}
	if c.UserIDType != "" && !identityTypeRe.MatchString(c.UserIDType) {
		p.Add("user_id_type", "must be lower-case letters, digits or '_', such as controller_customer_id")
	}
	if c.CallbackURL != "" {
		// Lethe's own address: it carries no credential, so http (inside a
		// cluster) is allowed.
		p.BaseURL(&c.CallbackURL, vendorkit.URLRule{Key: "callback_url", AllowHTTP: true, Example: "https://lethe.example.com/v1/connectors/<name>/callback"})
		if c.ProcessorDomain == "" || !c.ProcessorPublicKey.IsSet() {
			p.Add("callback_url", "needs processor_domain and processor_public_key, or Lethe could not check who sends the callbacks")
		}
	}
	if c.ProcessorDomain != "" && !domainRe.MatchString(c.ProcessorDomain) {
		p.Add("processor_domain", "must be a host name such as dsr.example.com, without a scheme or path")
	}
	if c.ProcessorDomain != "" && !c.ProcessorPublicKey.IsSet() {
		p.Add("processor_public_key", "required with processor_domain: the key callbacks are signed with")
	}
	if c.ProcessorPublicKey.IsSet() && c.ProcessorDomain == "" {
		p.Add("processor_domain", "required with processor_public_key: the domain callbacks name in X-OpenDSR-Processor-Domain")
	}
	p.Interval("callback_max_age", &c.CallbackMaxAge, defaultCallbackMaxAge)
	if c.CallbackMaxAge > maxCallbackMaxAge {
		p.Add("callback_max_age", "at most %s: signatures are remembered for 7 days, and a longer window lets a captured callback be replayed for longer", maxCallbackMaxAge)
	}
	return p.Err()
}

// Plan: the processor is sent every identity the subject has (email,
// phone, the user id under user_id_system) and matches on any of them, so
// any one is enough and all are used.
func (c Config) Plan(name string) connectors.Plan {
	oneOf := connectors.Requirement{connectors.Email, connectors.Phone, c.IDKind(name)}
	return connectors.Plan{Keys: []connectors.Requirement{oneOf}, Uses: oneOf}
}

// connector is one instance; everything it needs lives here, so instances
// side by side never share state.
type connector struct {
	http         *vendorhttp.Client
	base         string
	regulation   string
	format       string
	phoneType    string
	userIDType   string
	userIDSystem string
	callbackURL  string
	domain       string
	keys         []publicKey // nil: callbacks are refused
	maxAge       time.Duration
	bodyOnly     bool
	now          func() time.Time
	pollInterval time.Duration
}

func build(_ context.Context, name string, cfg Config, deps connectors.Deps) (connectors.Connector, error) {
	var token string
	if cfg.Token.IsSet() {
		var err error
		if token, err = vendorkit.Reveal(deps, "token", cfg.Token); err != nil {
			return nil, err
		}
	}
	var keys []publicKey
	if cfg.ProcessorPublicKey.IsSet() {
		pem, err := vendorkit.Reveal(deps, "processor_public_key", cfg.ProcessorPublicKey)
		if err != nil {
			return nil, err
		}
		if keys, err = loadPublicKeys(pem); err != nil {
			return nil, fmt.Errorf("processor_public_key: %w", err)
		}
	}
	auth := func(*http.Request) {}
	if token != "" {
		auth = vendorkit.Bearer(token)
	}
	c := &connector{
		http:         vendorkit.Client(deps, "OpenDSR processor", auth),
		base:         cfg.BaseURL,
		regulation:   cfg.Regulation,
		format:       cfg.IdentityFormat,
		phoneType:    cmp.Or(cfg.PhoneType, defaultPhoneType),
		userIDType:   cmp.Or(cfg.UserIDType, defaultUserIDType),
		userIDSystem: cfg.System(name),
		callbackURL:  cfg.CallbackURL,
		domain:       cfg.ProcessorDomain,
		keys:         keys,
		maxAge:       cfg.CallbackMaxAge,
		bodyOnly:     cfg.BodyOnlySignatures,
		now:          time.Now,
		pollInterval: cfg.PollInterval,
	}
	return c, nil
}

// createResponse is the processor's 201 answer.
type createResponse struct {
	ControllerID           string `json:"controller_id"`
	ExpectedCompletionTime string `json:"expected_completion_time"`
	ReceivedTime           string `json:"received_time"`
	EncodedRequest         string `json:"encoded_request"`
	SubjectRequestID       string `json:"subject_request_id"`
	ProcessorSignature     string `json:"processor_signature"`
}

// statusResponse is GET /requests/{id}, and the body of a callback.
type statusResponse struct {
	SubjectRequestID       string `json:"subject_request_id"`
	RequestStatus          string `json:"request_status"`
	Status                 string `json:"status"` // some processors name it so
	ExpectedCompletionTime string `json:"expected_completion_time"`
	// Records is Lethe's extension: how many records the processor
	// erased; 0 means it held nothing about the subject. Absent, the
	// count is unknown.
	Records *int64 `json:"records"`
}

func (s statusResponse) status() string {
	if s.RequestStatus != "" {
		return s.RequestStatus
	}
	return s.Status
}

// identities lists what the processor is sent about s, hashed when so
// configured.
func (c *connector) identities(s connectors.Subject) []opendsr.Identity {
	var ids []opendsr.Identity
	add := func(typ, v string) {
		if v == "" {
			return
		}
		if c.format == formatSHA256 {
			v = opendsr.SHA256(v)
		}
		ids = append(ids, opendsr.Identity{Type: typ, Value: v, Format: c.format})
	}
	add("email", strings.ToLower(strings.TrimSpace(s.Email)))
	add(c.phoneType, strings.TrimSpace(s.Phone))
	add(c.userIDType, strings.TrimSpace(s.UserIDs[c.userIDSystem]))
	return ids
}

// Erase files an erasure request with the processor. Every call files a new
// one (OpenDSR requests are cheap and a repeat finds nothing to erase).
func (c *connector) Erase(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	ids := c.identities(s)
	if len(ids) == 0 {
		// The plan makes the runtime wait for one; nothing was searched.
		return connectors.Outcome{}, connectors.Permanentf("the subject has no email, phone or %s user id to send the processor (check the instance's keys)", c.userIDSystem)
	}
	id, err := uuid.NewRandom()
	if err != nil {
		return connectors.Outcome{}, connectors.Retryable(fmt.Errorf("generate a subject_request_id: %w", err), 0)
	}
	body := opendsr.CreateRequest{
		SubjectRequestID:   id.String(),
		SubjectRequestType: "erasure",
		Regulation:         c.regulation,
		SubjectIdentities:  ids,
		SubmittedTime:      time.Now().UTC().Format(time.RFC3339),
		APIVersion:         apiVersion,
		StatusCallbackURLs: []string{},
	}
	if c.callbackURL != "" {
		body.StatusCallbackURLs = []string{c.callbackURL}
	}
	var created createResponse
	resp, err := c.http.Send(ctx, http.MethodPost, c.base+"/requests", body, &created, "create request", http.StatusNotFound)
	if err != nil {
		return connectors.Outcome{}, err
	}
	if resp.Status == http.StatusNotFound {
		return connectors.Outcome{}, connectors.Permanentf("OpenDSR processor create request: 404 Not Found: no OpenDSR endpoint at base_url + /requests; check base_url")
	}
	if created.SubjectRequestID != "" && !strings.EqualFold(created.SubjectRequestID, body.SubjectRequestID) {
		// The request was filed, but the answer is about another one:
		// polling our id could report someone else's result.
		return connectors.Outcome{}, connectors.Permanentf("OpenDSR processor create request: the answer names a different subject_request_id than the one sent")
	}
	ev := []connectors.Evidence{{Kind: "subject_request_id", Value: body.SubjectRequestID}}
	ev = appendTime(ev, "expected_completion_time", created.ExpectedCompletionTime)
	ev = appendTime(ev, "received_time", created.ReceivedTime)
	if c.keys != nil {
		ev = append(ev, connectors.Evidence{Kind: "processor_signature", Value: c.receipt(created)})
	}
	return connectors.Running(body.SubjectRequestID, c.pollInterval, ev...), nil
}

// receipt checks the processor's signature over encoded_request, the
// processor's proof it received the request. It is evidence, not a
// condition: processors differ in what exactly they sign.
func (c *connector) receipt(r createResponse) string {
	switch {
	case r.ProcessorSignature == "":
		return "absent"
	case r.EncodedRequest == "":
		return "not checked: no encoded_request"
	}
	sig, err := decodeSignature(r.ProcessorSignature)
	if err != nil {
		return "not valid base64"
	}
	if verifyAny(c.keys, []byte(r.EncodedRequest), sig) {
		return "verified"
	}
	if raw, err := decodeSignature(r.EncodedRequest); err == nil && verifyAny(c.keys, raw, sig) {
		return "verified"
	}
	return "did not verify with processor_public_key"
}

// Poll asks the processor how the request is going. The job ref is the
// subject_request_id alone: the config supplies the rest.
func (c *connector) Poll(ctx context.Context, jobRef string) (connectors.Outcome, error) {
	id, err := requestID(jobRef)
	if err != nil {
		return connectors.Outcome{}, connectors.Permanent(err)
	}
	var st statusResponse
	resp, err := c.http.Send(ctx, http.MethodGet, c.base+"/requests/"+id, nil, &st, "request status", http.StatusNotFound)
	if err != nil {
		return connectors.Outcome{}, err
	}
	if resp.Status == http.StatusNotFound {
		return connectors.Outcome{}, connectors.Permanentf("OpenDSR processor request status: 404 Not Found: the processor does not know request %s (check base_url, or whether it was deleted)", id)
	}
	if st.SubjectRequestID != "" && !strings.EqualFold(st.SubjectRequestID, id) {
		return connectors.Outcome{}, connectors.Retryable(fmt.Errorf("OpenDSR processor request status: the answer is about another request than %s", id), 0)
	}
	return c.outcome(id, st)
}

// outcome turns a request's status (polled or called back) into an Outcome.
func (c *connector) outcome(id string, st statusResponse) (connectors.Outcome, error) {
	ev := []connectors.Evidence{{Kind: "subject_request_id", Value: id}}
	switch status := st.status(); status {
	case "pending", "in_progress":
		return connectors.Running(id, c.pollInterval), nil
	case "completed":
		ev = append(ev, connectors.Evidence{Kind: "request_status", Value: status})
		if st.Records == nil {
			// Plain OpenDSR reports no count: the request is fulfilled,
			// what it removed is unknown.
			ev = append(ev, connectors.Evidence{Kind: "records", Value: "not reported"})
			return connectors.ErasedUncounted(ev...), nil
		}
		if *st.Records < 0 {
			return connectors.Outcome{}, connectors.Permanentf("OpenDSR processor: request %s completed with a negative records count", id)
		}
		ev = append(ev, connectors.Evidence{Kind: "records", Value: strconv.FormatInt(*st.Records, 10)})
		return connectors.Erased(*st.Records, ev...), nil
	case "cancelled":
		return connectors.Outcome{Evidence: ev}, connectors.Permanentf("the processor cancelled the request %s; ask its operators why, then retry the task", id)
	case "":
		return connectors.Outcome{}, connectors.Retryable(fmt.Errorf("OpenDSR processor: the status of request %s has no request_status", id), 0)
	default:
		// The value comes from the processor: it is not quoted.
		return connectors.Outcome{}, connectors.Retryable(fmt.Errorf("OpenDSR processor: request %s has a request_status that is not pending, in_progress, completed or cancelled", id), 0)
	}
}

// requestID checks a job ref (or a callback's id) is a subject_request_id
// Lethe could have issued, so it cannot change the URL path.
func requestID(ref string) (string, error) {
	u, err := uuid.Parse(ref)
	if err != nil || u.String() != strings.ToLower(ref) {
		return "", errors.New("the job reference is not an OpenDSR subject_request_id (a UUID)")
	}
	return u.String(), nil
}

// appendTime adds a processor-supplied time to evidence, re-formatted so
// that nothing but a time can slip in; an unreadable one is left out.
func appendTime(ev []connectors.Evidence, kind, v string) []connectors.Evidence {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return ev
	}
	return append(ev, connectors.Evidence{Kind: kind, Value: t.UTC().Format(time.RFC3339)})
}
