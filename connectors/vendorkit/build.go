package vendorkit

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/vendorhttp"
)

// Timeout bounds one vendor request when the runtime passes no HTTP client
// (tools and tests); the runtime's client has its own.
const Timeout = time.Minute

// Getenv is how deps reads the environment: deps.Getenv, or os.Getenv when
// it is nil (tools and tests).
func Getenv(deps connectors.Deps) func(string) string {
	if deps.Getenv != nil {
		return deps.Getenv
	}
	return os.Getenv
}

// Reveal reads the credential s of key, naming the key (never the value)
// in its error.
func Reveal(deps connectors.Deps, key string, s config.Secret) (string, error) {
	v, err := s.Reveal(Getenv(deps))
	if err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	return v, nil
}

// RevealPair reads two credentials a vendor takes together (a key and
// its secret, a project token and an API token), naming the key of the
// one that fails as Reveal does.
func RevealPair(deps connectors.Deps, key1 string, s1 config.Secret, key2 string, s2 config.Secret) (v1, v2 string, err error) {
	if v1, err = Reveal(deps, key1, s1); err != nil {
		return "", "", err
	}
	if v2, err = Reveal(deps, key2, s2); err != nil {
		return "", "", err
	}
	return v1, v2, nil
}

// HTTPClient is deps.HTTPClient, or a client with Timeout when it is nil.
func HTTPClient(deps connectors.Deps) *http.Client {
	if deps.HTTPClient != nil {
		return deps.HTTPClient
	}
	return &http.Client{Timeout: Timeout}
}

// Client is a vendorhttp client for vendor ("SendGrid") over deps's HTTP
// client, setting credentials with auth.
func Client(deps connectors.Deps, vendor string, auth func(*http.Request)) *vendorhttp.Client {
	return &vendorhttp.Client{HTTP: HTTPClient(deps), Vendor: vendor, Auth: auth}
}

// Bearer sends token as an OAuth Bearer token.
func Bearer(token string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

// Basic sends HTTP Basic credentials.
func Basic(user, password string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(user, password) }
}

// Header sends a credential in the header name ("X-Api-Key").
func Header(name, value string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set(name, value) }
}

// EncodeRef writes a job reference (a struct of what Poll needs, never an
// identifier of the person) as the runtime stores it.
func EncodeRef(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("vendorkit: a job reference must marshal: %v", err))
	}
	return string(b)
}

// DecodeRef reads a job reference written by EncodeRef into v; complete
// reports whether it holds what Poll needs. A reference that is unreadable
// or incomplete is a permanent error telling staff to erase the person
// again, which starts a new job at vendor.
func DecodeRef(ref string, v any, complete func() bool, vendor string) error {
	if err := json.Unmarshal([]byte(ref), v); err != nil || !complete() {
		return connectors.Permanentf("malformed %s job reference; erase the person again to start a new job", vendor)
	}
	return nil
}
