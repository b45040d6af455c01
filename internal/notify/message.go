package notify

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
)

// buildMessage writes m as an RFC 5322 message: UTF-8 quoted-printable
// text, with the HTML as a multipart/alternative when there is one. It
// returns the message and its Message-ID.
func buildMessage(fromHeader, fromDomain, to string, m Mail, now time.Time) ([]byte, string, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, "", fmt.Errorf("notify: message id: %w", err)
	}
	msgID := "<" + hex.EncodeToString(id[:]) + "@" + fromDomain + ">"

	var b bytes.Buffer
	header := func(name, value string) { b.WriteString(name + ": " + value + "\r\n") }
	header("From", fromHeader)
	header("To", (&mail.Address{Address: to}).String())
	header("Subject", encodeHeader(m.Subject))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", msgID)
	header("MIME-Version", "1.0")
	header("Auto-Submitted", "auto-generated")
	if m.Lang != "" {
		header("Content-Language", m.Lang)
	}

	text := normalise(m.Text)
	if m.HTML == "" {
		header("Content-Type", `text/plain; charset="utf-8"`)
		header("Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		if err := writeQP(&b, text); err != nil {
			return nil, "", err
		}
		return b.Bytes(), msgID, nil
	}
	mw := multipart.NewWriter(&b)
	// The boundary is hex, a token that needs no quotes.
	header("Content-Type", "multipart/alternative;\r\n boundary="+mw.Boundary())
	b.WriteString("\r\n")
	for _, p := range []struct{ typ, body string }{
		{"text/plain", text},
		{"text/html", normalise(m.HTML)},
	} {
		pw, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {p.typ + `; charset="utf-8"`},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, "", fmt.Errorf("notify: build message: %w", err)
		}
		if err := writeQP(pw, p.body); err != nil {
			return nil, "", err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, "", fmt.Errorf("notify: build message: %w", err)
	}
	return b.Bytes(), msgID, nil
}

func writeQP(w interface{ Write([]byte) (int, error) }, s string) error {
	qp := quotedprintable.NewWriter(w)
	if _, err := qp.Write([]byte(s)); err != nil {
		return fmt.Errorf("notify: encode body: %w", err)
	}
	if err := qp.Close(); err != nil {
		return fmt.Errorf("notify: encode body: %w", err)
	}
	return nil
}

// normalise makes line ends \n (quoted-printable turns them into CRLF)
// and invalid UTF-8 into U+FFFD.
func normalise(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.ToValidUTF8(s, "\uFFFD")
}

// encodeHeader RFC 2047-encodes a non-ASCII value, one encoded-word per
// folded line so that no line grows past the limit.
func encodeHeader(v string) string {
	enc := mime.BEncoding.Encode("utf-8", v)
	if enc == v {
		return v
	}
	return strings.ReplaceAll(enc, " ", "\r\n ")
}
