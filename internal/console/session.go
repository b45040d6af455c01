package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
)

// Cookie names. The session cookie is scoped to /console; the login form's
// double-submit cookie to the login page alone.
const (
	sessionCookie = "lethe_session"
	loginCookie   = "lethe_login_csrf"
)

const (
	tokenBytes  = 32
	maxFormBody = 64 << 10
	maxNameLen  = 200
)

// newToken returns 32 random bytes, base64url without padding.
func newToken() (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// tokenHash returns the hex SHA-256 of a well-formed token, which is all
// the store ever sees of a session id; ok is false for anything else, so
// junk cookies never reach the store.
func tokenHash(tok string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) != tokenBytes {
		return "", false
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), true
}

func sameToken(a, b string) bool {
	return a != "" && b != "" && hmac.Equal([]byte(a), []byte(b))
}

func (c *Console) setCookie(w http.ResponseWriter, name, value, path string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: path, MaxAge: maxAge,
		HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteStrictMode})
}

// session is a signed-in user on one request.
type session struct {
	store.Session
	role string // from the config, not the session: a changed role applies at once
}

// actor names the user in the event log.
func (s session) actor() string { return "console:" + s.User }
func (s session) canAct() bool  { return s.role == RoleAdmin || s.role == RoleAgent }
func (s session) isAdmin() bool { return s.role == RoleAdmin }

func canRead(session) bool    { return true }
func canAct(s session) bool   { return s.canAct() }
func canAdmin(s session) bool { return s.isAdmin() }

// currentSession returns the live session the request's cookie names. A
// session whose user is no longer configured is deleted.
func (c *Console) currentSession(r *http.Request) (session, bool, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, false, nil
	}
	idHash, ok := tokenHash(ck.Value)
	if !ok {
		return session{}, false, nil
	}
	s, err := c.store.Session(r.Context(), idHash, c.clock())
	if errors.Is(err, store.ErrNotFound) {
		return session{}, false, nil
	}
	if err != nil {
		return session{}, false, err
	}
	u, ok := c.userFor(s.User)
	if !ok {
		if err := c.store.DeleteSession(r.Context(), idHash); err != nil {
			return session{}, false, err
		}
		c.log.Info("console: session of a user no longer configured ended", zap.String("user", s.User))
		return session{}, false, nil
	}
	return session{Session: s, role: u.role}, true, nil
}

// authed runs h for a signed-in user whom allowed lets through. Without a
// session, GETs go to the sign-in page (and back afterwards); POSTs are
// refused there too. Every POST must carry the session's CSRF token and
// pass the cross-origin check.
func (c *Console) authed(allowed func(session) bool, h func(http.ResponseWriter, *http.Request, session)) http.Handler {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setHeaders(w)
		s, ok, err := c.currentSession(r)
		if err != nil {
			c.internalError(w, r, nil, err)
			return
		}
		if !ok {
			if _, err := r.Cookie(sessionCookie); err == nil {
				c.setCookie(w, sessionCookie, "", "/console", -1) // dead: drop it
			}
			to := "/console/login"
			if r.Method == http.MethodGet {
				to += "?next=" + url.QueryEscape(r.URL.RequestURI())
			}
			http.Redirect(w, r, to, http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
			if err := r.ParseForm(); err != nil {
				c.errorPage(w, r, &s, http.StatusBadRequest, "The form could not be read.")
				return
			}
			if !sameToken(r.PostForm.Get("csrf"), s.CSRF) {
				c.log.Warn("console: form without a valid CSRF token refused", zap.String("user", s.User), zap.String("route", r.Pattern))
				c.errorPage(w, r, &s, http.StatusForbidden, "This form has expired or did not come from the console. Go back, reload the page and try again.")
				return
			}
		}
		if !allowed(s) {
			c.errorPage(w, r, &s, http.StatusForbidden, "Your role ("+s.role+") does not allow this.")
			return
		}
		h(w, r, s)
	})
	return c.cop.Handler(inner)
}

// safeNext returns where to go after signing in: next when it is a path
// inside the console, else /console. Only a clean local path is accepted,
// so a crafted link cannot send a user to another site.
func safeNext(next string) string {
	const home = "/console"
	if next == "" || !strings.HasPrefix(next, "/console") || strings.HasPrefix(next, "//") ||
		strings.ContainsAny(next, "\\\x00\r\n\t") {
		return home
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return home
	}
	if strings.ContainsFunc(u.Path, unicode.IsControl) {
		return home
	}
	p := path.Clean(u.Path)
	if p != home && !strings.HasPrefix(p, home+"/") || p == "/console/login" {
		return home
	}
	out := (&url.URL{Path: p, RawQuery: u.RawQuery}).String()
	if !strings.HasPrefix(out, "/console") || strings.HasPrefix(out, "//") {
		return home
	}
	return out
}

// clientAddr is the address failed sign-ins are counted against: the TCP
// peer, or the last entry of the trusted proxy header when one is set
// (the entry our proxy added; earlier ones come from the client). IPv6
// addresses count by their /64, which one subscriber usually holds.
// Without a trusted header behind a proxy, everyone has the proxy's
// address: the per-account-and-address limit is then per account.
func (c *Console) clientAddr(r *http.Request) string {
	var addr netip.Addr
	if c.proxyHeader != "" {
		if vs := r.Header.Values(c.proxyHeader); len(vs) > 0 {
			parts := strings.Split(vs[len(vs)-1], ",")
			addr, _ = netip.ParseAddr(strings.TrimSpace(parts[len(parts)-1]))
		}
	}
	if !addr.IsValid() {
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			addr = ap.Addr()
		} else if a, err := netip.ParseAddr(r.RemoteAddr); err == nil {
			addr = a
		}
	}
	if !addr.IsValid() {
		return r.RemoteAddr
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		prefix, _ := addr.Prefix(64)
		return prefix.String()
	}
	return addr.String()
}

// throttleKeys are the store keys a sign-in's failures count under: a
// keyed hash of the account (the name as typed, folded) alone, of the
// client address alone, and of both.
type throttleKeys struct{ account, client, pair string }

func (c *Console) throttleKeys(nameKey, addr string) throttleKeys {
	h := func(parts ...string) string {
		m := hmac.New(sha256.New, c.throttleKey)
		m.Write([]byte(strings.Join(parts, "\x00")))
		return hex.EncodeToString(m.Sum(nil))
	}
	return throttleKeys{
		account: "login.account:" + h("account", nameKey),
		client:  "login.client:" + h("client", addr),
		pair:    "login.pair:" + h("pair", nameKey, addr),
	}
}

// clientRef is a short keyed hash of the client address, for logs: it
// ties failures from one client together without naming it.
func (c *Console) clientRef(addr string) string {
	m := hmac.New(sha256.New, c.throttleKey)
	m.Write([]byte("log\x00" + addr))
	return hex.EncodeToString(m.Sum(nil))[:16]
}

// admit decides whether a sign-in may be tried now. When it may, the try
// is counted as a failure of the client (for the account and overall)
// before the password is checked, so that tries sent in parallel cannot
// all pass one check; a right password takes it back (forgive). When it
// may not, wait says for how long, and nothing is counted: waiting out
// the delay always works.
func (c *Console) admit(ctx context.Context, k throttleKeys, now time.Time) (wait time.Duration, err error) {
	account, err := c.store.Throttle(ctx, k.account)
	if err != nil {
		return 0, err
	}
	pairPolicy := pairBackoff
	if accountBackoff.Count(account, now) >= accountUnderAttack {
		pairPolicy = pairBackoffAttack
	}
	err = c.store.InTx(ctx, func(tx store.Tx) error {
		wait = 0
		pair, err := tx.LockThrottle(ctx, k.pair)
		if err != nil {
			return err
		}
		client, err := tx.LockThrottle(ctx, k.client)
		if err != nil {
			return err
		}
		if wait = max(pairPolicy.Wait(pair, now), clientBackoff.Wait(client, now)); wait > 0 {
			return nil
		}
		pairPolicy.Fail(&pair, now)
		clientBackoff.Fail(&client, now)
		if err := tx.UpdateThrottle(ctx, pair); err != nil {
			return err
		}
		return tx.UpdateThrottle(ctx, client)
	})
	return wait, err
}

// failed counts a wrong password against the account, from anywhere.
func (c *Console) failed(ctx context.Context, k throttleKeys, now time.Time) error {
	return c.store.InTx(ctx, func(tx store.Tx) error {
		account, err := tx.LockThrottle(ctx, k.account)
		if err != nil {
			return err
		}
		accountBackoff.Fail(&account, now)
		return tx.UpdateThrottle(ctx, account)
	})
}

// forgive takes back the try admit counted, after the right password: the
// client's failures for this account are forgotten.
func (c *Console) forgive(ctx context.Context, k throttleKeys, now time.Time) error {
	return c.store.InTx(ctx, func(tx store.Tx) error {
		pair, err := tx.LockThrottle(ctx, k.pair)
		if err != nil {
			return err
		}
		pair.Failures, pair.LastAt, pair.UpdatedAt = 0, time.Time{}, now
		if err := tx.UpdateThrottle(ctx, pair); err != nil {
			return err
		}
		client, err := tx.LockThrottle(ctx, k.client)
		if err != nil {
			return err
		}
		client.Failures, client.UpdatedAt = max(0, client.Failures-1), now
		return tx.UpdateThrottle(ctx, client)
	})
}

// LoginPage serves the sign-in form: GET /console/login.
func (c *Console) LoginPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setHeaders(w)
		tok, err := c.loginToken(w, r)
		if err != nil {
			c.internalError(w, r, nil, err)
			return
		}
		c.render(w, r, http.StatusOK, "login", pageData{Title: "Sign in", Content: loginData{CSRF: tok, Next: safeNext(r.URL.Query().Get("next"))}})
	})
}

// loginToken returns the login form's double-submit token, setting its
// cookie when there is none yet.
func (c *Console) loginToken(w http.ResponseWriter, r *http.Request) (string, error) {
	if ck, err := r.Cookie(loginCookie); err == nil {
		if _, ok := tokenHash(ck.Value); ok {
			return ck.Value, nil
		}
	}
	tok, err := newToken()
	if err != nil {
		return "", err
	}
	c.setCookie(w, loginCookie, tok, "/console/login", 0)
	return tok, nil
}

type loginData struct {
	CSRF  string
	Next  string
	Error string
}

const wrongLogin = "wrong name or password"

// Login checks a name and password and starts a session: POST
// /console/login.
func (c *Console) Login() http.Handler {
	return c.cop.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setHeaders(w)
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
		if err := r.ParseForm(); err != nil {
			c.errorPage(w, r, nil, http.StatusBadRequest, "The form could not be read.")
			return
		}
		ck, err := r.Cookie(loginCookie)
		if err != nil || !sameToken(r.PostForm.Get("csrf"), ck.Value) {
			c.errorPage(w, r, nil, http.StatusForbidden, "The sign-in form has expired. Reload the sign-in page and try again.")
			return
		}
		next := safeNext(r.PostForm.Get("next"))
		form := loginData{CSRF: ck.Value, Next: next}
		name := strings.TrimSpace(r.PostForm.Get("name"))
		pw := r.PostForm.Get("password")
		nameKey := strings.ToLower(name)
		if len(nameKey) > maxNameLen {
			nameKey = nameKey[:maxNameLen]
		}
		addr := c.clientAddr(r)
		ctx := r.Context()
		now := c.clock()
		keys := c.throttleKeys(nameKey, addr)
		wait, err := c.admit(ctx, keys, now)
		if err != nil {
			c.internalError(w, r, nil, err)
			return
		}
		if wait > 0 {
			c.metrics.LoginFailure("throttled")
			c.log.Warn("console: sign-in refused: too many failures from this client", zap.String("client", c.clientRef(addr)),
				zap.Duration("wait", wait))
			secs := int(math.Ceil(wait.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			form.Error = "Too many failed sign-ins from here. Wait " + waitText(wait) + " and try again."
			c.render(w, r, http.StatusTooManyRequests, "login", pageData{Title: "Sign in", Content: form})
			return
		}
		u, known := c.userFor(name)
		if !c.checkPassword(u, known, pw) {
			if err := c.failed(ctx, keys, now); err != nil {
				c.internalError(w, r, nil, err)
				return
			}
			if known {
				c.metrics.LoginFailure("wrong_password")
				c.log.Info("console: sign-in failed", zap.String("user", u.name), zap.String("client", c.clientRef(addr)))
			} else {
				// The name typed may be anything, a password included: not logged.
				c.metrics.LoginFailure("unknown_name")
				c.log.Info("console: sign-in failed for an unknown name", zap.String("client", c.clientRef(addr)))
			}
			form.Error = wrongLogin
			c.render(w, r, http.StatusUnauthorized, "login", pageData{Title: "Sign in", Content: form})
			return
		}
		if err := c.forgive(ctx, keys, now); err != nil {
			c.log.Warn("console: forget the failures of a signed-in client", zap.Error(err))
		}
		if err := c.startSession(w, r, u); err != nil {
			c.internalError(w, r, nil, err)
			return
		}
		c.setCookie(w, loginCookie, "", "/console/login", -1)
		c.log.Info("console: signed in", zap.String("user", u.name), zap.String("role", u.role))
		http.Redirect(w, r, next, http.StatusSeeOther)
	}))
}

// waitText says how long to wait, in seconds or whole minutes.
func waitText(d time.Duration) string {
	if d < time.Minute {
		return strconv.Itoa(int(math.Ceil(d.Seconds()))) + " seconds"
	}
	return strconv.Itoa(int(math.Ceil(d.Minutes()))) + " minutes"
}

// checkPassword compares pw with u's hash, or with the dummy hash when the
// name is unknown, so both cost one bcrypt comparison.
func (c *Console) checkPassword(u user, known bool, pw string) bool {
	hash := c.dummyHash
	if known {
		hash = u.hash
	}
	if len(pw) > MaxPasswordBytes {
		pw = pw[:MaxPasswordBytes]
		known = false // HashPassword never accepts such a password
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(pw))
	return known && err == nil
}

// startSession makes a new session id, whatever cookie came in: an id
// planted before sign-in is never promoted (no session fixation).
func (c *Console) startSession(w http.ResponseWriter, r *http.Request, u user) error {
	ctx := r.Context()
	now := c.clock()
	if n, err := c.store.DeleteExpiredSessions(ctx, now); err != nil {
		c.log.Warn("console: delete expired sessions", zap.Error(err))
	} else if n > 0 {
		c.log.Debug("console: expired sessions deleted", zap.Int64("count", n))
	}
	if ck, err := r.Cookie(sessionCookie); err == nil {
		if old, ok := tokenHash(ck.Value); ok {
			if err := c.store.DeleteSession(ctx, old); err != nil {
				return err
			}
		}
	}
	id, err := newToken()
	if err != nil {
		return err
	}
	csrf, err := newToken()
	if err != nil {
		return err
	}
	idHash, _ := tokenHash(id)
	err = c.store.CreateSession(ctx, store.Session{IDHash: idHash, User: u.name, Role: u.role, CSRF: csrf,
		CreatedAt: now, ExpiresAt: erasure.Timestamp(now.Add(c.ttl))})
	if err != nil {
		return err
	}
	c.setCookie(w, sessionCookie, id, "/console", int(c.ttl.Seconds()))
	return nil
}

// Logout ends the session on the server and drops the cookie: POST
// /console/logout.
func (c *Console) Logout() http.Handler {
	return c.authed(canRead, func(w http.ResponseWriter, r *http.Request, s session) {
		if err := c.store.DeleteSession(r.Context(), s.IDHash); err != nil {
			c.internalError(w, r, &s, err)
			return
		}
		c.setCookie(w, sessionCookie, "", "/console", -1)
		c.log.Info("console: signed out", zap.String("user", s.User))
		http.Redirect(w, r, "/console/login", http.StatusSeeOther)
	})
}
