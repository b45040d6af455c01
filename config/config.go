// Package config loads and validates Lethe's configuration file. The
// documented example lives next to it in lethe.example.yaml; every key is
// described there.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lethe-dev/lethe/internal/erasure"
	"gopkg.in/yaml.v3"
)

// Config is the whole configuration of a Lethe process.
type Config struct {
	// devMail: lethe dev catches mail, so the portal needs no SMTP server.
	devMail bool
	// Organisation is the issuer named on certificates.
	Organisation string `yaml:"organisation"`
	// Listen is the HTTP address, e.g. ":8080".
	Listen string `yaml:"listen"`
	// PublicURL is how people reach this server; it goes into links.
	PublicURL        string           `yaml:"public_url"`
	Store            Store            `yaml:"store"`
	NATS             NATS             `yaml:"nats"`
	Signing          Signing          `yaml:"signing"`
	Certificates     Certificates     `yaml:"certificates"`
	Encryption       Encryption       `yaml:"encryption"`
	Retention        Retention        `yaml:"retention"`
	Discovery        Discovery        `yaml:"discovery"`
	SuppressionSweep SuppressionSweep `yaml:"suppression_sweep"`
	Portal           Portal           `yaml:"portal"`
	Console          Console          `yaml:"console"`
	SMTP             SMTP             `yaml:"smtp"`
	Subject          Subject          `yaml:"subject"`
	Auth             Auth             `yaml:"auth"`
	Tasks            Tasks            `yaml:"tasks"`
	Log              Log              `yaml:"log"`
	// RequestIdentifiers are the kinds of identifier a request may come
	// with (default email and phone; the portal's customer number kind is
	// added when the portal asks for it). A system keyed on any other kind
	// needs a resolver that supplies it.
	RequestIdentifiers []string    `yaml:"request_identifiers"`
	Connectors         []Connector `yaml:"connectors"`
}

// Store selects and reaches the state store.
type Store struct {
	// Driver is "postgres" (production) or "sqlite" (single machine).
	Driver string `yaml:"driver"`
	// URL is a PostgreSQL connection string or a SQLite file path.
	URL Secret `yaml:"url"`
	// MaxConns caps the connection pool (default 10).
	MaxConns int `yaml:"max_conns"`
}

// NATS reaches the JetStream cluster.
type NATS struct {
	URL string `yaml:"url"`
	// CredsFile is a NATS .creds file (JWT + nkey), if the cluster needs one.
	CredsFile string `yaml:"creds_file"`
	// Replicas for Lethe's streams and its key-value bucket: 1 for one
	// server, 3 (or 5) for a cluster. Default (0): 3 when the server Lethe
	// connects to is in a cluster of three or more, else 1.
	Replicas int `yaml:"replicas"`
	// AckWait is how long a task may run without a progress signal before
	// JetStream redelivers it to another worker (default 60s).
	AckWait time.Duration `yaml:"ack_wait"`
	// TaskMaxAge bounds how long a task message, which carries the
	// subject's identifiers, may wait in NATS (default 24h). An expired
	// task is sent again from the store (tasks.redispatch_after).
	TaskMaxAge time.Duration `yaml:"task_max_age"`
}

// Signing holds the certificate signing keys.
type Signing struct {
	// Key is the active Ed25519 private key, PKCS#8 PEM.
	Key Secret `yaml:"key"`
	// PublicKeys are PEM files of retired keys, still published in the JWKS
	// so old certificates keep verifying.
	PublicKeys []string `yaml:"public_keys"`
}

// Certificates sets what certificates state and where they are logged.
type Certificates struct {
	// LogOrigin names the transparency log: the first line of every
	// checkpoint, e.g. "lethe.example.com/log". Default: from public_url,
	// else "lethe.local/log".
	LogOrigin string `yaml:"log_origin"`
	// BackupRetention is how long the organisation keeps backups; each
	// certificate then states when the last backup holding the person's
	// data expires. Zero: certificates say backups are not covered.
	BackupRetention time.Duration `yaml:"backup_retention"`
}

// Encryption holds the key-encryption keys (KEKs) that wrap each request's
// data key.
type Encryption struct {
	// Keys: the first wraps new data keys; all of them unwrap. To rotate,
	// put a new key first, let Lethe re-wrap (`lethe rewrap`), then remove
	// the old one.
	Keys []KEK `yaml:"keys"`
}

// KEK is one key-encryption key: 32 random bytes, hex or base64.
type KEK struct {
	ID  string `yaml:"id"`
	Key Secret `yaml:"key"`
}

// Discovery runs the connectors' discovery (what `lethe discover` prints)
// on a schedule, for the data map and lethe_uncovered_columns.
type Discovery struct {
	// Interval is how often each discoverable instance's system is read
	// again for personal data no rule covers, by the processes that run
	// the instance (one of them at a time). 0, the default: only when
	// `lethe discover` is run.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one instance's discovery. Default 30m.
	Timeout time.Duration `yaml:"timeout"`
}

// SuppressionSweep scans, on a schedule, every system that can list its
// identifiers (connectors with a scan) for people on the suppression
// list, the way `lethe replay` does after a backup restore: someone an
// import or a sync re-created is erased again, and the request flagged.
type SuppressionSweep struct {
	// Interval between two sweeps of each instance, by one of the lethe
	// serve processes that run it. 0, the default: only `lethe replay`.
	// A sweep reads the whole system: daily (24h) suits most.
	Interval time.Duration `yaml:"interval"`
}

// Retention says how long Lethe keeps what it holds.
type Retention struct {
	// ShredAfter: identifiers are crypto-shredded this long after a
	// request is final (default 720h = 30 days, for re-checks).
	ShredAfter time.Duration `yaml:"shred_after"`
	// KeepRequests: request records and certificates are purged this long
	// after the request is final (default and minimum 17520h = 2 years;
	// CCPA requires 24 months).
	KeepRequests time.Duration `yaml:"keep_requests"`
	// UnverifiedAfter: portal requests whose email was never verified
	// expire this long after they came in (default 72h).
	UnverifiedAfter time.Duration `yaml:"unverified_after"`
	// SweepInterval: how often these are looked for (default 1m).
	SweepInterval time.Duration `yaml:"sweep_interval"`
}

// Portal is the public page where people ask for erasure.
type Portal struct {
	// Enabled serves /portal (default false).
	Enabled bool `yaml:"enabled"`
	// RequireApproval makes portal requests wait for staff approval after
	// the email is verified (default false).
	RequireApproval bool `yaml:"require_approval"`
	// DefaultJurisdiction preselected on the form: gdpr (default) or ccpa.
	DefaultJurisdiction string `yaml:"default_jurisdiction"`
	// AskPhone and AskCustomerNumber add optional fields to the form; the
	// customer number is sent to connectors as user_ids[CustomerSystem].
	AskPhone          bool   `yaml:"ask_phone"`
	AskCustomerNumber bool   `yaml:"ask_customer_number"`
	CustomerSystem    string `yaml:"customer_system"`
	// CodeTTL is how long an emailed verification code works (default 30m);
	// CodeAttempts how many wrong codes end it (default 5), and how many
	// wrong codes an email address may make, across all its requests,
	// before each further one waits (1m, doubling up to 1h).
	CodeTTL      time.Duration `yaml:"code_ttl"`
	CodeAttempts int           `yaml:"code_attempts"`
	// PerAddressPerHour and PerEmailPerDay limit submissions (defaults 10
	// and 3).
	PerAddressPerHour int `yaml:"per_address_per_hour"`
	PerEmailPerDay    int `yaml:"per_email_per_day"`
	// TrustProxyHeader names the header (e.g. X-Forwarded-For) a reverse
	// proxy in front of Lethe sets to the client's address, for the
	// per-address limit. Empty (default): the connection's address.
	TrustProxyHeader string `yaml:"trust_proxy_header"`
}

// Console is the staff console.
type Console struct {
	// Users who can sign in. Password hashes are bcrypt (`lethe passwd`).
	Users []ConsoleUser `yaml:"users"`
	// SessionTTL (default 8h).
	SessionTTL time.Duration `yaml:"session_ttl"`
	// InsecureCookies drops the Secure flag, for plain-http development
	// only (default false; lethe dev sets it).
	InsecureCookies bool `yaml:"insecure_cookies"`
	// TrustProxyHeader names the header (e.g. X-Forwarded-For) a reverse
	// proxy in front of Lethe sets to the client's address; failed
	// sign-ins are slowed down per account and client address. Empty
	// (default): the connection's address, which behind a proxy is the
	// proxy's for everyone.
	TrustProxyHeader string `yaml:"trust_proxy_header"`
}

// ConsoleUser is one staff member.
type ConsoleUser struct {
	Name         string `yaml:"name"`
	Role         string `yaml:"role"`
	PasswordHash Secret `yaml:"password_hash"`
}

// SMTP sends emails to data subjects.
type SMTP struct {
	// Host and Port of the mail server; empty Host: no email (lethe dev
	// catches mail instead).
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	// TLS: starttls (default), tls (implicit, port 465) or none (only for
	// a relay on localhost).
	TLS string `yaml:"tls"`
	// CAFile trusts a private CA for the server certificate.
	CAFile   string `yaml:"ca_file"`
	Username string `yaml:"username"`
	Password Secret `yaml:"password"`
	// From is the sender, e.g. "Example Ltd Privacy <privacy@example.com>".
	From string `yaml:"from"`
}

// MinKeepRequests is CCPA's 24 months of request records.
const MinKeepRequests = 2 * 365 * 24 * time.Hour

// Subject configures how subjects are referenced without being revealed.
type Subject struct {
	// HashKey is the organisation secret for keyed hashes of identifiers
	// (at least 32 bytes; hex or base64 accepted). Keep it: without it no
	// certificate can be matched to a person again.
	HashKey Secret `yaml:"hash_key"`
}

// Auth lists API tokens.
type Auth struct {
	Tokens []Token `yaml:"tokens"`
}

// Token is one API bearer token with a role.
type Token struct {
	// Name identifies the token in the event log ("api:<name>").
	Name string `yaml:"name"`
	// Role is admin, agent or auditor.
	Role string `yaml:"role"`
	// Token is the secret itself, or leave it out and give SHA256.
	Token Secret `yaml:"token"`
	// SHA256 is the hex SHA-256 of the token, so the config need not hold it.
	SHA256 string `yaml:"sha256"`
}

// Tasks sets how tasks are retried and polled.
type Tasks struct {
	// MaxAttempts before a task is dead (default 8).
	MaxAttempts int `yaml:"max_attempts"`
	// RetryInitial and RetryMax bound the exponential backoff between
	// attempts (defaults 10s and 1h).
	RetryInitial time.Duration `yaml:"retry_initial"`
	RetryMax     time.Duration `yaml:"retry_max"`
	// PollInterval is the default wait between polls of an asynchronous
	// vendor job (default 1m).
	PollInterval time.Duration `yaml:"poll_interval"`
	// SchedulerInterval is how often due retries and polls are looked for
	// (default 1s).
	SchedulerInterval time.Duration `yaml:"scheduler_interval"`
	// Timeout bounds one Erase, Poll or Verify call (default 5m).
	Timeout time.Duration `yaml:"timeout"`
	// RedispatchAfter: a task dispatched with no result for this long is
	// sent again: its message expired (nats.task_max_age) or was lost.
	// Default: nats.task_max_age plus one hour.
	RedispatchAfter time.Duration `yaml:"redispatch_after"`
}

// maxBatchWindow bounds connectors[].batch_window: a batch saves vendor
// calls, not days.
const maxBatchWindow = 30 * time.Second

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error (default info).
	Level string `yaml:"level"`
	// Format is json (default) or console.
	Format string `yaml:"format"`
}

// Connector is one connector instance.
type Connector struct {
	// Name is the instance name: it names the task, the certificate line
	// and the NATS subject. Lower-case letters, digits, '-' and '_'.
	Name string `yaml:"name"`
	// Type is a registered connector type: sql, filesystem, …
	Type string `yaml:"type"`
	// Concurrency, RatePerSecond, Burst override the type's defaults.
	Concurrency   int     `yaml:"concurrency"`
	RatePerSecond float64 `yaml:"rate_per_second"`
	Burst         int     `yaml:"burst"`
	// RateHeadroom spaces calls this much wider than rate_per_second
	// asks (0.05: 5%, the default), so that timing jitter does not make
	// two calls arrive closer than the vendor allows; 0 for none.
	RateHeadroom *float64 `yaml:"rate_headroom"`
	// EndpointRates override the limits a type keeps on some of its
	// vendor's endpoints besides the instance's rate (Amplitude's user
	// search: 350 an hour after a burst of 10), for a vendor plan that allows others; keyed
	// by the endpoint's name in the type's docs ("user search").
	EndpointRates map[string]EndpointRate `yaml:"endpoint_rates"`
	// BatchWindow, for a type whose vendor erases many people a call
	// (amplitude, mixpanel, segment, sendgrid, salesforce), is how long
	// erase tasks of different requests gather before the vendor is called
	// with them together (default 1s); 0s calls it once a person.
	BatchWindow *time.Duration `yaml:"batch_window"`
	// BatchMax caps a batch below the vendor's own maximum (default: that
	// maximum).
	BatchMax int `yaml:"batch_max"`
	// MaxAttempts overrides tasks.max_attempts for this instance.
	MaxAttempts int `yaml:"max_attempts"`
	// Keys replaces the type's default of what the instance erases by:
	// each entry a kind ("user_ids.app") or alternatives ("email|user_ids.crm").
	Keys []string `yaml:"keys"`
	// Optional, a reason, lets the instance's keys be missing for a
	// person: its task is then not applicable, with this reason, instead
	// of waiting for someone to add an identifier.
	Optional string `yaml:"optional"`
	// EraseAfter names instances whose erasure must be done before this
	// one's starts.
	EraseAfter []string `yaml:"erase_after"`
	// AuthorityFor names kinds this instance (a resolver) issues: when it
	// finds none for a person, systems keyed only on them hold nothing of
	// the person and are not applicable.
	AuthorityFor []string `yaml:"authority_for"`
	// DisplayName is how people are shown the system on the portal's
	// status page ("Online shop"); default: Name.
	DisplayName string `yaml:"display_name"`
	// RecheckAfter lists ages of a completed request ([72h, 696h]) at
	// which the instance looks the person up again, to catch data that
	// came back (an import, a sync, a restore). Each must be shorter than
	// retention.shred_after, when the identifiers are destroyed, and the
	// connector must be able to look people up (Verify).
	RecheckAfter []time.Duration `yaml:"recheck_after"`
	// Config is the type's own configuration, decoded strictly by it.
	Config yaml.Node `yaml:"config"`
}

// EndpointRate is one endpoint's limit: RatePerSecond calls a second
// (0.1 for 360 an hour), Burst at once (default: the type's).
type EndpointRate struct {
	RatePerSecond float64 `yaml:"rate_per_second"`
	Burst         int     `yaml:"burst"`
}

// Shown is how people are shown the instance: its display name, or its name.
func (c Connector) Shown() string {
	if c.DisplayName != "" {
		return c.DisplayName
	}
	return c.Name
}

// Decode decodes the instance's config block into v, rejecting unknown keys.
func (c Connector) Decode(v any) error { return DecodeNode(&c.Config, v) }

// DecodeNode decodes a YAML node into v, rejecting unknown keys.
func DecodeNode(n *yaml.Node, v any) error {
	if n.Kind == 0 {
		n = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	return DecodeYAML(b, v)
}

// DecodeYAML decodes YAML into v, rejecting unknown keys.
func DecodeYAML(b []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	// An empty document decodes to the zero value.
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// Load reads, decodes and validates a config file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(b)
}

// Parse decodes and validates config YAML, filling in defaults.
func Parse(b []byte) (*Config, error) {
	return parse(b, false)
}

// ParseDev is Parse for `lethe dev`, which catches mail itself.
func ParseDev(b []byte) (*Config, error) {
	return parse(b, true)
}

func parse(b []byte, devMail bool) (*Config, error) {
	c := Config{devMail: devMail}
	if err := DecodeYAML(b, &c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c.setDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Organisation == "" {
		c.Organisation = "Lethe"
	}
	if c.Listen == "" {
		c.Listen = ":8080"
	}
	if c.Store.MaxConns == 0 {
		c.Store.MaxConns = 10
	}
	def(&c.NATS.AckWait, 60*time.Second)
	if c.Tasks.MaxAttempts == 0 {
		c.Tasks.MaxAttempts = 8
	}
	def(&c.Tasks.RetryInitial, 10*time.Second)
	def(&c.Tasks.RetryMax, time.Hour)
	def(&c.Tasks.PollInterval, time.Minute)
	def(&c.Tasks.SchedulerInterval, time.Second)
	def(&c.Tasks.Timeout, 5*time.Minute)
	def(&c.NATS.TaskMaxAge, 24*time.Hour)
	def(&c.Tasks.RedispatchAfter, c.NATS.TaskMaxAge+time.Hour)
	if c.Certificates.LogOrigin == "" {
		c.Certificates.LogOrigin = "lethe.local/log"
		if u, err := url.Parse(c.PublicURL); err == nil && u.Host != "" {
			c.Certificates.LogOrigin = strings.TrimSuffix(u.Host+u.Path, "/") + "/log"
		}
	}
	def(&c.Retention.ShredAfter, 30*24*time.Hour)
	def(&c.Retention.KeepRequests, MinKeepRequests)
	def(&c.Retention.UnverifiedAfter, 72*time.Hour)
	def(&c.Retention.SweepInterval, time.Minute)
	def(&c.Discovery.Timeout, 30*time.Minute)
	if c.Portal.DefaultJurisdiction == "" {
		c.Portal.DefaultJurisdiction = "gdpr"
	}
	if c.Portal.CustomerSystem == "" {
		c.Portal.CustomerSystem = "customer"
	}
	def(&c.Portal.CodeTTL, 30*time.Minute)
	if c.Portal.CodeAttempts == 0 {
		c.Portal.CodeAttempts = 5
	}
	if c.Portal.PerAddressPerHour == 0 {
		c.Portal.PerAddressPerHour = 10
	}
	if c.Portal.PerEmailPerDay == 0 {
		c.Portal.PerEmailPerDay = 3
	}
	def(&c.Console.SessionTTL, 8*time.Hour)
	if c.SMTP.TLS == "" {
		c.SMTP.TLS = "starttls"
	}
	if c.SMTP.Port == 0 {
		c.SMTP.Port = map[string]int{"tls": 465}[c.SMTP.TLS]
		if c.SMTP.Port == 0 {
			c.SMTP.Port = 587
		}
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
}

var (
	instanceNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	sha256HexRe    = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Validate checks the config and reports every problem at once, each
// prefixed with the key it is about.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, args...)))
	}
	switch c.Store.Driver {
	case "postgres", "sqlite":
	case "":
		bad("store.driver", "is required: postgres or sqlite")
	default:
		bad("store.driver", "unknown driver %q: postgres or sqlite", c.Store.Driver)
	}
	if !c.Store.URL.IsSet() {
		bad("store.url", "is required")
	}
	if c.NATS.URL == "" {
		bad("nats.url", "is required, e.g. nats://127.0.0.1:4222")
	}
	if c.NATS.Replicas != 0 && c.NATS.Replicas != 1 && c.NATS.Replicas != 3 && c.NATS.Replicas != 5 {
		bad("nats.replicas", "must be 1, 3 or 5 (or left out: 3 in a cluster of three or more, else 1)")
	}
	if !c.Signing.Key.IsSet() {
		bad("signing.key", "is required (an Ed25519 PKCS#8 PEM key; `lethe keygen` makes one)")
	}
	if !c.Subject.HashKey.IsSet() {
		bad("subject.hash_key", "is required (32 random bytes, hex or base64)")
	}
	if o := c.Certificates.LogOrigin; strings.ContainsAny(o, " \t\n+") || !utf8.ValidString(o) {
		bad("certificates.log_origin", "must be a name without spaces or '+', e.g. lethe.example.com/log")
	}
	if c.Certificates.BackupRetention < 0 {
		bad("certificates.backup_retention", "must not be negative")
	}
	if len(c.Encryption.Keys) == 0 {
		bad("encryption.keys", "at least one key-encryption key is required (`lethe keygen` makes one)")
	}
	kekIDs := map[string]bool{}
	for i, k := range c.Encryption.Keys {
		key := fmt.Sprintf("encryption.keys[%d]", i)
		if k.ID == "" || strings.ContainsAny(k.ID, ": \t") {
			bad(key+".id", "is required, without ':' or spaces")
		} else if kekIDs[k.ID] {
			bad(key+".id", "%q is used twice", k.ID)
		}
		kekIDs[k.ID] = true
		if !k.Key.IsSet() {
			bad(key+".key", "is required")
		}
	}
	if c.Retention.KeepRequests < MinKeepRequests {
		bad("retention.keep_requests", "must be at least 17520h (24 months): CCPA requires request records to be kept that long")
	}
	if c.Retention.ShredAfter < 0 || c.Retention.ShredAfter > c.Retention.KeepRequests {
		bad("retention.shred_after", "must be between 0 and retention.keep_requests")
	}
	if c.Discovery.Interval != 0 && c.Discovery.Interval < time.Minute {
		bad("discovery.interval", "must be 0 (off) or at least 1m: discovery reads whole catalogues and samples rows")
	}
	if c.SuppressionSweep.Interval != 0 && c.SuppressionSweep.Interval < time.Second {
		bad("suppression_sweep.interval", "must be 0 (off) or at least 1s (a sweep reads the whole system: 24h suits most)")
	}
	if c.Discovery.Timeout < time.Second {
		bad("discovery.timeout", "must be at least 1s")
	}
	if c.Portal.DefaultJurisdiction != "gdpr" && c.Portal.DefaultJurisdiction != "ccpa" {
		bad("portal.default_jurisdiction", "must be gdpr or ccpa")
	}
	if c.Portal.Enabled && c.SMTP.Host == "" && !c.devMail {
		bad("smtp.host", "is required when the portal is enabled: people must receive their verification code")
	}
	if c.SMTP.Host != "" && c.SMTP.From == "" {
		bad("smtp.from", "is required with smtp.host")
	}
	switch c.SMTP.TLS {
	case "starttls", "tls", "none":
	default:
		bad("smtp.tls", "must be starttls, tls or none")
	}
	users := map[string]bool{}
	for i, u := range c.Console.Users {
		key := fmt.Sprintf("console.users[%d]", i)
		if u.Name == "" || users[u.Name] {
			bad(key+".name", "is required and must be unique")
		}
		users[u.Name] = true
		switch u.Role {
		case "admin", "agent", "auditor":
		default:
			bad(key+".role", "must be admin, agent or auditor")
		}
		if !u.PasswordHash.IsSet() {
			bad(key+".password_hash", "is required (`lethe passwd` makes one)")
		}
	}
	if c.Tasks.MaxAttempts < 1 {
		bad("tasks.max_attempts", "must be at least 1")
	}
	if c.Tasks.RedispatchAfter <= c.NATS.TaskMaxAge || c.Tasks.RedispatchAfter <= c.Tasks.Timeout+c.NATS.AckWait {
		bad("tasks.redispatch_after", "must be longer than nats.task_max_age, and than tasks.timeout plus nats.ack_wait: a message still queued must not be sent twice")
	}
	if c.Tasks.RetryMax < c.Tasks.RetryInitial {
		bad("tasks.retry_max", "must not be less than tasks.retry_initial")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be debug, info, warn or error")
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		bad("log.format", "must be json or console")
	}
	tokenNames := map[string]bool{}
	for i, t := range c.Auth.Tokens {
		key := fmt.Sprintf("auth.tokens[%d]", i)
		if t.Name == "" {
			bad(key+".name", "is required")
		} else if tokenNames[t.Name] {
			bad(key+".name", "%q is used twice", t.Name)
		}
		tokenNames[t.Name] = true
		switch t.Role {
		case "admin", "agent", "auditor":
		default:
			bad(key+".role", "must be admin, agent or auditor")
		}
		if t.Token.IsSet() == (t.SHA256 != "") {
			bad(key, "give exactly one of token and sha256")
		}
		if t.SHA256 != "" && !sha256HexRe.MatchString(t.SHA256) {
			bad(key+".sha256", "must be 64 lower-case hex digits")
		}
	}
	names := map[string]bool{}
	for i, cn := range c.Connectors {
		key := fmt.Sprintf("connectors[%d]", i)
		if !instanceNameRe.MatchString(cn.Name) {
			bad(key+".name", "must be lower-case letters, digits, '-' or '_', starting with a letter or digit")
		} else if names[cn.Name] {
			bad(key+".name", "%q is used twice", cn.Name)
		}
		names[cn.Name] = true
		if cn.Type == "" {
			bad(key+".type", "is required")
		}
		if cn.Concurrency < 0 || cn.RatePerSecond < 0 || cn.Burst < 0 || cn.MaxAttempts < 0 {
			bad(key, "concurrency, rate_per_second, burst and max_attempts must not be negative")
		}
		if h := cn.RateHeadroom; h != nil && (*h < 0 || *h > 0.5) {
			bad(key+".rate_headroom", "must be from 0 (none) to 0.5 (calls 50%% further apart than rate_per_second asks)")
		}
		for op, r := range cn.EndpointRates {
			if r.RatePerSecond <= 0 || r.Burst < 0 {
				bad(fmt.Sprintf("%s.endpoint_rates[%q]", key, op), "rate_per_second must be more than 0 (0.1 is 360 an hour) and burst not negative")
			}
		}
		if w := cn.BatchWindow; w != nil && (*w < 0 || *w > maxBatchWindow || *w*2 >= c.NATS.AckWait) {
			bad(key+".batch_window", "must be from 0s (no batches) to %s, and under half of nats.ack_wait (%s): tasks wait that long unattended", maxBatchWindow, c.NATS.AckWait)
		}
		if cn.BatchMax < 0 || cn.BatchMax == 1 {
			bad(key+".batch_max", "must be 2 or more (batch_window: 0s turns batches off)")
		}
		for j, k := range cn.Keys {
			if _, err := erasure.ParseRequirement(k); err != nil {
				bad(fmt.Sprintf("%s.keys[%d]", key, j), "%s", erasure.ErrorMessage(err))
			}
		}
		for j, k := range cn.AuthorityFor {
			if _, err := erasure.ParseKind(k); err != nil {
				bad(fmt.Sprintf("%s.authority_for[%d]", key, j), "%s", erasure.ErrorMessage(err))
			}
		}
		for j, after := range cn.RecheckAfter {
			k := fmt.Sprintf("%s.recheck_after[%d]", key, j)
			switch {
			case after < time.Second:
				bad(k, "must be at least 1s")
			case after >= c.Retention.ShredAfter:
				bad(k, "%s is not before retention.shred_after (%s): the identifiers to look the person up by are destroyed then", after, c.Retention.ShredAfter)
			case j > 0 && after <= cn.RecheckAfter[j-1]:
				bad(k, "ages must grow: %s comes after %s", after, cn.RecheckAfter[j-1])
			}
		}
		if len(cn.Optional) > 500 || strings.ContainsAny(cn.Optional, "\n\r") {
			bad(key+".optional", "a one-line reason of at most 500 characters")
		}
		if utf8.RuneCountInString(cn.DisplayName) > 80 || !utf8.ValidString(cn.DisplayName) ||
			strings.IndexFunc(cn.DisplayName, unicode.IsControl) >= 0 || (cn.DisplayName != "" && strings.TrimSpace(cn.DisplayName) == "") {
			bad(key+".display_name", "a name of at most 80 characters on one line, as people are to read it")
		}
	}
	for i, cn := range c.Connectors {
		for j, after := range cn.EraseAfter {
			k := fmt.Sprintf("connectors[%d].erase_after[%d]", i, j)
			switch {
			case after == cn.Name:
				bad(k, "an instance cannot wait for itself")
			case !names[after]:
				bad(k, "no connector named %q", after)
			}
		}
	}
	if cycle := c.eraseAfterCycle(); cycle != "" {
		bad("connectors", "erase_after goes round in a circle (%s): no erasure could ever start", cycle)
	}
	for i, k := range c.RequestIdentifiers {
		if _, err := erasure.ParseKind(k); err != nil {
			bad(fmt.Sprintf("request_identifiers[%d]", i), "%s", erasure.ErrorMessage(err))
		}
	}
	return errors.Join(errs...)
}

// eraseAfterCycle returns the instances of an erase_after cycle, as
// "a → b → a", or "".
func (c *Config) eraseAfterCycle() string {
	after := map[string][]string{}
	for _, cn := range c.Connectors {
		after[cn.Name] = cn.EraseAfter
	}
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(n string) string
	visit = func(n string) string {
		switch state[n] {
		case onPath:
			i := 0
			for path[i] != n {
				i++
			}
			return strings.Join(append(append([]string{}, path[i:]...), n), " → ")
		case done:
			return ""
		}
		state[n] = onPath
		path = append(path, n)
		for _, m := range after[n] {
			if _, ok := after[m]; !ok || m == n {
				continue // reported on its own
			}
			if cycle := visit(m); cycle != "" {
				return cycle
			}
		}
		path = path[:len(path)-1]
		state[n] = done
		return ""
	}
	for _, cn := range c.Connectors {
		if cycle := visit(cn.Name); cycle != "" {
			return cycle
		}
	}
	return ""
}

// RequestKinds lists the kinds a request may be filed with: the
// configured request_identifiers (default email and phone) and, when the
// portal asks for a customer number, its kind.
func (c *Config) RequestKinds() []erasure.Kind {
	list := c.RequestIdentifiers
	if len(list) == 0 {
		list = []string{string(erasure.Email), string(erasure.Phone)}
	}
	var out []erasure.Kind
	for _, s := range list {
		if k, err := erasure.ParseKind(s); err == nil && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	if c.Portal.Enabled && c.Portal.AskCustomerNumber {
		if k := erasure.UserIDKind(c.Portal.CustomerSystem); !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	erasure.SortKinds(out)
	return out
}

// DevMail reports whether mail is caught in-process (lethe dev).
func (c *Config) DevMail() bool { return c.devMail }
