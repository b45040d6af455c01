package console

import (
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/erasure"
)

func TestSafeNext(t *testing.T) {
	for next, want := range map[string]string{
		"":                              "/console",
		"/console":                      "/console",
		"/console/requests/x":           "/console/requests/x",
		"/console?status=denied&x=1":    "/console?status=denied&x=1",
		"/console/requests/x#frag":      "/console/requests/x",
		"/console/./requests/../keys":   "/console/keys",
		"/console/../x":                 "/console",
		"/console/%2e%2e/x":             "/console",
		"/console/..":                   "/console",
		"//evil.com":                    "/console",
		"///evil.com":                   "/console",
		"https://evil.com":              "/console",
		"https:evil.com":                "/console",
		"/\\evil.com":                   "/console",
		"/console\\evil.com":            "/console",
		"/consolex":                     "/console",
		"/console.evil.com":             "/console",
		"/console/login":                "/console",
		"/console/login/":               "/console",
		"console":                       "/console",
		"/console\r\nSet-Cookie: x=1":   "/console",
		"/console//evil.com":            "/console/evil.com",
		"/console/%0d%0aLocation:%20//": "/console",
	} {
		if got := safeNext(next); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", next, got, want)
		}
	}
}

func TestLimiter(t *testing.T) {
	l := newLimiter(2, time.Minute)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l.fail("a", now)
	if l.blocked("a", now) != 0 {
		t.Fatal("blocked after one failure of two")
	}
	l.fail("a", now.Add(10*time.Second))
	if got := l.blocked("a", now.Add(20*time.Second)); got != 40*time.Second {
		t.Fatalf("blocked for %s, want 40s", got)
	}
	if l.blocked("b", now) != 0 {
		t.Fatal("another key is blocked")
	}
	if l.blocked("a", now.Add(time.Minute)) != 0 {
		t.Fatal("still blocked after the window")
	}
	l.fail("a", now)
	l.fail("a", now)
	l.reset("a")
	if l.blocked("a", now) != 0 {
		t.Fatal("blocked after a reset")
	}
}

func TestLimiterIsBounded(t *testing.T) {
	l := newLimiter(1, time.Minute)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range maxKeys + 10 {
		l.fail(string(rune(i)), now)
	}
	if len(l.m) > maxKeys {
		t.Fatalf("%d keys held, at most %d", len(l.m), maxKeys)
	}
}

func TestUserMessage(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{erasure.Invalid("reason", "is required: say why"), "Reason: is required: say why."},
		{erasure.Invalid("evidence[2]", "needs a kind"), "Evidence item 3: needs a kind."},
		{erasure.Errorf(erasure.EConflict, "the request is already denied."), "The request is already denied."},
		{errInternal{}, "Internal error."},
	} {
		if got := userMessage(tc.err); got != tc.want {
			t.Errorf("userMessage(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

type errInternal struct{}

func (errInternal) Error() string { return "pq: SELECT secret FROM table" }
