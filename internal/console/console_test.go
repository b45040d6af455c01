package console_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/lethe-dev/lethe/internal/coverage"
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
	"github.com/lethe-dev/lethe/internal/console"
	"github.com/lethe-dev/lethe/internal/coordinator"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
	"github.com/lethe-dev/lethe/internal/store/sqlite"
	"github.com/lethe-dev/lethe/internal/telemetry"
	"github.com/lethe-dev/lethe/internal/testenv"
	"github.com/lethe-dev/lethe/internal/translog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"
)

// Passwords of the test users; hashes use bcrypt.MinCost for speed.
const (
	adminPW   = "admin password 1"
	agentPW   = "agent password 2"
	auditorPW = "auditor password 3"
)

var hashes = sync.OnceValue(func() map[string]string {
	out := map[string]string{}
	for _, pw := range []string{adminPW, agentPW, auditorPW} {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			panic(err)
		}
		out[pw] = string(h)
	}
	return out
})

func users(roles map[string]string) []config.ConsoleUser {
	pw := map[string]string{"ada": adminPW, "bob": agentPW, "cyd": auditorPW}
	var out []config.ConsoleUser
	for _, name := range []string{"ada", "bob", "cyd"} {
		if role, ok := roles[name]; ok {
			out = append(out, config.ConsoleUser{Name: name, Role: role, PasswordHash: config.Secret{Value: hashes()[pw[name]]}})
		}
	}
	return out
}

func consoleConfig(roles map[string]string, insecure bool) config.Console {
	return config.Console{Users: users(roles), InsecureCookies: insecure}
}

var defaultRoles = map[string]string{"ada": "admin", "bob": "agent", "cyd": "auditor"}

// clock is the tests' settable clock.
type clock = testenv.Clock

// env is a console over a real SQLite store and coordinator, served by a
// real TLS server.
type env struct {
	t     *testing.T
	st    store.Store
	coord *coordinator.Coordinator
	clock *clock
	logs  *observer.ObservedLogs
	log   *zap.Logger
	h     *erasure.Hasher
	jwks  []byte
	srv   *httptest.Server
	// metrics are the console's, to read lethe_login_failures_total.
	metrics *telemetry.Metrics
	// connectors are the configured instance names the console is told.
	connectors []string
	dataMap    func(context.Context) ([]coverage.Row, error)
	// secrets must appear in no log line.
	mu      sync.Mutex
	secrets []string
}

type options struct {
	roles    map[string]string
	insecure bool
	// legacy adds a fourth connector keyed by an id nothing supplies.
	legacy bool
	// proxy trusts X-Forwarded-For for the client address (browser.from).
	proxy bool
	// dataMap is what the data map page is given (nil: none).
	dataMap func(context.Context) ([]coverage.Row, error)
	// notify: the coordinator emails portal requests' people.
	notify bool
}

func withProxy(o *options) { o.proxy = true }

// setup returns a console with users ada (admin), bob (agent) and cyd
// (auditor), and three connectors: shop-db (sql), crm (hubspot) and
// paper (manual, completed by hand).
func setup(t *testing.T, opts ...func(*options)) *env {
	t.Helper()
	o := options{roles: defaultRoles}
	for _, f := range opts {
		f(&o)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "lethe.db"), testenv.KeyRing())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	h, _ := erasure.NewHasher(bytes.Repeat([]byte{1}, 32))
	clk := testenv.NewClock(time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC))
	priv, _ := certificate.GenerateKey()
	signer := certificate.NewSigner(priv)
	ls, err := translog.NewLogSigner("test.example/log", priv)
	if err != nil {
		t.Fatal(err)
	}
	iss := &certificate.Issuer{Signer: signer, Log: translog.NewLog("test.example/log", ls), Options: certificate.Options{Issuer: "Example Ltd"}}
	retired, _ := certificate.GenerateKey()
	jwks, _ := json.Marshal(certificate.JWKS{Keys: []certificate.JWK{signer.PublicJWK(), certificate.NewSigner(retired).PublicJWK()}})
	cns := []coordinator.Connector{{Name: "shop-db", Type: "sql"}, {Name: "crm", Type: "hubspot"}, {Name: "paper", Type: "manual"}}
	names := []string{"shop-db", "crm", "paper"}
	if o.legacy {
		cns = append(cns, coordinator.Connector{Name: "legacy", Type: "sql",
			Plan: connectors.Plan{Keys: []connectors.Requirement{{connectors.UserIDKind("legacy")}}}.Normalized()})
		names = append(names, "legacy")
	}
	coord := coordinator.New(coordinator.Deps{Store: st, Hasher: h, Certifier: iss, Clock: clk.Now, Log: log.Named("coordinator")},
		coordinator.Config{
			Connectors:   cns,
			RetryInitial: time.Second, RetryMax: time.Minute, PollInterval: time.Minute, RedispatchAfter: time.Hour,
			Notify: o.notify,
		})
	e := &env{t: t, st: st, coord: coord, clock: clk, logs: logs, log: log, h: h, jwks: jwks, connectors: names, dataMap: o.dataMap}
	e.metrics = telemetry.NewMetrics(nil)
	cfg := consoleConfig(o.roles, o.insecure)
	if o.proxy {
		cfg.TrustProxyHeader = "X-Forwarded-For"
	}
	e.srv = e.serve(cfg)
	e.addSecret(adminPW, agentPW, auditorPW)
	t.Cleanup(e.checkLogs)
	return e
}

// serve starts a console with this config on the env's store, as a
// restarted process with a changed config file would.
func (e *env) serve(cfg config.Console) *httptest.Server {
	e.t.Helper()
	c, err := console.New(console.Deps{Store: e.st, Coordinator: e.coord, Hasher: e.h, Config: cfg,
		Connectors: e.connectors, JWKS: func() []byte { return e.jwks }, Metrics: e.metrics,
		DataMap: e.dataMap, DiscoveryInterval: 24 * time.Hour,
		Log: e.log.Named("console"), Clock: e.clock.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	srv := httptest.NewTLSServer(routes(c))
	e.t.Cleanup(srv.Close)
	return srv
}

// routes registers the console exactly as internal/httpapi/routes.go does.
func routes(c *console.Console) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /console/login", c.LoginPage())
	mux.Handle("POST /console/login", c.Login())
	mux.Handle("POST /console/logout", c.Logout())
	mux.Handle("GET /console", c.List())
	mux.Handle("GET /console/{$}", c.List())
	mux.Handle("POST /console/search", c.Search())
	mux.Handle("GET /console/requests.csv", c.CSV())
	mux.Handle("GET /console/batches", c.Batches())
	mux.Handle("POST /console/bulk", c.Bulk())
	mux.Handle("GET /console/requests/{id}", c.Request())
	mux.Handle("POST /console/requests/{id}/{action}", c.Act())
	mux.Handle("GET /console/keys", c.Keys())
	mux.Handle("GET /console/coverage", c.DataMap())
	mux.Handle("GET /console/assets/{file}", c.Asset())
	mux.Handle("/console/", c.NotFound())
	return mux
}

func (e *env) addSecret(s ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.secrets = append(e.secrets, s...)
}

// checkLogs fails the test if any log line holds a password, an email
// address, a session id or a CSRF token the test used.
func (e *env) checkLogs() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, entry := range e.logs.All() {
		line := entry.Message + " " + fmt.Sprint(entry.ContextMap())
		for _, s := range e.secrets {
			if s != "" && strings.Contains(strings.ToLower(line), strings.ToLower(s)) {
				e.t.Errorf("a log line holds a secret or personal data %q: %s", s, line)
			}
		}
	}
}

// file files a request about email (held for approval when hold).
func (e *env) file(email string, hold erasure.RequestStatus) erasure.Request {
	e.t.Helper()
	e.addSecret(email)
	req, _, err := e.coord.File(context.Background(), coordinator.FileInput{Subject: erasure.Subject{Email: email},
		Jurisdiction: "gdpr", Source: "api", Actor: "api:test", Hold: hold})
	if err != nil {
		e.t.Fatal(err)
	}
	return req
}

func (e *env) request(id string) erasure.Request {
	e.t.Helper()
	r, err := e.st.Request(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) tasks(id string) map[string]erasure.Task {
	e.t.Helper()
	ts, err := e.st.Tasks(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]erasure.Task{}
	for _, t := range ts {
		out[t.Connector] = t
	}
	return out
}

func (e *env) events(id string) int {
	e.t.Helper()
	ev, err := e.st.Events(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(ev)
}

// result reports a connector's result for a task.
func (e *env) result(task erasure.Task, status string, permanent bool) {
	e.t.Helper()
	r := bus.Result{V: 1, Kind: bus.KindErase, TaskID: task.ID, RequestID: task.RequestID, Connector: task.Connector,
		Attempt: task.Attempt, Status: status}
	switch status {
	case bus.ResultErased:
		r.Records = 2
	case bus.ResultFailed:
		r.Error = &bus.ResultError{Message: "401 bad credentials", Permanent: permanent}
	}
	if _, err := e.coord.ApplyResult(context.Background(), r); err != nil {
		e.t.Fatal(err)
	}
}

// browser is a person's browser: a cookie jar that follows no redirects,
// so tests see each 303.
type browser struct {
	e   *env
	srv *httptest.Server
	c   *http.Client
	// from is the client address a trusting proxy reports (withProxy).
	from string
	// seen is every URL asked for, every Location and every body
	// received, to check that no identifier ever travels in them.
	seen []string
}

func (e *env) browser() *browser { return e.browserOn(e.srv) }

func (e *env) browserOn(srv *httptest.Server) *browser {
	jar, _ := cookiejar.New(nil)
	c := *srv.Client() // its own jar: a copy, not the server's shared client
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{e: e, srv: srv, c: &c}
}

type page struct {
	status int
	body   string
	header http.Header
	resp   *http.Response
}

func (p page) location() string { return p.header.Get("Location") }

func (b *browser) do(req *http.Request) page {
	b.e.t.Helper()
	if b.from != "" {
		req.Header.Set("X-Forwarded-For", b.from)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	b.seen = append(b.seen, req.URL.String(), resp.Header.Get("Location"), string(body))
	return page{status: resp.StatusCode, body: string(body), header: resp.Header, resp: resp}
}

func (b *browser) get(path string) page {
	b.e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.srv.URL+path, nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values, header ...string) page {
	b.e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return b.do(req)
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfIn(t *testing.T, body string) string {
	t.Helper()
	m := csrfRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", body)
	}
	return m[1]
}

// tryLogin signs in through the form and returns the answer to the POST.
func (b *browser) tryLogin(name, pw, next string) page {
	b.e.t.Helper()
	p := b.get("/console/login")
	if p.status != http.StatusOK {
		b.e.t.Fatalf("login page: %d", p.status)
	}
	return b.post("/console/login", url.Values{"csrf": {csrfIn(b.e.t, p.body)}, "name": {name}, "password": {pw}, "next": {next}})
}

func (b *browser) login(name, pw string) {
	b.e.t.Helper()
	p := b.tryLogin(name, pw, "")
	if p.status != http.StatusSeeOther || p.location() != "/console" {
		b.e.t.Fatalf("login as %s: %d %s\n%s", name, p.status, p.location(), p.body)
	}
	b.e.addSecret(b.cookie(), b.csrf())
}

// cookie returns the session cookie the browser holds.
func (b *browser) cookie() string {
	u, _ := url.Parse(b.srv.URL + "/console")
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "lethe_session" {
			return c.Value
		}
	}
	return ""
}

func (b *browser) setCookie(value string) {
	u, _ := url.Parse(b.srv.URL + "/console")
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: "lethe_session", Value: value, Path: "/console"}})
}

// csrf reads the session's CSRF token off the request list.
func (b *browser) csrf() string {
	b.e.t.Helper()
	p := b.get("/console")
	if p.status != http.StatusOK {
		b.e.t.Fatalf("GET /console: %d %s", p.status, p.location())
	}
	return csrfIn(b.e.t, p.body)
}

// act posts an action form with the session's CSRF token.
func (b *browser) act(id, action string, form url.Values) page {
	b.e.t.Helper()
	form.Set("csrf", b.csrf())
	return b.post("/console/requests/"+id+"/"+action, form)
}

func sessionHash(cookie string) string {
	raw, _ := base64.RawURLEncoding.DecodeString(cookie)
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

func TestLoginAndLogout(t *testing.T) {
	e := setup(t)
	b := e.browser()
	// Not signed in: the console sends the browser to the sign-in page,
	// remembering where it was going.
	p := b.get("/console/keys")
	if p.status != http.StatusSeeOther || p.location() != "/console/login?next=%2Fconsole%2Fkeys" {
		t.Fatalf("anonymous GET: %d %q", p.status, p.location())
	}
	p = b.tryLogin("ada", adminPW, "/console/keys")
	if p.status != http.StatusSeeOther || p.location() != "/console/keys" {
		t.Fatalf("login: %d %q", p.status, p.location())
	}
	cookie := b.cookie()
	if raw, err := base64.RawURLEncoding.DecodeString(cookie); err != nil || len(raw) != 32 {
		t.Fatalf("session id %q is not 32 random bytes", cookie)
	}
	e.addSecret(cookie)
	// Only the SHA-256 of the id is stored.
	s, err := e.st.Session(context.Background(), sessionHash(cookie), e.clock.Now())
	if err != nil || s.User != "ada" || s.Role != "admin" || len(s.CSRF) < 40 || !s.ExpiresAt.Equal(e.clock.Now().Add(8*time.Hour)) {
		t.Fatalf("stored session %+v, %v", s, err)
	}
	if _, err := e.st.Session(context.Background(), cookie, e.clock.Now()); err == nil {
		t.Error("the session id itself is a store key")
	}
	if p := b.get("/console"); p.status != http.StatusOK || !strings.Contains(p.body, "ada") {
		t.Fatalf("signed in: %d", p.status)
	}

	// Logout without the CSRF token is refused and the session lives on.
	if p := b.post("/console/logout", url.Values{}); p.status != http.StatusForbidden {
		t.Errorf("logout without CSRF: %d", p.status)
	}
	p = b.post("/console/logout", url.Values{"csrf": {b.csrf()}})
	if p.status != http.StatusSeeOther || p.location() != "/console/login" {
		t.Fatalf("logout: %d %q", p.status, p.location())
	}
	if _, err := e.st.Session(context.Background(), sessionHash(cookie), e.clock.Now()); err == nil {
		t.Error("the session survived logout in the store")
	}
	// Replaying the old cookie gets nowhere.
	replay := e.browser()
	replay.setCookie(cookie)
	if p := replay.get("/console"); p.status != http.StatusSeeOther || !strings.HasPrefix(p.location(), "/console/login") {
		t.Errorf("replayed cookie after logout: %d %q", p.status, p.location())
	}
}

func TestWrongPasswordAndUnknownUserLookTheSame(t *testing.T) {
	e := setup(t)
	b := e.browser()
	wrong := b.tryLogin("bob", "not bob's password", "")
	unknown := b.tryLogin("zed", "whatever it is", "")
	e.addSecret("not bob's password", "whatever it is", "zed")
	for _, p := range []page{wrong, unknown} {
		if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "wrong name or password") || b.cookie() != "" {
			t.Fatalf("failed login: %d, cookie %q\n%s", p.status, b.cookie(), p.body)
		}
	}
	if wrong.body != unknown.body {
		t.Error("a wrong password and an unknown name give different pages")
	}
	// The typed name is not echoed back.
	if strings.Contains(unknown.body, "zed") {
		t.Error("the page shows the name typed")
	}
	// Names are exact; the wrong role's password does not work.
	if p := b.tryLogin("Bob", agentPW, ""); p.status != http.StatusUnauthorized {
		t.Errorf("login as Bob: %d", p.status)
	}
	if p := b.tryLogin("bob", adminPW, ""); p.status != http.StatusUnauthorized {
		t.Errorf("bob with ada's password: %d", p.status)
	}
	// A password longer than bcrypt reads is never accepted, even when its
	// first 72 bytes are right.
	long := agentPW + strings.Repeat("x", 72)
	if p := b.tryLogin("bob", long, ""); p.status != http.StatusUnauthorized {
		t.Errorf("overlong password: %d", p.status)
	}
	// The sign-in form needs its double-submit token.
	if p := b.post("/console/login", url.Values{"name": {"bob"}, "password": {agentPW}}); p.status != http.StatusForbidden || b.cookie() != "" {
		t.Errorf("login without the form token: %d", p.status)
	}
	if p := b.post("/console/login", url.Values{"csrf": {"forged"}, "name": {"bob"}, "password": {agentPW}}); p.status != http.StatusForbidden || b.cookie() != "" {
		t.Errorf("login with a forged form token: %d", p.status)
	}
	b.login("bob", agentPW)
}

func TestLoginRateLimit(t *testing.T) {
	t.Run("per account and address", func(t *testing.T) {
		e := setup(t)
		b := e.browser()
		for i := range 5 {
			if p := b.tryLogin("bob", fmt.Sprintf("guess number %d", i), ""); p.status != http.StatusUnauthorized {
				t.Fatalf("failure %d: %d", i, p.status)
			}
		}
		// Now even the right password waits, without saying whether it
		// was right.
		p := b.tryLogin("bob", agentPW, "")
		if p.status != http.StatusTooManyRequests || b.cookie() != "" || p.header.Get("Retry-After") != "1" {
			t.Fatalf("after 5 failures: %d, Retry-After %q", p.status, p.header.Get("Retry-After"))
		}
		// Case does not get round the limit; other names are not limited.
		if p := b.tryLogin("BOB", agentPW, ""); p.status != http.StatusTooManyRequests {
			t.Errorf("BOB after 5 failures: %d", p.status)
		}
		e.browser().login("ada", adminPW)
		// The waits grow: a second, then two.
		e.clock.Advance(time.Second)
		if p := b.tryLogin("bob", "guess number 6", ""); p.status != http.StatusUnauthorized {
			t.Fatalf("a try after the wait: %d", p.status)
		}
		e.clock.Advance(time.Second)
		if p := b.tryLogin("bob", agentPW, ""); p.status != http.StatusTooManyRequests || p.header.Get("Retry-After") != "1" {
			t.Fatalf("a second after the 6th failure: %d, Retry-After %q", p.status, p.header.Get("Retry-After"))
		}
		e.clock.Advance(time.Second)
		b.login("bob", agentPW)
		// Signed in, the client's failures are forgotten.
		if p := e.browser().tryLogin("bob", "one more typo", ""); p.status != http.StatusUnauthorized {
			t.Errorf("a typo after signing in: %d", p.status)
		}
	})
	t.Run("per address", func(t *testing.T) {
		e := setup(t)
		b := e.browser()
		for i := range 20 {
			if p := b.tryLogin(fmt.Sprintf("nobody%d", i), "some password", ""); p.status != http.StatusUnauthorized {
				t.Fatalf("failure %d: %d", i, p.status)
			}
		}
		if p := e.browser().tryLogin("ada", adminPW, ""); p.status != http.StatusTooManyRequests {
			t.Fatalf("after 20 failures from one address: %d", p.status)
		}
		e.clock.Advance(time.Second)
		e.browser().login("ada", adminPW)
	})
}

// loginFailures reads lethe_login_failures_total{reason}.
func (e *env) loginFailures(reason string) float64 {
	e.t.Helper()
	mfs, err := e.metrics.Registry.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "lethe_login_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestAttackerHammeringAdminDoesNotLockOutTheRealAdmin is the attack of
// issue 14: wrong passwords for ada, as fast as they go, from one address.
// The attacker is slowed down; ada, from her own address, signs in at
// once, and the failures are logged (without the password or the address)
// and counted.
func TestAttackerHammeringAdminDoesNotLockOutTheRealAdmin(t *testing.T) {
	e := setup(t, withProxy)
	attacker := e.browser()
	attacker.from = "198.51.100.7"
	e.addSecret(attacker.from, "hunter2")
	tried, refused := 0, 0
	for range 60 {
		switch p := attacker.tryLogin("ada", "hunter2", ""); p.status {
		case http.StatusUnauthorized:
			tried++
		case http.StatusTooManyRequests:
			refused++
			if !strings.Contains(p.body, "Too many failed sign-ins from here") || p.header.Get("Retry-After") == "" {
				t.Fatalf("a throttled try: %q, Retry-After %q", p.body, p.header.Get("Retry-After"))
			}
		default:
			t.Fatalf("an attacker's try: %d", p.status)
		}
	}
	if tried != 5 || refused != 55 {
		t.Errorf("60 tries: %d checked, %d refused; want 5 checked", tried, refused)
	}
	admin := e.browser()
	admin.from = "203.0.113.9"
	e.addSecret(admin.from)
	admin.login("ada", adminPW)
	// The attacker's own right guess would still wait: the throttle does
	// not tell a right password from a wrong one.
	if p := attacker.tryLogin("ada", adminPW, ""); p.status != http.StatusTooManyRequests {
		t.Errorf("the right password from the throttled address: %d", p.status)
	}
	if got := e.loginFailures("wrong_password"); got != 5 {
		t.Errorf("lethe_login_failures_total{reason=wrong_password} = %v, want 5", got)
	}
	if got := e.loginFailures("throttled"); got != 56 {
		t.Errorf("lethe_login_failures_total{reason=throttled} = %v, want 56", got)
	}
	if n := e.logs.FilterMessage("console: sign-in failed").FilterField(zap.String("user", "ada")).Len(); n != 5 {
		t.Errorf("%d failures logged, want 5", n)
	}
}

// TestAttackFromManyAddressesSlowsOnlyThoseThatFailed: wrong passwords for
// ada from 60 addresses, one each. Past the per-account bound each of those
// addresses waits from its first failure, but an address that has not
// failed, ada's, is never held back.
func TestAttackFromManyAddressesSlowsOnlyThoseThatFailed(t *testing.T) {
	e := setup(t, withProxy)
	var bots []*browser
	for i := range 60 {
		b := e.browser()
		b.from = fmt.Sprintf("198.51.100.%d", i+1)
		e.addSecret(b.from)
		if p := b.tryLogin("ada", fmt.Sprintf("guess %d", i), ""); p.status != http.StatusUnauthorized {
			t.Fatalf("bot %d: %d", i, p.status)
		}
		bots = append(bots, b)
	}
	if p := bots[0].tryLogin("ada", "another guess", ""); p.status != http.StatusTooManyRequests {
		t.Errorf("a bot's second try with the account under attack: %d, want 429", p.status)
	}
	admin := e.browser()
	admin.from = "203.0.113.9"
	admin.login("ada", adminPW)
	// Other accounts are not under attack.
	bob := e.browser()
	bob.from = bots[1].from
	bob.login("bob", agentPW)
}

// TestParallelGuessesPassOneCheckAtATime: tries sent all at once from one
// address cannot all slip past the check while the first passwords are
// still being compared (a user with a real bcrypt cost makes that take a
// while).
func TestParallelGuessesPassOneCheckAtATime(t *testing.T) {
	e := setup(t)
	h, err := bcrypt.GenerateFromPassword([]byte("slow password 12"), 10)
	if err != nil {
		t.Fatal(err)
	}
	cfg := consoleConfig(defaultRoles, false)
	cfg.Users = append(cfg.Users, config.ConsoleUser{Name: "dee", Role: "admin", PasswordHash: config.Secret{Value: string(h)}})
	srv := e.serve(cfg)
	const n = 20
	type try struct {
		b    *browser
		csrf string
	}
	tries := make([]try, n)
	for i := range tries {
		b := e.browserOn(srv)
		tries[i] = try{b, csrfIn(t, b.get("/console/login").body)}
	}
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for _, x := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, x.b.srv.URL+"/console/login",
				strings.NewReader(url.Values{"csrf": {x.csrf}, "name": {"dee"}, "password": {"parallel guess"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := x.b.c.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(statuses)
	checked := 0
	for s := range statuses {
		switch s {
		case http.StatusUnauthorized:
			checked++
		case http.StatusTooManyRequests:
		default:
			t.Errorf("a parallel try: %d", s)
		}
	}
	if checked != 5 {
		t.Errorf("%d parallel tries were checked, want 5", checked)
	}
}

func TestSessionFixation(t *testing.T) {
	e := setup(t)
	// An attacker plants an id of their choosing: it is never promoted.
	planted := base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	b := e.browser()
	b.setCookie(planted)
	b.login("bob", agentPW)
	if b.cookie() == planted || b.cookie() == "" {
		t.Fatalf("the session id did not change at login: %q", b.cookie())
	}
	other := e.browser()
	other.setCookie(planted)
	if p := other.get("/console"); p.status != http.StatusSeeOther {
		t.Errorf("the planted id works: %d", p.status)
	}

	// An attacker plants their own live session: signing in replaces and
	// ends it, so the victim never acts in the attacker's session.
	attacker := e.browser()
	attacker.login("cyd", auditorPW)
	victim := e.browser()
	victim.setCookie(attacker.cookie())
	victim.login("bob", agentPW)
	if victim.cookie() == attacker.cookie() {
		t.Fatal("the victim kept the attacker's session id")
	}
	if p := attacker.get("/console"); p.status != http.StatusSeeOther {
		t.Errorf("the planted session still works: %d", p.status)
	}
	// Each login is a new id, even for the same user in the same browser.
	before := b.cookie()
	b.login("bob", agentPW)
	if b.cookie() == before {
		t.Error("a second login kept the session id")
	}
}

func TestExpiredSession(t *testing.T) {
	e := setup(t)
	b := e.browser()
	b.login("bob", agentPW)
	cookie := b.cookie()
	e.clock.Advance(8*time.Hour - time.Second)
	if p := b.get("/console"); p.status != http.StatusOK {
		t.Fatalf("before expiry: %d", p.status)
	}
	e.clock.Advance(2 * time.Second)
	p := b.get("/console?status=in_progress")
	if p.status != http.StatusSeeOther || p.location() != "/console/login?next=%2Fconsole%3Fstatus%3Din_progress" {
		t.Fatalf("expired session: %d %q", p.status, p.location())
	}
	// A POST with the expired session changes nothing.
	req := e.file("expired@example.com", "")
	old := e.browser()
	old.setCookie(cookie)
	if p := old.post("/console/requests/"+req.ID+"/cancel", url.Values{"reason": {"x"}}); p.status != http.StatusSeeOther || p.location() != "/console/login" {
		t.Errorf("POST with an expired session: %d %q", p.status, p.location())
	}
	if r := e.request(req.ID); r.Status != erasure.RequestInProgress {
		t.Errorf("request %s", r.Status)
	}
	// The next login sweeps expired sessions from the store.
	e.browser().login("ada", adminPW)
	if n, _ := e.st.DeleteExpiredSessions(context.Background(), e.clock.Now()); n != 0 {
		t.Errorf("%d expired sessions were left after a login", n)
	}
}

func TestRoleChangeAppliesAtOnce(t *testing.T) {
	e := setup(t)
	req := e.file("role@example.com", "")
	b := e.browser()
	b.login("bob", agentPW)
	cookie := b.cookie()
	if p := b.get("/console/requests/" + req.ID); !strings.Contains(p.body, "/cancel") {
		t.Fatal("an agent sees no cancel form")
	}
	csrf := b.csrf()

	// The config now makes bob an auditor: the same session reads, but
	// can no longer act.
	demoted := e.serve(consoleConfig(map[string]string{"ada": "admin", "bob": "auditor"}, false))
	b2 := e.browserOn(demoted)
	b2.setCookie(cookie)
	p := b2.get("/console/requests/" + req.ID)
	if p.status != http.StatusOK || strings.Contains(p.body, "/console/requests/"+req.ID+"/") || !strings.Contains(p.body, "(auditor)") {
		t.Fatalf("demoted bob: %d\n%s", p.status, p.body)
	}
	if p := b2.post("/console/requests/"+req.ID+"/cancel", url.Values{"csrf": {csrf}, "reason": {"try"}}); p.status != http.StatusForbidden {
		t.Errorf("demoted bob cancels: %d", p.status)
	}
	if r := e.request(req.ID); r.Status != erasure.RequestInProgress {
		t.Errorf("request %s", r.Status)
	}

	// bob is removed: his session ends, in the store too.
	removed := e.serve(consoleConfig(map[string]string{"ada": "admin"}, false))
	b3 := e.browserOn(removed)
	b3.setCookie(cookie)
	if p := b3.get("/console"); p.status != http.StatusSeeOther || !strings.HasPrefix(p.location(), "/console/login") {
		t.Errorf("removed bob: %d %q", p.status, p.location())
	}
	if _, err := e.st.Session(context.Background(), sessionHash(cookie), e.clock.Now()); err == nil {
		t.Error("the removed user's session is still stored")
	}
	if p := b3.tryLogin("bob", agentPW, ""); p.status != http.StatusUnauthorized {
		t.Errorf("removed bob signs in: %d", p.status)
	}
}

func TestCookieFlags(t *testing.T) {
	for _, insecure := range []bool{false, true} {
		t.Run(fmt.Sprintf("insecure=%v", insecure), func(t *testing.T) {
			e := setup(t, func(o *options) { o.insecure = insecure })
			b := e.browser()
			login := b.get("/console/login")
			p := b.post("/console/login", url.Values{"csrf": {csrfIn(t, login.body)}, "name": {"ada"}, "password": {adminPW}})
			if p.status != http.StatusSeeOther {
				t.Fatalf("login: %d", p.status)
			}
			check := func(c *http.Cookie, path string) {
				if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure == insecure || c.Path != path {
					t.Errorf("cookie %s: HttpOnly %v, SameSite %v, Secure %v, Path %q", c.Name, c.HttpOnly, c.SameSite, c.Secure, c.Path)
				}
			}
			var found bool
			for _, c := range login.resp.Cookies() {
				if c.Name == "lethe_login_csrf" {
					check(c, "/console/login")
				}
			}
			for _, c := range p.resp.Cookies() {
				if c.Name == "lethe_session" {
					found = true
					check(c, "/console")
					if c.MaxAge != int((8 * time.Hour).Seconds()) {
						t.Errorf("MaxAge %d", c.MaxAge)
					}
				}
			}
			if !found {
				t.Fatal("no session cookie set")
			}
		})
	}
}

func TestCSRFAndCrossOrigin(t *testing.T) {
	e := setup(t)
	req := e.file("csrf@example.com", "")
	b := e.browser()
	b.login("bob", agentPW)
	other := e.browser()
	other.login("ada", adminPW)
	before := e.events(req.ID)
	path := "/console/requests/" + req.ID + "/cancel"
	for name, tc := range map[string]struct {
		form   url.Values
		header []string
	}{
		"missing token":       {url.Values{"reason": {"r"}}, nil},
		"forged token":        {url.Values{"reason": {"r"}, "csrf": {base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))}}, nil},
		"another's token":     {url.Values{"reason": {"r"}, "csrf": {other.csrf()}}, nil},
		"cross-site fetch":    {url.Values{"reason": {"r"}, "csrf": {b.csrf()}}, []string{"Sec-Fetch-Site", "cross-site"}},
		"foreign origin":      {url.Values{"reason": {"r"}, "csrf": {b.csrf()}}, []string{"Origin", "https://evil.example"}},
		"same-site subdomain": {url.Values{"reason": {"r"}, "csrf": {b.csrf()}}, []string{"Sec-Fetch-Site", "same-site"}},
	} {
		if p := b.post(path, tc.form, tc.header...); p.status != http.StatusForbidden {
			t.Errorf("%s: %d", name, p.status)
		}
	}
	if r := e.request(req.ID); r.Status != erasure.RequestInProgress || e.events(req.ID) != before {
		t.Fatalf("a refused form changed the request: %s", r.Status)
	}
	// The same form from the console itself works.
	if p := b.post(path, url.Values{"reason": {"r"}, "csrf": {b.csrf()}}, "Sec-Fetch-Site", "same-origin"); p.status != http.StatusSeeOther {
		t.Fatalf("same-origin form: %d", p.status)
	}
	// A cross-origin sign-in is refused too.
	login := e.browser()
	lp := login.get("/console/login")
	if p := login.post("/console/login", url.Values{"csrf": {csrfIn(t, lp.body)}, "name": {"ada"}, "password": {adminPW}}, "Sec-Fetch-Site", "cross-site"); p.status != http.StatusForbidden || login.cookie() != "" {
		t.Errorf("cross-site login: %d", p.status)
	}
}

func TestAuditorReadsButCannotAct(t *testing.T) {
	e := setup(t)
	pending := e.file("pending@example.com", erasure.RequestPendingApproval)
	running := e.file("running@example.com", "")
	e.result(e.tasks(running.ID)["shop-db"], bus.ResultFailed, true) // dead: retry and complete would be offered
	b := e.browser()
	b.login("cyd", auditorPW)
	for _, id := range []string{pending.ID, running.ID} {
		p := b.get("/console/requests/" + id)
		if p.status != http.StatusOK {
			t.Fatalf("auditor reads %s: %d", id, p.status)
		}
		if strings.Contains(p.body, `action="/console/requests/`) || strings.Contains(p.body, "<textarea") {
			t.Errorf("the auditor is shown action forms:\n%s", p.body)
		}
	}
	for _, action := range []string{"approve", "deny", "extend", "exempt", "retry", "complete", "cancel"} {
		id := running.ID
		if action == "approve" || action == "deny" {
			id = pending.ID
		}
		before := e.events(id)
		p := b.act(id, action, url.Values{"reason": {"auditor tries"}, "connector": {"shop-db"}, "basis": {"art17-3-b"},
			"due": {"2026-07-15"}, "outcome": {"not_found"}})
		if p.status != http.StatusForbidden || e.events(id) != before {
			t.Errorf("auditor %s: %d, events %d → %d", action, p.status, before, e.events(id))
		}
	}
	if p := b.get("/console/keys"); p.status != http.StatusForbidden {
		t.Errorf("auditor keys page: %d", p.status)
	}
}

func TestKeysPageIsForAdmins(t *testing.T) {
	e := setup(t)
	var set certificate.JWKS
	_ = json.Unmarshal(e.jwks, &set)
	agent := e.browser()
	agent.login("bob", agentPW)
	p := agent.get("/console/keys")
	if p.status != http.StatusForbidden || strings.Contains(p.body, set.Keys[0].Kid) {
		t.Errorf("agent keys page: %d", p.status)
	}
	if strings.Contains(agent.get("/console").body, `href="/console/keys"`) {
		t.Error("the agent is offered the keys page")
	}
	admin := e.browser()
	admin.login("ada", adminPW)
	p = admin.get("/console/keys")
	if p.status != http.StatusOK || !strings.Contains(p.body, set.Keys[0].Kid) || !strings.Contains(p.body, set.Keys[1].Kid) {
		t.Fatalf("admin keys page: %d\n%s", p.status, p.body)
	}
	active := strings.Index(p.body, "Active")
	if active < 0 || active < strings.Index(p.body, set.Keys[0].Kid) || active > strings.Index(p.body, set.Keys[1].Kid) {
		t.Error("the first key is not marked as the active one")
	}
	if strings.Contains(p.body, "<form method=\"post\" action=\"/console/keys") || strings.Contains(p.body, `"d"`) {
		t.Error("the keys page is not read-only")
	}
}

func TestOpenRedirects(t *testing.T) {
	e := setup(t)
	for _, next := range []string{
		"//evil.com", "https://evil.com", "/\\evil.com", "/console/../x", "/console/%2e%2e/x", "/consolex",
		"///evil.com", "/console\\..\\x", "http:/console", "javascript:alert(1)", "/console/login", " /console",
		"/%2F%2Fevil.com", "/console//evil.com/..", "\t/console",
	} {
		b := e.browser()
		p := b.tryLogin("bob", agentPW, next)
		if p.status != http.StatusSeeOther || p.location() != "/console" {
			t.Errorf("next=%q: %d → %q", next, p.status, p.location())
		}
	}
	// A local console path, with its query, is kept.
	b := e.browser()
	if p := b.tryLogin("bob", agentPW, "/console?status=needs_attention"); p.location() != "/console?status=needs_attention" {
		t.Errorf("local next: %q", p.location())
	}
	// The login page puts only a safe next into its form.
	if p := e.browser().get("/console/login?next=" + url.QueryEscape("//evil.com")); strings.Contains(p.body, "evil.com") {
		t.Error("the login page carries a foreign next")
	}
}

func TestHeadersAssetsAndNotFound(t *testing.T) {
	e := setup(t)
	b := e.browser()
	b.login("bob", agentPW)
	for _, path := range []string{"/console", "/console/login", "/console/nope"} {
		p := b.get(path)
		csp := p.header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") ||
			p.header.Get("Cache-Control") != "no-store" || p.header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", path, p.header)
		}
		if strings.Contains(p.body, "http://") || strings.Contains(p.body, "https://") {
			t.Errorf("%s refers to an external resource", path)
		}
	}
	if p := b.get("/console/nope"); p.status != http.StatusNotFound {
		t.Errorf("unknown page: %d", p.status)
	}
	p := b.get("/console/assets/console.css")
	if p.status != http.StatusOK || !strings.HasPrefix(p.header.Get("Content-Type"), "text/css") || !strings.Contains(p.body, ":focus-visible") {
		t.Errorf("style sheet: %d %s", p.status, p.header.Get("Content-Type"))
	}
	for _, path := range []string{"/console/assets/nope.css", "/console/assets/..%2fconsole.go", "/console/assets/..%2ftemplates%2flayout.html"} {
		if p := b.get(path); p.status != http.StatusNotFound {
			t.Errorf("%s: %d", path, p.status)
		}
	}
}

func TestHashPassword(t *testing.T) {
	for _, pw := range []string{"", "elevenchars", strings.Repeat("x", 73), strings.Repeat("é", 37)} {
		if _, err := console.HashPassword(pw); erasure.ErrorCode(err) != erasure.EInvalid {
			t.Errorf("HashPassword(%d bytes): %v", len(pw), err)
		} else if strings.Contains(err.Error(), pw) && pw != "" {
			t.Error("the error holds the password")
		}
	}
	const pw = "twelve chars"
	h, err := console.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if cost, _ := bcrypt.Cost([]byte(h)); cost < 12 {
		t.Errorf("cost %d", cost)
	}
	if bcrypt.CompareHashAndPassword([]byte(h), []byte(pw)) != nil {
		t.Fatal("the hash does not match")
	}
	if _, err := console.HashPassword(strings.Repeat("é", 36)); err != nil { // 36 characters, 72 bytes
		t.Errorf("72 bytes: %v", err)
	}

	// A hash from HashPassword signs in, through an {env: …} secret, and
	// an unknown name costs a bcrypt comparison at the configured cost.
	e := setup(t)
	c, err := console.New(console.Deps{Store: e.st, Coordinator: e.coord, Hasher: e.h, Clock: e.clock.Now,
		Getenv: func(k string) string { return map[string]string{"ADA_HASH": h}[k] },
		Config: config.Console{Users: []config.ConsoleUser{{Name: "ada", Role: "admin", PasswordHash: config.Secret{Env: "ADA_HASH"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(routes(c))
	defer srv.Close()
	b := e.browserOn(srv)
	start := time.Now()
	if p := b.tryLogin("nobody", pw, ""); p.status != http.StatusUnauthorized {
		t.Fatalf("unknown user: %d", p.status)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("an unknown name answered in %s: no dummy bcrypt comparison", d)
	}
	if p := b.tryLogin("ada", pw, ""); p.status != http.StatusSeeOther {
		t.Fatalf("login with a HashPassword hash: %d", p.status)
	}

	// Bad hashes are refused at start-up without showing them.
	for _, u := range []config.ConsoleUser{
		{Name: "x", Role: "admin", PasswordHash: config.Secret{Value: "plain-text-password"}},
		{Name: "x", Role: "root", PasswordHash: config.Secret{Value: h}},
		{Name: "x", Role: "admin", PasswordHash: config.Secret{Env: "UNSET"}},
	} {
		_, err := console.New(console.Deps{Store: e.st, Coordinator: e.coord, Hasher: e.h, Getenv: func(string) string { return "" },
			Config: config.Console{Users: []config.ConsoleUser{u}}})
		if err == nil || strings.Contains(err.Error(), "plain-text-password") || strings.Contains(err.Error(), h) {
			t.Errorf("New with %+v: %v", u.Role, err)
		}
	}
}
