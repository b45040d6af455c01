package fakevendor

import (
	"net/http"
	"sync"
	"testing"
)

// Options tunes every fake the same way; a fake declares
//
//	type Options = fakevendor.Options
//
// so that tests write hubspotfake.Options{RateLimit: 1}.
type Options struct {
	// RateLimit, when > 0, refuses requests beyond this many per second
	// (burst Burst, default 1) the vendor's way (Vendor.TooMany).
	RateLimit float64
	Burst     int
	// Polls is how many status polls an asynchronous job stays
	// unfinished before it ends: 0, the fake's default (Vendor.Polls);
	// negative, none (the first poll finds it finished).
	Polls int
}

// Vendor is how a fake's vendor answers what every fake does.
type Vendor struct {
	// TooMany answers a request over Options.RateLimit as the vendor does
	// (its status, headers and body).
	TooMany Fault
	// Auth checks each request's credentials; the zero Auth checks none.
	Auth Auth
	// Polls is the default of Options.Polls.
	Polls int
}

// Start starts a fake vendor server tuned by opt and answering as v
// describes; it stops when the test ends. JobPolls is how many polls the
// fake's jobs stay unfinished.
//
//	srv := fakevendor.Start(t, opt, fakevendor.Vendor{TooMany: TooMany, Polls: 2,
//		Auth: fakevendor.BearerAuth(f.key, refuse)})
//	f.Controls = srv.Controls()
//	srv.Handle("DELETE /v3/marketing/contacts", f.deleteContacts)
func Start(t testing.TB, opt Options, v Vendor) *Server {
	t.Helper()
	s := New(t)
	s.JobPolls = Polls(opt.Polls, v.Polls)
	s.tooMany = v.TooMany // for RateLimitPath too
	if opt.RateLimit > 0 {
		s.RateLimit(opt.RateLimit, max(opt.Burst, 1), v.TooMany)
	}
	if v.Auth.OK != nil {
		s.RequireAuth(v.Auth.OK, v.Auth.Refuse)
	}
	s.keys = v.Auth.Keys
	return s
}

// Auth is a vendor's credential check: OK accepts a request, Refuse
// answers one it does not accept. Keys are the credentials it checks,
// which Controls.OtherAccount changes; BearerAuth, BasicAuth and
// HeaderAuth fill it, and an Auth made of them lists theirs:
//
//	gdpr, query := fakevendor.BearerAuth(f.token, nil), fakevendor.BasicAuth(user, f.secret, nil)
//	fakevendor.Auth{OK: …, Refuse: Refused, Keys: append(gdpr.Keys, query.Keys...)}
type Auth struct {
	OK     func(*http.Request) bool
	Refuse Fault
	Keys   []*Key
}

// Setting is a value a test may change while the fake runs (a forced
// final status, a page size, a credential), safe for concurrent use; its
// zero value holds T's zero value.
//
//	final fakevendor.Setting[string] // a final status forced for every job
//	…
//	func (f *Fake) EndJobsAs(status string) { f.final.Set(status) }
type Setting[T any] struct {
	mu sync.Mutex
	v  T
}

// NewSetting is a setting holding v.
func NewSetting[T any](v T) *Setting[T] { return &Setting[T]{v: v} }

// Get is the value now.
func (s *Setting[T]) Get() T {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.v
}

// Set changes the value.
func (s *Setting[T]) Set(v T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.v = v
}

// Key is a credential a fake accepts, which a test may change (a rotated
// token, another account) while the fake runs: Get is the value accepted
// now, Set changes it.
type Key = Setting[string]

// NewKey is a credential whose value is v.
func NewKey(v string) *Key { return NewSetting(v) }

// BearerAuth accepts "Authorization: Bearer <key>".
func BearerAuth(key *Key, refuse Fault) Auth {
	return Auth{OK: func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer "+key.Get() }, Refuse: refuse, Keys: []*Key{key}}
}

// BasicAuth accepts HTTP Basic credentials user:password.
func BasicAuth(user, password *Key, refuse Fault) Auth {
	return Auth{OK: func(r *http.Request) bool {
		u, p, ok := r.BasicAuth()
		return ok && u == user.Get() && p == password.Get()
	}, Refuse: refuse, Keys: []*Key{user, password}}
}

// HeaderAuth accepts the key in the header name ("X-Api-Key").
func HeaderAuth(name string, key *Key, refuse Fault) Auth {
	return Auth{OK: func(r *http.Request) bool { return r.Header.Get(name) == key.Get() }, Refuse: refuse, Keys: []*Key{key}}
}

// otherKey is a credential of the same shape as k but another: its last
// letter or digit moved one on (z to a, 9 to 0), so that a vendor's
// prefixes, length and alphabet still hold.
func otherKey(k string) string {
	b := []byte(k)
	for i := len(b) - 1; i >= 0; i-- {
		switch c := b[i]; {
		case c >= '0' && c <= '9':
			b[i] = '0' + (c-'0'+1)%10
		case c >= 'a' && c <= 'z':
			b[i] = 'a' + (c-'a'+1)%26
		case c >= 'A' && c <= 'Z':
			b[i] = 'A' + (c-'A'+1)%26
		default:
			continue
		}
		return string(b)
	}
	return k + "2"
}

// Job is what every fake's asynchronous job shares: it stays unfinished
// for a number of status polls, then ends. A fake embeds it in its job:
//
//	type job struct {
//		fakevendor.Job
//		ids []string
//	}
//	j := &job{Job: fakevendor.NewJob(srv.JobPolls), ids: ids}
//	…
//	if j.Poll() { // this poll ends the job: delete its contacts
//	}
type Job struct {
	// Polled counts the status polls so far.
	Polled int
	// Unfinished is how many polls it stays unfinished for.
	Unfinished int
	// Ended is set by the poll that ends it.
	Ended bool
}

// NewJob is a job unfinished for polls status polls.
func NewJob(polls int) Job { return Job{Unfinished: polls} }

// Poll counts a status poll and reports whether this poll ends the job
// (true once, on the poll after the unfinished ones).
func (j *Job) Poll() (ends bool) {
	j.Polled++
	if j.Ended || j.Polled <= j.Unfinished {
		return false
	}
	j.Ended = true
	return true
}

// Stage is the name of the unfinished stage a job has reached after its
// polls: stages[0] before the first poll, each poll one further, staying
// at the last.
func (j *Job) Stage(stages ...string) string {
	return stages[min(j.Polled, len(stages)-1)]
}
