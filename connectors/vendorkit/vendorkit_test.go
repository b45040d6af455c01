package vendorkit_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/vendorkit"
)

func TestProblems(t *testing.T) {
	t.Parallel()
	type fields struct {
		key      config.Secret
		base     string
		system   string
		interval time.Duration
		mode     string
	}
	check := func(f *fields, rule vendorkit.URLRule) error {
		var p vendorkit.Problems
		p.Secret("api_key", f.key, "the API key")
		p.BaseURL(&f.base, rule)
		p.Namespace("user_id_system", f.system)
		p.Interval("poll_interval", &f.interval, time.Hour)
		p.OneOf("mode", &f.mode, "gdpr", "ccpa", "other")
		return p.Err()
	}
	rule := vendorkit.URLRule{Default: "https://api.example.com", Version: "/v3"}
	for _, tc := range []struct {
		name string
		f    fields
		rule vendorkit.URLRule
		want []string // substrings of the error; none: valid
	}{
		{"valid", fields{key: config.Secret{Value: "k"}}, rule, nil},
		{"no key", fields{}, rule, []string{"api_key: required: the API key (a string, {env: NAME} or {file: PATH})"}},
		{"not http", fields{key: config.Secret{Env: "K"}, base: "ftp://x"}, rule, []string{"base_url: must be an http(s) URL such as https://api.example.com"}},
		{"plain http", fields{key: config.Secret{Env: "K"}, base: "http://api.example.com"}, rule, []string{"base_url: must use https (http is allowed only to localhost"}},
		{"plain http allowed", fields{key: config.Secret{Env: "K"}, base: "http://minio:9000"}, vendorkit.URLRule{AllowHTTP: true}, nil},
		{"no host", fields{key: config.Secret{Env: "K"}, base: "https://"}, rule, []string{"base_url: must be an http(s) URL"}},
		{"credentials", fields{key: config.Secret{Env: "K"}, base: "https://u:p@x.example"}, rule, []string{"base_url: must not carry credentials"}},
		{"query", fields{key: config.Secret{Env: "K"}, base: "https://x.example?a=1"}, rule, []string{"base_url: must not carry"}},
		{"empty query", fields{key: config.Secret{Env: "K"}, base: "https://x.example?"}, rule, []string{"base_url: must not carry"}},
		{"fragment", fields{key: config.Secret{Env: "K"}, base: "https://x.example#a"}, rule, []string{"base_url: must not carry"}},
		{"version", fields{key: config.Secret{Env: "K"}, base: "https://x.example/v3/"}, rule, []string{"base_url: leave out /v3; Lethe adds the API version"}},
		{"required without default", fields{key: config.Secret{Env: "K"}}, vendorkit.URLRule{Key: "instance_url", Example: "https://acme.my.example"}, []string{"instance_url: required: the API's address, such as https://acme.my.example"}},
		{"bad namespace", fields{key: config.Secret{Env: "K"}, system: "A B"}, rule, []string{"user_id_system: must be lower-case"}},
		{"negative interval", fields{key: config.Secret{Env: "K"}, interval: -time.Second}, rule, []string{"poll_interval: must not be negative (leave it out for 1h0m0s)"}},
		{"unknown mode", fields{key: config.Secret{Env: "K"}, mode: "GDPR"}, rule, []string{"mode: must be gdpr, ccpa or other"}},
		{"all at once", fields{base: "ftp://x", system: "../x", interval: -1, mode: "x"}, rule, []string{"api_key:", "base_url:", "user_id_system:", "poll_interval:", "mode:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			err := check(&f, tc.rule)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("error %v, want none", err)
				}
				if (f.base != "https://api.example.com" && f.base != "http://minio:9000") || f.interval != time.Hour || f.mode != "gdpr" {
					t.Errorf("defaults not filled in: %+v", f)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	t.Run("http to loopback", func(t *testing.T) {
		for _, u := range []string{"http://127.0.0.1:8080", "http://localhost/api", "http://[::1]:9"} {
			var p vendorkit.Problems
			p.BaseURL(&u, rule)
			if p.Err() != nil {
				t.Errorf("%s: %v", u, p.Err())
			}
		}
	})
	t.Run("trailing slash trimmed", func(t *testing.T) {
		u := "https://x.example/api/"
		var p vendorkit.Problems
		p.BaseURL(&u, rule)
		if p.Err() != nil || u != "https://x.example/api" {
			t.Errorf("base %q, %v", u, p.Err())
		}
	})
}

func TestSystem(t *testing.T) {
	t.Parallel()
	if vendorkit.System("", "crm") != "crm" || vendorkit.System("app", "crm") != "app" {
		t.Error("System must default to the instance name")
	}
}

func TestBuildHelpers(t *testing.T) {
	t.Parallel()
	deps := connectors.Deps{Getenv: func(k string) string { return map[string]string{"TOKEN": "t0k"}[k] }}
	if v, err := vendorkit.Reveal(deps, "token", config.Secret{Env: "TOKEN"}); err != nil || v != "t0k" {
		t.Errorf("Reveal = %q, %v", v, err)
	}
	if _, err := vendorkit.Reveal(deps, "token", config.Secret{Env: "MISSING"}); err == nil || !strings.HasPrefix(err.Error(), "token: environment variable MISSING") {
		t.Errorf("Reveal of an unset variable: %v", err)
	}
	if vendorkit.HTTPClient(connectors.Deps{}).Timeout != vendorkit.Timeout {
		t.Error("the default client has no timeout")
	}
	hc := &http.Client{}
	if c := vendorkit.Client(connectors.Deps{HTTPClient: hc}, "Acme", nil); c.HTTP != hc || c.Vendor != "Acme" {
		t.Error("Client does not use the runtime's HTTP client")
	}
	req, _ := http.NewRequest("GET", "http://x", nil)
	vendorkit.Bearer("b")(req)
	vendorkit.Header("X-Api-Key", "h")(req)
	if req.Header.Get("Authorization") != "Bearer b" || req.Header.Get("X-Api-Key") != "h" {
		t.Errorf("headers %v", req.Header)
	}
	vendorkit.Basic("u", "p")(req)
	if u, p, ok := req.BasicAuth(); !ok || u != "u" || p != "p" {
		t.Error("Basic auth not set")
	}
}

func TestRefs(t *testing.T) {
	t.Parallel()
	type ref struct {
		Job string `json:"job"`
	}
	s := vendorkit.EncodeRef(ref{Job: "j1"})
	var got ref
	if err := vendorkit.DecodeRef(s, &got, func() bool { return got.Job != "" }, "acme"); err != nil || got.Job != "j1" {
		t.Fatalf("round trip %q → %+v, %v", s, got, err)
	}
	for _, bad := range []string{"", "{", `{"job":""}`, `[]`} {
		var r ref
		err := vendorkit.DecodeRef(bad, &r, func() bool { return r.Job != "" }, "acme")
		if perm, _ := connectors.Classify(err); err == nil || !perm || !strings.Contains(err.Error(), "malformed acme job reference") {
			t.Errorf("DecodeRef(%q) = %v, want a permanent error", bad, err)
		}
	}
}
