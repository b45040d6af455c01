// Package vendorkit is what the connectors to vendor APIs share besides
// the HTTP call itself (package vendorhttp): checking the config fields
// every vendor has (credentials, base_url, a user id namespace, a poll
// interval) with the same messages and defaults, building the HTTP client
// from the runtime's dependencies, job references, and a few words for
// evidence. They are small helpers a connector calls, not a framework it
// fits into: a connector keeps its own endpoints, mapping and quirks.
//
//	func (c *Config) Validate() error {
//		var p vendorkit.Problems
//		p.Secret("api_key", c.APIKey, "a SendGrid API key with the Marketing scope")
//		p.BaseURL(&c.BaseURL, vendorkit.URLRule{Default: DefaultBaseURL, Version: "/v3"})
//		p.Interval("poll_interval", &c.PollInterval, time.Minute)
//		return p.Err()
//	}
package vendorkit

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
)

// Problems collects what is wrong with a config, each problem naming its
// key, so that Validate reports them all at once.
type Problems struct{ errs []error }

// Add records a problem with key.
func (p *Problems) Add(key, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

// Include adds problems a helper found, each already naming its key.
func (p *Problems) Include(errs ...error) {
	for _, err := range errs {
		if err != nil {
			p.errs = append(p.errs, err)
		}
	}
}

// Err is every problem joined, or nil.
func (p *Problems) Err() error { return errors.Join(p.errs...) }

// Secret requires the credential s under key; what says what it is ("the
// project's API key").
func (p *Problems) Secret(key string, s config.Secret, what string) {
	if !s.IsSet() {
		p.Add(key, "required: %s (a string, {env: NAME} or {file: PATH})", what)
	}
}

// URLRule is what a vendor's base_url may be.
type URLRule struct {
	// Key is the config key; default base_url.
	Key string
	// Default fills an empty value; without one the key is required.
	Default string
	// Example is shown in messages; default Default.
	Example string
	// Version, if set, is an API version path the connector adds itself
	// ("/v3"): a base_url ending in it is refused.
	Version string
	// AllowHTTP accepts plain http to any host. Without it http is only
	// for this machine (a local proxy, a test server): credentials must
	// not cross a network in clear.
	AllowHTTP bool
}

// BaseURL checks *u against r: an https URL (http to loopback only,
// unless r.AllowHTTP) with a host and no credentials, query or fragment.
// It fills in the default and trims a trailing slash.
func (p *Problems) BaseURL(u *string, r URLRule) {
	key, example := r.Key, r.Example
	if key == "" {
		key = "base_url"
	}
	if example == "" {
		example = r.Default
	}
	if *u == "" {
		if r.Default == "" {
			p.Add(key, "required: the API's address, such as %s", example)
			return
		}
		*u = r.Default
	}
	parsed, err := url.Parse(*u)
	switch {
	case err != nil || (parsed.Scheme != "https" && parsed.Scheme != "http") || parsed.Host == "":
		p.Add(key, "must be an http(s) URL such as %s", example)
	case parsed.Scheme == "http" && !r.AllowHTTP && !isLoopback(parsed.Hostname()):
		p.Add(key, "must use https (http is allowed only to localhost: credentials must not cross a network in clear)")
	case parsed.User != nil || parsed.RawQuery != "" || parsed.Fragment != "" || strings.HasSuffix(*u, "?"):
		p.Add(key, "must not carry credentials, a query or a fragment")
	case r.Version != "" && strings.HasSuffix(strings.TrimRight(parsed.Path, "/"), r.Version):
		p.Add(key, "leave out %s; Lethe adds the API version", r.Version)
	}
	*u = strings.TrimRight(*u, "/")
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Namespace checks a user id namespace (user_id_system and the like): it
// names a subject.user_ids key, or is left out.
func (p *Problems) Namespace(key, v string) {
	if v != "" && !connectors.InstanceNameRe.MatchString(v) {
		p.Add(key, "must be lower-case letters, digits, '-' or '_' (a subject.user_ids key)")
	}
}

// Interval fills *d with def when it is left out and refuses a negative
// one.
func (p *Problems) Interval(key string, d *time.Duration, def time.Duration) {
	switch {
	case *d == 0:
		*d = def
	case *d < 0:
		p.Add(key, "must not be negative (leave it out for %s)", def)
	}
}

// OneOf fills *v with the first of allowed when it is left out and refuses
// anything not in allowed.
func (p *Problems) OneOf(key string, v *string, allowed ...string) {
	if *v == "" {
		*v = allowed[0]
		return
	}
	for _, a := range allowed {
		if *v == a {
			return
		}
	}
	p.Add(key, "must be %s", orList(allowed))
}

func orList(items []string) string {
	switch len(items) {
	case 1:
		return items[0]
	case 2:
		return items[0] + " or " + items[1]
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

// System is the user_ids namespace a connector reads a vendor's user id
// from: the configured one, else the instance's name.
func System(configured, instance string) string {
	if configured != "" {
		return configured
	}
	return instance
}
