package email

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/internal/notify/smtptest"
)

const linkKey = "0123456789abcdef0123456789abcdef"

func configFor(srv *smtptest.Server, extra string) string {
	return fmt.Sprintf(`processor: Acme Support Ltd
to: privacy@acme.example
public_url: http://127.0.0.1:8080
link_key: %s
smtp: {host: %s, port: %d, tls: none, from: "Test Org Privacy <privacy@test.example>"}
%s`, linkKey, srv.Host(), srv.Port(), extra)
}

// instance is an email instance against srv whose clock is *now.
func instance(t *testing.T, srv *smtptest.Server, now *time.Time, extra string) *conn {
	t.Helper()
	c := connectortest.Build(t, "email", "acme", configFor(srv, extra)).(*conn)
	c.now = func() time.Time { return *now }
	return c
}

var ann = connectors.Subject{Email: "ann@example.com", Phone: "+447700900123", UserIDs: map[string]string{"app": "u-7"}}

// sent is the text of the n-th mail srv received, and its subject.
func sent(t *testing.T, srv *smtptest.Server, n int) (subject, text string) {
	t.Helper()
	msgs := srv.Messages()
	if len(msgs) <= n {
		t.Fatalf("%d mails sent, want at least %d", len(msgs), n+1)
	}
	p, err := msgs[n].Parse()
	if err != nil {
		t.Fatal(err)
	}
	if msgs[n].To[0] != "privacy@acme.example" {
		t.Errorf("sent to %v", msgs[n].To)
	}
	return p.Subject, p.Text
}

var linkRe = regexp.MustCompile(`http://127\.0\.0\.1:8080/processors/acme/confirm/([A-Za-z0-9_.-]+)`)

func TestEraseEmailsOnlyTheConfiguredIdentifiers(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t, smtptest.Options{TLS: "none"})
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	c := instance(t, srv, &now, "identifiers: [email, user_ids.app]\n")
	out, err := c.Erase(connectortest.Ctx(t), ann)
	if err != nil || out.Status != connectors.StatusRunning || out.PollAfter != defaultRemindEvery {
		t.Fatalf("Erase = %+v, %v; want running, looked at again in a week", out, err)
	}
	subject, text := sent(t, srv, 0)
	if !strings.HasPrefix(subject, "Erasure request LETHE-") || !strings.Contains(text, "ann@example.com") || !strings.Contains(text, "User id (app): u-7") {
		t.Errorf("mail %q:\n%s", subject, text)
	}
	if strings.Contains(text, "7700900123") {
		t.Error("the mail names the phone number, which identifiers does not list")
	}
	if !strings.Contains(text, "until 2 January 2027") || !linkRe.MatchString(text) {
		t.Errorf("mail without the link or its expiry:\n%s", text)
	}
	if strings.Contains(out.JobRef, "ann") || strings.Contains(out.JobRef, "u-7") || strings.Contains(connectortest.EvidenceText(out.Evidence), "ann@") {
		t.Errorf("job ref %q or evidence %v names the person", out.JobRef, out.Evidence)
	}
	if _, err := c.Erase(connectortest.Ctx(t), connectors.Subject{Email: "bob@example.com"}); !connectortest.IsPermanent(err) {
		t.Errorf("a subject without user_ids.app: %v, want permanent", err)
	}
	p := connectortest.Plan(t, "email", "acme", configFor(srv, "identifiers: [email, user_ids.app]\n"))
	if fmt.Sprint(p.Keys, p.Uses) != "[email user_ids.app] [email user_ids.app]" {
		t.Errorf("plan %v %v; want both identifiers required", p.Keys, p.Uses)
	}
}

func TestRemindersThenAttention(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t, smtptest.Options{TLS: "none"})
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	c := instance(t, srv, &now, "remind_every: 72h\nanswer_within: 168h\n")
	out, err := c.Erase(connectortest.Ctx(t), ann)
	if err != nil {
		t.Fatal(err)
	}
	ref := out.JobRef
	now = now.Add(time.Hour) // a poll before the reminder is due sends nothing
	if out, err := c.Poll(connectortest.Ctx(t), ref); err != nil || out.Status != connectors.StatusRunning || out.PollAfter != 71*time.Hour || len(srv.Messages()) != 1 {
		t.Fatalf("early poll = %+v, %v, %d mails", out, err, len(srv.Messages()))
	}
	now = now.Add(71 * time.Hour)
	out, err = c.Poll(connectortest.Ctx(t), ref)
	if err != nil || out.Status != connectors.StatusRunning || out.JobRef != ref {
		t.Fatalf("reminder poll = %+v, %v", out, err)
	}
	subject, text := sent(t, srv, 1)
	if !strings.HasPrefix(subject, "Reminder: erasure request LETHE-") || !linkRe.MatchString(text) || strings.Contains(text, "ann@example.com") {
		t.Errorf("reminder %q (it names the request by reference only):\n%s", subject, text)
	}
	now = now.Add(96 * time.Hour) // 168h after the request
	_, err = c.Poll(connectortest.Ctx(t), ref)
	if !connectortest.IsPermanent(err) || !strings.Contains(err.Error(), "has not confirmed") || !strings.Contains(err.Error(), "7 days") {
		t.Fatalf("after answer_within: %v; want a permanent error asking a person to act", err)
	}
	token := linkRe.FindStringSubmatch(text)[1]
	if _, err := c.ConfirmLink(token); err == nil {
		t.Error("the link still works after answer_within")
	}
}

func TestSMTPFailures(t *testing.T) {
	t.Parallel()
	now := time.Now()
	temp := smtptest.Start(t, smtptest.Options{TLS: "none", TempFailRcpt: 1})
	c := instance(t, temp, &now, "")
	if _, err := c.Erase(connectortest.Ctx(t), ann); err == nil || connectortest.IsPermanent(err) || strings.Contains(err.Error(), "ann@") {
		t.Errorf("a 451: %v, want retryable without the address", err)
	}
	if out, err := c.Erase(connectortest.Ctx(t), ann); err != nil || out.Status != connectors.StatusRunning {
		t.Errorf("retried: %+v, %v", out, err)
	}
	refused := smtptest.Start(t, smtptest.Options{TLS: "none", Replies: map[string]string{"RCPT": "550 5.1.1 no such user"}})
	if _, err := instance(t, refused, &now, "").Erase(connectortest.Ctx(t), ann); !connectortest.IsPermanent(err) {
		t.Errorf("a 550: %v, want permanent", err)
	}
}

func TestConfirmationCallback(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t, smtptest.Options{TLS: "none"})
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	c := instance(t, srv, &now, "")
	out, err := c.Erase(connectortest.Ctx(t), ann)
	if err != nil {
		t.Fatal(err)
	}
	_, text := sent(t, srv, 0)
	token := linkRe.FindStringSubmatch(text)[1]
	link, err := c.ConfirmLink(token)
	if err != nil || link.Processor != "Acme Support Ltd" || !strings.HasPrefix(link.Reference, "LETHE-") || !link.Expires.Equal(now.Add(defaultAnswerWithin)) {
		t.Fatalf("ConfirmLink = %+v, %v", link, err)
	}
	form := func(kv ...string) []byte {
		v := url.Values{"token": {token}}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return []byte(v.Encode())
	}
	now = now.Add(48 * time.Hour)
	for name, tc := range map[string]struct {
		body []byte
		want string
	}{
		"erased with a count": {form("outcome", "erased", "records", "3", "evidence", "Deleted the profile\nand 2 tickets"), "erased 3 false"},
		"erased uncounted":    {form("outcome", "erased", "evidence", "Deleted everything"), "erased 0 true"},
		"held nothing":        {form("outcome", "not_found", "evidence", "Searched CRM and tickets"), "not_found 0 false"},
		"no evidence":         {form("outcome", "erased", "evidence", "  "), ErrEvidence.Error()},
		"bad count":           {form("outcome", "erased", "records", "-2", "evidence", "x"), ErrRecords.Error()},
		"no outcome":          {form("evidence", "x"), ErrOutcome.Error()},
		"altered token":       {[]byte(strings.Replace(string(form("outcome", "erased", "evidence", "x")), "token=", "token=x", 1)), ErrLink.Error()},
		"not a form":          {[]byte("%zz"), "not a form"},
	} {
		got, err := c.Callback(connectortest.Ctx(t), nil, tc.body)
		res := fmt.Sprintf("%s %d %v", got.Outcome.Status, got.Outcome.Records, got.Outcome.Uncounted)
		if err != nil {
			res = err.Error()
		}
		if !strings.Contains(res, tc.want) {
			t.Errorf("%s: %s, want %s", name, res, tc.want)
		}
		if err == nil && (got.JobRef != out.JobRef || !strings.HasPrefix(got.ID, "email:")) {
			t.Errorf("%s: job ref %q id %q, want the task's job ref %q", name, got.JobRef, got.ID, out.JobRef)
		}
		if err == nil && !strings.Contains(connectortest.EvidenceText(got.Outcome.Evidence), "Acme Support Ltd confirmed") {
			t.Errorf("%s: evidence %v", name, got.Outcome.Evidence)
		}
	}
	a, _ := c.Callback(connectortest.Ctx(t), nil, form("outcome", "erased", "evidence", "x"))
	b, _ := c.Callback(connectortest.Ctx(t), nil, form("outcome", "not_found", "evidence", "y"))
	if a.ID != b.ID {
		t.Error("two confirmations through one link have different IDs: the second would not be refused as a replay")
	}
	other := connectortest.Build(t, "email", "other", configFor(srv, "")).(*conn)
	if _, err := other.ConfirmLink(token); err == nil {
		t.Error("another instance accepts acme's link")
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t, smtptest.Options{TLS: "none"})
	base := configFor(srv, "")
	connectortest.RunConfigCases(t, "email", nil, []string{linkKey}, connectortest.ConfigCases{
		{"ok", base, ""},
		{"no processor", strings.Replace(base, "processor: Acme Support Ltd\n", "", 1), "processor: required"},
		{"no to", strings.Replace(base, "to: privacy@acme.example\n", "", 1), "to: required"},
		{"to with a name", strings.Replace(base, "to: privacy@acme.example", "to: Acme <privacy@acme.example>", 1), "to: required"},
		{"no public url", strings.Replace(base, "public_url: http://127.0.0.1:8080\n", "", 1), "public_url: required"},
		{"plain http public url", strings.Replace(base, "http://127.0.0.1:8080", "http://lethe.example.com", 1), "public_url: must use https"},
		{"no link key", strings.Replace(base, "link_key: "+linkKey+"\n", "", 1), "link_key: required"},
		{"short link key", strings.Replace(base, linkKey, "short", 1), "link_key: at least 32 bytes"},
		{"bad identifier", base + "identifiers: [mail]\n", "identifiers[0]:"},
		{"twice", base + "identifiers: [email, email]\n", "identifiers[1]: email is listed twice"},
		{"reminder after the end", base + "remind_every: 800h\n", "remind_every: must be shorter than answer_within"},
		{"negative", base + "answer_within: -1h\n", "answer_within: must not be negative"},
		{"no smtp host", strings.Replace(base, "host: "+srv.Host()+", ", "", 1), "smtp.host: required"},
		{"no from", strings.Replace(base, `, from: "Test Org Privacy <privacy@test.example>"`, "", 1), "smtp.from: required"},
		{"long note", base + "note: " + strings.Repeat("n", 2001) + "\n", "note: at most 2000"},
		{"unknown key", base + "cc: x\n", "field cc not found"},
	})
}
