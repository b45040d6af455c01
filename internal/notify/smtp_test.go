package notify_test

import (
	"context"
	"errors"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/internal/notify"
	"github.com/lethe-dev/lethe/internal/notify/smtptest"
	"go.uber.org/zap/zaptest"
)

const (
	recipient = "ada.lovelace@example.org"
	sender    = "Example Ltd Privacy <privacy@example.com>"
)

// setup starts a server with opts and a mailer trusting it, signed in
// with the server's credentials.
func setup(t *testing.T, opts smtptest.Options) (*notify.SMTP, *smtptest.Server) {
	t.Helper()
	srv := smtptest.Start(t, opts)
	cfg := config.SMTP{
		Host: srv.Host(), Port: srv.Port(), TLS: opts.TLS, CAFile: srv.CAFile,
		Username: opts.Username, Password: config.Secret{Value: opts.Password}, From: sender,
	}
	if cfg.TLS == "" {
		cfg.TLS = "starttls"
	}
	m, err := notify.NewSMTP(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return m, srv
}

func testMail() notify.Mail {
	return notify.Mail{
		To:      recipient,
		Subject: "אישור בקשת המחיקה שלכם",
		Text:    "שלום,\n\nYour code: 123456\n.a line that starts with a dot\nlong: " + strings.Repeat("אבג ", 60) + "\nends with spaces   \nequals = sign\n",
		HTML:    `<p dir="rtl">שלום <a href="https://lethe.example/portal/verify/x?code=123456">link</a></p>`,
		Lang:    "he",
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// assertClean fails if err's message carries any part of the recipient.
func assertClean(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	msg := strings.ToLower(err.Error())
	for _, bad := range []string{recipient, "ada.lovelace", "example.org"} {
		if strings.Contains(msg, bad) {
			t.Errorf("error %q reveals the recipient (%q)", err, bad)
		}
	}
}

func TestSTARTTLSAuthDelivers(t *testing.T) {
	t.Parallel()
	for _, mechs := range [][]string{{"PLAIN", "LOGIN"}, {"LOGIN"}} {
		t.Run(strings.Join(mechs, "+"), func(t *testing.T) {
			t.Parallel()
			m, srv := setup(t, smtptest.Options{Username: "lethe", Password: "s3cret", AuthMechanisms: mechs})
			want := testMail()
			if err := m.Send(ctxTimeout(t, 10*time.Second), want); err != nil {
				t.Fatal(err)
			}
			msgs := srv.Messages()
			if len(msgs) != 1 {
				t.Fatalf("server got %d messages", len(msgs))
			}
			got := msgs[0]
			if !got.TLS || got.Auth != "lethe" || got.From != "privacy@example.com" || !slices.Equal(got.To, []string{recipient}) {
				t.Errorf("envelope: tls=%v auth=%q from=%q to=%v", got.TLS, got.Auth, got.From, got.To)
			}
			if cmds := srv.Commands(); !slices.Equal(cmds[:3], []string{"EHLO", "STARTTLS", "EHLO"}) {
				t.Errorf("commands: %v", cmds)
			}
			p, err := got.Parse()
			if err != nil {
				t.Fatal(err)
			}
			if p.Subject != want.Subject {
				t.Errorf("subject %q, want %q", p.Subject, want.Subject)
			}
			if p.Text != want.Text {
				t.Errorf("text:\n%q\nwant\n%q", p.Text, want.Text)
			}
			if p.HTML != want.HTML {
				t.Errorf("html %q", p.HTML)
			}
			h := p.Header
			if a, err := mail.ParseAddress(h.Get("From")); err != nil || a.Address != "privacy@example.com" || a.Name != "Example Ltd Privacy" {
				t.Errorf("From %q: %v", h.Get("From"), err)
			}
			if a, err := mail.ParseAddress(h.Get("To")); err != nil || a.Address != recipient {
				t.Errorf("To %q: %v", h.Get("To"), err)
			}
			if d, err := h.Date(); err != nil || time.Since(d) > time.Minute {
				t.Errorf("Date %q: %v", h.Get("Date"), err)
			}
			if id := h.Get("Message-ID"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@example.com>") || len(id) < 30 {
				t.Errorf("Message-ID %q", id)
			}
			for k, v := range map[string]string{"MIME-Version": "1.0", "Auto-Submitted": "auto-generated", "Content-Language": "he"} {
				if h.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, h.Get(k), v)
				}
			}
			if !strings.HasPrefix(h.Get("Content-Type"), "multipart/alternative;") {
				t.Errorf("Content-Type %q", h.Get("Content-Type"))
			}
			checkLines(t, got.Data)
		})
	}
}

func TestLongHebrewSubjectIsFoldedAndDecodes(t *testing.T) {
	t.Parallel()
	m, srv := setup(t, smtptest.Options{})
	mail := testMail()
	mail.Subject = strings.Repeat("אנחנו צריכים עוד זמן ", 8) + "✓"
	mail.HTML = ""
	if err := m.Send(ctxTimeout(t, 10*time.Second), mail); err != nil {
		t.Fatal(err)
	}
	got := srv.Messages()[0]
	p, err := got.Parse()
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != mail.Subject || p.Text != mail.Text || p.HTML != "" {
		t.Errorf("subject %q text %q html %q", p.Subject, p.Text, p.HTML)
	}
	if ct := p.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("a text-only mail is %q", ct)
	}
	checkLines(t, got.Data)
	head, _, _ := strings.Cut(string(got.Data), "\r\n\r\n")
	if !strings.Contains(head, "Subject: =?utf-8?b?") || !strings.Contains(head, "?=\r\n =?utf-8?b?") {
		t.Errorf("subject not encoded and folded:\n%s", head)
	}
}

// checkLines: header lines within RFC 5322's hard limit, body lines
// within quoted-printable's 76.
func checkLines(t *testing.T, data []byte) {
	t.Helper()
	head, body, ok := strings.Cut(string(data), "\r\n\r\n")
	if !ok {
		t.Fatal("no blank line after the header")
	}
	for _, line := range strings.Split(head, "\r\n") {
		if len(line) > 998 {
			t.Errorf("header line of %d", len(line))
		}
	}
	for _, line := range strings.Split(body, "\r\n") {
		if len(line) > 76 {
			t.Errorf("body line of %d: %q", len(line), line)
		}
	}
}

func TestImplicitTLS(t *testing.T) {
	t.Parallel()
	m, srv := setup(t, smtptest.Options{TLS: "tls", Username: "u", Password: "p"})
	if err := m.Send(ctxTimeout(t, 10*time.Second), testMail()); err != nil {
		t.Fatal(err)
	}
	if msgs := srv.Messages(); len(msgs) != 1 || !msgs[0].TLS || msgs[0].Auth != "u" {
		t.Fatalf("messages: %+v", msgs)
	}
	if slices.Contains(srv.Commands(), "STARTTLS") {
		t.Error("STARTTLS inside implicit TLS")
	}
}

func TestPlainLocalRelay(t *testing.T) {
	t.Parallel()
	m, srv := setup(t, smtptest.Options{TLS: "none"})
	if err := m.Send(ctxTimeout(t, 10*time.Second), testMail()); err != nil {
		t.Fatal(err)
	}
	if msgs := srv.Messages(); len(msgs) != 1 || msgs[0].TLS {
		t.Fatalf("messages: %+v", msgs)
	}
}

// refused checks that nothing of the mail reached the server: no MAIL,
// no AUTH, no message.
func refused(t *testing.T, srv *smtptest.Server, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("sent")
	}
	t.Log(err)
	assertClean(t, err)
	if notify.IsTemporary(err) {
		t.Errorf("%v: temporary, want permanent", err)
	}
	cmds := srv.Commands()
	for _, c := range []string{"AUTH", "MAIL", "RCPT", "DATA"} {
		if slices.Contains(cmds, c) {
			t.Errorf("server saw %s: %v", c, cmds)
		}
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("server kept %d messages", n)
	}
}

func TestNoSTARTTLSIsRefused(t *testing.T) {
	t.Parallel()
	// The server speaks plain text only and even offers AUTH in it.
	srv := smtptest.Start(t, smtptest.Options{TLS: "none", Username: "u", Password: "p"})
	m, err := notify.NewSMTP(config.SMTP{Host: srv.Host(), Port: srv.Port(), TLS: "starttls", Username: "u",
		Password: config.Secret{Value: "p"}, From: sender}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	err = m.Send(ctxTimeout(t, 10*time.Second), testMail())
	refused(t, srv, err)
	if !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("error %q does not say why", err)
	}
}

func TestUntrustedCertificateIsRefused(t *testing.T) {
	t.Parallel()
	other := smtptest.Start(t, smtptest.Options{})
	for _, tc := range []struct{ name, mode, caFile string }{
		{"starttls, system roots", "starttls", ""},
		{"starttls, another CA", "starttls", other.CAFile},
		{"implicit, system roots", "tls", ""},
		{"implicit, another CA", "tls", other.CAFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := smtptest.Start(t, smtptest.Options{TLS: tc.mode, Username: "u", Password: "p"})
			m, err := notify.NewSMTP(config.SMTP{Host: srv.Host(), Port: srv.Port(), TLS: tc.mode, CAFile: tc.caFile,
				Username: "u", Password: config.Secret{Value: "p"}, From: sender}, zaptest.NewLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			err = m.Send(ctxTimeout(t, 10*time.Second), testMail())
			refused(t, srv, err)
			if !strings.Contains(err.Error(), "certificate") {
				t.Errorf("error %q does not say certificate", err)
			}
		})
	}
}

func TestCertificateForAnotherHostIsRefused(t *testing.T) {
	t.Parallel()
	// The certificate names 127.0.0.1 and localhost; reach it as 127.0.0.2.
	srv := smtptest.Start(t, smtptest.Options{})
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skip("no 127.0.0.2 on this machine:", err)
	}
	t.Cleanup(func() { ln.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	go proxy(t, ln, srv.Addr)
	p, _ := strconv.Atoi(port)
	m, err := notify.NewSMTP(config.SMTP{Host: "127.0.0.2", Port: p, CAFile: srv.CAFile, From: sender}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	refused(t, srv, m.Send(ctxTimeout(t, 10*time.Second), testMail()))
}

// proxy forwards every connection on ln to addr until ln is closed.
func proxy(t *testing.T, ln net.Listener, addr string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", addr)
		if err != nil {
			c.Close()
			return
		}
		t.Cleanup(func() { c.Close(); u.Close() })
		go func() { _, _ = copyConn(u, c) }()
		go func() { _, _ = copyConn(c, u) }()
	}
}

func copyConn(dst, src net.Conn) (int64, error) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		if err != nil {
			return n, err
		}
	}
}

func TestWrongPasswordIsPermanent(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t, smtptest.Options{Username: "lethe", Password: "right"})
	m, err := notify.NewSMTP(config.SMTP{Host: srv.Host(), Port: srv.Port(), CAFile: srv.CAFile, Username: "lethe",
		Password: config.Secret{Value: "wrong"}, From: sender}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	err = notify.Retry(ctxTimeout(t, 10*time.Second), m, testMail(), 5)
	var se *notify.SendError
	if !errors.As(err, &se) || se.Code != 535 || se.Step != "auth" || se.Temporary || notify.IsTemporary(err) {
		t.Fatalf("err = %v (%+v), want a permanent 535 at auth", err, se)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("error %q shows the password", err)
	}
	if n := countOf(srv.Commands(), "AUTH"); n != 1 {
		t.Errorf("Retry tried a permanent failure again: %d AUTH", n)
	}
	if slices.Contains(srv.Commands(), "MAIL") {
		t.Error("MAIL after a failed AUTH")
	}
}

func countOf(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}

func TestTemporaryFailureIsRetried(t *testing.T) {
	t.Parallel()
	m, srv := setup(t, smtptest.Options{TempFailRcpt: 2})
	ctx := ctxTimeout(t, 10*time.Second)

	err := m.Send(ctx, testMail())
	var se *notify.SendError
	if !errors.As(err, &se) || se.Code != 451 || se.Step != "rcpt" || !notify.IsTemporary(err) {
		t.Fatalf("err = %v, want a temporary 451 at rcpt", err)
	}
	// The server quoted the address in its reply; the error must not.
	t.Log(err)
	assertClean(t, err)
	if !strings.Contains(err.Error(), "try again later") {
		t.Errorf("error %q lost the server's words", err)
	}

	// One more 451 is left, then it works.
	if err := notify.Retry(ctx, m, testMail(), 3); err != nil {
		t.Fatal(err)
	}
	if n := countOf(srv.Commands(), "RCPT"); n != 3 {
		t.Errorf("%d RCPT, want 3", n)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("%d messages, want exactly 1", n)
	}
}

func TestRetryGivesUpAfterAttempts(t *testing.T) {
	t.Parallel()
	m, srv := setup(t, smtptest.Options{TempFailRcpt: 100})
	err := notify.Retry(ctxTimeout(t, 10*time.Second), m, testMail(), 3)
	if err == nil || !notify.IsTemporary(err) {
		t.Fatalf("err = %v, want the last temporary error", err)
	}
	assertClean(t, err)
	if n := countOf(srv.Commands(), "RCPT"); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
	// Fewer than one attempt still means one.
	before := countOf(srv.Commands(), "RCPT")
	_ = notify.Retry(ctxTimeout(t, 10*time.Second), m, testMail(), 0)
	if n := countOf(srv.Commands(), "RCPT") - before; n != 1 {
		t.Errorf("attempts 0 made %d attempts, want 1", n)
	}
}

func TestPermanentRepliesAreNotRetried(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		verb, reply, step string
		code              int
	}{
		{"RCPT", "550 5.1.1 <ada.lovelace@example.org>: no such user here (ADA.LOVELACE unknown)", "rcpt", 550},
		{"MAIL", "553 5.7.1 sender not allowed", "mail", 553},
		{"DATA", "554 5.6.0 message refused", "data", 554},
	} {
		t.Run(tc.verb, func(t *testing.T) {
			t.Parallel()
			m, srv := setup(t, smtptest.Options{Replies: map[string]string{tc.verb: tc.reply}})
			err := notify.Retry(ctxTimeout(t, 10*time.Second), m, testMail(), 4)
			var se *notify.SendError
			if !errors.As(err, &se) || se.Code != tc.code || se.Step != tc.step || notify.IsTemporary(err) {
				t.Fatalf("err = %v, want permanent %d at %s", err, tc.code, tc.step)
			}
			t.Log(err)
			assertClean(t, err)
			if n := countOf(srv.Commands(), tc.verb); n != 1 {
				t.Errorf("%s sent %d times", tc.verb, n)
			}
			if len(srv.Messages()) != 0 {
				t.Error("message kept")
			}
		})
	}
}

func TestTemporaryServerReplyIsTemporary(t *testing.T) {
	t.Parallel()
	m, _ := setup(t, smtptest.Options{Replies: map[string]string{"MAIL": "421 4.3.2 shutting down"}})
	err := m.Send(ctxTimeout(t, 10*time.Second), testMail())
	if !notify.IsTemporary(err) {
		t.Fatalf("err = %v, want temporary", err)
	}
}

func TestHangingServerHitsTheDeadline(t *testing.T) {
	t.Parallel()
	m, _ := setup(t, smtptest.Options{Hang: true})
	start := time.Now()
	err := m.Send(ctxTimeout(t, 300*time.Millisecond), testMail())
	if !errors.Is(err, context.DeadlineExceeded) || !notify.IsTemporary(err) {
		t.Fatalf("err = %v, want a temporary deadline error", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}

	// Without a deadline on ctx, SendTimeout bounds the send.
	m.SendTimeout = 200 * time.Millisecond
	start = time.Now()
	if err := m.Send(t.Context(), testMail()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}

	// Retry stops when ctx ends, saying why.
	m.SendTimeout = time.Minute
	start = time.Now()
	if err := notify.Retry(ctxTimeout(t, 300*time.Millisecond), m, testMail(), 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Retry err = %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Retry took %v", d)
	}
}

func TestConnectionRefusedIsTemporary(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close()
	m, err := notify.NewSMTP(config.SMTP{Host: "127.0.0.1", Port: addr.Port, From: sender}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	err = m.Send(ctxTimeout(t, 5*time.Second), testMail())
	var se *notify.SendError
	if !errors.As(err, &se) || se.Step != "connect" || !notify.IsTemporary(err) {
		t.Fatalf("err = %v, want temporary at connect", err)
	}
}

func TestBadMailIsRefusedBeforeConnecting(t *testing.T) {
	t.Parallel()
	m, srv := setup(t, smtptest.Options{})
	ok := testMail()
	for name, change := range map[string]func(*notify.Mail){
		"CRLF in To":          func(m *notify.Mail) { m.To = recipient + "\r\nBcc: victim@example.net" },
		"LF in To":            func(m *notify.Mail) { m.To = recipient + "\nBcc: victim@example.net" },
		"CR in Subject":       func(m *notify.Mail) { m.Subject = "Hi\rBcc: victim@example.net" },
		"LF in Subject":       func(m *notify.Mail) { m.Subject = "Hi\nBcc: victim@example.net" },
		"two recipients":      func(m *notify.Mail) { m.To = recipient + ", victim@example.net" },
		"not an address":      func(m *notify.Mail) { m.To = "ada.lovelace at example.org" },
		"empty To":            func(m *notify.Mail) { m.To = "" },
		"angle in quoted":     func(m *notify.Mail) { m.To = `"ada>lovelace"@example.org` },
		"too long To":         func(m *notify.Mail) { m.To = strings.Repeat("a", 250) + "@example.org" },
		"empty Subject":       func(m *notify.Mail) { m.Subject = " " },
		"control in Subject":  func(m *notify.Mail) { m.Subject = "Hi\x00there" },
		"too long Subject":    func(m *notify.Mail) { m.Subject = strings.Repeat("א", 256) },
		"empty Text":          func(m *notify.Mail) { m.Text = "\n" },
		"too large Text":      func(m *notify.Mail) { m.Text = strings.Repeat("x", 1<<20+1) },
		"too large HTML":      func(m *notify.Mail) { m.HTML = strings.Repeat("x", 1<<20+1) },
		"header in Lang":      func(m *notify.Mail) { m.Lang = "he\r\nBcc: victim@example.net" },
		"not a language tag":  func(m *notify.Mail) { m.Lang = "he il" },
		"display name + CRLF": func(m *notify.Mail) { m.To = "Ada\r\n <" + recipient + ">" },
	} {
		t.Run(name, func(t *testing.T) {
			bad := ok
			change(&bad)
			err := m.Send(t.Context(), bad)
			if !errors.Is(err, notify.ErrInvalid) || notify.IsTemporary(err) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			assertClean(t, err)
			if strings.Contains(err.Error(), "victim") {
				t.Errorf("error %q repeats the input", err)
			}
		})
	}
	if cmds := srv.Commands(); len(cmds) != 0 {
		t.Errorf("the server was contacted: %v", cmds)
	}
	// Limits are inclusive.
	edge := ok
	edge.Subject = strings.Repeat("א", 255)
	edge.To = strings.Repeat("a", 64) + "@example.org"
	if err := m.Send(ctxTimeout(t, 10*time.Second), edge); err != nil {
		t.Fatalf("a mail at the limits: %v", err)
	}
}

func TestNewSMTPRefusesBadConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := config.SMTP{Host: "smtp.example.com", Port: 587, TLS: "starttls", Username: "u", Password: config.Secret{Value: "p"}, From: sender}
	for name, tc := range map[string]struct {
		change func(*config.SMTP)
		want   string
	}{
		"unknown tls":               {func(c *config.SMTP) { c.TLS = "ssl" }, "smtp.tls"},
		"no host":                   {func(c *config.SMTP) { c.Host = "" }, "smtp.host"},
		"host with a space":         {func(c *config.SMTP) { c.Host = "smtp example" }, "smtp.host"},
		"port out of range":         {func(c *config.SMTP) { c.Port = 70000 }, "smtp.port"},
		"no from":                   {func(c *config.SMTP) { c.From = "" }, "smtp.from"},
		"from not an address":       {func(c *config.SMTP) { c.From = "privacy team" }, "smtp.from"},
		"plain to a remote host":    {func(c *config.SMTP) { c.TLS = "none"; c.Username = "" }, "localhost"},
		"plain with credentials":    {func(c *config.SMTP) { c.TLS = "none"; c.Host = "localhost" }, "clear"},
		"username without password": {func(c *config.SMTP) { c.Password = config.Secret{} }, "smtp.password"},
		"password file missing":     {func(c *config.SMTP) { c.Password = config.Secret{File: filepath.Join(dir, "nope")} }, "smtp.password"},
		"ca file missing":           {func(c *config.SMTP) { c.CAFile = filepath.Join(dir, "nope.pem") }, "smtp.ca_file"},
		"ca file not PEM":           {func(c *config.SMTP) { c.CAFile = notPEM }, "smtp.ca_file"},
	} {
		t.Run(name, func(t *testing.T) {
			c := good
			tc.change(&c)
			_, err := notify.NewSMTP(c, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one about %s", err, tc.want)
			}
		})
	}
	if _, err := notify.NewSMTP(good, nil); err != nil {
		t.Fatalf("good config: %v", err)
	}
}

func TestPasswordFromFile(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t, smtptest.Options{TLS: "tls", Username: "lethe", Password: "from-a-file"})
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := notify.NewSMTP(config.SMTP{Host: srv.Host(), Port: srv.Port(), TLS: "tls", CAFile: srv.CAFile,
		Username: "lethe", Password: config.Secret{File: pw}, From: sender}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Send(ctxTimeout(t, 10*time.Second), testMail()); err != nil {
		t.Fatal(err)
	}
}
