// Package email is the connector for processors that take erasure
// requests by email only. Lethe emails the processor's privacy contact
// (naming only the identifiers the instance's config lists) with a
// one-time signed link; the processor confirms there what it erased,
// with evidence. Lethe sends reminders at the configured interval, and a
// processor that has not answered in the configured time makes the task
// need a person's attention: it is never skipped.
//
// The link opens the confirmation page at
// /processors/{name}/confirm/{token}; its form is a callback of this
// connector (Callbacker), so that a confirmation counts once, on any
// replica.
package email

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/vendorkit"
	"github.com/lethe-dev/lethe/internal/notify"
)

func init() {
	connectors.Register("email", "a processor reached by email only: asked, reminded, and confirming by a signed link",
		connectors.Limits{Concurrency: 2}, build, connectors.TakesCallbacks())
}

// Config is the `config:` block of an email instance.
//
//	processor: Acme Support Ltd
//	to: privacy@acme.example
//	public_url: https://lethe.example.com
//	link_key: {env: LETHE_PROCESSOR_LINK_KEY}
//	identifiers: [email]
//	remind_every: 168h
//	answer_within: 720h
//	smtp: {host: smtp.example.com, port: 587, username: lethe, password: {env: SMTP_PASSWORD}, from: "Example Privacy <privacy@example.com>"}
type Config struct {
	// Processor is the processor's name, in the email, on the page and
	// on the certificate.
	Processor string `yaml:"processor"`
	// To is the processor's privacy contact.
	To string `yaml:"to"`
	// PublicURL is Lethe's public address, where the link points.
	PublicURL string `yaml:"public_url"`
	// LinkKey signs the links (at least 32 bytes).
	LinkKey config.Secret `yaml:"link_key"`
	// Identifiers are the person's identifiers the email names: only
	// these are sent to the processor (default [email]). The request
	// must have each of them.
	Identifiers []string `yaml:"identifiers"`
	// Note is added to the email (a contract reference, say).
	Note string `yaml:"note"`
	// RemindEvery is how long after the request, and after each
	// reminder, another is sent (default 168h).
	RemindEvery time.Duration `yaml:"remind_every"`
	// AnswerWithin is how long the processor has; after it the task
	// needs attention (default 720h, and the link expires then).
	AnswerWithin time.Duration `yaml:"answer_within"`
	// SMTP is the mail server the requests go through.
	SMTP config.SMTP `yaml:"smtp"`

	kinds []connectors.Kind
}

const (
	defaultRemindEvery  = 7 * 24 * time.Hour
	defaultAnswerWithin = 30 * 24 * time.Hour
	maxNote             = 2000
)

// Validate checks the config, every problem at once, each naming its key.
func (c *Config) Validate() error {
	var p vendorkit.Problems
	c.Processor = strings.TrimSpace(c.Processor)
	if c.Processor == "" || len(c.Processor) > 80 || strings.ContainsFunc(c.Processor, unicode.IsControl) {
		p.Add("processor", "required: the processor's name (one line, at most 80 characters)")
	}
	if a, err := mail.ParseAddress(c.To); err != nil || a.Name != "" || a.Address != strings.TrimSpace(c.To) {
		p.Add("to", "required: the processor's privacy contact, a bare address (privacy@processor.example)")
	}
	p.BaseURL(&c.PublicURL, vendorkit.URLRule{Key: "public_url", Example: "https://lethe.example.com"})
	p.Secret("link_key", c.LinkKey, "a key of at least 32 bytes that signs the confirmation links")
	if len(c.Identifiers) == 0 {
		c.Identifiers = []string{string(connectors.Email)}
	}
	c.kinds = nil
	for i, s := range c.Identifiers {
		k, err := connectors.ParseKind(s)
		if err != nil {
			p.Add(fmt.Sprintf("identifiers[%d]", i), "%v", err)
			continue
		}
		if slices.Contains(c.kinds, k) {
			p.Add(fmt.Sprintf("identifiers[%d]", i), "%s is listed twice", k)
		}
		c.kinds = append(c.kinds, k)
	}
	if len(c.Note) > maxNote {
		p.Add("note", "at most %d characters", maxNote)
	}
	p.Interval("remind_every", &c.RemindEvery, defaultRemindEvery)
	p.Interval("answer_within", &c.AnswerWithin, defaultAnswerWithin)
	if c.RemindEvery >= c.AnswerWithin {
		p.Add("remind_every", "must be shorter than answer_within (%s), or no reminder is ever sent", c.AnswerWithin)
	}
	if c.RemindEvery < time.Hour && c.RemindEvery > 0 && !isLoopbackURL(c.PublicURL) {
		p.Add("remind_every", "at least 1h: a processor is a person reading mail")
	}
	if c.SMTP.Host == "" {
		p.Add("smtp.host", "required: the mail server that sends the requests")
	}
	if _, err := mail.ParseAddress(c.SMTP.From); err != nil {
		p.Add("smtp.from", "required: the sender, such as \"Example Privacy <privacy@example.com>\"")
	}
	return p.Err()
}

func isLoopbackURL(u string) bool {
	parsed, err := url.Parse(u)
	return err == nil && (parsed.Hostname() == "localhost" || parsed.Hostname() == "127.0.0.1" || parsed.Hostname() == "::1")
}

// Plan: the email names each configured identifier, so the request needs
// every one of them; the processor searches by them.
func (c Config) Plan(string) connectors.Plan {
	var p connectors.Plan
	for _, k := range c.kinds {
		p.Keys = append(p.Keys, connectors.Requirement{k})
		p.Uses = append(p.Uses, k)
	}
	return p
}

// mailer sends one mail; *notify.SMTP is one.
type mailer interface {
	Send(ctx context.Context, m notify.Mail) error
}

type conn struct {
	name string
	cfg  Config
	key  []byte
	mail mailer
	now  func() time.Time
}

func build(_ context.Context, name string, cfg Config, deps connectors.Deps) (connectors.Connector, error) {
	key, err := vendorkit.Reveal(deps, "link_key", cfg.LinkKey)
	if err != nil {
		return nil, err
	}
	if len(key) < 32 {
		return nil, errors.New("link_key: at least 32 bytes (openssl rand -hex 32)")
	}
	m, err := notify.NewSMTP(cfg.SMTP, deps.Logger)
	if err != nil {
		return nil, fmt.Errorf("smtp: %w", err)
	}
	return &conn{name: name, cfg: cfg, key: []byte(key), mail: m, now: time.Now}, nil
}

// ref is a task's job reference: the request's reference at the
// processor and when it was sent. No identifier of the person.
type ref struct {
	Ref  string `json:"ref"`
	Sent int64  `json:"sent"`
}

func (r ref) sent() time.Time { return time.Unix(r.Sent, 0).UTC() }

// Erase emails the processor the request with its link.
func (c *conn) Erase(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	if err := ctx.Err(); err != nil {
		return connectors.Outcome{}, err
	}
	var lines []string
	for _, k := range c.cfg.kinds {
		v := s.Get(k)
		if v == "" {
			return connectors.Outcome{}, connectors.Permanentf("the subject has no %s, which this processor's email names (check identifiers)", k)
		}
		lines = append(lines, "  "+label(k)+": "+v)
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return connectors.Outcome{}, connectors.Retryable(fmt.Errorf("email: reference: %w", err), 0)
	}
	r := ref{Ref: "LETHE-" + strings.ToUpper(hex.EncodeToString(id[:])), Sent: c.now().Unix()}
	due := r.sent().Add(c.cfg.AnswerWithin)
	text := fmt.Sprintf(`Hello %s,

Under Article 17 GDPR, a person has asked us to erase their personal data. As our processor, please erase everything you hold about the person identified by:

%s

and confirm when it is done, with what you erased, at this link (it works once, until %s):

%s

Our reference: %s.
%s
If you hold nothing about this person, say so at the same link.

Thank you.
`, c.cfg.Processor, strings.Join(lines, "\n"), due.Format("2 January 2006"), c.link(r), r.Ref, note(c.cfg.Note))
	if err := c.send(ctx, "Erasure request "+r.Ref, text); err != nil {
		return connectors.Outcome{}, err
	}
	return connectors.Running(vendorkit.EncodeRef(r), c.cfg.RemindEvery, connectors.Evidence{Kind: "email_sent",
		Value: fmt.Sprintf("request %s emailed to %s; answer asked for by %s", r.Ref, c.cfg.Processor, due.Format(time.DateOnly))}), nil
}

func note(n string) string {
	if n = strings.TrimSpace(n); n == "" {
		return ""
	}
	return "\n" + n + "\n"
}

// label is how the email names an identifier kind.
func label(k connectors.Kind) string {
	switch k {
	case connectors.Email:
		return "Email address"
	case connectors.Phone:
		return "Phone number"
	}
	return "User id (" + k.Namespace() + ")"
}

// send mails the processor; a refusal by the server is permanent, a
// temporary failure retried.
func (c *conn) send(ctx context.Context, subject, text string) error {
	err := c.mail.Send(ctx, notify.Mail{To: c.cfg.To, Subject: subject, Text: text})
	var se *notify.SendError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se) && !se.Temporary:
		return connectors.Permanentf("email to %s: the mail server refused it (%s): check smtp and to", c.cfg.Processor, se.Step)
	}
	return connectors.Retryable(fmt.Errorf("email to %s: %w", c.cfg.Processor, err), 0)
}

// Poll reminds the processor, every remind_every, until answer_within has
// passed: then the task needs a person.
func (c *conn) Poll(ctx context.Context, jobRef string) (connectors.Outcome, error) {
	var r ref
	if err := vendorkit.DecodeRef(jobRef, &r, func() bool { return r.Ref != "" && r.Sent > 0 }, "email"); err != nil {
		return connectors.Outcome{}, err
	}
	waited := c.now().Sub(r.sent())
	if waited >= c.cfg.AnswerWithin {
		return connectors.Outcome{}, connectors.Permanentf("%s has not confirmed request %s, emailed on %s, within %s: contact them, then complete the task by hand with their answer, or retry to email them again",
			c.cfg.Processor, r.Ref, r.sent().Format(time.DateOnly), words(c.cfg.AnswerWithin))
	}
	if waited < c.cfg.RemindEvery {
		return connectors.Running(jobRef, c.cfg.RemindEvery-waited), nil
	}
	due := r.sent().Add(c.cfg.AnswerWithin)
	text := fmt.Sprintf(`Hello %s,

A reminder: on %s we asked you to erase a person's personal data (our reference %s) and to confirm it at this link, which works until %s:

%s

Thank you.
`, c.cfg.Processor, r.sent().Format("2 January 2006"), r.Ref, due.Format("2 January 2006"), c.link(r))
	if err := c.send(ctx, "Reminder: erasure request "+r.Ref, text); err != nil {
		return connectors.Outcome{}, err
	}
	next := min(c.cfg.RemindEvery, c.cfg.AnswerWithin-waited)
	return connectors.Running(jobRef, next, connectors.Evidence{Kind: "email_reminder",
		Value: fmt.Sprintf("reminder for %s sent after %s", r.Ref, words(waited))}), nil
}

// words writes a duration in days, or hours below two days.
func words(d time.Duration) string {
	if d >= 48*time.Hour {
		return strconv.Itoa(int(d/(24*time.Hour))) + " days"
	}
	return connectors.Plural(int(d/time.Hour), "hour")
}

// token payload: the instance, the reference, and the job reference's
// sent time (so the callback names the task's JobRef exactly).
type claims struct {
	Name string `json:"c"`
	Ref  string `json:"r"`
	Sent int64  `json:"s"`
}

// link is the confirmation link for r.
func (c *conn) link(r ref) string {
	return c.cfg.PublicURL + "/processors/" + url.PathEscape(c.name) + "/confirm/" + c.token(r)
}

func (c *conn) token(r ref) string {
	b, _ := json.Marshal(claims{Name: c.name, Ref: r.Ref, Sent: r.Sent})
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + base64.RawURLEncoding.EncodeToString(c.mac(payload))
}

func (c *conn) mac(payload string) []byte {
	h := hmac.New(sha256.New, c.key)
	h.Write([]byte("lethe processor link v1\x00" + payload))
	return h.Sum(nil)
}

// ErrLink is a link that is not this instance's, was altered, or expired.
var ErrLink = errors.New("this confirmation link is not valid: it was altered, is for another system, or has expired")

// check reads a token: the job reference it stands for.
func (c *conn) check(token string) (ref, error) {
	payload, sig, ok := strings.Cut(token, ".")
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if !ok || err != nil || !hmac.Equal(got, c.mac(payload)) {
		return ref{}, ErrLink
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	var cl claims
	if err != nil || json.Unmarshal(b, &cl) != nil || cl.Name != c.name || cl.Ref == "" {
		return ref{}, ErrLink
	}
	r := ref{Ref: cl.Ref, Sent: cl.Sent}
	if !c.now().Before(r.sent().Add(c.cfg.AnswerWithin)) {
		return ref{}, ErrLink
	}
	return r, nil
}

// ConfirmLink checks a link's token for the confirmation page.
func (c *conn) ConfirmLink(token string) (connectors.ConfirmLink, error) {
	r, err := c.check(token)
	if err != nil {
		return connectors.ConfirmLink{}, err
	}
	return connectors.ConfirmLink{Processor: c.cfg.Processor, Reference: r.Ref, Sent: r.sent(), Expires: r.sent().Add(c.cfg.AnswerWithin)}, nil
}

// Callback reads the confirmation form: token, outcome (erased or
// not_found), records (optional) and evidence. The token signs the task;
// its digest is the callback's ID, so the link confirms once.
func (c *conn) Callback(_ context.Context, _ http.Header, body []byte) (connectors.Callback, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return connectors.Callback{}, errors.New("email: the confirmation is not a form")
	}
	token := form.Get("token")
	r, err := c.check(token)
	if err != nil {
		return connectors.Callback{}, err
	}
	evidence := cleanText(form.Get("evidence"))
	if evidence == "" {
		return connectors.Callback{}, ErrEvidence
	}
	when := c.now().UTC().Format(time.DateOnly)
	var out connectors.Outcome
	switch form.Get("outcome") {
	case "erased":
		out = connectors.ErasedUncounted()
		if n, err := strconv.ParseInt(strings.TrimSpace(form.Get("records")), 10, 64); err == nil && n > 0 {
			out = connectors.Erased(n)
		} else if strings.TrimSpace(form.Get("records")) != "" {
			return connectors.Callback{}, ErrRecords
		}
		out.Evidence = []connectors.Evidence{{Kind: "processor_confirmation", Value: fmt.Sprintf("%s confirmed erasure for %s through its signed link on %s: %s", c.cfg.Processor, r.Ref, when, evidence)}}
	case "not_found":
		out = connectors.NotFound(connectors.Evidence{Kind: "processor_confirmation",
			Value: fmt.Sprintf("%s confirmed through its signed link on %s that it holds nothing about the person of %s: %s", c.cfg.Processor, when, r.Ref, evidence)})
	default:
		return connectors.Callback{}, ErrOutcome
	}
	sum := sha256.Sum256([]byte(token))
	return connectors.Callback{JobRef: vendorkit.EncodeRef(r), Outcome: out, ID: "email:" + hex.EncodeToString(sum[:])}, nil
}

// Mistakes in a confirmation form, each said to the processor as it is.
var (
	ErrEvidence = errors.New("say what you erased (or how you searched), so that the erasure can be shown to an auditor")
	ErrRecords  = errors.New("the number of records is a whole number above 0, or left empty")
	ErrOutcome  = errors.New("choose whether you erased the person's data or held none")
)

// cleanText is the evidence as one tidy line, at most maxNote characters.
func cleanText(s string) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	if len([]rune(s)) > maxNote {
		s = string([]rune(s)[:maxNote]) + "…"
	}
	return s
}

var (
	_ connectors.Poller    = (*conn)(nil)
	_ connectors.Confirmer = (*conn)(nil)
)
