package notify_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/i18n"
	"github.com/lethe-dev/lethe/internal/notify"
	"github.com/lethe-dev/lethe/internal/notify/smtptest"
)

func catalog(t *testing.T) *i18n.Catalog {
	t.Helper()
	c, err := i18n.Load()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func fullData() notify.Data {
	return notify.Data{
		Org:         "Example Ltd",
		Code:        "482913",
		Link:        "https://privacy.example.com/portal/verify/r1.sig?code=482913",
		Status:      "https://privacy.example.com/portal/status/r1.sig2",
		Certificate: "https://privacy.example.com/audit?certificate=c-1",
		Proof:       "pR00f-c0de",
		Reason:      "The request covers archived systems.",
		Minutes:     30,
		Due:         time.Date(2027, 1, 2, 12, 0, 0, 0, time.UTC),
	}
}

// placeholdersOf lists the {names} the kind's English messages use.
func placeholdersOf(c *i18n.Catalog, kind notify.Kind) []string {
	en := c.Get("en")
	all := en.Messages["email."+string(kind)+".subject"] + en.Messages["email."+string(kind)+".body"] + en.Messages["email.signoff"]
	var names []string
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`\{([a-z]+)\}`).FindAllStringSubmatch(all, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			names = append(names, m[1])
		}
	}
	return names
}

func TestComposeEveryKindInEveryLanguage(t *testing.T) {
	t.Parallel()
	c := catalog(t)
	d := fullData()
	shown := map[string]string{
		"org": d.Org, "code": d.Code, "link": d.Link, "status": d.Status, "certificate": d.Certificate,
		"proof": d.Proof, "reason": d.Reason, "minutes": "30",
	}
	dates := map[string]string{"en": "2 January 2027", "he": "2 בינואר 2027"}
	for _, b := range c.All() {
		for _, kind := range notify.Kinds() {
			t.Run(b.Code+"/"+string(kind), func(t *testing.T) {
				m, err := notify.Compose(b, kind, recipient, d)
				if err != nil {
					t.Fatal(err)
				}
				if m.To != recipient || m.Lang != b.Code || m.Subject == "" {
					t.Errorf("mail %+v", m)
				}
				for part, s := range map[string]string{"subject": m.Subject, "text": m.Text, "html": m.HTML} {
					if strings.ContainsAny(s, "{}") {
						t.Errorf("%s keeps a placeholder: %q", part, s)
					}
				}
				if !strings.Contains(m.HTML, `<html lang="`+b.Code+`" dir="`+b.Dir+`">`) || !strings.Contains(m.HTML, `<body dir="`+b.Dir+`"`) {
					t.Errorf("html lacks lang/dir %s/%s:\n%s", b.Code, b.Dir, m.HTML)
				}
				if !strings.HasSuffix(m.Text, "\n\nExample Ltd\n") {
					t.Errorf("text does not end with the sign-off: %q", m.Text)
				}
				names := placeholdersOf(c, kind)
				if len(names) < 2 {
					t.Fatalf("%s uses only %v", kind, names)
				}
				for _, name := range names {
					want := shown[name]
					if name == "due" {
						if want = dates[b.Code]; want == "" {
							continue
						}
					}
					if !strings.Contains(m.Text, want) {
						t.Errorf("text lacks {%s} = %q:\n%s", name, want, m.Text)
					}
					switch name {
					case "link", "status", "certificate":
						href := strings.ReplaceAll(want, "&", "&amp;")
						if !strings.Contains(m.HTML, `<a href="`+href+`"`) {
							t.Errorf("html has no link to {%s}:\n%s", name, m.HTML)
						}
					case "code", "proof":
						if !strings.Contains(m.HTML, `>`+want+`</strong>`) {
							t.Errorf("html does not set {%s} apart:\n%s", name, m.HTML)
						}
					}
				}
			})
		}
	}
}

func TestComposeNeedsEveryPlaceholder(t *testing.T) {
	t.Parallel()
	c := catalog(t)
	blank := map[string]func(*notify.Data){
		"org": func(d *notify.Data) { d.Org = " " }, "code": func(d *notify.Data) { d.Code = "" },
		"link": func(d *notify.Data) { d.Link = "" }, "status": func(d *notify.Data) { d.Status = "" },
		"certificate": func(d *notify.Data) { d.Certificate = "" }, "proof": func(d *notify.Data) { d.Proof = "" },
		"reason": func(d *notify.Data) { d.Reason = "\n" }, "minutes": func(d *notify.Data) { d.Minutes = 0 },
		"due": func(d *notify.Data) { d.Due = time.Time{} },
	}
	for _, b := range c.All() {
		for _, kind := range notify.Kinds() {
			for _, name := range placeholdersOf(c, kind) {
				d := fullData()
				blank[name](&d)
				_, err := notify.Compose(b, kind, recipient, d)
				if err == nil || !strings.Contains(err.Error(), "{"+name+"}") {
					t.Errorf("%s %s without {%s}: err = %v", b.Code, kind, name, err)
				}
				assertClean(t, err)
			}
		}
	}
	// What a kind does not use may be left out.
	if _, err := notify.Compose(c.Get("en"), notify.KindDenied, recipient, notify.Data{Org: "Example Ltd", Reason: "No."}); err != nil {
		t.Errorf("denied with only what it needs: %v", err)
	}
}

func TestComposeEscapesHostileValues(t *testing.T) {
	t.Parallel()
	c := catalog(t)
	hostile := "<script>alert(1)</script>\n<a href=\"javascript:alert(2)\">click</a> & {code} {org}"
	for _, b := range c.All() {
		d := fullData()
		d.Reason = hostile
		d.Org = `<img src=x onerror=alert(3)>`
		for _, kind := range []notify.Kind{notify.KindDenied, notify.KindExtended} {
			m, err := notify.Compose(b, kind, recipient, d)
			if err != nil {
				t.Fatal(err)
			}
			for _, bad := range []string{"<script", "<img", `href="javascript`, "onerror=alert(3)>"} {
				if strings.Contains(m.HTML, bad) {
					t.Errorf("%s %s html holds %q:\n%s", b.Code, kind, bad, m.HTML)
				}
			}
			if !strings.Contains(m.HTML, "&lt;script&gt;alert(1)&lt;/script&gt;<br>") {
				t.Errorf("%s %s: the reason is not shown escaped, line by line:\n%s", b.Code, kind, m.HTML)
			}
			// A value is inserted once, never read for placeholders.
			if !strings.Contains(m.Text, "& {code} {org}") || strings.Contains(m.Text, d.Code) {
				t.Errorf("%s %s: placeholders in a value were filled:\n%s", b.Code, kind, m.Text)
			}
		}
	}
}

func TestComposeRefusesBadInput(t *testing.T) {
	t.Parallel()
	c := catalog(t)
	en := c.Get("en")
	for _, link := range []string{"javascript:alert(1)", "/portal/status/x", "ftp://example.com/x", "https://", "https://exa mple.com/x"} {
		d := fullData()
		d.Status = link
		_, err := notify.Compose(en, notify.KindReceived, recipient, d)
		if err == nil || !strings.Contains(err.Error(), "{status}") {
			t.Errorf("status %q: err = %v", link, err)
		}
		if err != nil && strings.Contains(err.Error(), link) {
			t.Errorf("error %q repeats the link, which may hold a token", err)
		}
	}
	if _, err := notify.Compose(en, notify.Kind("welcome"), recipient, fullData()); err == nil {
		t.Error("an unknown kind composed")
	}
	if _, err := notify.Compose(nil, notify.KindVerify, recipient, fullData()); err == nil {
		t.Error("no bundle composed")
	}
	for _, to := range []string{"", "not an address", recipient + "\r\nBcc: x@example.net"} {
		_, err := notify.Compose(en, notify.KindVerify, to, fullData())
		if !errors.Is(err, notify.ErrInvalid) {
			t.Errorf("to %q: err = %v, want ErrInvalid", to, err)
		}
	}
	// A translator's typo is caught, not mailed.
	typo := &i18n.Bundle{Code: "xx", Dir: "ltr", Messages: map[string]string{
		"email.denied.subject": "Denied", "email.denied.body": "Reason: {reasn}", "email.signoff": "{org}",
	}}
	if _, err := notify.Compose(typo, notify.KindDenied, recipient, fullData()); err == nil || !strings.Contains(err.Error(), "{reasn}") {
		t.Errorf("unknown placeholder: err = %v", err)
	}
}

func TestFormatDate(t *testing.T) {
	t.Parallel()
	c := catalog(t)
	late := time.Date(2027, 3, 1, 23, 30, 0, 0, time.FixedZone("IDT", -3*3600)) // 2 March in UTC
	for _, tc := range []struct {
		b    *i18n.Bundle
		t    time.Time
		want string
	}{
		{c.Get("en"), time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC), "2 January 2027"},
		{c.Get("en"), time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC), "31 December 2026"},
		{c.Get("he"), time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC), "2 בינואר 2027"},
		{c.Get("he"), time.Date(2027, 8, 15, 0, 0, 0, 0, time.UTC), "15 באוגוסט 2027"},
		{c.Get("en"), late, "2 March 2027"},
		{&i18n.Bundle{Code: "xx", Dir: "ltr", Messages: map[string]string{}}, late, "2027-03-02"},
	} {
		if got := notify.FormatDate(tc.b, tc.t); got != tc.want {
			t.Errorf("%s %v: %q, want %q", tc.b.Code, tc.t, got, tc.want)
		}
	}
}

// TestComposedHebrewMailSurvivesSMTP: what Compose writes is what the
// person reads, after quoted-printable and RFC 2047 on a real server.
func TestComposedHebrewMailSurvivesSMTP(t *testing.T) {
	t.Parallel()
	m, srv := setup(t, smtptest.Options{Username: "u", Password: "p"})
	mail, err := notify.Compose(catalog(t).Get("he"), notify.KindVerify, recipient, fullData())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Send(ctxTimeout(t, 10*time.Second), mail); err != nil {
		t.Fatal(err)
	}
	p, err := srv.Messages()[0].Parse()
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != "אישור בקשת המחיקה שלכם" || p.Text != mail.Text || p.HTML != mail.HTML {
		t.Errorf("round trip changed the mail:\nsubject %q\ntext %q\nwant %q", p.Subject, p.Text, mail.Text)
	}
	if p.Header.Get("Content-Language") != "he" {
		t.Errorf("Content-Language %q", p.Header.Get("Content-Language"))
	}
}
