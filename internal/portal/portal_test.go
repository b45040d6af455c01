package portal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/internal/bus"
	"github.com/lethe-dev/lethe/internal/certificate"
	"github.com/lethe-dev/lethe/internal/coordinator"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/i18n"
	"github.com/lethe-dev/lethe/internal/portal"
	"github.com/lethe-dev/lethe/internal/store"
	"github.com/lethe-dev/lethe/internal/store/sqlite"
	"github.com/lethe-dev/lethe/internal/testenv"
	"github.com/lethe-dev/lethe/internal/translog"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// register mounts the portal's routes exactly as internal/httpapi does.
func register(mux *http.ServeMux, p *portal.Portal) {
	mux.Handle("GET /portal", p.Form())
	mux.Handle("POST /portal", p.Submit())
	mux.Handle("GET /portal/verify/{token}", p.VerifyPage())
	mux.Handle("POST /portal/verify/{token}", p.Verify())
	mux.Handle("POST /portal/resend/{token}", p.Resend())
	mux.Handle("GET /portal/status/{token}", p.Status())
	mux.Handle("GET /portal/assets/{file}", p.Asset())
}

// clock is the tests' settable clock.
type clock = testenv.Clock

// sent is one email SendCode was asked to send.
type sent struct {
	To, Lang, Code, VerifyURL, StatusURL string
	TTL                                  time.Duration
}

// mailbox stands in for the mailer: it keeps what would have been sent.
type mailbox struct {
	mu   sync.Mutex
	mail []sent
	fail error
}

func (m *mailbox) send(_ context.Context, to string, b *i18n.Bundle, code, verifyURL, statusURL string, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return fmt.Errorf("smtp: 550 mailbox <%s> unavailable: %w", to, m.fail)
	}
	m.mail = append(m.mail, sent{To: to, Lang: b.Code, Code: code, VerifyURL: verifyURL, StatusURL: statusURL, TTL: ttl})
	return nil
}

func (m *mailbox) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.mail)
}

func (m *mailbox) last(t *testing.T) sent {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.mail) == 0 {
		t.Fatal("no email was sent")
	}
	return m.mail[len(m.mail)-1]
}

type env struct {
	srv    *httptest.Server
	st     store.Store
	coord  *coordinator.Coordinator
	portal *portal.Portal
	clock  *clock
	mail   *mailbox
	logs   *observer.ObservedLogs
}

// setup runs the portal over a real SQLite store and coordinator, with two
// connectors, behind a TLS test server (so the Secure cookie works).
func setup(t *testing.T, opts ...func(*portal.Deps)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "lethe.db"), testenv.KeyRing())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	h, _ := erasure.NewHasher(bytes.Repeat([]byte{1}, 32))
	clk := testenv.NewClock(time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC))
	core, logs := observer.New(zap.DebugLevel)
	log := zap.New(core)
	priv, _ := certificate.GenerateKey()
	ls, _ := translog.NewLogSigner("test.example/log", priv)
	iss := &certificate.Issuer{Signer: certificate.NewSigner(priv), Log: translog.NewLog("test.example/log", ls), Options: certificate.Options{Issuer: "Example Ltd"}}
	coord := coordinator.New(coordinator.Deps{Store: st, Hasher: h, Certifier: iss, Clock: clk.Now, Log: log}, coordinator.Config{
		Connectors: []coordinator.Connector{{Name: "shop-db", Type: "sql"}, {Name: "crm", Type: "hubspot"}},
		Retention:  coordinator.Retention{UnverifiedAfter: 72 * time.Hour, ShredAfter: time.Hour, KeepRequests: 24 * time.Hour},
	})
	cat, err := i18n.Load()
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	mb := &mailbox{}
	d := portal.Deps{
		Store: st, Coordinator: coord, Hasher: h, Catalog: cat,
		Config: config.Portal{Enabled: true, DefaultJurisdiction: "gdpr", CustomerSystem: "customer",
			CodeTTL: 30 * time.Minute, CodeAttempts: 5, PerAddressPerHour: 100, PerEmailPerDay: 3},
		LinkKey: bytes.Repeat([]byte{9}, 32), BaseURL: srv.URL, Org: "Example Ltd",
		SendCode: mb.send, Log: log, Clock: clk.Now,
	}
	for _, o := range opts {
		o(&d)
	}
	p, err := portal.New(d)
	if err != nil {
		t.Fatal(err)
	}
	register(mux, p)
	return &env{srv: srv, st: st, coord: coord, portal: p, clock: clk, mail: mb, logs: logs}
}

// browser is one person's browser: its own cookies, following redirects.
type browser struct {
	t      *testing.T
	e      *env
	c      *http.Client
	header http.Header
}

func (e *env) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, e: e, c: &http.Client{Transport: e.srv.Client().Transport, Jar: jar}, header: http.Header{}}
}

type page struct {
	status int
	url    *url.URL
	header http.Header
	body   string
}

func (b *browser) do(method, path string, form url.Values) page {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.e.srv.URL+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, vs := range b.header {
		req.Header[k] = vs
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, url: resp.Request.URL, header: resp.Header, body: string(out)}
}

func (b *browser) get(path string) page { return b.do(http.MethodGet, path, nil) }

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrf(t *testing.T, p page) string {
	t.Helper()
	m := csrfRe.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no form token on the page (%d %s):\n%s", p.status, p.url.Path, p.body)
	}
	return m[1]
}

// submit fills in the request form as a person would.
func (b *browser) submit(fields map[string]string) page {
	b.t.Helper()
	form := b.get("/portal")
	v := url.Values{"csrf": {csrf(b.t, form)}, "lang": {"en"}, "jurisdiction": {"gdpr"}}
	for k, x := range fields {
		v.Set(k, x)
	}
	return b.do(http.MethodPost, "/portal", v)
}

// confirm sends code on the confirmation page p.
func (b *browser) confirm(p page, code string) page {
	b.t.Helper()
	return b.do(http.MethodPost, p.url.Path, url.Values{"csrf": {csrf(b.t, p)}, "lang": {"en"}, "code": {code}})
}

func (b *browser) resend(p page) page {
	b.t.Helper()
	return b.do(http.MethodPost, strings.Replace(p.url.Path, "/verify/", "/resend/", 1), url.Values{"csrf": {csrf(b.t, p)}, "lang": {"en"}})
}

// requestID reads the request id out of a portal link.
func requestID(t *testing.T, path string) string {
	t.Helper()
	u, _ := url.Parse(path)
	tok := u.Path[strings.LastIndexByte(u.Path, '/')+1:]
	id, _, ok := strings.Cut(tok, ".")
	if !ok || !erasure.ValidID(id) {
		t.Fatalf("no request id in %q", path)
	}
	return id
}

func (e *env) request(t *testing.T, id string) (erasure.Request, store.PortalRequest) {
	t.Helper()
	req, err := e.st.Request(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := e.st.PortalRequest(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return req, pr
}

func (e *env) countRequests(t *testing.T) int {
	t.Helper()
	reqs, err := e.st.Requests(context.Background(), store.RequestFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return len(reqs)
}

var (
	tokenRe = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.[A-Za-z0-9_-]{43}`)
	textRe  = regexp.MustCompile(`<[^>]*>`)
)

// shape is a page with what must differ (link tokens, form tokens) masked:
// two answers with the same shape look the same to whoever reads them.
func shape(p page) string {
	s := tokenRe.ReplaceAllString(p.body, "TOKEN")
	s = csrfRe.ReplaceAllString(s, `name="csrf" value="CSRF"`)
	return fmt.Sprintf("%d %s\n%s", p.status, tokenRe.ReplaceAllString(p.url.Path, "TOKEN"), s)
}

// text is the page's visible text, entities decoded.
func text(p page) string {
	return html.UnescapeString(strings.Join(strings.Fields(textRe.ReplaceAllString(p.body, " ")), " "))
}

func mustContain(t *testing.T, p page, parts ...string) {
	t.Helper()
	txt := text(p)
	for _, s := range parts {
		if !strings.Contains(txt, s) && !strings.Contains(p.body, s) {
			t.Errorf("page %d %s lacks %q:\n%s", p.status, p.url.Path, s, txt)
		}
	}
}

func mustNotContain(t *testing.T, p page, parts ...string) {
	t.Helper()
	for _, s := range parts {
		if strings.Contains(p.body, s) {
			t.Errorf("page %d %s has %q", p.status, p.url.Path, s)
		}
	}
}

// respell changes only the spare bits of a base64 string's last character:
// the same bytes to a lenient decoder, another string to us.
func respell(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[i+1])
}

// mustContainDate accepts a date written out ("1 June 2026") or, in a
// language without month names, in ISO 8601.
func mustContainDate(t *testing.T, p page, prefix, iso, long string) {
	t.Helper()
	if txt := text(p); !strings.Contains(txt, prefix+long) && !strings.Contains(txt, prefix+iso) {
		t.Errorf("page %s lacks %q:\n%s", p.url.Path, prefix+long, txt)
	}
}

func wrongCode(right string) string {
	if right == "000000" {
		return "111111"
	}
	return "000000"
}

func TestSubmitConfirmAndFollow(t *testing.T) {
	t.Parallel()
	e := setup(t)
	b := e.browser(t)
	ctx := context.Background()

	v := b.submit(map[string]string{"email": "Person@Example.com"})
	if v.status != http.StatusOK || !strings.HasPrefix(v.url.Path, "/portal/verify/") {
		t.Fatalf("after submitting: %d %s", v.status, v.url)
	}
	mustContain(t, v, "Check your email", "works for 30 minutes", "Confirm my request", "Send a new code")
	m := e.mail.last(t)
	id := requestID(t, v.url.Path)
	if m.To != "person@example.com" || m.Lang != "en" || m.TTL != 30*time.Minute || !regexp.MustCompile(`^[0-9]{6}$`).MatchString(m.Code) {
		t.Errorf("email = %+v", m)
	}
	if m.VerifyURL != e.srv.URL+v.url.Path+"?code="+m.Code {
		t.Errorf("verify link %q, page %q", m.VerifyURL, v.url.Path)
	}
	if e.portal.VerifyURL(id, m.Code) != m.VerifyURL || e.portal.StatusURL(id) != m.StatusURL || !strings.HasPrefix(m.StatusURL, e.srv.URL+"/portal/status/"+id+".") {
		t.Errorf("links: %q %q", m.VerifyURL, m.StatusURL)
	}
	req, pr := e.request(t, id)
	if req.Status != erasure.RequestUnverified || req.Source != "portal" || req.CreatedBy != "portal" || req.Jurisdiction != erasure.GDPR || req.Subject.Email != "person@example.com" {
		t.Errorf("filed = %+v", req)
	}
	if pr.Lang != "en" || pr.CodeAttempts != 0 || !pr.VerifiedAt.IsZero() || !pr.CodeExpiresAt.Equal(e.clock.Now().Add(30*time.Minute)) || strings.Contains(pr.CodeHash, m.Code) {
		t.Errorf("portal side = %+v", pr)
	}
	if ts, _ := e.st.Tasks(ctx, id); len(ts) != 0 {
		t.Errorf("an unverified request has %d tasks", len(ts))
	}

	s := b.confirm(v, m.Code)
	if s.status != http.StatusOK || !strings.HasPrefix(s.url.Path, "/portal/status/") {
		t.Fatalf("after confirming: %d %s\n%s", s.status, s.url, text(s))
	}
	if e.srv.URL+s.url.Path != m.StatusURL {
		t.Errorf("redirected to %s, the email links %s", s.url.Path, m.StatusURL)
	}
	mustContain(t, s, "We are erasing your data: 0 of 2 systems finished.", "crm", "shop-db", "in progress", "Do not share the link")
	mustContainDate(t, s, "Received ", "2026-06-01", "1 June 2026")
	mustContainDate(t, s, "We must finish by ", "2026-07-01", "1 July 2026")
	mustNotContain(t, s, "/audit?certificate=")
	for k, want := range map[string]string{"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"} {
		if got := s.header.Get(k); got != want {
			t.Errorf("status page %s = %q", k, got)
		}
	}
	if !strings.Contains(s.header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Errorf("CSP = %q", s.header.Get("Content-Security-Policy"))
	}
	req, pr = e.request(t, id)
	if req.Status != erasure.RequestInProgress || !pr.VerifiedAt.Equal(e.clock.Now()) {
		t.Errorf("after confirming: %s, verified at %v", req.Status, pr.VerifiedAt)
	}

	// The connectors report; the page follows, and links the certificate.
	tasks, _ := e.st.Tasks(ctx, id)
	for i, task := range tasks {
		status := bus.ResultErased
		if i == 1 {
			status = bus.ResultNotFound
		}
		res := bus.Result{V: bus.Version, Kind: bus.KindErase, TaskID: task.ID, RequestID: id,
			Connector: task.Connector, Attempt: task.Attempt, Status: status}
		if status == bus.ResultErased {
			res.Records = 2
		}
		if _, err := e.coord.ApplyResult(ctx, res); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			mustContain(t, b.get(s.url.Path), "1 of 2 systems finished")
		}
	}
	cert, err := e.st.Certificate(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	done := b.get(s.url.Path)
	mustContain(t, done, "Done. Your data has been erased.", `href="/audit?certificate=`+cert.ID+`"`, "erased", "held nothing about you")
}

func TestRequireApproval(t *testing.T) {
	t.Parallel()
	e := setup(t, func(d *portal.Deps) { d.Config.RequireApproval = true })
	b := e.browser(t)
	v := b.submit(map[string]string{"email": "person@example.com"})
	s := b.confirm(v, e.mail.last(t).Code)
	mustContain(t, s, "Confirmed. Our team reviews it before we start.")
	req, _ := e.request(t, requestID(t, s.url.Path))
	if req.Status != erasure.RequestPendingApproval {
		t.Errorf("status = %s", req.Status)
	}
	if ts, _ := e.st.Tasks(context.Background(), req.ID); len(ts) != 0 {
		t.Errorf("work started before approval: %d tasks", len(ts))
	}
}

func TestWrongCodesRunOut(t *testing.T) {
	t.Parallel()
	e := setup(t, func(d *portal.Deps) { d.Config.CodeAttempts = 3 })
	b := e.browser(t)
	v := b.submit(map[string]string{"email": "person@example.com"})
	code := e.mail.last(t).Code
	id := requestID(t, v.url.Path)

	// Not a code at all: said so, no try used.
	p := b.confirm(v, "12ab5")
	if p.status != http.StatusUnprocessableEntity {
		t.Errorf("malformed code: %d", p.status)
	}
	mustContain(t, p, "Please enter the 6 digits from the email.")
	if _, pr := e.request(t, id); pr.CodeAttempts != 0 {
		t.Errorf("a malformed code counted: %d", pr.CodeAttempts)
	}
	for _, left := range []string{"2", "1"} {
		p = b.confirm(p, wrongCode(code))
		if p.status != http.StatusUnprocessableEntity {
			t.Errorf("wrong code: %d", p.status)
		}
		mustContain(t, p, "That code is not right. Tries left: "+left+".", `aria-describedby="code-hint code-error"`, `id="code-error" role="alert"`)
	}
	p = b.confirm(p, wrongCode(code))
	mustContain(t, p, "expired or was tried too many times")
	// Out of tries, the right code no longer works either.
	p = b.confirm(p, code)
	mustContain(t, p, "expired or was tried too many times")
	req, pr := e.request(t, id)
	if pr.CodeAttempts != 3 || req.Status != erasure.RequestUnverified || !pr.VerifiedAt.IsZero() {
		t.Errorf("after the tries: attempts %d, %s", pr.CodeAttempts, req.Status)
	}
	mustContain(t, b.get(v.url.Path), "expired or was tried too many times")
}

func TestExpiredCodeAndResend(t *testing.T) {
	t.Parallel()
	e := setup(t)
	b := e.browser(t)
	v := b.submit(map[string]string{"email": "person@example.com"})
	first := e.mail.last(t).Code
	id := requestID(t, v.url.Path)

	// Within a minute of the first code, a resend sends nothing.
	r := b.resend(v)
	if r.status != http.StatusOK || r.url.Path != v.url.Path {
		t.Fatalf("resend answered %d %s", r.status, r.url)
	}
	mustContain(t, r, "A new code is on its way.")
	if n := e.mail.count(); n != 1 {
		t.Errorf("a resend within a minute sent a code: %d emails", n)
	}

	e.clock.Advance(31 * time.Minute)
	p := b.confirm(v, first)
	mustContain(t, p, "expired or was tried too many times")
	if req, _ := e.request(t, id); req.Status != erasure.RequestUnverified {
		t.Errorf("an expired code verified the request: %s", req.Status)
	}
	_ = b.confirm(v, wrongCode(first))

	again := b.resend(v)
	if shape(again) != shape(r) {
		t.Errorf("a resend that sent and one that did not look different:\n%s\n---\n%s", shape(again), shape(r))
	}
	if n := e.mail.count(); n != 2 {
		t.Fatalf("emails after a resend: %d", n)
	}
	second := e.mail.last(t)
	if second.To != "person@example.com" {
		t.Errorf("resent to %q", second.To)
	}
	_, pr := e.request(t, id)
	if pr.CodeAttempts != 0 || !pr.CodeExpiresAt.Equal(e.clock.Now().Add(30*time.Minute)) {
		t.Errorf("after resend: %+v", pr)
	}
	if second.Code != first {
		mustContain(t, b.confirm(v, first), "That code is not right")
	}
	s := b.confirm(v, second.Code)
	if !strings.HasPrefix(s.url.Path, "/portal/status/") {
		t.Fatalf("the new code: %d %s\n%s", s.status, s.url, text(s))
	}
	// A confirmed request sends no more codes.
	e.clock.Advance(2 * time.Minute)
	b.resend(v)
	if n := e.mail.count(); n != 2 {
		t.Errorf("a confirmed request sent another code: %d emails", n)
	}
}

func TestResendWithinTheAddressLimit(t *testing.T) {
	t.Parallel()
	e := setup(t, func(d *portal.Deps) { d.Config.PerAddressPerHour = 3 })
	b := e.browser(t)
	v := b.submit(map[string]string{"email": "person@example.com"})
	for i := range 3 {
		e.clock.Advance(61 * time.Second)
		b.resend(v)
		want := min(i+2, 3)
		if n := e.mail.count(); n != want {
			t.Errorf("resend %d: %d emails, want %d", i+1, n, want)
		}
	}
}

func TestConfirmingTwiceIsHarmless(t *testing.T) {
	t.Parallel()
	e := setup(t)
	b := e.browser(t)
	ctx := context.Background()
	v := b.submit(map[string]string{"email": "person@example.com"})
	code := e.mail.last(t).Code
	first := b.confirm(v, code)
	id := requestID(t, first.url.Path)
	events, _ := e.st.Events(ctx, id)

	second := b.confirm(v, code)
	if second.url.Path != first.url.Path || second.status != http.StatusOK {
		t.Errorf("confirming again: %d %s", second.status, second.url)
	}
	if again, _ := e.st.Events(ctx, id); len(again) != len(events) {
		t.Errorf("confirming again wrote %d events", len(again)-len(events))
	}
	if ts, _ := e.st.Tasks(ctx, id); len(ts) != 2 {
		t.Errorf("tasks after confirming twice: %d", len(ts))
	}
	// The confirmation page no longer asks; a wrong code opens nothing.
	p := b.confirm(v, wrongCode(code))
	mustContain(t, p, "This request is already confirmed.")
	mustNotContain(t, p, "/portal/status/")
	mustContain(t, b.get(v.url.Path), "This request is already confirmed.")
}

func TestVerifyLinkDoesNothingByItself(t *testing.T) {
	t.Parallel()
	e := setup(t)
	b := e.browser(t)
	ctx := context.Background()
	v := b.submit(map[string]string{"email": "person@example.com"})
	m := e.mail.last(t)
	id := requestID(t, v.url.Path)
	req0, pr0 := e.request(t, id)
	events0, _ := e.st.Events(ctx, id)

	// Opened in another browser, twice: the code is filled in, nothing moves.
	other := e.browser(t)
	path := strings.TrimPrefix(m.VerifyURL, e.srv.URL)
	for range 2 {
		p := other.get(path)
		if p.status != http.StatusOK {
			t.Fatalf("the email's link: %d", p.status)
		}
		mustContain(t, p, `value="`+m.Code+`"`, "Confirm my request")
	}
	req, pr := e.request(t, id)
	events, _ := e.st.Events(ctx, id)
	if req.Status != req0.Status || pr != pr0 || len(events) != len(events0) {
		t.Errorf("a GET changed the request: %s %+v, %d events", req.Status, pr, len(events)-len(events0))
	}
	// A code in the link that is not a code is not put in the form.
	mustNotContain(t, other.get(v.url.Path+`?code="><b>x`), "<b>x")
	// The other browser confirms with its own form token.
	p := other.get(path)
	if s := other.confirm(p, m.Code); !strings.HasPrefix(s.url.Path, "/portal/status/") {
		t.Errorf("confirming from the email's link: %d %s", s.status, s.url)
	}
}

func TestFormTokenIsRequired(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a, other := e.browser(t), e.browser(t)
	form := a.get("/portal")
	token := csrf(t, form)
	otherToken := csrf(t, other.get("/portal"))
	fields := func(tok string) url.Values {
		v := url.Values{"email": {"person@example.com"}, "jurisdiction": {"gdpr"}, "lang": {"en"}}
		if tok != "" {
			v.Set("csrf", tok)
		}
		return v
	}
	for name, p := range map[string]page{
		"missing":            a.do(http.MethodPost, "/portal", fields("")),
		"forged":             a.do(http.MethodPost, "/portal", fields("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")),
		"another browser's":  a.do(http.MethodPost, "/portal", fields(otherToken)),
		"without the cookie": e.browser(t).do(http.MethodPost, "/portal", fields(token)),
		"not base64":         a.do(http.MethodPost, "/portal", fields("%%%")),
		"truncated":          a.do(http.MethodPost, "/portal", fields(token[:20])),
		"respelled":          a.do(http.MethodPost, "/portal", fields(respell(token))),
	} {
		if p.status != http.StatusForbidden {
			t.Errorf("%s token: %d", name, p.status)
		}
		mustContain(t, p, "This page has expired. Please reload it and try again.")
	}
	if n := e.countRequests(t); n != 0 || e.mail.count() != 0 {
		t.Errorf("refused forms filed %d requests", n)
	}
	if ok := a.do(http.MethodPost, "/portal", fields(token)); ok.status != http.StatusOK || e.countRequests(t) != 1 {
		t.Errorf("the right token: %d, %d requests", ok.status, e.countRequests(t))
	}

	// The code form and the resend form need it too.
	v := other.submit(map[string]string{"email": "someone@example.com"})
	id := requestID(t, v.url.Path)
	code := e.mail.last(t).Code
	p := other.do(http.MethodPost, v.url.Path, url.Values{"code": {code}})
	if p.status != http.StatusForbidden {
		t.Errorf("code without a token: %d", p.status)
	}
	e.clock.Advance(2 * time.Minute)
	sentBefore := e.mail.count()
	if p := other.do(http.MethodPost, strings.Replace(v.url.Path, "/verify/", "/resend/", 1), url.Values{}); p.status != http.StatusForbidden {
		t.Errorf("resend without a token: %d", p.status)
	}
	req, pr := e.request(t, id)
	if req.Status != erasure.RequestUnverified || pr.CodeAttempts != 0 || e.mail.count() != sentBefore {
		t.Errorf("a refused form changed the request: %s, %d attempts", req.Status, pr.CodeAttempts)
	}
}

func TestCrossOriginPostsRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	b := e.browser(t)
	form := b.get("/portal")
	v := url.Values{"csrf": {csrf(t, form)}, "email": {"person@example.com"}, "jurisdiction": {"gdpr"}}
	for _, h := range []http.Header{
		{"Sec-Fetch-Site": {"cross-site"}},
		{"Origin": {"https://evil.example"}},
		{"Sec-Fetch-Site": {"same-site"}},
	} {
		b.header = h
		if p := b.do(http.MethodPost, "/portal", v); p.status != http.StatusForbidden {
			t.Errorf("%v: %d", h, p.status)
		}
	}
	if n := e.countRequests(t); n != 0 {
		t.Errorf("cross-origin posts filed %d requests", n)
	}
	b.header = http.Header{"Sec-Fetch-Site": {"same-origin"}}
	if p := b.do(http.MethodPost, "/portal", v); p.status != http.StatusOK || e.countRequests(t) != 1 {
		t.Errorf("a same-origin post: %d", p.status)
	}
}

func TestPerAddressLimit(t *testing.T) {
	t.Parallel()
	e := setup(t, func(d *portal.Deps) {
		d.Config.PerAddressPerHour = 2
		d.TrustProxyHeader = "X-Forwarded-For"
	})
	from := func(addr string) *browser {
		b := e.browser(t)
		b.header.Set("X-Forwarded-For", addr)
		return b
	}
	a := from("203.0.113.7")
	for i := range 2 {
		if p := a.submit(map[string]string{"email": fmt.Sprintf("p%d@example.com", i)}); p.status != http.StatusOK {
			t.Fatalf("submission %d: %d", i, p.status)
		}
	}
	p := a.submit(map[string]string{"email": "p3@example.com"})
	if p.status != http.StatusTooManyRequests || p.header.Get("Retry-After") != "1800" {
		t.Errorf("over the limit: %d, Retry-After %q", p.status, p.header.Get("Retry-After"))
	}
	mustContain(t, p, "Too many requests. Please try again later.")
	if n := e.countRequests(t); n != 2 {
		t.Errorf("requests filed: %d", n)
	}
	// Only the address the proxy saw counts, not what the client claims.
	if p := from("198.51.100.1, 203.0.113.7").submit(map[string]string{"email": "p4@example.com"}); p.status != http.StatusTooManyRequests {
		t.Errorf("a spoofed first entry escaped the limit: %d", p.status)
	}
	if p := from("203.0.113.8").submit(map[string]string{"email": "p5@example.com"}); p.status != http.StatusOK {
		t.Errorf("another address: %d", p.status)
	}
	// One IPv6 /64 is one client.
	six := from("2001:db8:1:2::1")
	six.submit(map[string]string{"email": "p6@example.com"})
	six.submit(map[string]string{"email": "p7@example.com"})
	if p := from("2001:db8:1:2::ffff").submit(map[string]string{"email": "p8@example.com"}); p.status != http.StatusTooManyRequests {
		t.Errorf("another address in the same /64: %d", p.status)
	}
	e.clock.Advance(time.Hour)
	if p := a.submit(map[string]string{"email": "p9@example.com"}); p.status != http.StatusOK {
		t.Errorf("an hour later: %d", p.status)
	}
	// Invalid forms are answered without counting.
	e.clock.Advance(time.Hour)
	for range 3 {
		a.submit(map[string]string{"email": "nope"})
	}
	if p := a.submit(map[string]string{"email": "p10@example.com"}); p.status != http.StatusOK {
		t.Errorf("after invalid forms: %d", p.status)
	}
}

func TestProxyHeaderIgnoredUnlessTrusted(t *testing.T) {
	t.Parallel()
	e := setup(t, func(d *portal.Deps) { d.Config.PerAddressPerHour = 1 })
	for i, addr := range []string{"203.0.113.7", "203.0.113.8"} {
		b := e.browser(t)
		b.header.Set("X-Forwarded-For", addr)
		p := b.submit(map[string]string{"email": fmt.Sprintf("p%d@example.com", i)})
		if want := []int{http.StatusOK, http.StatusTooManyRequests}[i]; p.status != want {
			t.Errorf("from %s: %d, want %d", addr, p.status, want)
		}
	}
}

func TestPerEmailLimitLooksLikeSuccess(t *testing.T) {
	t.Parallel()
	e := setup(t, func(d *portal.Deps) { d.Config.PerEmailPerDay = 2 })
	ctx := context.Background()
	// Requests filed by staff do not count against the person.
	for range 3 {
		if _, _, err := e.coord.File(ctx, coordinator.FileInput{Subject: erasure.Subject{Email: "person@example.com"}, Jurisdiction: "gdpr", Source: "api", Actor: "api:test"}); err != nil {
			t.Fatal(err)
		}
	}
	var pages []page
	for range 3 {
		pages = append(pages, e.browser(t).submit(map[string]string{"email": "Person@example.com"}))
	}
	if n := e.mail.count(); n != 2 {
		t.Fatalf("emails: %d, want 2 (the limit)", n)
	}
	if shape(pages[2]) != shape(pages[0]) {
		t.Errorf("the answer over the limit differs:\n%s\n---\n%s", shape(pages[2]), shape(pages[0]))
	}
	// It is filed like any request, but since its code was never sent no
	// guess is tried: the person is told what to do instead.
	over := pages[2]
	id := requestID(t, over.url.Path)
	if req, _ := e.request(t, id); req.Status != erasure.RequestUnverified {
		t.Errorf("the request over the limit: %s", req.Status)
	}
	b := e.browser(t)
	p := b.confirm(b.get(over.url.Path), "123456")
	if p.status != http.StatusConflict {
		t.Errorf("a guess for a code never sent: %d, want 409", p.status)
	}
	mustContain(t, p, "No code has been emailed for this request")
	// …but no code ever reaches the address, not even on resend.
	e.clock.Advance(2 * time.Minute)
	b.resend(p)
	if n := e.mail.count(); n != 2 {
		t.Errorf("a resend over the limit sent: %d emails", n)
	}
	// A request within the limit still gets its resend.
	b.resend(b.get(pages[0].url.Path))
	if n := e.mail.count(); n != 3 {
		t.Errorf("a resend within the limit: %d emails", n)
	}
	// Other addresses are not affected, and a day later this one is free.
	e.browser(t).submit(map[string]string{"email": "someone@example.com"})
	if n := e.mail.count(); n != 4 {
		t.Errorf("another address: %d emails", n)
	}
	e.clock.Advance(24 * time.Hour)
	e.browser(t).submit(map[string]string{"email": "person@example.com"})
	if n := e.mail.count(); n != 5 {
		t.Errorf("a day later: %d emails", n)
	}
}

func TestKnownAndUnknownAddressesLookTheSame(t *testing.T) {
	t.Parallel()
	e := setup(t)
	if _, _, err := e.coord.File(context.Background(), coordinator.FileInput{Subject: erasure.Subject{Email: "known@example.com"}, Jurisdiction: "gdpr", Source: "api", Actor: "api:test"}); err != nil {
		t.Fatal(err)
	}
	known := e.browser(t).submit(map[string]string{"email": "known@example.com"})
	unknown := e.browser(t).submit(map[string]string{"email": "nobody@nowhere.example"})
	if shape(known) != shape(unknown) {
		t.Errorf("answers differ:\n%s\n---\n%s", shape(known), shape(unknown))
	}
	if strings.Contains(known.body, "known@example.com") || strings.Contains(unknown.body, "nobody@nowhere.example") {
		t.Error("the confirmation page repeats the address")
	}
	if e.mail.count() != 2 {
		t.Errorf("emails: %d", e.mail.count())
	}
}

func TestFieldLimits(t *testing.T) {
	t.Parallel()
	e := setup(t, func(d *portal.Deps) { d.Config.AskPhone, d.Config.AskCustomerNumber = true, true })
	b := e.browser(t)
	email254 := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 61) + "." + strings.Repeat("c", 61) + "." + strings.Repeat("d", 61) + ".com"
	if len(email254) != 254 {
		t.Fatal(len(email254))
	}
	for _, tc := range []struct {
		name   string
		fields map[string]string
		field  string
		msg    string
	}{
		{"email 255", map[string]string{"email": "a" + email254}, "email", "at most 254 characters"},
		{"phone 33", map[string]string{"email": "p@example.com", "phone": "+" + strings.Repeat("1", 32)}, "phone", "at most 32 characters"},
		{"customer 65", map[string]string{"email": "p@example.com", "customer": strings.Repeat("7", 65)}, "customer", "at most 64 characters"},
	} {
		p := b.submit(tc.fields)
		if p.status != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d", tc.name, p.status)
		}
		mustContain(t, p, tc.msg, `id="`+tc.field+`-error"`, `aria-describedby="`+tc.field+`-hint `+tc.field+`-error"`)
	}
	form := b.get("/portal")
	big := url.Values{"csrf": {csrf(t, form)}, "email": {"p@example.com"}, "jurisdiction": {"gdpr"}, "pad": {strings.Repeat("x", 17<<10)}}
	if p := b.do(http.MethodPost, "/portal", big); p.status != http.StatusRequestEntityTooLarge {
		t.Errorf("a 17 KiB body: %d", p.status)
	} else {
		mustContain(t, p, "too large")
	}
	if n := e.countRequests(t); n != 0 {
		t.Fatalf("oversized forms filed %d requests", n)
	}
	// At the limits, all is well.
	p := b.submit(map[string]string{"email": email254, "phone": "+44 7700 900123" + strings.Repeat(" ", 17), "customer": strings.Repeat("7", 64)})
	if p.status != http.StatusOK {
		t.Fatalf("at the limits: %d\n%s", p.status, text(p))
	}
	req, _ := e.request(t, requestID(t, p.url.Path))
	if req.Subject.Email != email254 || req.Subject.Phone != "+447700900123" || req.Subject.UserIDs["customer"] != strings.Repeat("7", 64) {
		t.Errorf("subject = %+v", req.Subject)
	}
}

func TestInvalidInputIsExplained(t *testing.T) {
	t.Parallel()
	e := setup(t, func(d *portal.Deps) { d.Config.AskPhone = true })
	b := e.browser(t)
	for _, tc := range []struct {
		fields map[string]string
		want   []string
	}{
		{map[string]string{"email": "not-an-email"}, []string{"Please enter a valid email address.", `aria-describedby="email-hint email-error"`, `aria-invalid="true"`, `value="not-an-email"`}},
		{map[string]string{"email": ""}, []string{"Please enter your email address.", `href="#email"`}},
		{map[string]string{"email": "p@example.com", "phone": "12"}, []string{"Please enter the phone number with its country code.", `aria-describedby="phone-hint phone-error"`}},
		{map[string]string{"email": "p@example.com", "jurisdiction": "xx"}, []string{"Please choose which law applies to you.", `aria-describedby="jurisdiction-error"`}},
		{map[string]string{"email": "a b@example.com", "phone": "x"}, []string{"Please enter a valid email address.", "Please enter the phone number"}},
	} {
		p := b.submit(tc.fields)
		if p.status != http.StatusUnprocessableEntity {
			t.Errorf("%v: %d", tc.fields, p.status)
		}
		mustContain(t, p, append(tc.want, `role="alert"`, "Please correct the following")...)
	}
	// In Hebrew, the messages are Hebrew.
	form := b.get("/portal?lang=he")
	p := b.do(http.MethodPost, "/portal", url.Values{"csrf": {csrf(t, form)}, "lang": {"he"}, "email": {"x"}, "jurisdiction": {"gdpr"}})
	mustContain(t, p, "נא להזין כתובת דוא״ל תקינה.", `lang="he"`, `dir="rtl"`)
	if n := e.countRequests(t); n != 0 {
		t.Errorf("invalid forms filed %d requests", n)
	}
}

func TestCustomerNumberAndPhoneOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	e := setup(t)
	b := e.browser(t)
	form := b.get("/portal")
	mustNotContain(t, form, `name="phone"`, `name="customer"`)
	p := b.submit(map[string]string{"email": "p@example.com", "phone": "nonsense", "customer": "42", "jurisdiction": "ccpa"})
	if p.status != http.StatusOK {
		t.Fatalf("%d\n%s", p.status, text(p))
	}
	req, _ := e.request(t, requestID(t, p.url.Path))
	if req.Subject.Phone != "" || len(req.Subject.UserIDs) != 0 || req.Jurisdiction != erasure.CCPA {
		t.Errorf("filed %+v, %s", req.Subject, req.Jurisdiction)
	}

	e2 := setup(t, func(d *portal.Deps) {
		d.Config.AskCustomerNumber, d.Config.CustomerSystem, d.Config.DefaultJurisdiction = true, "shop-db", "ccpa"
	})
	b2 := e2.browser(t)
	mustContain(t, b2.get("/portal"), `value="ccpa" checked`, "45 days", `<label for="customer">`)
	p = b2.submit(map[string]string{"email": "p@example.com", "customer": " C-1001 "})
	req, _ = e2.request(t, requestID(t, p.url.Path))
	if req.Subject.UserIDs["shop-db"] != "C-1001" {
		t.Errorf("customer number: %+v", req.Subject.UserIDs)
	}
}

func TestLinksAreOursAndForOnePurpose(t *testing.T) {
	t.Parallel()
	e := setup(t)
	b := e.browser(t)
	v := b.submit(map[string]string{"email": "person@example.com"})
	m := e.mail.last(t)
	id := requestID(t, v.url.Path)
	verifyTok := strings.TrimPrefix(v.url.Path, "/portal/verify/")
	statusTok := strings.TrimPrefix(m.StatusURL, e.srv.URL+"/portal/status/")
	if p := b.get("/portal/status/" + statusTok); p.status != http.StatusOK {
		t.Fatalf("the status link: %d", p.status)
	}
	// flip changes the character at i.
	flip := func(s string, i int) string { return s[:i] + string(s[i]^1) + s[i+1:] }
	otherKey := func() string {
		p, err := portal.New(portal.Deps{Store: e.st, Coordinator: e.coord, Hasher: mustHasher(t), Catalog: mustCatalog(t),
			LinkKey: bytes.Repeat([]byte{8}, 32), BaseURL: "https://x.example", SendCode: e.mail.send})
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimPrefix(p.StatusURL(id), "https://x.example/portal/status/")
	}()
	unknown := strings.TrimPrefix(e.portal.StatusURL(erasure.NewID()), e.srv.URL+"/portal/status/")
	var shapes []string
	for name, path := range map[string]string{
		"garbage":                  "/portal/status/garbage",
		"id only":                  "/portal/status/" + id,
		"forged mac":               "/portal/status/" + flip(statusTok, 37),
		"spare bits of the mac":    "/portal/status/" + respell(statusTok),
		"another key":              "/portal/status/" + otherKey,
		"unknown request":          "/portal/status/" + unknown,
		"verify token for status":  "/portal/status/" + verifyTok,
		"status token for verify":  "/portal/verify/" + statusTok,
		"mac of another request":   "/portal/status/" + erasure.NewID() + statusTok[36:],
		"forged verify mac":        "/portal/verify/" + flip(verifyTok, 40),
		"spare bits, verify":       "/portal/verify/" + respell(verifyTok),
		"padding added to the mac": "/portal/status/" + statusTok + "=",
		"unknown asset":            "/portal/assets/nope.css",
	} {
		p := b.get(path)
		if p.status != http.StatusNotFound {
			t.Errorf("%s: %d", name, p.status)
		}
		mustContain(t, p, "This link is not valid.")
		shapes = append(shapes, shape(page{status: p.status, url: &url.URL{}, body: p.body}))
	}
	for _, s := range shapes[1:] {
		if s != shapes[0] {
			t.Errorf("404 pages differ:\n%s\n---\n%s", s, shapes[0])
		}
	}
	// Posting with a status token does nothing either.
	form := b.get(v.url.Path)
	for _, path := range []string{"/portal/verify/" + statusTok, "/portal/resend/" + statusTok} {
		p := b.do(http.MethodPost, path, url.Values{"csrf": {csrf(t, form)}, "code": {m.Code}})
		if p.status != http.StatusNotFound {
			t.Errorf("POST %s: %d", path[:16], p.status)
		}
	}
	if req, _ := e.request(t, id); req.Status != erasure.RequestUnverified {
		t.Errorf("a status token verified the request: %s", req.Status)
	}
}

func mustHasher(t *testing.T) *erasure.Hasher {
	h, err := erasure.NewHasher(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustCatalog(t *testing.T) *i18n.Catalog {
	c, err := i18n.Load()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHebrew(t *testing.T) {
	t.Parallel()
	e := setup(t)
	b := e.browser(t)
	for _, p := range []page{b.get("/portal?lang=he"), func() page {
		b.header.Set("Accept-Language", "he-IL,he;q=0.9,en;q=0.5")
		defer b.header.Del("Accept-Language")
		return b.get("/portal")
	}()} {
		mustContain(t, p, `<html lang="he" dir="rtl">`, "בקשה למחיקת המידע האישי שלכם", `hreflang="en"`,
			`href="/portal?lang=he" lang="he" hreflang="he" aria-current="true"`)
	}
	form := b.get("/portal?lang=he")
	v := b.do(http.MethodPost, "/portal", url.Values{"csrf": {csrf(t, form)}, "lang": {"he"}, "email": {"p@example.com"}, "jurisdiction": {"gdpr"}})
	mustContain(t, v, `dir="rtl"`, "בדקו את תיבת הדוא״ל")
	m := e.mail.last(t)
	if m.Lang != "he" {
		t.Errorf("the code email is in %s", m.Lang)
	}
	if _, pr := e.request(t, requestID(t, v.url.Path)); pr.Lang != "he" {
		t.Errorf("stored language %q", pr.Lang)
	}
	// Links from the email carry no language: the request's is used,
	// unless the person switches.
	plain := e.browser(t)
	s := plain.get(strings.TrimPrefix(m.StatusURL, e.srv.URL))
	mustContain(t, s, `lang="he" dir="rtl"`, "בקשת המחיקה שלכם")
	mustContainDate(t, s, "התקבלה ב־", "2026-06-01", "1 ביוני 2026")
	mustContain(t, plain.get(strings.TrimPrefix(m.StatusURL, e.srv.URL)+"?lang=en"), `lang="en" dir="ltr"`, "Your erasure request")

	// A broken status link answers in the language of the journey in this
	// browser (the last portal page it showed), not in English.
	broken := strings.TrimPrefix(m.StatusURL, e.srv.URL)
	broken = broken[:len(broken)-3] + "xyz"
	nf := b.get(broken)
	if nf.status != http.StatusNotFound {
		t.Fatalf("broken link: %d", nf.status)
	}
	mustContain(t, nf, `lang="he" dir="rtl"`, "הקישור הזה אינו תקף.")
	if c := nf.header.Get("Set-Cookie"); strings.Contains(c, "@") || strings.Contains(c, "p%40") {
		t.Errorf("the language cookie holds more than a language: %s", c)
	}
	// A browser that never saw the portal gets its Accept-Language.
	mustContain(t, e.browser(t).get(broken), `lang="en" dir="ltr"`, "This link is not valid")
}

func TestPagesAreSelfContainedAndAccessible(t *testing.T) {
	t.Parallel()
	e := setup(t, func(d *portal.Deps) { d.Config.AskPhone, d.Config.AskCustomerNumber = true, true })
	b := e.browser(t)
	form := b.get("/portal")
	v := b.submit(map[string]string{"email": "p@example.com"})
	labelFor := regexp.MustCompile(`<label for="([^"]+)"`)
	inputID := regexp.MustCompile(`<input [^>]*id="([^"]+)"`)
	external := regexp.MustCompile(`(?i)(src|href|action)="(https?:)?//`)
	for _, p := range []page{form, v} {
		mustContain(t, p, `<meta name="viewport" content="width=device-width, initial-scale=1">`, `href="/portal/assets/portal.css"`)
		mustNotContain(t, p, "<script", "style=")
		if external.MatchString(p.body) {
			t.Errorf("%s loads from elsewhere: %s", p.url.Path, external.FindString(p.body))
		}
		labels := map[string]bool{}
		for _, m := range labelFor.FindAllStringSubmatch(p.body, -1) {
			labels[m[1]] = true
		}
		ids := inputID.FindAllStringSubmatch(p.body, -1)
		if len(ids) == 0 {
			t.Errorf("%s: no inputs", p.url.Path)
		}
		for _, m := range ids {
			if !labels[m[1]] {
				t.Errorf("%s: input %s has no label", p.url.Path, m[1])
			}
		}
		csp := p.header.Get("Content-Security-Policy")
		for _, d := range []string{"default-src 'self'", "form-action 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, d) {
				t.Errorf("CSP %q lacks %s", csp, d)
			}
		}
	}
	css := b.get("/portal/assets/portal.css")
	if css.status != http.StatusOK || !strings.HasPrefix(css.header.Get("Content-Type"), "text/css") {
		t.Fatalf("style sheet: %d %s", css.status, css.header.Get("Content-Type"))
	}
	rules := regexp.MustCompile(`(?s)/\*.*?\*/`).ReplaceAllString(css.body, "")
	if m := regexp.MustCompile(`(?i)\b(left|right)\b`).FindString(rules); m != "" {
		t.Errorf("the style sheet uses %q: logical properties only, or RTL breaks", m)
	}
	for _, want := range []string{":focus-visible", "margin-inline", "padding-inline-start"} {
		if !strings.Contains(rules, want) {
			t.Errorf("the style sheet lacks %s", want)
		}
	}
}

func TestFormCookie(t *testing.T) {
	t.Parallel()
	for _, insecure := range []bool{false, true} {
		e := setup(t, func(d *portal.Deps) { d.InsecureCookies = insecure })
		resp, err := e.srv.Client().Get(e.srv.URL + "/portal")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		// Two cookies: the form cookie, and the page's language (nothing else).
		cs := map[string]*http.Cookie{}
		for _, c := range resp.Cookies() {
			cs[c.Name] = c
		}
		wantName := map[bool]string{false: "__Host-lethe-portal", true: "lethe-portal"}[insecure]
		c, lang := cs[wantName], cs["lethe_portal_lang"]
		if len(cs) != 2 || c == nil || lang == nil {
			t.Fatalf("cookies: %v", resp.Cookies())
		}
		if c.Secure == insecure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
			t.Errorf("insecure=%v: cookie %s", insecure, c.String())
		}
		if lang.Value != "en" || lang.Secure == insecure || !lang.HttpOnly || lang.Path != "/portal" {
			t.Errorf("insecure=%v: language cookie %s", insecure, lang.String())
		}
	}
}

func TestExpiredAndClosedRequests(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	b := e.browser(t)
	v := b.submit(map[string]string{"email": "late@example.com"})
	m := e.mail.last(t)
	statusPath := strings.TrimPrefix(m.StatusURL, e.srv.URL)
	mustContain(t, b.get(statusPath), "Waiting for you to confirm your email address.")

	e.clock.Advance(73 * time.Hour)
	if h, err := e.coord.Housekeep(ctx); err != nil || h.Expired != 1 {
		t.Fatalf("housekeeping: %+v, %v", h, err)
	}
	closed := b.get(v.url.Path)
	mustContain(t, closed, "This request has expired", `href="/portal?lang=en"`)
	mustNotContain(t, closed, "<form")
	tok := csrf(t, b.get("/portal"))
	mustContain(t, b.do(http.MethodPost, v.url.Path, url.Values{"csrf": {tok}, "code": {m.Code}}), "This request has expired")
	if req, _ := e.request(t, requestID(t, v.url.Path)); req.Status != erasure.RequestCancelled {
		t.Errorf("a code verified an expired request: %s", req.Status)
	}
	b.do(http.MethodPost, strings.Replace(v.url.Path, "/verify/", "/resend/", 1), url.Values{"csrf": {tok}})
	if e.mail.count() != 1 {
		t.Error("an expired request sent a new code")
	}
	s := b.get(statusPath)
	mustContain(t, s, "This request was cancelled.")
	mustNotContain(t, s, "Received", "We must finish", "Our systems")

	// A finished request: shredded after the grace period, purged later;
	// its link keeps working with a neutral page and the certificate.
	w := e.browser(t)
	v2 := w.submit(map[string]string{"email": "done@example.com"})
	s2 := w.confirm(v2, e.mail.last(t).Code)
	id := requestID(t, s2.url.Path)
	if _, err := e.coord.Extend(ctx, id, "api:ops", "one of our systems is an archive on tape", "complexity", e.clock.Now().AddDate(0, 2, 0)); err != nil {
		t.Fatal(err)
	}
	ext := w.get(s2.url.Path)
	mustContain(t, ext, "Reason: one of our systems is an archive on tape")
	mustContainDate(t, ext, "We extended the deadline to ", "2026-08-04", "4 August 2026")
	tasks, _ := e.st.Tasks(ctx, id)
	for _, task := range tasks {
		if _, err := e.coord.ApplyResult(ctx, bus.Result{V: bus.Version, Kind: bus.KindErase, TaskID: task.ID, RequestID: id,
			Connector: task.Connector, Attempt: task.Attempt, Status: bus.ResultErased, Records: 1}); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := e.st.Certificate(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Hour)
	if h, err := e.coord.Housekeep(ctx); err != nil || h.Shredded == 0 {
		t.Fatalf("housekeeping: %+v, %v", h, err)
	}
	shredded := w.get(s2.url.Path)
	mustContain(t, shredded, "This request is closed.", "/audit?certificate="+cert.ID)
	mustNotContain(t, shredded, "shop-db", "Received")
	e.clock.Advance(25 * time.Hour)
	if h, err := e.coord.Housekeep(ctx); err != nil || h.Purged == 0 {
		t.Fatalf("housekeeping: %+v, %v", h, err)
	}
	if _, err := e.st.Request(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("not purged: %v", err)
	}
	purged := w.get(s2.url.Path)
	if purged.status != http.StatusOK {
		t.Errorf("purged: %d", purged.status)
	}
	mustContain(t, purged, "This request is closed.", "/audit?certificate="+cert.ID)
	mustContain(t, w.get(v2.url.Path), "This request has expired")
}

func TestNothingPersonalInLogs(t *testing.T) {
	t.Parallel()
	e := setup(t, func(d *portal.Deps) { d.Config.PerEmailPerDay = 1; d.Config.AskPhone = true })
	const email, phone = "Secret.Person@Example.org", "+447700900123"
	b := e.browser(t)
	v := b.submit(map[string]string{"email": email, "phone": phone})
	code := e.mail.last(t).Code
	b.confirm(v, wrongCode(code))
	b.confirm(v, code)
	// Over the per-email limit, and a mailer that fails quoting the address.
	e.browser(t).submit(map[string]string{"email": email})
	e.mail.mu.Lock()
	e.mail.fail = errors.New("rejected")
	e.mail.mu.Unlock()
	failed := e.browser(t).submit(map[string]string{"email": "other." + email})
	if failed.status != http.StatusOK || !strings.HasPrefix(failed.url.Path, "/portal/verify/") {
		t.Errorf("a failed send changed the answer: %d %s", failed.status, failed.url)
	}
	e.clock.Advance(2 * time.Minute)
	b.resend(e.browser(t).get(failed.url.Path))

	entries := e.logs.All()
	if len(entries) < 5 {
		t.Fatalf("only %d log lines", len(entries))
	}
	var all strings.Builder
	notSent := 0
	for _, en := range entries {
		fmt.Fprintf(&all, "%s %v\n", en.Message, en.ContextMap())
		if en.Message == "verification code not sent" {
			notSent++
			if en.ContextMap()["request_id"] != requestID(t, failed.url.Path) {
				t.Errorf("the failure is logged without its request: %v", en.ContextMap())
			}
		}
	}
	if notSent == 0 {
		t.Error("the failed send was not logged")
	}
	logged := strings.ToLower(all.String())
	for _, secret := range []string{strings.ToLower(email), "secret.person", phone, "7700900123", code} {
		if strings.Contains(logged, secret) {
			t.Errorf("the logs hold %q:\n%s", secret, all.String())
		}
	}
}

func TestNewChecksItsDeps(t *testing.T) {
	t.Parallel()
	e := setup(t)
	good := portal.Deps{Store: e.st, Coordinator: e.coord, Hasher: mustHasher(t), Catalog: mustCatalog(t),
		LinkKey: bytes.Repeat([]byte{9}, 32), BaseURL: "https://privacy.example.com/", SendCode: e.mail.send}
	if p, err := portal.New(good); err != nil || !strings.HasPrefix(p.StatusURL(erasure.NewID()), "https://privacy.example.com/portal/status/") {
		t.Fatalf("good deps: %v", err)
	}
	for name, f := range map[string]func(*portal.Deps){
		"short key":        func(d *portal.Deps) { d.LinkKey = d.LinkKey[:31] },
		"no sender":        func(d *portal.Deps) { d.SendCode = nil },
		"no store":         func(d *portal.Deps) { d.Store = nil },
		"relative base":    func(d *portal.Deps) { d.BaseURL = "/privacy" },
		"ftp base":         func(d *portal.Deps) { d.BaseURL = "ftp://example.com" },
		"bad jurisdiction": func(d *portal.Deps) { d.Config.DefaultJurisdiction = "xx" },
	} {
		d := good
		f(&d)
		if _, err := portal.New(d); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestStatusWhileResolving: while resolvers look the person up, the status
// page says so and counts only the systems that will erase.
func TestStatusWhileResolving(t *testing.T) {
	t.Parallel()
	e := setup(t)
	app := erasure.UserIDKind("app")
	coord := coordinator.New(coordinator.Deps{Store: e.st, Hasher: mustHasher(t), Certifier: nil, Clock: e.clock.Now}, coordinator.Config{
		Connectors: []coordinator.Connector{
			{Name: "shop-db", Type: "sql", Plan: connectors.Plan{Keys: []connectors.Requirement{{erasure.Email}},
				ResolveBy: []erasure.Kind{erasure.Email}, Gives: []erasure.Kind{app}}.Normalized()},
			{Name: "analytics", Type: "sql", Plan: connectors.Plan{Keys: []connectors.Requirement{{app}}}.Normalized()},
		}})
	req, _, err := coord.File(context.Background(), coordinator.FileInput{Subject: erasure.Subject{Email: "found@example.com"},
		Jurisdiction: "gdpr", Source: "portal", Actor: "portal",
		Also: func(ctx context.Context, tx store.Tx, r erasure.Request) error {
			return tx.InsertPortalRequest(ctx, store.PortalRequest{RequestID: r.ID, Lang: "en", CodeHash: "x", CodeExpiresAt: e.clock.Now(), VerifiedAt: e.clock.Now()})
		}})
	if err != nil {
		t.Fatal(err)
	}
	status := strings.TrimPrefix(e.portal.StatusURL(req.ID), e.srv.URL)
	b := e.browser(t)
	if p := b.get(status); !strings.Contains(p.body, "We are finding where our systems hold your data.") || strings.Contains(p.body, "shop-db") {
		t.Errorf("status while resolving:\n%s", p.body)
	}
	tasks, _ := e.st.Tasks(context.Background(), req.ID)
	if _, err := coord.ApplyResult(context.Background(), bus.Result{V: 1, Kind: bus.KindResolve, TaskID: tasks[0].ID, RequestID: req.ID,
		Connector: "shop-db", Attempt: 1, Status: bus.ResultResolved, Identifiers: map[erasure.Kind][]string{app: {"u-9"}}}); err != nil {
		t.Fatal(err)
	}
	if p := b.get(status); !strings.Contains(p.body, "0 of 2 systems finished") {
		t.Errorf("status once erasing:\n%s", p.body)
	}
}

// TestGuessesAcrossRequestsForOneAddressStopAtTheLimit is the attack of
// issue 14: file request after request for someone else's address, each
// with a fresh code and fresh tries, from a new client address each time,
// and guess. The address's budget is shared by all its requests: five
// wrong codes in all, then growing waits; an earlier code is dead once a
// newer one is sent; and the owner, once the wait is over, still gets in.
func TestGuessesAcrossRequestsForOneAddressStopAtTheLimit(t *testing.T) {
	t.Parallel()
	e := setup(t, func(d *portal.Deps) {
		d.TrustProxyHeader = "X-Forwarded-For"
		d.Config.PerEmailPerDay = 1000 // every code is sent: the guess limit alone must hold
	})
	const victim = "victim@example.com"
	tried, slowed := 0, 0
	var first, last page
	for i := range 20 {
		b := e.browser(t)
		b.header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1))
		v := b.submit(map[string]string{"email": victim})
		if i == 0 {
			first = v
		}
		last = v
		code := e.mail.last(t).Code
		for range 2 {
			p := b.confirm(v, wrongCode(code))
			switch {
			case strings.Contains(text(p), "Tries left"):
				tried++
			case p.status == http.StatusTooManyRequests:
				slowed++
				if p.header.Get("Retry-After") == "" {
					t.Error("a slowed guess without Retry-After")
				}
				mustContain(t, p, "Too many wrong codes were entered for this address. Please wait")
			default:
				t.Fatalf("guess %d: %d %s", i, p.status, text(p))
			}
		}
	}
	if tried != 5 || slowed != 35 {
		t.Errorf("40 guesses over 20 requests: %d tried, %d slowed; want 5 tried", tried, slowed)
	}
	// The first request's code was replaced by every later one.
	b := e.browser(t)
	b.header.Set("X-Forwarded-For", "203.0.113.1")
	if p := b.confirm(b.get(first.url.Path), "123456"); p.status != http.StatusConflict {
		t.Errorf("a guess for a replaced code: %d, want 409", p.status)
	} else {
		mustContain(t, p, "A newer code was sent to this address")
	}
	// The waits grow: a minute after the fifth failure one more try, then
	// two minutes.
	guess := func() int { return b.confirm(b.get(last.url.Path), wrongCode(e.mail.last(t).Code)).status }
	e.clock.Advance(time.Minute)
	if s := guess(); s != http.StatusUnprocessableEntity {
		t.Errorf("a guess after the first wait: %d, want it tried (422)", s)
	}
	e.clock.Advance(time.Minute)
	if s := guess(); s != http.StatusTooManyRequests {
		t.Errorf("a guess a minute after the sixth failure: %d, want 429", s)
	}
	// Even the right code waits: otherwise the wait would not hold
	// guesses back.
	right := e.mail.last(t).Code
	if p := b.confirm(b.get(last.url.Path), right); p.status != http.StatusTooManyRequests {
		t.Errorf("the right code during the wait: %d, want 429", p.status)
	}
	id := requestID(t, last.url.Path)
	if req, _ := e.request(t, id); req.Status != erasure.RequestUnverified {
		t.Fatalf("the request moved on: %s", req.Status)
	}
	// The owner, after the wait, is not locked out.
	e.clock.Advance(time.Minute)
	if p := b.confirm(b.get(last.url.Path), right); p.status != http.StatusOK || !strings.HasPrefix(p.url.Path, "/portal/status/") {
		t.Errorf("the right code after the wait: %d %s", p.status, p.url.Path)
	}
	// The address's wrong guesses are in the store, keyed by its hash.
	for _, entry := range e.logs.All() {
		if strings.Contains(fmt.Sprint(entry.Context), victim) || strings.Contains(entry.Message, victim) {
			t.Errorf("the address was logged: %s %v", entry.Message, entry.Context)
		}
	}
}

// TestGuessesForACodeNeverSentAreRefused: a request whose code the mail
// server refused accepts no guess, and says to ask for a new code; the
// new code works.
func TestGuessesForACodeNeverSentAreRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.mail.fail = errors.New("down")
	b := e.browser(t)
	v := b.submit(map[string]string{"email": "person@example.com"})
	for _, code := range []string{"000000", "123456", "999999"} {
		p := b.confirm(v, code)
		if p.status != http.StatusConflict {
			t.Fatalf("a guess for a code never sent: %d", p.status)
		}
		mustContain(t, p, "No code has been emailed for this request", "Ask for a new code below")
	}
	_, pr := e.request(t, requestID(t, v.url.Path))
	if pr.CodeAttempts != 0 {
		t.Errorf("refused guesses counted as tries: %d", pr.CodeAttempts)
	}
	e.mail.mu.Lock()
	e.mail.fail = nil
	e.mail.mu.Unlock()
	e.clock.Advance(2 * time.Minute)
	b.resend(b.get(v.url.Path))
	p := b.confirm(b.get(v.url.Path), e.mail.last(t).Code)
	if !strings.HasPrefix(p.url.Path, "/portal/status/") {
		t.Errorf("the resent code: %d %s", p.status, text(p))
	}
}

// TestGuessesPerClientAddressAreLimited: one client guessing for many
// addresses (each within its own budget) is held to the per-client limit.
func TestGuessesPerClientAddressAreLimited(t *testing.T) {
	t.Parallel()
	e := setup(t)
	b := e.browser(t)
	var pages []page
	for i := range 8 {
		pages = append(pages, b.submit(map[string]string{"email": fmt.Sprintf("p%d@example.com", i)}))
	}
	refused := 0
	for i := range 32 {
		v := pages[i%len(pages)]
		if p := b.confirm(b.get(v.url.Path), "000000"); p.status == http.StatusTooManyRequests {
			refused++
			if p.header.Get("Retry-After") == "" {
				t.Error("no Retry-After")
			}
		}
	}
	if refused != 2 {
		t.Errorf("32 guesses from one client: %d refused, want 2 (the limit is 30 an hour)", refused)
	}
}

// TestStatusPageSaysTheTrueState: the status page names systems as people
// know them, looks again by itself while work goes on (and not once it is
// over), and a denied request shows the reason and the person's rights,
// not a deadline that no longer means anything.
func TestStatusPageSaysTheTrueState(t *testing.T) {
	t.Parallel()
	e := setup(t, func(d *portal.Deps) {
		d.Config.RequireApproval = true
		d.SystemNames = map[string]string{"shop-db": "Online shop", "crm": "Customer service records"}
	})
	ctx := context.Background()

	// Approved and under way: display names, a deadline, a refresh.
	b := e.browser(t)
	s := b.confirm(b.submit(map[string]string{"email": "under.way@example.com"}), e.mail.last(t).Code)
	id := requestID(t, s.url.Path)
	if _, err := e.coord.Approve(ctx, id, "staff:ada", "identity checked"); err != nil {
		t.Fatal(err)
	}
	p := b.get(s.url.Path)
	for _, want := range []string{"Online shop", "Customer service records", "We must finish by", `<meta http-equiv="refresh" content="30">`, "This page updates by itself"} {
		mustContain(t, p, want)
	}
	if strings.Contains(p.body, "shop-db") || strings.Contains(p.body, "crm<") {
		t.Errorf("the status page shows an instance name:\n%s", p.body)
	}

	// Denied: the reason and the rights; no deadline, no refresh.
	b = e.browser(t)
	s = b.confirm(b.submit(map[string]string{"email": "refused@example.com"}), e.mail.last(t).Code)
	id = requestID(t, s.url.Path)
	if _, err := e.coord.Deny(ctx, id, "staff:ada", "We hold no account for this address."); err != nil {
		t.Fatal(err)
	}
	p = b.get(s.url.Path)
	for _, want := range []string{"We could not act on this request.", "Reason: We hold no account for this address.", "supervisory authority"} {
		mustContain(t, p, want)
	}
	for _, not := range []string{"We must finish by", "http-equiv=\"refresh\"", "emailed you the reason"} {
		if strings.Contains(p.body, not) {
			t.Errorf("the denied page says %q:\n%s", not, p.body)
		}
	}
	// In Hebrew too.
	p = b.get(s.url.Path + "?lang=he")
	mustContain(t, p, "הסיבה: We hold no account for this address.")
}

// TestPersonsCertificateView: once done, the status page reads the
// certificate to the person in their language: what was erased in which
// system (display names) and when, what was kept and on what legal basis,
// the look-up afterwards, the deadline, how anyone can check it, and the
// auditor page one click away.
func TestPersonsCertificateView(t *testing.T) {
	t.Parallel()
	e := setup(t, func(d *portal.Deps) {
		d.SystemNames = map[string]string{"shop-db": "Online shop", "crm": "Customer service records"}
	})
	ctx := context.Background()
	b := e.browser(t)
	s := b.confirm(b.submit(map[string]string{"email": "certified@example.com"}), e.mail.last(t).Code)
	id := requestID(t, s.url.Path)
	mustNotContain(t, b.get(s.url.Path), "Your certificate")
	tasks, _ := e.st.Tasks(ctx, id)
	for _, task := range tasks {
		if task.Connector != "shop-db" {
			continue
		}
		if _, err := e.coord.ApplyResult(ctx, bus.Result{V: bus.Version, Kind: bus.KindErase, TaskID: task.ID, RequestID: id,
			Connector: task.Connector, Attempt: task.Attempt, Status: bus.ResultErased, Records: 3, Verification: "clean"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.coord.Exempt(ctx, id, "crm", "art17-3-b", "staff:ada", "Invoices are kept ten years by law."); err != nil {
		t.Fatal(err)
	}
	cert, err := e.st.Certificate(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	p := b.get(s.url.Path)
	mustContain(t, p, "Your certificate", "Certificate number: <bdi><code>"+cert.ID+"</code></bdi>", "issued your certificate on ",
		"Online shop", "erased on ", "(records erased: 3)", "Looked up again afterwards: nothing left.",
		"Customer service records", "kept, because the law requires it: Art. 17(3)(b): compliance with a legal obligation",
		"Completed within the legal deadline.", "the proof code we emailed you",
		`href="/audit?certificate=`+cert.ID+`"`, "Technical details and verification (for auditors)")
	mustNotContain(t, p, "shop-db", "Our systems", "certified@example.com")

	he := b.get(s.url.Path + "?lang=he")
	mustContain(t, he, `lang="he" dir="rtl"`, "התעודה שלכם", "(רשומות שנמחקו: 3)", "נשמר, כי החוק מחייב זאת: סעיף 17(3)(b)",
		"הבקשה הושלמה בתוך המועד שקובע החוק.", "פרטים טכניים ואימות (לבודקים)")
	mustNotContain(t, he, "Your certificate", "kept, because")
}
