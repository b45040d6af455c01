package portal

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Form tokens (double submit). The cookie holds a random value; each form
// carries a MAC of it with the link key. A page on another site can make a
// browser send the cookie but cannot read it or compute the MAC, and with
// the __Host- prefix a neighbouring subdomain cannot plant one either.
const (
	cookieSecure   = "__Host-lethe-portal"
	cookieInsecure = "lethe-portal"
	cookieBytes    = 32
	csrfField      = "csrf"
)

func (p *Portal) cookieName() string {
	if p.secure {
		return cookieSecure
	}
	return cookieInsecure
}

// formCookie returns the request's form cookie value if it is well formed.
func (p *Portal) formCookie(r *http.Request) (string, bool) {
	c, err := r.Cookie(p.cookieName())
	if err != nil || len(c.Value) != base64.RawURLEncoding.EncodedLen(cookieBytes) {
		return "", false
	}
	if _, err := base64.RawURLEncoding.DecodeString(c.Value); err != nil {
		return "", false
	}
	return c.Value, true
}

// csrfToken returns the token the page's forms carry, setting the cookie it
// is bound to when the browser has none.
func (p *Portal) csrfToken(w http.ResponseWriter, r *http.Request) string {
	v, ok := p.formCookie(r)
	if !ok {
		b := make([]byte, cookieBytes)
		_, _ = rand.Read(b) // never fails (crypto/rand)
		v = base64.RawURLEncoding.EncodeToString(b)
		http.SetCookie(w, &http.Cookie{Name: p.cookieName(), Value: v, Path: "/", HttpOnly: true,
			Secure: p.secure, SameSite: http.SameSiteLaxMode})
	}
	return base64.RawURLEncoding.EncodeToString(p.mac("csrf", v))
}

// checkCSRF reports whether a POST carries the token of its cookie.
func (p *Portal) checkCSRF(r *http.Request) bool {
	v, ok := p.formCookie(r)
	if !ok {
		return false
	}
	want := base64.RawURLEncoding.EncodeToString(p.mac("csrf", v))
	return hmac.Equal([]byte(r.PostForm.Get(csrfField)), []byte(want))
}

// readForm applies the cross-origin check, the body limit and the form
// token to a POST. It writes the refusal page itself and reports false.
func (p *Portal) readForm(w http.ResponseWriter, r *http.Request) bool {
	if err := p.origins.Check(r); err != nil {
		p.message(w, r, http.StatusForbidden, "", "portal.error.form")
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			p.message(w, r, http.StatusRequestEntityTooLarge, "", "portal.error.too_large")
		} else {
			p.message(w, r, http.StatusBadRequest, "", "portal.error.form")
		}
		return false
	}
	if !p.checkCSRF(r) {
		p.message(w, r, http.StatusForbidden, "", "portal.error.form")
		return false
	}
	return true
}

// clientKey is what the per-address limit counts by: the client's address,
// or its /64 for IPv6 (one subscriber usually holds a whole /64).
func (p *Portal) clientKey(r *http.Request) string {
	var addr netip.Addr
	if p.proxyHeader != "" {
		if vs := r.Header.Values(p.proxyHeader); len(vs) > 0 {
			// The last entry is the one our proxy added; earlier ones
			// come from the client and may be anything.
			parts := strings.Split(vs[len(vs)-1], ",")
			addr = parseAddr(strings.TrimSpace(parts[len(parts)-1]))
		}
	}
	if !addr.IsValid() {
		addr = parseAddr(r.RemoteAddr)
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

// parseAddr reads "1.2.3.4", "1.2.3.4:5", "::1" or "[::1]:5".
func parseAddr(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return a
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			return a
		}
	}
	return netip.Addr{}
}

// limiter allows each key n events per period, refilling steadily, in
// memory: each replica counts on its own, which is enough to slow a single
// client down.
type limiter struct {
	mu     sync.Mutex
	n      int
	period time.Duration
	keys   map[string]*rate.Limiter
}

// maxKeys bounds the limiter's memory. When that many clients are active
// at once the limiter refuses new ones rather than forget old ones: under
// such a flood the portal stops filing instead of filling the store.
const maxKeys = 100_000

func newLimiter(n int, period time.Duration) *limiter {
	return &limiter{n: n, period: period, keys: map[string]*rate.Limiter{}}
}

// allow takes one event for key at now.
func (l *limiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.keys[key]
	if !ok {
		if len(l.keys) >= maxKeys {
			l.sweep(now)
			if len(l.keys) >= maxKeys {
				return false
			}
		}
		lim = rate.NewLimiter(rate.Every(l.period/time.Duration(l.n)), l.n)
		l.keys[key] = lim
	}
	return lim.AllowN(now, 1)
}

// sweep forgets keys whose allowance is full again: they are as good as new.
func (l *limiter) sweep(now time.Time) {
	for k, lim := range l.keys {
		if lim.TokensAt(now) >= float64(l.n) {
			delete(l.keys, k)
		}
	}
}

// retryAfter is when a refused client gains its next event, in seconds.
func (l *limiter) retryAfter() int {
	return int(math.Ceil((l.period / time.Duration(l.n)).Seconds()))
}
