package console

import (
	"testing"

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
