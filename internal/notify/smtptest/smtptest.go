// Package smtptest runs a small real SMTP server on 127.0.0.1 for tests:
// STARTTLS or implicit TLS with a fresh self-signed certificate, AUTH
// PLAIN and LOGIN, and failures on demand. It records every command verb
// and every message it accepts.
//
//	srv := smtptest.Start(t, smtptest.Options{Username: "lethe", Password: "pw"})
//	cfg := config.SMTP{Host: srv.Host(), Port: srv.Port(), CAFile: srv.CAFile, …}
//	… send …
//	msg := srv.Messages()[0]
package smtptest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options shape the server.
type Options struct {
	// TLS is "starttls" (the default: STARTTLS offered), "tls" (TLS from
	// the first byte) or "none" (plain text, STARTTLS not offered).
	TLS string
	// Username and Password, when Username is set, make AUTH PLAIN and
	// LOGIN required before MAIL. AUTH is offered even without TLS, as a
	// careless server would: the client must be the one to refuse.
	Username, Password string
	// AuthMechanisms offered (default PLAIN and LOGIN).
	AuthMechanisms []string
	// TempFailRcpt: the first N RCPT commands get 451.
	TempFailRcpt int
	// Replies replace the server's answer to a command verb ("MAIL",
	// "RCPT", "DATA", …) with a fixed reply line, e.g. "554 5.7.1 no".
	// For DATA the reply comes after the message, which is not kept.
	Replies map[string]string
	// Hang accepts connections and then says nothing, ever.
	Hang bool
}

// Received is one accepted message.
type Received struct {
	From string
	To   []string
	// Data is the message as sent, dot-unstuffed, CRLF line ends.
	Data []byte
	// TLS tells whether the session was encrypted, Auth who signed in.
	TLS  bool
	Auth string
}

// Parsed is a message taken apart: headers, the decoded subject and the
// decoded text and HTML parts.
type Parsed struct {
	Header  mail.Header
	Subject string
	Text    string
	HTML    string
}

// Parse decodes the message: RFC 2047 subject, multipart/alternative or
// single part, quoted-printable or not.
func (r Received) Parse() (Parsed, error) {
	m, err := mail.ReadMessage(bytes.NewReader(r.Data))
	if err != nil {
		return Parsed{}, err
	}
	p := Parsed{Header: m.Header}
	if p.Subject, err = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject")); err != nil {
		return Parsed{}, fmt.Errorf("subject: %w", err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		return Parsed{}, fmt.Errorf("content-type: %w", err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		body, err := decodePart(m.Header.Get("Content-Transfer-Encoding"), m.Body)
		if err != nil {
			return Parsed{}, err
		}
		p.setPart(mt, body)
		return p, nil
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			return p, nil
		}
		if err != nil {
			return Parsed{}, fmt.Errorf("multipart: %w", err)
		}
		pt, _, err := mime.ParseMediaType(part.Header.Get("Content-Type"))
		if err != nil {
			return Parsed{}, fmt.Errorf("part content-type: %w", err)
		}
		body, err := decodePart(part.Header.Get("Content-Transfer-Encoding"), part)
		if err != nil {
			return Parsed{}, err
		}
		p.setPart(pt, body)
	}
}

func (p *Parsed) setPart(mediaType, body string) {
	switch mediaType {
	case "text/plain":
		p.Text = body
	case "text/html":
		p.HTML = body
	}
}

func decodePart(cte string, r io.Reader) (string, error) {
	if strings.EqualFold(cte, "quoted-printable") {
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return "", fmt.Errorf("body: %w", err)
	}
	return strings.ReplaceAll(string(b), "\r\n", "\n"), nil
}

// Server is a running test server; it stops when the test ends.
type Server struct {
	// Addr is host:port; CAFile a PEM file of the certificate to trust.
	Addr   string
	CAFile string

	opts Options
	tls  *tls.Config
	ln   net.Listener
	done chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	conns    map[net.Conn]bool
	messages []Received
	commands []string
	rcpts    int
}

// Start runs a server on 127.0.0.1 on a free port.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.TLS == "" {
		opts.TLS = "starttls"
	}
	if len(opts.AuthMechanisms) == 0 {
		opts.AuthMechanisms = []string{"PLAIN", "LOGIN"}
	}
	if opts.TLS != "starttls" && opts.TLS != "tls" && opts.TLS != "none" {
		t.Fatalf("smtptest: TLS must be starttls, tls or none, not %q", opts.TLS)
	}
	cert, certPEM, err := selfSigned()
	if err != nil {
		t.Fatalf("smtptest: certificate: %v", err)
	}
	s := &Server{
		CAFile: filepath.Join(t.TempDir(), "smtptest-ca.pem"),
		opts:   opts,
		tls:    &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		done:   make(chan struct{}),
		conns:  map[net.Conn]bool{},
	}
	if err := os.WriteFile(s.CAFile, certPEM, 0o600); err != nil {
		t.Fatalf("smtptest: %v", err)
	}
	if s.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatalf("smtptest: %v", err)
	}
	s.Addr = s.ln.Addr().String()
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.Close)
	return s
}

// Host is the server's IP address, Port its port.
func (s *Server) Host() string { h, _, _ := net.SplitHostPort(s.Addr); return h }

// Port is the server's TCP port.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr)
	n, _ := strconv.Atoi(p)
	return n
}

// Messages returns the accepted messages, oldest first.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.messages...)
}

// Commands returns the verb of every command received, in order, e.g.
// EHLO, STARTTLS, EHLO, AUTH, MAIL, RCPT, DATA, QUIT.
func (s *Server) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...)
}

// Close stops the server and ends its sessions.
func (s *Server) Close() {
	select {
	case <-s.done:
		return
	default:
	}
	close(s.done)
	_ = s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		select {
		case <-s.done:
			s.mu.Unlock()
			_ = c.Close()
			return
		default:
		}
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				_ = c.Close()
			}()
			s.session(c)
		}()
	}
}

// session is one SMTP conversation.
type session struct {
	s       *Server
	conn    net.Conn
	text    *textproto.Conn
	tls     bool
	helo    bool
	authed  string
	from    string
	to      []string
	hasFrom bool
}

func (s *Server) session(c net.Conn) {
	if s.opts.Hang {
		<-s.done
		return
	}
	// A stuck client must not keep a test waiting forever.
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	ss := &session{s: s, conn: c}
	if s.opts.TLS == "tls" {
		tc := tls.Server(c, s.tls)
		if err := tc.Handshake(); err != nil {
			return
		}
		ss.conn, ss.tls = tc, true
	}
	ss.text = textproto.NewConn(ss.conn)
	ss.reply("220 smtptest ESMTP ready")
	for {
		line, err := ss.text.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		s.mu.Lock()
		s.commands = append(s.commands, verb)
		s.mu.Unlock()
		if r, ok := s.opts.Replies[verb]; ok && verb != "DATA" {
			ss.reply(r)
			continue
		}
		if !ss.handle(verb, arg) {
			return
		}
	}
}

func (ss *session) reply(line string) { _ = ss.text.PrintfLine("%s", line) }

// handle answers one command; false ends the session.
func (ss *session) handle(verb, arg string) bool {
	s := ss.s
	switch verb {
	case "EHLO":
		ss.helo = true
		ss.reset()
		lines := []string{"smtptest greets " + arg, "8BITMIME", "SIZE 10485760"}
		if s.opts.TLS == "starttls" && !ss.tls {
			lines = append(lines, "STARTTLS")
		}
		if s.opts.Username != "" {
			lines = append(lines, "AUTH "+strings.Join(s.opts.AuthMechanisms, " "))
		}
		for i, l := range lines {
			sep := "-"
			if i == len(lines)-1 {
				sep = " "
			}
			ss.reply("250" + sep + l)
		}
	case "HELO":
		ss.helo = true
		ss.reset()
		ss.reply("250 smtptest")
	case "STARTTLS":
		if s.opts.TLS != "starttls" || ss.tls {
			ss.reply("502 5.5.1 STARTTLS not available")
			return true
		}
		ss.reply("220 2.0.0 ready to start TLS")
		tc := tls.Server(ss.conn, s.tls)
		if err := tc.Handshake(); err != nil {
			return false
		}
		ss.conn, ss.tls, ss.helo = tc, true, false
		ss.text = textproto.NewConn(tc)
		ss.reset()
	case "AUTH":
		return ss.auth(arg)
	case "MAIL":
		switch {
		case !ss.helo:
			ss.reply("503 5.5.1 EHLO first")
		case s.opts.Username != "" && ss.authed == "":
			ss.reply("530 5.7.0 authentication required")
		case !strings.HasPrefix(strings.ToUpper(arg), "FROM:"):
			ss.reply("501 5.5.4 syntax: MAIL FROM:<address>")
		default:
			ss.reset()
			ss.from, ss.hasFrom = path(arg[5:]), true
			ss.reply("250 2.1.0 ok")
		}
	case "RCPT":
		switch {
		case !ss.hasFrom:
			ss.reply("503 5.5.1 MAIL first")
		case !strings.HasPrefix(strings.ToUpper(arg), "TO:"):
			ss.reply("501 5.5.4 syntax: RCPT TO:<address>")
		default:
			to := path(arg[3:])
			s.mu.Lock()
			s.rcpts++
			n := s.rcpts
			s.mu.Unlock()
			if n <= s.opts.TempFailRcpt {
				// Quote the address, as real servers do: clients must
				// keep it out of their errors.
				ss.reply("451 4.3.0 <" + to + ">: try again later")
				return true
			}
			ss.to = append(ss.to, to)
			ss.reply("250 2.1.5 ok")
		}
	case "DATA":
		if len(ss.to) == 0 {
			ss.reply("503 5.5.1 RCPT first")
			return true
		}
		ss.reply("354 end with <CRLF>.<CRLF>")
		data, err := io.ReadAll(io.LimitReader(ss.text.DotReader(), 10<<20+1))
		if err != nil {
			return false
		}
		if r, ok := s.opts.Replies["DATA"]; ok {
			ss.reset()
			ss.reply(r)
			return true
		}
		if len(data) > 10<<20 {
			ss.reset()
			ss.reply("552 5.3.4 message too big")
			return true
		}
		// DotReader turns CRLF into LF; keep the wire form.
		data = bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n"))
		s.mu.Lock()
		s.messages = append(s.messages, Received{From: ss.from, To: ss.to, Data: data, TLS: ss.tls, Auth: ss.authed})
		n := len(s.messages)
		s.mu.Unlock()
		ss.reset()
		ss.reply(fmt.Sprintf("250 2.0.0 ok: queued as %d", n))
	case "RSET":
		ss.reset()
		ss.reply("250 2.0.0 ok")
	case "NOOP":
		ss.reply("250 2.0.0 ok")
	case "QUIT":
		ss.reply("221 2.0.0 bye")
		return false
	default:
		ss.reply("502 5.5.2 command not recognised")
	}
	return true
}

func (ss *session) reset() { ss.from, ss.to, ss.hasFrom = "", nil, false }

// path takes the address out of "<a@b> PARAMS".
func path(arg string) string {
	arg = strings.TrimSpace(arg)
	if strings.HasPrefix(arg, "<") {
		if end := strings.IndexByte(arg, '>'); end > 0 {
			return arg[1:end]
		}
	}
	addr, _, _ := strings.Cut(arg, " ")
	return addr
}

// auth runs AUTH PLAIN or AUTH LOGIN.
func (ss *session) auth(arg string) bool {
	s := ss.s
	mech, initial, _ := strings.Cut(arg, " ")
	if s.opts.Username == "" {
		ss.reply("502 5.5.1 AUTH not available")
		return true
	}
	if ss.authed != "" {
		ss.reply("503 5.5.1 already authenticated")
		return true
	}
	read := func(challenge string) (string, bool) {
		ss.reply("334 " + challenge)
		line, err := ss.text.ReadLine()
		if err != nil || line == "*" {
			return "", false
		}
		b, err := base64.StdEncoding.DecodeString(line)
		return string(b), err == nil
	}
	mech = strings.ToUpper(mech)
	if !slices.Contains(s.opts.AuthMechanisms, mech) {
		ss.reply("504 5.5.4 unrecognised authentication type")
		return true
	}
	var user, pass string
	switch mech {
	case "PLAIN":
		resp := initial
		if resp == "" {
			r, ok := read("")
			if !ok {
				ss.reply("501 5.5.2 cancelled")
				return true
			}
			resp = base64.StdEncoding.EncodeToString([]byte(r))
		}
		b, err := base64.StdEncoding.DecodeString(resp)
		parts := strings.Split(string(b), "\x00")
		if err != nil || len(parts) != 3 {
			ss.reply("501 5.5.2 malformed AUTH PLAIN")
			return true
		}
		user, pass = parts[1], parts[2]
	case "LOGIN":
		var ok1, ok2 bool
		user, ok1 = read(base64.StdEncoding.EncodeToString([]byte("Username:")))
		if ok1 {
			pass, ok2 = read(base64.StdEncoding.EncodeToString([]byte("Password:")))
		}
		if !ok1 || !ok2 {
			ss.reply("501 5.5.2 cancelled")
			return true
		}
	default:
		ss.reply("504 5.5.4 unrecognised authentication type")
		return true
	}
	if user != s.opts.Username || pass != s.opts.Password {
		ss.reply("535 5.7.8 authentication credentials invalid")
		return true
	}
	ss.authed = user
	ss.reply("235 2.7.0 authentication successful")
	return true
}

// selfSigned makes a certificate for 127.0.0.1, ::1 and localhost that
// is its own CA.
func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "smtptest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
