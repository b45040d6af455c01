// Package portal is the public request portal: the pages where a person asks
// for the erasure of their data, proves with an emailed code that the
// address is theirs, and follows their request. Each route is a method that
// returns an http.Handler; internal/httpapi/routes.go registers them.
//
// Nothing the portal says depends on whether the organisation knows the
// email address, and nothing it logs identifies a person: request ids only.
package portal

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/internal/coordinator"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/i18n"
	"github.com/lethe-dev/lethe/internal/store"
	"go.uber.org/zap"
)

//go:embed templates/*.html assets/*
var files embed.FS

// Limits on what a person may send.
const (
	maxBody     = 16 << 10 // the whole form
	maxEmail    = 254      // RFC 5321
	maxPhone    = 32
	maxCustomer = 64
	// resendEvery is the shortest time between two codes for one request.
	resendEvery = time.Minute
	// emailWindow is the period PerEmailPerDay counts over.
	emailWindow = 24 * time.Hour
	// guessesPerClientPerHour bounds the codes one client address may
	// try, whatever requests they are for.
	guessesPerClientPerHour = 30
)

// Wrong codes per email address, across all its requests and every
// replica: the first CodeAttempts cost nothing, then each one doubles the
// wait before the next try, from a minute up to an hour; they are
// forgotten a day after the last. About 30 guesses a day at most, against
// a million codes, and the person is slowed down, never locked out.
const (
	guessDelay  = time.Minute
	guessMax    = time.Hour
	guessForget = 24 * time.Hour
)

// Deps are the portal's collaborators and settings.
type Deps struct {
	Store       store.Store
	Coordinator *coordinator.Coordinator
	Hasher      *erasure.Hasher
	Catalog     *i18n.Catalog
	Config      config.Portal
	// LinkKey (at least 32 bytes, secret) keys the links a person is
	// given, the hashes of their codes and the form tokens.
	LinkKey []byte
	// BaseURL is the public address the portal is reached at, e.g.
	// https://privacy.example.com; links in emails start with it.
	BaseURL string
	// Org is the organisation's name as people know it.
	Org string
	// SystemNames are the connector instances' names as people are shown
	// them (config display_name), by instance; an instance not in it is
	// shown by its name.
	SystemNames map[string]string
	// SendCode emails the verification code with the links to confirm and
	// to follow the request. An error is logged (without the address)
	// and the person sees the same page: they can ask for a new code.
	SendCode func(ctx context.Context, to string, b *i18n.Bundle, code, verifyURL, statusURL string, ttl time.Duration) error
	// InsecureCookies drops the Secure flag (plain-http development only).
	InsecureCookies bool
	// TrustProxyHeader names a header, such as X-Forwarded-For, that a
	// reverse proxy in front of Lethe sets to the client's address. The
	// last address in it (the one the proxy saw) keys the per-address
	// limit. Leave it empty unless such a proxy always sets the header:
	// otherwise a client could pick its own address.
	TrustProxyHeader string
	Log              *zap.Logger
	Clock            func() time.Time
}

// Portal serves the portal's pages. It is safe for concurrent use.
type Portal struct {
	store       store.Store
	coord       *coordinator.Coordinator
	hasher      *erasure.Hasher
	catalog     *i18n.Catalog
	cfg         config.Portal
	key         []byte
	baseURL     string
	org         string
	systemNames map[string]string
	sendCode    func(ctx context.Context, to string, b *i18n.Bundle, code, verifyURL, statusURL string, ttl time.Duration) error
	secure      bool
	proxyHeader string
	log         *zap.Logger
	clock       func() time.Time
	pages       map[string]*template.Template
	origins     *http.CrossOriginProtection
	perAddress  *limiter
	perClient   *limiter // guesses per client address
	guesses     store.Backoff
}

// New checks d and returns the portal. Zero settings in d.Config take the
// documented defaults of config.Portal.
func New(d Deps) (*Portal, error) {
	switch {
	case d.Store == nil, d.Coordinator == nil, d.Hasher == nil, d.Catalog == nil:
		return nil, errors.New("portal: Store, Coordinator, Hasher and Catalog are required")
	case d.SendCode == nil:
		return nil, errors.New("portal: SendCode is required: people must receive their code")
	case len(d.LinkKey) < 32:
		return nil, fmt.Errorf("portal: the link key must be at least 32 bytes, got %d", len(d.LinkKey))
	}
	base, err := url.Parse(strings.TrimRight(d.BaseURL, "/"))
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" || base.RawQuery != "" || base.Fragment != "" {
		return nil, errors.New("portal: the base URL must be an absolute http(s) URL such as https://privacy.example.com")
	}
	cfg := d.Config
	if cfg.DefaultJurisdiction == "" {
		cfg.DefaultJurisdiction = string(erasure.GDPR)
	}
	if _, err := erasure.ParseJurisdiction(cfg.DefaultJurisdiction); err != nil {
		return nil, fmt.Errorf("portal: default jurisdiction: %w", err)
	}
	if cfg.CustomerSystem == "" {
		cfg.CustomerSystem = "customer"
	}
	if cfg.CodeTTL <= 0 {
		cfg.CodeTTL = 30 * time.Minute
	}
	if cfg.CodeAttempts <= 0 {
		cfg.CodeAttempts = 5
	}
	if cfg.PerAddressPerHour <= 0 {
		cfg.PerAddressPerHour = 10
	}
	if cfg.PerEmailPerDay <= 0 {
		cfg.PerEmailPerDay = 3
	}
	if d.Org == "" {
		d.Org = base.Host
	}
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	if d.Clock == nil {
		d.Clock = erasure.SystemClock
	}
	p := &Portal{
		store: d.Store, coord: d.Coordinator, hasher: d.Hasher, catalog: d.Catalog, cfg: cfg,
		key: append([]byte(nil), d.LinkKey...), baseURL: base.String(), org: d.Org, systemNames: d.SystemNames, sendCode: d.SendCode,
		secure: !d.InsecureCookies, proxyHeader: http.CanonicalHeaderKey(strings.TrimSpace(d.TrustProxyHeader)),
		log: d.Log.Named("portal"), clock: d.Clock, origins: http.NewCrossOriginProtection(),
		perAddress: newLimiter(cfg.PerAddressPerHour, time.Hour),
		perClient:  newLimiter(guessesPerClientPerHour, time.Hour),
		guesses:    store.Backoff{Free: cfg.CodeAttempts, Base: guessDelay, Max: guessMax, Forget: guessForget},
	}
	// Behind a proxy that rewrites Host, the public origin is still ours.
	if err := p.origins.AddTrustedOrigin(base.Scheme + "://" + base.Host); err != nil {
		return nil, fmt.Errorf("portal: base URL: %w", err)
	}
	if p.pages, err = parsePages(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Portal) now() time.Time { return erasure.Timestamp(p.clock()) }

// Link purposes: a link made for one never opens the other.
const (
	purposeVerify = "verify"
	purposeStatus = "status"
)

// mac is HMAC-SHA256 with the link key over the parts joined by NUL bytes.
func (p *Portal) mac(parts ...string) []byte {
	m := hmac.New(sha256.New, p.key)
	m.Write([]byte(strings.Join(parts, "\x00")))
	return m.Sum(nil)
}

// token is a link's secret part: the request id and a MAC of it for one
// purpose. Nothing is stored; the MAC proves the portal made the link.
func (p *Portal) token(purpose, requestID string) string {
	return requestID + "." + base64.RawURLEncoding.EncodeToString(p.mac(purpose, requestID))
}

// parseToken returns the request id of a token made for purpose. The MAC
// is compared in its encoded form: base64 has spare bits in its last
// character, and a decoder would accept several spellings of one MAC.
func (p *Portal) parseToken(purpose, tok string) (string, bool) {
	id, sig, ok := strings.Cut(tok, ".")
	if !ok || !erasure.ValidID(id) {
		return "", false
	}
	want := base64.RawURLEncoding.EncodeToString(p.mac(purpose, id))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return "", false
	}
	return id, true
}

// codeHash is what is stored of a verification code: bound to its request,
// so a hash cannot be moved to another one.
func (p *Portal) codeHash(requestID, code string) string {
	return hex.EncodeToString(p.mac("code", requestID, code))
}

// addressKey is the throttle key of a request's email address: its keyed
// hash, as the request's subject hashes hold it; "" without an address.
func (p *Portal) addressKey(req erasure.Request) string {
	if req.Subject.Email == "" {
		return ""
	}
	return "portal.email:" + p.hasher.Hash(erasure.KindEmail, req.Subject.Email)
}

// StatusURL is the absolute link where a person follows their request; the
// emails sent about it (completed, extended…) carry it.
func (p *Portal) StatusURL(requestID string) string {
	return p.baseURL + statusPath(p.token(purposeStatus, requestID))
}

// VerifyURL is the absolute link to confirm a request; it opens the
// confirmation page with code filled in, which the person still submits.
func (p *Portal) VerifyURL(requestID, code string) string {
	return p.baseURL + verifyPath(p.token(purposeVerify, requestID)) + "?code=" + url.QueryEscape(code)
}

func verifyPath(tok string) string { return "/portal/verify/" + tok }
func statusPath(tok string) string { return "/portal/status/" + tok }
func resendPath(tok string) string { return "/portal/resend/" + tok }

// withLang adds the page's language to a path of ours.
func withLang(path string, b *i18n.Bundle, extra ...string) string {
	q := url.Values{"lang": {b.Code}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return path + "?" + q.Encode()
}

// langCookie keeps the language of the last portal page a browser was
// shown, so that a page that knows no request (a broken link) answers in
// the language of the person's journey. It holds a language code only.
const langCookie = "lethe_portal_lang"

// bundle picks the page's language: a ?lang= (or the form's lang field),
// then the language the request was made in, then the language of the
// last portal page this browser showed, then Accept-Language.
func (p *Portal) bundle(r *http.Request, stored string) *i18n.Bundle {
	known := func(code string) bool { return code != "" && p.catalog.Get(code).Code == code }
	code := r.URL.Query().Get("lang")
	if r.Method == http.MethodPost && r.PostForm != nil && r.PostForm.Get("lang") != "" {
		code = r.PostForm.Get("lang")
	}
	if !known(code) {
		code = stored
	}
	if !known(code) {
		if c, err := r.Cookie(langCookie); err == nil && known(c.Value) {
			code = c.Value
		}
	}
	return p.catalog.Choose(code, r.Header.Get("Accept-Language"))
}

// rememberLang keeps the page's language for the next page (langCookie).
func (p *Portal) rememberLang(w http.ResponseWriter, r *http.Request, b *i18n.Bundle) {
	if c, err := r.Cookie(langCookie); err == nil && c.Value == b.Code {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: langCookie, Value: b.Code, Path: "/portal", MaxAge: 90 * 24 * 3600,
		HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode})
}

// logError logs a failure of the store or the coordinator by request id:
// at warn when a dependency is down (health checks report the outage),
// at error otherwise. Their errors name no identifiers (the subject is
// stored encrypted and validation messages never quote input); a mailer's
// errors may, so send logs those without their text.
func (p *Portal) logError(msg, requestID string, err error) {
	fields := []zap.Field{zap.Error(err)}
	if requestID != "" {
		fields = append(fields, zap.String("request_id", requestID))
	}
	if erasure.ErrorCode(err) == erasure.EUnavailable {
		p.log.Warn(msg, fields...)
		return
	}
	p.log.Error(msg, fields...)
}

// serverError logs err and answers with a page: 503 with Retry-After and
// "try again in a moment" when a dependency (the database) is down, so
// the person knows waiting helps; 500 with a generic apology otherwise.
func (p *Portal) serverError(w http.ResponseWriter, r *http.Request, storedLang, msg, requestID string, err error) {
	p.logError(msg, requestID, err)
	if erasure.ErrorCode(err) == erasure.EUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(int(erasure.RetryUnavailable.Seconds())))
		p.message(w, r, http.StatusServiceUnavailable, storedLang, "portal.error.unavailable")
		return
	}
	p.message(w, r, http.StatusInternalServerError, storedLang, "portal.error.generic")
}
