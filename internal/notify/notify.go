// Package notify writes and sends the emails Lethe sends to data subjects:
// Compose turns a message of the i18n catalogue into a Mail, SMTP delivers
// it over a verified TLS connection, and Catcher keeps it in memory for
// `lethe dev`. Neither logs nor errors ever carry a recipient's address.
package notify

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Mail is one email to one person.
type Mail struct {
	// To is the recipient's address, e.g. "ada@example.com".
	To      string `json:"to"`
	Subject string `json:"subject"`
	// Text is the plain-text body (required); HTML the optional HTML
	// alternative of the same words.
	Text string `json:"text"`
	HTML string `json:"html"`
	// Lang is the language tag of the words, e.g. "he"; it becomes the
	// Content-Language header.
	Lang string `json:"lang"`
}

// Mailer sends one mail. A returned error never contains the address;
// IsTemporary tells whether trying again later may help.
type Mailer interface {
	Send(ctx context.Context, m Mail) error
}

// ErrInvalid reports a mail that cannot be sent as it is: no retry helps.
var ErrInvalid = errors.New("invalid mail")

// Limits on what one mail may hold.
const (
	maxAddressLen = 254 // RFC 5321 forward-path limit
	maxSubject    = 255 // characters
	maxBody       = 1 << 20
)

var langTagRe = regexp.MustCompile(`^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$`)

func invalid(why string) error { return fmt.Errorf("notify: %w: %s", ErrInvalid, why) }

// check validates m and returns the bare recipient address. Its errors
// describe the problem without repeating the address.
func check(m Mail) (string, error) {
	if strings.ContainsAny(m.To, "\r\n") || strings.ContainsAny(m.Subject, "\r\n") {
		return "", invalid("the recipient or subject contains a line break")
	}
	if len(m.To) > maxAddressLen {
		return "", invalid("the recipient address is too long")
	}
	a, err := mail.ParseAddress(m.To)
	if err != nil {
		// net/mail's message may quote parts of the input: leave it out.
		return "", invalid("the recipient is not a valid email address")
	}
	for _, r := range a.Address {
		if r < 0x21 || r == 0x7f || r == '<' || r == '>' {
			return "", invalid("the recipient address contains characters SMTP cannot carry")
		}
	}
	switch {
	case strings.TrimSpace(m.Subject) == "":
		return "", invalid("the subject is empty")
	case !utf8.ValidString(m.Subject) || strings.IndexFunc(m.Subject, unicode.IsControl) >= 0:
		return "", invalid("the subject holds control characters or invalid UTF-8")
	case utf8.RuneCountInString(m.Subject) > maxSubject:
		return "", invalid(fmt.Sprintf("the subject is longer than %d characters", maxSubject))
	case strings.TrimSpace(m.Text) == "":
		return "", invalid("the plain-text body is empty")
	case len(m.Text) > maxBody || len(m.HTML) > maxBody:
		return "", invalid(fmt.Sprintf("a body is larger than %d bytes", maxBody))
	case m.Lang != "" && !langTagRe.MatchString(m.Lang):
		return "", invalid("the language is not a language tag")
	}
	return a.Address, nil
}

// SendError is a failed delivery. Its message names the step and the
// server's reply, with every address in it blanked out.
type SendError struct {
	// Step is the SMTP stage that failed: connect, tls, greeting, ehlo,
	// starttls, auth, mail, rcpt, data.
	Step string
	// Code is the server's reply code, 0 when there was none (a network
	// error, a timeout or a refusal on our side).
	Code int
	// Temporary: a 4xx reply, a network error or a timeout.
	Temporary bool
	err       error
}

func (e *SendError) Error() string {
	msg := "notify: smtp " + e.Step + ": "
	if e.Code != 0 {
		msg += fmt.Sprintf("server replied %d: ", e.Code)
	}
	return redactAddresses(msg + e.err.Error())
}

func (e *SendError) Unwrap() error { return e.err }

// IsTemporary reports whether err is worth trying again later: a 4xx
// reply, a network error or a timeout. A 5xx reply, an invalid mail, a
// refused TLS policy or bad credentials are not.
func IsTemporary(err error) bool {
	var se *SendError
	if errors.As(err, &se) {
		return se.Temporary
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

var addressRe = regexp.MustCompile(`[^\s<>"'(),;:\[\]]+@[^\s<>"'(),;:\[\]]+`)

// redactAddresses blanks anything shaped like an email address.
func redactAddresses(s string) string { return addressRe.ReplaceAllString(s, "[address]") }
