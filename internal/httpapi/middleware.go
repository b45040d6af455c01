package httpapi

import (
	"context"
	"crypto/sha256"
	"net/http"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/erasure"
	"go.uber.org/zap"
)

// Role is what a token may do.
type Role string

// Roles.
const (
	RoleAdmin   Role = "admin"
	RoleAgent   Role = "agent"
	RoleAuditor Role = "auditor" // reads, never changes
)

// Principal is an authenticated caller.
type Principal struct {
	Name string
	Role Role
}

// Actor names the principal in the event log.
func (p Principal) Actor() string { return "api:" + p.Name }

// Token is a configured API token: its SHA-256 and who holds it.
type Token struct {
	Name   string
	Role   Role
	SHA256 [32]byte
}

// TokenAuth checks bearer tokens. Only their hashes are held, so a memory
// dump or a config leak does not give tokens away.
type TokenAuth struct {
	byHash map[[32]byte]Principal
}

// NewTokenAuth returns an authenticator for tokens.
func NewTokenAuth(tokens []Token) *TokenAuth {
	a := &TokenAuth{byHash: make(map[[32]byte]Principal, len(tokens))}
	for _, t := range tokens {
		a.byHash[t.SHA256] = Principal{Name: t.Name, Role: t.Role}
	}
	return a
}

// Authenticate returns the principal holding token. Hashing first makes the
// lookup's timing independent of how much of a guess was right.
func (a *TokenAuth) Authenticate(token string) (Principal, bool) {
	if token == "" {
		return Principal{}, false
	}
	p, ok := a.byHash[sha256.Sum256([]byte(token))]
	return p, ok
}

type permission func(Role) bool

func canRead(Role) bool { return true }

func canWrite(r Role) bool { return r == RoleAdmin || r == RoleAgent }

func canAdmin(r Role) bool { return r == RoleAdmin }

type principalKey struct{}

// principalFrom returns the caller authorize let through.
func principalFrom(r *http.Request) Principal {
	if p, ok := r.Context().Value(principalKey{}).(*Principal); ok {
		return *p
	}
	return Principal{}
}

func (s *server) authorize(allowed permission, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		token, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="lethe"`)
			writeErr(w, erasure.Errorf(erasure.EUnauthorized, "send an API token: Authorization: Bearer <token>"))
			return
		}
		p, ok := s.Auth.Authenticate(strings.TrimSpace(token))
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="lethe", error="invalid_token"`)
			writeErr(w, erasure.Errorf(erasure.EUnauthorized, "unknown API token"))
			return
		}
		if !allowed(p.Role) {
			writeErr(w, erasure.Errorf(erasure.EForbidden, "the %s role cannot do this", p.Role))
			return
		}
		if slot, ok := r.Context().Value(principalKey{}).(*Principal); ok {
			*slot = p
		}
		next.ServeHTTP(w, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (deadlines,
// flushing).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// logRequests logs one line per request: the route pattern, never the
// query string or body, which could hold personal data.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		// authorize fills the slot, so this line can name the caller.
		r = r.WithContext(context.WithValue(r.Context(), principalKey{}, &Principal{}))
		next.ServeHTTP(sw, r)
		if r.Pattern == "GET /healthz" || r.Pattern == "GET /livez" || r.Pattern == "GET /metrics" {
			return
		}
		s.Log.Info("http", zap.String("route", r.Pattern), zap.Int("status", sw.status),
			zap.Duration("duration", time.Since(start)), zap.String("caller", principalFrom(r).Name))
	})
}

func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.Log.Error("panic in handler", zap.String("route", r.Pattern), zap.Any("panic", v))
				writeErr(w, erasure.Errorf(erasure.EInternal, "internal error"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}
