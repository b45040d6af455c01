package notify

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/i18n"
)

// Kind is which email to write; its messages are email.<kind>.subject and
// email.<kind>.body in the i18n catalogue.
type Kind string

// The emails a data subject receives.
const (
	KindVerify   Kind = "verify"   // the code that proves the address: {code} {link} {minutes} {status}
	KindReceived Kind = "received" // the request is confirmed and started: {due} {status}
	// KindAwaitingApproval: confirmed, and staff review it before it
	// starts: {due} {status}.
	KindAwaitingApproval Kind = "awaiting_approval"
	// KindApproved: staff approved it and it started: {due} {status}.
	KindApproved  Kind = "approved"
	KindCompleted Kind = "completed" // the data is erased: {certificate} {proof} {status}
	KindExtended  Kind = "extended"  // the deadline moved: {due} {reason} {status}
	KindDenied    Kind = "denied"    // the request is refused: {reason}
)

// Kinds lists every Kind.
func Kinds() []Kind {
	return []Kind{KindVerify, KindReceived, KindAwaitingApproval, KindApproved, KindCompleted, KindExtended, KindDenied}
}

// Data fills the placeholders of an email. Every placeholder a kind's
// messages use must be set; the others are ignored.
type Data struct {
	Org string
	// Code is the verification code; Link confirms it in one click.
	Code string
	Link string
	// Status is the person's private status page.
	Status string
	// Certificate links to the erasure certificate; Proof is the code
	// that ties it to the person's address.
	Certificate string
	Proof       string
	// Reason is staff's words for an extension or a denial.
	Reason string
	// Minutes the code works for.
	Minutes int
	// Due is the deadline, written as a date in the email's language.
	Due time.Time
}

// placeholderRe matches {name} as the i18n files write placeholders.
var placeholderRe = regexp.MustCompile(`\{([a-z]+)\}`)

// linkPlaceholders are URLs: checked, and clickable in the HTML part.
var linkPlaceholders = map[string]bool{"link": true, "status": true, "certificate": true}

// Compose writes the email of kind to to in b's language: a plain-text
// part and an HTML part of the same words, escaped, with the links
// clickable. Placeholder values are inserted as they are, never read as
// placeholders or markup themselves.
//
//	m, err := notify.Compose(catalog.Get("he"), notify.KindReceived, "ada@example.com",
//		notify.Data{Org: "Example Ltd", Due: due, Status: statusURL})
func Compose(b *i18n.Bundle, kind Kind, to string, data Data) (Mail, error) {
	if b == nil {
		return Mail{}, errors.New("notify: compose: no language bundle")
	}
	values, err := data.values(b)
	if err != nil {
		return Mail{}, fmt.Errorf("notify: compose %s: %w", kind, err)
	}
	msg := func(key string) ([]segment, error) {
		tmpl := b.T(key)
		if tmpl == key {
			return nil, fmt.Errorf("notify: compose %s: no message %s", kind, key)
		}
		segs, err := fill(tmpl, values)
		if err != nil {
			return nil, fmt.Errorf("notify: compose %s: %s: %w", kind, key, err)
		}
		return segs, nil
	}
	prefix := "email." + string(kind)
	subject, err := msg(prefix + ".subject")
	if err != nil {
		return Mail{}, err
	}
	body, err := msg(prefix + ".body")
	if err != nil {
		return Mail{}, err
	}
	signoff, err := msg("email.signoff")
	if err != nil {
		return Mail{}, err
	}
	m := Mail{
		To:      to,
		Subject: strings.Join(strings.Fields(plain(subject)), " "),
		Text:    strings.TrimRight(plain(body), "\n") + "\n\n" + plain(signoff) + "\n",
		Lang:    b.Code,
	}
	dir := "ltr"
	if b.Dir == "rtl" {
		dir = "rtl"
	}
	var buf bytes.Buffer
	err = emailHTML.Execute(&buf, struct {
		Lang, Dir, Subject string
		Paras              []paragraph
	}{b.Code, dir, m.Subject, layout(append(append(body, segment{Text: "\n\n"}), signoff...))})
	if err != nil {
		return Mail{}, fmt.Errorf("notify: compose %s: %w", kind, err)
	}
	m.HTML = buf.String()
	if _, err := check(m); err != nil {
		return Mail{}, fmt.Errorf("notify: compose %s: %w", kind, err)
	}
	return m, nil
}

// values maps placeholder names to what replaces them; an unset value is
// left out, so a message that needs it fails.
func (d Data) values(b *i18n.Bundle) (map[string]string, error) {
	v := map[string]string{}
	for name, val := range map[string]string{
		"org": d.Org, "code": d.Code, "link": d.Link, "status": d.Status,
		"certificate": d.Certificate, "proof": d.Proof, "reason": d.Reason,
	} {
		if val = strings.TrimSpace(val); val == "" {
			continue
		}
		if linkPlaceholders[name] {
			if u, err := url.Parse(val); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.ContainsAny(val, " \t\r\n") {
				// The value may hold a secret token: name the field only.
				return nil, fmt.Errorf("{%s} is not an absolute http(s) URL", name)
			}
		}
		v[name] = val
	}
	if d.Minutes > 0 {
		v["minutes"] = strconv.Itoa(d.Minutes)
	}
	if !d.Due.IsZero() {
		v["due"] = FormatDate(b, d.Due)
	}
	return v, nil
}

// segment is a run of an email's words: plain text, a link, or a code to
// stand out. A "\n" in Text breaks the line.
type segment struct {
	Text   string
	URL    string
	Strong bool
}

// fill splits tmpl into literal text and placeholder values, in one pass:
// a value is never searched for placeholders.
func fill(tmpl string, values map[string]string) ([]segment, error) {
	var segs []segment
	var missing []string
	last := 0
	for _, loc := range placeholderRe.FindAllStringSubmatchIndex(tmpl, -1) {
		segs = append(segs, segment{Text: tmpl[last:loc[0]]})
		last = loc[1]
		name := tmpl[loc[2]:loc[3]]
		val, ok := values[name]
		if !ok {
			missing = append(missing, "{"+name+"}")
			continue
		}
		s := segment{Text: val, Strong: name == "code" || name == "proof"}
		if linkPlaceholders[name] {
			s.URL = val
		}
		segs = append(segs, s)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no value for %s", strings.Join(missing, ", "))
	}
	return append(segs, segment{Text: tmpl[last:]}), nil
}

func plain(segs []segment) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteString(s.Text)
	}
	return b.String()
}

// paragraph is lines of segments.
type paragraph [][]segment

// layout cuts segments into paragraphs at blank lines and into lines at
// single line breaks.
func layout(segs []segment) []paragraph {
	var (
		paras  []paragraph
		para   paragraph
		line   []segment
		breaks int
	)
	add := func(s segment) {
		if s.Text == "" {
			return
		}
		if breaks > 0 && (len(line) > 0 || len(para) > 0) {
			para = append(para, line)
			line = nil
			if breaks > 1 {
				paras = append(paras, para)
				para = nil
			}
		}
		breaks = 0
		line = append(line, s)
	}
	for _, s := range segs {
		for i, part := range strings.Split(s.Text, "\n") {
			if i > 0 {
				breaks++
			}
			s.Text = part
			add(s)
		}
	}
	if len(line) > 0 {
		para = append(para, line)
	}
	if len(para) > 0 {
		paras = append(paras, para)
	}
	return paras
}

// emailHTML is the HTML part: inline styles only, as mail clients drop
// style sheets. html/template escapes every value.
var emailHTML = template.Must(template.New("email").Parse(`<!DOCTYPE html>
<html lang="{{.Lang}}" dir="{{.Dir}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Subject}}</title>
</head>
<body dir="{{.Dir}}" style="margin:0;padding:24px;background:#ffffff;color:#1a1a1a;font-family:Arial,Helvetica,sans-serif;font-size:16px;line-height:1.5">
<div style="max-width:600px">
{{range .Paras}}<p style="margin:0 0 16px">{{range $i, $line := .}}{{if $i}}<br>
{{end}}{{range $line}}{{if .URL}}<a href="{{.URL}}" dir="ltr" style="color:#0b57d0;word-break:break-all">{{.Text}}</a>{{else if .Strong}}<strong dir="ltr" style="font-size:20px;letter-spacing:2px">{{.Text}}</strong>{{else}}{{.Text}}{{end}}{{end}}{{end}}</p>
{{end}}</div>
</body>
</html>
`))

// FormatDate writes t's day (in UTC) as the language writes dates, e.g.
// "2 January 2027" or "2 בינואר 2027", from the date.format and
// date.month.N messages; ISO 8601 if the language has none.
func FormatDate(b *i18n.Bundle, t time.Time) string {
	t = t.UTC()
	month := "date.month." + strconv.Itoa(int(t.Month()))
	format, name := b.T("date.format"), b.T(month)
	if format == "date.format" || name == month {
		return t.Format(time.DateOnly)
	}
	return b.T("date.format", "day", strconv.Itoa(t.Day()), "month", name, "year", strconv.Itoa(t.Year()))
}
