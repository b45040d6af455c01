// Package fakevendor is the base of the local fake vendor servers that
// connector tests run against: a real HTTP server, with the vendor's rate
// limit, injected faults (5xx, 429 storms, refused credentials, malformed
// bodies, timeouts) and a record of what it was sent. Each vendor's fake
// lives in its own importable package, connectors/<vendor>/<vendor>fake,
// and embeds the server's Controls.
//
//	f := fakevendor.New(t)
//	f.RateLimit(10, 10, func(w http.ResponseWriter, r *http.Request) {
//		w.Header().Set("Retry-After", "1")
//		fakevendor.JSON(w, 429, map[string]string{"status": "error", "errorType": "RATE_LIMIT"})
//	})
//	f.Handle("POST /crm/v3/objects/contacts/gdpr-delete", func(w http.ResponseWriter, r *http.Request) { … })
//	f.Inject(3, fakevendor.Status(503))
package fakevendor

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// Call is one request the fake received.
type Call struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   []byte
	Status int
}

// Fault answers a request instead of the vendor logic.
type Fault func(w http.ResponseWriter, r *http.Request)

// Server is a fake vendor API.
type Server struct {
	*httptest.Server
	mux *http.ServeMux
	// JobPolls is how many status polls the fake's asynchronous jobs
	// stay unfinished (see Start and Options.Polls).
	JobPolls int

	mu      sync.Mutex
	faults  []Fault
	always  Fault
	limiter *rate.Limiter
	tooMany Fault
	// paths are endpoints' own limits, by URL path.
	paths    map[string]*rate.Limiter
	calls    []Call
	limited  int
	requests int
	auth     func(*http.Request) bool
	unauthed Fault
	// refused counts the requests the credential check refused.
	refused int
	// keys are the credentials the check reads (Auth.Keys).
	keys []*Key
}

// New starts a fake vendor that stops when the test ends.
func New(t testing.TB) *Server {
	s := &Server{mux: http.NewServeMux()}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// Handle adds a vendor endpoint (a Go 1.22 ServeMux pattern).
func (s *Server) Handle(pattern string, h http.HandlerFunc) { s.mux.HandleFunc(pattern, h) }

// RateLimit makes the fake answer with tooMany once more than perSecond
// requests per second (burst at once) arrive, as the vendor documents.
func (s *Server) RateLimit(perSecond float64, burst int, tooMany Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limiter = rate.NewLimiter(rate.Limit(perSecond), burst)
	s.tooMany = tooMany
}

// RateLimitPath gives the endpoint at path a limit of its own besides the
// fake's (perSecond, burst at once), answered as RateLimit's is, as a
// vendor documents one endpoint slower than the rest of its API.
func (s *Server) RateLimitPath(path string, perSecond float64, burst int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paths == nil {
		s.paths = map[string]*rate.Limiter{}
	}
	s.paths[path] = rate.NewLimiter(rate.Limit(perSecond), burst)
}

// RequireAuth makes the fake answer with refuse when ok rejects a
// request's credentials.
func (s *Server) RequireAuth(ok func(*http.Request) bool, refuse Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth, s.unauthed = ok, refuse
}

// Inject makes the next n requests meet f.
func (s *Server) Inject(n int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults = append(s.faults, f)
	}
}

// Always makes every request meet f (nil: back to normal).
func (s *Server) Always(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.always = f
}

// Calls returns what the fake was sent.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Limited counts the requests refused by the rate limit.
func (s *Server) Limited() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limited
}

// Requests counts the requests the fake received, refused ones included.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// PassThrough is a fault that answers as the fake's endpoints do, skipping
// the credential check and the rate limit. Injected ahead of another
// fault, it lets the first requests through:
//
//	f.Inject(1, f.PassThrough()) // the lookup succeeds
//	f.Inject(1, fakevendor.Status(502)) // the delete fails
func (s *Server) PassThrough() Fault { return s.mux.ServeHTTP }

type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = 200
	}
	return r.ResponseWriter.Write(b)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	r.Body = io.NopCloser(bytesReader(body))
	rec := &recorder{ResponseWriter: w}
	s.mu.Lock()
	s.requests++
	var f Fault
	switch {
	case s.always != nil:
		f = s.always
	case len(s.faults) > 0:
		f, s.faults = s.faults[0], s.faults[1:]
	case s.auth != nil && !s.auth(r):
		f = s.unauthed
		s.refused++
	case s.limiter != nil && !s.limiter.Allow():
		f = s.tooMany
		s.limited++
	case s.paths[r.URL.Path] != nil && !s.paths[r.URL.Path].Allow():
		f = s.tooMany
		if f == nil {
			f = TooMany(0)
		}
		s.limited++
	}
	s.mu.Unlock()
	if f != nil {
		f(rec, r)
	} else {
		s.mux.ServeHTTP(rec, r)
	}
	s.mu.Lock()
	s.calls = append(s.calls, Call{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body, Status: rec.status})
	s.mu.Unlock()
}

// JSON writes v as a JSON response with status.
func JSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Status is a fault answering status with an empty JSON object.
func Status(status int) Fault {
	return func(w http.ResponseWriter, r *http.Request) { JSON(w, status, map[string]any{}) }
}

// Body is a fault answering status with a JSON body as written (one a
// vendor sends that the fake's handlers would not: an unfinished export,
// an odd acknowledgement).
func Body(status int, body string) Fault {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// TooMany is a fault answering 429 with Retry-After in seconds.
func TooMany(retryAfter time.Duration) Fault {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", itoa(int(retryAfter/time.Second)))
		JSON(w, http.StatusTooManyRequests, map[string]any{"message": "too many requests"})
	}
}

// Malformed is a fault answering 200 with a body that is not JSON.
func Malformed() Fault {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"truncated": `)
	}
}

// Hang is a fault that answers only after d (or when the client gives up).
func Hang(d time.Duration) Fault {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
		}
		JSON(w, http.StatusGatewayTimeout, map[string]any{})
	}
}
