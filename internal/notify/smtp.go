package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/config"
	"go.uber.org/zap"
)

// SMTP sends mail through one submission server, one connection per mail;
// it is safe for concurrent use.
// With TLS "starttls" the server must offer STARTTLS or nothing is sent;
// "tls" speaks TLS from the first byte; "none" is only for a relay on
// this machine. Credentials are only ever sent inside TLS, and the
// server's certificate is checked against the system roots or, when
// config.SMTP.CAFile is set, against that file alone.
type SMTP struct {
	// DialTimeout bounds connecting (default 10s) and SendTimeout a whole
	// Send (default 1m); the caller's context can only shorten them. Set
	// them before the first Send.
	DialTimeout time.Duration
	SendTimeout time.Duration

	addr, host string
	mode       string
	tls        *tls.Config
	username   string
	password   string
	from       string // bare address, for MAIL FROM
	fromHeader string
	fromDomain string
	localName  string
	log        *zap.Logger
}

// NewSMTP checks cfg and reads its password and CA file. It refuses what
// would send mail or credentials in the clear to another machine.
func NewSMTP(cfg config.SMTP, log *zap.Logger) (*SMTP, error) {
	if log == nil {
		log = zap.NewNop()
	}
	mode := cfg.TLS
	if mode == "" {
		mode = "starttls"
	}
	port := cfg.Port
	if port == 0 {
		port = map[string]int{"starttls": 587, "tls": 465, "none": 25}[mode]
	}
	switch {
	case mode != "starttls" && mode != "tls" && mode != "none":
		return nil, fmt.Errorf("notify: smtp.tls must be starttls, tls or none, not %q", mode)
	case cfg.Host == "" || strings.ContainsAny(cfg.Host, " \t\r\n/"):
		return nil, errors.New("notify: smtp.host is required and must be a host name or IP address")
	case port < 1 || port > 65535:
		return nil, fmt.Errorf("notify: smtp.port %d is out of range", port)
	case mode == "none" && !isLoopback(cfg.Host):
		return nil, errors.New("notify: smtp.tls none is only allowed for a relay on this machine (localhost); use starttls or tls")
	case mode == "none" && cfg.Username != "":
		return nil, errors.New("notify: smtp.username needs TLS: credentials are never sent in the clear")
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("notify: smtp.from is not an email address: %w", err)
	}
	at := strings.LastIndexByte(from.Address, '@')
	s := &SMTP{
		DialTimeout: 10 * time.Second,
		SendTimeout: time.Minute,
		addr:        net.JoinHostPort(cfg.Host, strconv.Itoa(port)),
		host:        cfg.Host,
		mode:        mode,
		tls:         &tls.Config{ServerName: cfg.Host, MinVersion: tls.VersionTLS12},
		username:    cfg.Username,
		from:        from.Address,
		fromHeader:  from.String(),
		fromDomain:  from.Address[at+1:],
		localName:   localName(),
		log:         log.Named("smtp"),
	}
	if cfg.Username != "" {
		if s.password, err = cfg.Password.Reveal(os.Getenv); err != nil {
			return nil, fmt.Errorf("notify: smtp.password: %w", err)
		}
		if s.password == "" {
			return nil, errors.New("notify: smtp.password is required with smtp.username")
		}
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("notify: smtp.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("notify: smtp.ca_file %s holds no PEM certificate", cfg.CAFile)
		}
		s.tls.RootCAs = pool
	}
	return s, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

var hostnameRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)

// localName is what we call ourselves in EHLO.
func localName() string {
	if h, err := os.Hostname(); err == nil && hostnameRe.MatchString(h) {
		return h
	}
	return "localhost"
}

// Send delivers m. It returns once the server has accepted the message;
// a failure after that (QUIT) is ignored so that a retry cannot send the
// mail twice.
func (s *SMTP) Send(ctx context.Context, m Mail) error {
	to, err := check(m)
	if err != nil {
		return err
	}
	msg, id, err := buildMessage(s.fromHeader, s.fromDomain, to, m, time.Now())
	if err != nil {
		return err
	}
	if s.SendTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.SendTimeout)
		defer cancel()
	}
	start := time.Now()
	if err := s.deliver(ctx, to, msg); err != nil {
		return err
	}
	s.log.Debug("mail sent", zap.String("message_id", id), zap.Duration("took", time.Since(start)))
	return nil
}

// deliver runs one SMTP session. Every error it returns is a *SendError or
// wraps ErrInvalid.
func (s *SMTP) deliver(ctx context.Context, to string, msg []byte) error {
	fail := func(step string, err error) error { return classify(ctx, step, to, err) }
	d := net.Dialer{Timeout: s.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return fail("connect", err)
	}
	defer conn.Close()
	// Blocked reads and writes end when ctx does (and only then, so that
	// a timeout is reported as ctx's).
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if s.mode == "tls" {
		tc := tls.Client(conn, s.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail("tls", err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		return fail("greeting", err)
	}
	defer c.Close()
	if err := c.Hello(s.localName); err != nil {
		return fail("ehlo", err)
	}
	if s.mode == "starttls" {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			_ = c.Quit()
			return refuse("starttls", "the server does not offer STARTTLS; refusing to send without TLS")
		}
		if err := c.StartTLS(s.tls); err != nil {
			return fail("starttls", err)
		}
	}
	if s.username != "" {
		if err := s.auth(c); err != nil {
			return fail("auth", err)
		}
	}
	if err := c.Mail(s.from); err != nil {
		return fail("mail", err)
	}
	if err := c.Rcpt(to); err != nil {
		return fail("rcpt", err)
	}
	w, err := c.Data()
	if err != nil {
		return fail("data", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fail("data", err)
	}
	if err := w.Close(); err != nil {
		return fail("data", err)
	}
	// Accepted: from here on nothing may turn into a retry.
	_ = c.Quit()
	return nil
}

// auth signs in with PLAIN, or LOGIN when that is all the server offers,
// and only inside TLS.
func (s *SMTP) auth(c *smtp.Client) error {
	if _, isTLS := c.TLSConnectionState(); !isTLS {
		return refuse("auth", "the connection is not encrypted; refusing to send credentials")
	}
	ok, mechs := c.Extension("AUTH")
	if !ok {
		return refuse("auth", "the server offers no AUTH, but a username is configured")
	}
	var a smtp.Auth
	switch offered := strings.Fields(strings.ToUpper(mechs)); {
	case slices.Contains(offered, "PLAIN"):
		a = smtp.PlainAuth("", s.username, s.password, s.host)
	case slices.Contains(offered, "LOGIN"):
		a = loginAuth{user: s.username, pass: s.password}
	default:
		return refuse("auth", "the server offers neither AUTH PLAIN nor AUTH LOGIN")
	}
	return c.Auth(a)
}

// loginAuth is the AUTH LOGIN mechanism: username, then password.
type loginAuth struct{ user, pass string }

func (a loginAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if !server.TLS {
		return "", nil, errors.New("refusing AUTH LOGIN without TLS")
	}
	return "LOGIN", nil, nil
}

func (a loginAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	switch p := strings.ToLower(strings.TrimSpace(string(fromServer))); {
	case strings.HasPrefix(p, "username"):
		return []byte(a.user), nil
	case strings.HasPrefix(p, "password"):
		return []byte(a.pass), nil
	}
	return nil, errors.New("unexpected AUTH LOGIN challenge")
}

// refusal is a send we stop on our side for safety.
type refusal struct{ why string }

func (r refusal) Error() string { return r.why }

func refuse(step, why string) error { return &SendError{Step: step, err: refusal{why}} }

// classify turns what net/smtp returned into a *SendError without the
// recipient's address in it.
func classify(ctx context.Context, step, to string, err error) error {
	var (
		se   *SendError
		tp   *textproto.Error
		cert *tls.CertificateVerificationError
		rh   tls.RecordHeaderError
		ae   tls.AlertError
		ne   net.Error
	)
	switch {
	case errors.As(err, &se):
		return se
	case errors.As(err, &tp):
		return &SendError{Step: step, Code: tp.Code, Temporary: tp.Code >= 400 && tp.Code < 500,
			err: errors.New(serverText(tp.Msg, to))}
	case ctx.Err() != nil:
		return &SendError{Step: step, Temporary: true, err: ctx.Err()}
	case errors.As(err, &cert), errors.As(err, &rh), errors.As(err, &ae):
		// Not a server we can trust or talk TLS to: an operator must act.
		return &SendError{Step: step, err: err}
	case errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &SendError{Step: step, Temporary: true, err: err}
	}
	return &SendError{Step: step, err: err}
}

// serverText is a reply's text fit for a log: printable, short, and with
// the recipient blanked even where the server quotes only its local part.
func serverText(msg, to string) string {
	msg = redactAddresses(msg)
	if local, _, ok := strings.Cut(to, "@"); ok && len(local) >= 3 {
		msg = regexp.MustCompile(`(?i)`+regexp.QuoteMeta(local)).ReplaceAllString(msg, "[address]")
	}
	msg = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return ' '
		}
		return r
	}, msg)
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return msg
}
