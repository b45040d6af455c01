// Package console is the staff console: server-rendered pages where support
// staff act on erasure requests and auditors read them, signed in with a
// name and password. The JSON API (internal/httpapi) stays for automation;
// the console is the same actions for people, behind sessions, CSRF tokens
// and roles, and it never shows a data subject's identifiers.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/internal/coordinator"
	"github.com/lethe-dev/lethe/internal/coverage"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
	"github.com/lethe-dev/lethe/internal/telemetry"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Roles a console user may have.
const (
	RoleAdmin   = "admin"   // everything, and the keys page
	RoleAgent   = "agent"   // acts on requests
	RoleAuditor = "auditor" // reads, never changes
)

// PasswordCost is the bcrypt cost of the hashes HashPassword makes.
const PasswordCost = 12

// Password length limits: bcrypt reads at most 72 bytes, so a longer
// password would be silently cut.
const (
	MinPasswordChars = 12
	MaxPasswordBytes = 72
)

// HashPassword returns the bcrypt hash of a console password, for
// console.users[].password_hash:
//
//	hash, err := console.HashPassword("correct horse battery staple")
func HashPassword(pw string) (string, error) {
	if utf8.RuneCountInString(pw) < MinPasswordChars {
		return "", erasure.Invalid("password", "must be at least %d characters", MinPasswordChars)
	}
	if len(pw) > MaxPasswordBytes {
		return "", erasure.Invalid("password", "must be at most %d bytes (bcrypt ignores the rest)", MaxPasswordBytes)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), PasswordCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// Deps are what the console needs.
type Deps struct {
	Store       store.Store
	Coordinator *coordinator.Coordinator
	// Hasher hashes the email or phone number a person searches for.
	Hasher *erasure.Hasher
	Config config.Console
	// Connectors are the configured connector instance names. A task of
	// an instance no longer configured is marked, and not offered a retry
	// (nothing would pick it up).
	Connectors []string
	// JWKS returns the public signing keys; the first signs new
	// certificates. Nil: the keys page says there are none.
	JWKS func() []byte
	// DataMap lists every connector instance with its latest discovery
	// (nil: the data map page says there is none).
	DataMap func(ctx context.Context) ([]coverage.Row, error)
	// DiscoveryInterval is how often discovery runs (0: only by hand).
	DiscoveryInterval time.Duration
	// Metrics counts failed sign-ins (nil: not counted).
	Metrics *telemetry.Metrics
	Log     *zap.Logger
	Clock   func() time.Time
	// Getenv reveals password hashes given as {env: NAME} (default
	// os.Getenv).
	Getenv func(string) string
}

// user is a configured staff member.
type user struct {
	name string
	role string
	hash []byte
}

// Console serves the staff pages. Its handlers are registered by
// internal/httpapi/routes.go; see the method comments for each route.
type Console struct {
	store      store.Store
	coord      *coordinator.Coordinator
	hasher     *erasure.Hasher
	connectors []string
	jwks       func() []byte
	dataMap    func(ctx context.Context) ([]coverage.Row, error)
	// discoveryInterval is how often discovery runs (0: by hand).
	discoveryInterval time.Duration
	log               *zap.Logger
	clock             func() time.Time
	users             map[string]user
	// dummyHash is compared against for unknown names, so that a sign-in
	// takes as long whether or not the name exists.
	dummyHash []byte
	ttl       time.Duration
	secure    bool
	pages     map[string]*template.Template
	cop       *http.CrossOriginProtection
	metrics   *telemetry.Metrics
	// throttleKey keys the hashes failed sign-ins are counted under, so
	// the store holds no name or client address in clear.
	throttleKey []byte
	proxyHeader string
}

// Failed sign-ins are counted in the store, so every replica sees them,
// under three keys. Each is slowed down, never locked out: after the free
// failures every further one doubles the wait before the next try, from a
// second up to 15 minutes, and failures are forgotten an hour after the
// last.
//
//   - per account and client address: 5 free failures. Someone guessing
//     admin's password from one address slows down that address only.
//   - per client address, whatever the account: 20 free failures.
//   - per account, from anywhere: past 50 failures (a guess from many
//     addresses) every address that has failed for the account waits from
//     its first failure on. An address that has not failed is never held
//     back, so the right password from a clean client still works.
var (
	pairBackoff        = store.Backoff{Free: 5, Base: time.Second, Max: 15 * time.Minute, Forget: time.Hour}
	pairBackoffAttack  = store.Backoff{Free: 1, Base: time.Second, Max: 15 * time.Minute, Forget: time.Hour}
	clientBackoff      = store.Backoff{Free: 20, Base: time.Second, Max: 15 * time.Minute, Forget: time.Hour}
	accountBackoff     = store.Backoff{Forget: time.Hour}
	accountUnderAttack = 50
)

// New returns a console. It fails when a user's password hash cannot be
// read or is not a bcrypt hash.
func New(d Deps) (*Console, error) {
	if d.Store == nil || d.Coordinator == nil || d.Hasher == nil {
		return nil, errors.New("console: Store, Coordinator and Hasher are required")
	}
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	if d.Clock == nil {
		d.Clock = erasure.SystemClock
	}
	if d.Getenv == nil {
		d.Getenv = os.Getenv
	}
	c := &Console{
		store: d.Store, coord: d.Coordinator, hasher: d.Hasher, connectors: slices.Clone(d.Connectors),
		jwks: d.JWKS, dataMap: d.DataMap, discoveryInterval: d.DiscoveryInterval, log: d.Log, clock: d.Clock, users: map[string]user{},
		ttl: d.Config.SessionTTL, secure: !d.Config.InsecureCookies,
		metrics: d.Metrics, throttleKey: d.Hasher.DeriveKey("console sign-in throttles"),
		proxyHeader: http.CanonicalHeaderKey(strings.TrimSpace(d.Config.TrustProxyHeader)),
	}
	if c.ttl <= 0 {
		c.ttl = 8 * time.Hour
	}
	cost := PasswordCost
	maxCost := 0
	for i, u := range d.Config.Users {
		key := fmt.Sprintf("console.users[%d]", i)
		switch u.Role {
		case RoleAdmin, RoleAgent, RoleAuditor:
		default:
			return nil, fmt.Errorf("console: %s.role: must be admin, agent or auditor", key)
		}
		if u.Name == "" || c.users[u.Name].name != "" {
			return nil, fmt.Errorf("console: %s.name: is required and must be unique", key)
		}
		h, err := u.PasswordHash.Reveal(d.Getenv)
		if err != nil {
			return nil, fmt.Errorf("console: %s.password_hash: %w", key, err)
		}
		uc, err := bcrypt.Cost([]byte(h))
		if err != nil {
			return nil, fmt.Errorf("console: %s.password_hash: not a bcrypt hash (make one with `lethe passwd`)", key)
		}
		if uc < bcrypt.DefaultCost {
			d.Log.Warn("console password hash has a low bcrypt cost", zap.String("user", u.Name), zap.Int("cost", uc))
		}
		maxCost = max(maxCost, uc)
		c.users[u.Name] = user{name: u.Name, role: u.Role, hash: []byte(h)}
	}
	if maxCost > 0 {
		cost = maxCost
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("lethe console: no such user"), cost)
	if err != nil {
		return nil, fmt.Errorf("console: dummy hash: %w", err)
	}
	c.dummyHash = dummy
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	c.cop = http.NewCrossOriginProtection()
	c.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.log.Warn("console: cross-origin form refused", zap.String("route", r.Pattern))
		c.errorPage(w, r, nil, http.StatusForbidden, "This form was sent from another site and was refused.")
	}))
	return c, nil
}

// userFor returns the configured user of a session, if still configured.
func (c *Console) userFor(name string) (user, bool) {
	u, ok := c.users[name]
	return u, ok
}
