package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/vendorhttp"
	"github.com/lethe-dev/lethe/connectors/vendorkit"
)

// credentials set an instance's credentials on its requests.
type credentials struct {
	// set adds static credentials (a header); query adds a query
	// parameter.
	set        func(*http.Request)
	queryName  string
	queryValue string
	oauth      *tokenSource
}

// revealCredentials reads the credentials of a, naming the key of any
// that fails.
func revealCredentials(deps connectors.Deps, vendor string, a Auth) (*credentials, error) {
	switch {
	case a.Bearer != nil:
		v, err := vendorkit.Reveal(deps, "auth.bearer", *a.Bearer)
		return &credentials{set: vendorkit.Bearer(v)}, err
	case a.Basic != nil:
		v, err := vendorkit.Reveal(deps, "auth.basic.password", a.Basic.Password)
		return &credentials{set: vendorkit.Basic(a.Basic.Username, v)}, err
	case a.Header != nil:
		v, err := vendorkit.Reveal(deps, "auth.header.value", a.Header.Value)
		return &credentials{set: vendorkit.Header(a.Header.Name, v)}, err
	case a.Query != nil:
		v, err := vendorkit.Reveal(deps, "auth.query.value", a.Query.Value)
		return &credentials{queryName: a.Query.Name, queryValue: v}, err
	case a.OAuth2 != nil:
		secret, err := vendorkit.Reveal(deps, "auth.oauth2.client_secret", a.OAuth2.ClientSecret)
		if err != nil {
			return nil, err
		}
		ts := &tokenSource{cfg: *a.OAuth2, secret: secret,
			api: vendorkit.Client(deps, vendor+" OAuth2 token endpoint", nil), now: time.Now}
		return &credentials{oauth: ts, set: ts.apply}, nil
	}
	return nil, fmt.Errorf("auth: none set")
}

// tokenSource fetches and keeps an OAuth 2.0 client credentials token.
type tokenSource struct {
	cfg    OAuth2
	secret string
	api    *vendorhttp.Client
	now    func() time.Time

	mu      sync.Mutex
	token   string
	expires time.Time
}

// expiryMargin is how long before its expiry a token is fetched again.
const expiryMargin = time.Minute

// ensure fetches a token unless a fresh one is held.
func (ts *tokenSource) ensure(ctx context.Context) error {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.token != "" && ts.now().Before(ts.expires.Add(-expiryMargin)) {
		return nil
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if len(ts.cfg.Scopes) > 0 {
		form.Set("scope", strings.Join(ts.cfg.Scopes, " "))
	}
	if ts.cfg.CredentialsInBody {
		form.Set("client_id", ts.cfg.ClientID)
		form.Set("client_secret", ts.secret)
	}
	req, err := http.NewRequest(http.MethodPost, ts.cfg.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return connectors.Permanentf("auth.oauth2.token_url is not a valid URL")
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if !ts.cfg.CredentialsInBody {
		// RFC 6749 §2.3.1: both form-encoded, then HTTP Basic.
		req.SetBasicAuth(url.QueryEscape(ts.cfg.ClientID), url.QueryEscape(ts.secret))
	}
	resp, err := ts.api.Do(ctx, req, "token request", http.StatusBadRequest)
	if err != nil {
		return err
	}
	var body struct {
		AccessToken string  `json:"access_token"`
		TokenType   string  `json:"token_type"`
		ExpiresIn   float64 `json:"expires_in"`
		Error       string  `json:"error"`
	}
	if err := resp.JSON(&body); err != nil {
		return err
	}
	if resp.Status == http.StatusBadRequest || body.AccessToken == "" {
		// RFC 6749 §5.2: invalid_client, invalid_grant, invalid_scope…
		return connectors.Permanentf("%s: %d: the client credentials or scopes were refused (%.40s); check auth.oauth2", ts.api.Vendor, resp.Status, body.Error)
	}
	if body.TokenType != "" && !strings.EqualFold(body.TokenType, "bearer") {
		return connectors.Permanentf("%s: token type %.20q is not a Bearer token", ts.api.Vendor, body.TokenType)
	}
	ts.token = body.AccessToken
	ts.expires = ts.now().Add(time.Duration(body.ExpiresIn * float64(time.Second)))
	if body.ExpiresIn <= 0 {
		ts.expires = ts.now().Add(time.Hour) // §5.1: expires_in is only recommended
	}
	return nil
}

// forget drops the token (the vendor refused it), so that ensure fetches
// another.
func (ts *tokenSource) forget() {
	ts.mu.Lock()
	ts.token = ""
	ts.mu.Unlock()
}

func (ts *tokenSource) apply(r *http.Request) {
	ts.mu.Lock()
	t := ts.token
	ts.mu.Unlock()
	r.Header.Set("Authorization", "Bearer "+t)
}
