package app_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/lethe-dev/lethe/connectors"
)

// Test connector types, registered for this package's tests only. Their
// state is kept per instance name so tests can look at what happened.

type scriptConfig struct {
	// FailTimes: the first FailTimes calls fail with a retryable error.
	FailTimes int `yaml:"fail_times"`
	// RetryAfter on those failures.
	RetryAfter time.Duration `yaml:"retry_after"`
	// Permanent: every call fails permanently.
	Permanent bool `yaml:"permanent"`
	// Polls: Erase starts a job that finishes after this many polls.
	Polls int `yaml:"polls"`
	// Leak: the error message echoes the subject's email, as careless
	// vendors do.
	Leak bool `yaml:"leak"`
	// Requests: Erase makes this many vendor requests, each announced
	// with connectors.WaitCall as vendorhttp does.
	Requests int `yaml:"requests"`
	// Busy: Erase takes this long, and records when it ran.
	Busy time.Duration `yaml:"busy"`
}

type script struct {
	cfg      scriptConfig
	mu       sync.Mutex
	calls    []time.Time
	requests []time.Time
	spans    [][2]time.Time // with Busy: when each Erase ran
	polls    int
}

// Spans is when each Erase ran (with busy set).
func (s *script) Spans() [][2]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][2]time.Time(nil), s.spans...)
}

var scripts = struct {
	sync.Mutex
	m   map[string]*script
	all map[string][]*script // every process's instance, for replica tests
}{m: map[string]*script{}, all: map[string][]*script{}}

// scriptFor is the named instance built last.
func scriptFor(name string) *script {
	scripts.Lock()
	defer scripts.Unlock()
	return scripts.m[name]
}

// forgetScripts drops the instances of that name built so far, so a test
// run again (-count) starts afresh.
func forgetScripts(name string) {
	scripts.Lock()
	defer scripts.Unlock()
	delete(scripts.all, name)
}

// scriptsFor is every instance of that name built in this test binary
// since forgetScripts: one per in-process replica.
func scriptsFor(name string) []*script {
	scripts.Lock()
	defer scripts.Unlock()
	return append([]*script(nil), scripts.all[name]...)
}

func init() {
	connectors.Register("test_script", "scripted test connector", connectors.Limits{Concurrency: 2},
		func(_ context.Context, name string, cfg scriptConfig, _ connectors.Deps) (connectors.Connector, error) {
			s := &script{cfg: cfg}
			scripts.Lock()
			scripts.m[name] = s
			scripts.all[name] = append(scripts.all[name], s)
			scripts.Unlock()
			return s, nil
		})
}

func (s *script) Calls() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.calls...)
}

// Requests is when each vendor request began.
func (s *script) Requests() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.requests...)
}

func (s *script) Erase(ctx context.Context, subj connectors.Subject) (connectors.Outcome, error) {
	for range s.cfg.Requests {
		if err := connectors.WaitCall(ctx); err != nil {
			return connectors.Outcome{}, err
		}
		s.mu.Lock()
		s.requests = append(s.requests, time.Now())
		s.mu.Unlock()
	}
	if s.cfg.Busy > 0 {
		start := time.Now()
		select {
		case <-time.After(s.cfg.Busy):
		case <-ctx.Done():
			return connectors.Outcome{}, ctx.Err()
		}
		s.mu.Lock()
		s.spans = append(s.spans, [2]time.Time{start, time.Now()})
		s.mu.Unlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, time.Now())
	if err := ctx.Err(); err != nil {
		return connectors.Outcome{}, err
	}
	switch {
	case s.cfg.Permanent && s.cfg.Leak:
		return connectors.Outcome{}, connectors.Permanentf("vendor says: no contact %s", subj.Email)
	case s.cfg.Permanent:
		return connectors.Outcome{}, connectors.Permanentf("401 from vendor: check the API token")
	case len(s.calls) <= s.cfg.FailTimes:
		return connectors.Outcome{}, connectors.Retryable(errors.New("503 from vendor"), s.cfg.RetryAfter)
	case s.cfg.Polls > 0:
		return connectors.Running("job-1", 100*time.Millisecond, connectors.Evidence{Kind: "job", Value: "job-1"}), nil
	}
	return connectors.Erased(1, connectors.Evidence{Kind: "contact", Value: "deleted"}), nil
}

func (s *script) Poll(_ context.Context, jobRef string) (connectors.Outcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.polls++
	if s.polls < s.cfg.Polls {
		return connectors.Running(jobRef, 100*time.Millisecond), nil
	}
	return connectors.Erased(7, connectors.Evidence{Kind: "job", Value: jobRef + " done"}), nil
}

// A connector whose vendor calls back, authenticated by an HMAC of the body.
type callbackConfig struct {
	Secret string `yaml:"secret"`
}

type callbacker struct {
	cfg  callbackConfig
	mu   sync.Mutex
	jobs map[string]string // job → email hash stand-in
}

var callbackers = struct {
	sync.Mutex
	m map[string]*callbacker
}{m: map[string]*callbacker{}}

func init() {
	connectors.Register("test_callback", "test connector with signed callbacks", connectors.Limits{Concurrency: 2},
		func(_ context.Context, name string, cfg callbackConfig, _ connectors.Deps) (connectors.Connector, error) {
			c := &callbacker{cfg: cfg, jobs: map[string]string{}}
			callbackers.Lock()
			callbackers.m[name] = c
			callbackers.Unlock()
			return c, nil
		}, connectors.TakesCallbacks())
}

func (c *callbacker) Erase(_ context.Context, s connectors.Subject) (connectors.Outcome, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	job := fmt.Sprintf("job-%d", len(c.jobs)+1)
	c.jobs[job] = s.Email
	return connectors.Running(job, time.Hour), nil
}

func (c *callbacker) Poll(_ context.Context, job string) (connectors.Outcome, error) {
	return connectors.Running(job, time.Hour), nil
}

func (c *callbacker) Callback(_ context.Context, h http.Header, body []byte) (connectors.Callback, error) {
	m := hmac.New(sha256.New, []byte(c.cfg.Secret))
	m.Write(body)
	if !hmac.Equal([]byte(hex.EncodeToString(m.Sum(nil))), []byte(h.Get("X-Signature"))) {
		return connectors.Callback{}, errors.New("bad signature")
	}
	var msg struct{ Job, Status string }
	if err := json.Unmarshal(body, &msg); err != nil {
		return connectors.Callback{}, err
	}
	sum := sha256.Sum256(body)
	cb := connectors.Callback{JobRef: msg.Job, ID: hex.EncodeToString(sum[:]), Outcome: connectors.Running(msg.Job, time.Hour)}
	if msg.Status == "done" {
		cb.Outcome = connectors.Erased(2, connectors.Evidence{Kind: "job", Value: msg.Job + " done"})
	}
	return cb, nil
}

func (c *callbacker) lastJob() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("job-%d", len(c.jobs))
}
