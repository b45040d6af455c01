package app_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/app"
	"github.com/lethe-dev/lethe/internal/certificate"
	"github.com/lethe-dev/lethe/internal/console"
	"github.com/lethe-dev/lethe/internal/notify/smtptest"
	"github.com/lethe-dev/lethe/internal/testenv"
	"golang.org/x/crypto/bcrypt"
)

var (
	csrfField   = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	codeInMail  = regexp.MustCompile(`\b([0-9]{6})\b`)
	statusToken = regexp.MustCompile(`/portal/status/(([0-9a-f-]{36})\.[A-Za-z0-9_-]+)`)
	proofInMail = regexp.MustCompile(`(?m)^[^\n]*: ?([A-Za-z0-9_-]{43})\s*$`)
)

// personBrowser is an HTTP client with cookies that does not follow redirects,
// like a person's browser seen one step at a time.
func personBrowser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func page(t *testing.T, c *http.Client, method, u string, form url.Values) (int, string, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("Location")
}

// mailTo waits for the n-th email to addr and returns its text.
func mailTo(t *testing.T, s *smtptest.Server, addr string, n int) (subject, text string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got []smtptest.Parsed
		for _, m := range s.Messages() {
			if len(m.To) == 1 && m.To[0] == addr {
				p, err := m.Parse()
				if err != nil {
					t.Fatalf("unparseable mail: %v", err)
				}
				if !m.TLS || m.Auth == "" {
					t.Errorf("mail sent without TLS (%v) or AUTH (%q)", m.TLS, m.Auth)
				}
				got = append(got, p)
			}
		}
		if len(got) >= n {
			return got[n-1].Subject, got[n-1].Text
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d mails to the person, want %d", len(got), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// inbox waits for the n-th mail to addr and returns its subject and text.
type inbox func(t *testing.T, addr string, n int) (subject, text string)

// smtpInbox reads the mails the SMTP server s received.
func smtpInbox(s *smtptest.Server) inbox {
	return func(t *testing.T, addr string, n int) (string, string) { return mailTo(t, s, addr, n) }
}

// devInbox reads the dev mailbox of `lethe dev` at base.
func devInbox(base string) inbox {
	return func(t *testing.T, addr string, n int) (string, string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			var mails []struct{ To, Subject, Text string }
			call(t, "GET", base+"/dev/mailbox?format=json", "", "", &mails)
			var to []int
			for i := len(mails) - 1; i >= 0; i-- { // newest first
				if mails[i].To == addr {
					to = append(to, i)
				}
			}
			if len(to) >= n {
				return mails[to[n-1]].Subject, mails[to[n-1]].Text
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d mails to the person in the dev mailbox, want %d", len(to), n)
			}
		}
	}
}

// portalRequest asks for erasure of email on the portal at base as a
// person would: the form, the code emailed through mail, the verify page.
// beforeVerify runs between the form and the code. It returns the request
// id, the private status link's token and the emailed code.
func portalRequest(t *testing.T, base string, mail inbox, email string, beforeVerify func()) (requestID, statusTok, emailed string) {
	t.Helper()
	b := personBrowser(t)
	code, body, _ := page(t, b, "GET", base+"/portal", nil)
	m := csrfField.FindStringSubmatch(body)
	if code != 200 || m == nil {
		t.Fatalf("portal form = %d, csrf %v", code, m)
	}
	code, _, loc := page(t, b, "POST", base+"/portal", url.Values{"csrf": {m[1]}, "email": {email}, "jurisdiction": {"gdpr"}})
	if code != 303 || !strings.HasPrefix(loc, "/portal/verify/") {
		t.Fatalf("submit = %d → %q", code, loc)
	}
	subject, text := mail(t, email, 1)
	c := codeInMail.FindStringSubmatch(text)
	st := statusToken.FindStringSubmatch(text)
	if c == nil || st == nil {
		t.Fatalf("verification mail %q lacks a code or status link:\n%s", subject, text)
	}
	if beforeVerify != nil {
		beforeVerify()
	}
	_, body, _ = page(t, b, "GET", base+loc, nil)
	m = csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no form token on the verify page")
	}
	code, _, next := page(t, b, "POST", base+loc, url.Values{"csrf": {m[1]}, "code": {c[1]}})
	if code != 303 || !strings.Contains(next, "/portal/status/"+st[1]) {
		t.Fatalf("verify = %d → %q", code, next)
	}
	return st[2], st[1], c[1]
}

// portalInstance is an instance with the portal (its config block
// portalYAML) emailing through a real SMTP server with STARTTLS and AUTH,
// and a console user ada (agent, password "correct horse battery").
func portalInstance(t *testing.T, natsURL, connectorsYAML, portalYAML string) (*instance, *smtptest.Server) {
	t.Helper()
	mail := smtptest.Start(t, smtptest.Options{Username: "lethe", Password: "mail-secret"})
	hash, err := console.HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	in := newInstance(t, natsURL, connectorsYAML, fmt.Sprintf(`
public_url: "http://%s"
portal: %s
smtp: {host: 127.0.0.1, port: %d, tls: starttls, ca_file: %q, username: lethe, password: mail-secret, from: "Test Org Privacy <privacy@example.com>"}
console:
  insecure_cookies: true
  users:
    - {name: ada, role: agent, password_hash: %q}`, "", portalYAML, mail.Port(), mail.CAFile, hash))
	// public_url needs the address newInstance chose.
	fixPublicURL(t, in)
	return in, mail
}

// TestPortalToCertificateByEmail: a person asks on the portal, proves the
// address with the emailed code (over a real SMTP server with STARTTLS and
// AUTH), their data is erased, and they are emailed at each step: the
// code, the start, and the certificate with a proof code that ties it to
// them. Staff see the request in the console.
func TestPortalToCertificateByEmail(t *testing.T) {
	ns := testenv.NATS(t)
	tg := newTarget(t)
	in, mail := portalInstance(t, ns.ClientURL(), tg.connectorsYAML(), "{enabled: true}")
	logs := in.serve(t)
	base := "http://" + in.addr
	const email = "portal.person@example.com"
	rows, files := tg.seed(t, email)

	requestID, statusTok, emailed := portalRequest(t, base, smtpInbox(mail), email, func() {
		// Nothing is erased before the address is proven.
		if r, f := tg.remaining(t, email); r != rows || f != files {
			t.Fatalf("erased before verification: %d rows, %d files left", r, f)
		}
	})
	got := waitStatus(t, base, in.agentToken, requestID, 60*time.Second, "completed")
	if r, f := tg.remaining(t, email); r != 0 || f != 0 {
		t.Errorf("after completion %d rows, %d files left", r, f)
	}
	// The emails: received, then completed with the certificate and proof.
	subject, _ := mailTo(t, mail, email, 2)
	if !strings.Contains(subject, "request") {
		t.Errorf("second mail %q, want the receipt", subject)
	}
	_, text := mailTo(t, mail, email, 3)
	proof := proofInMail.FindStringSubmatch(text)
	if !strings.Contains(text, base+"/audit?certificate=") || proof == nil {
		t.Fatalf("completion mail lacks the certificate link or proof code:\n%s", text)
	}
	var doc []byte
	resp, err := http.Get(base + "/v1/certificates/" + certificateID(t, text))
	if err != nil {
		t.Fatal(err)
	}
	doc, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	var keys certificate.JWKS
	call(t, "GET", base+"/v1/keys", "", "", &keys)
	v, err := certificate.Verify(doc, keys)
	if err != nil {
		t.Fatalf("emailed certificate does not verify: %v", err)
	}
	nonce, _ := base64.RawURLEncoding.DecodeString(proof[1])
	if !certificate.VerifyCommitment(v.Payload, email, nonce) || certificate.VerifyCommitment(v.Payload, "someone@example.com", nonce) {
		t.Error("the proof code does not tie the certificate to the person (or ties it to anyone)")
	}
	if got.ID != requestID {
		t.Errorf("status link names %s, request is %s", requestID, got.ID)
	}
	// The status page shows the outcome.
	code, body, _ := page(t, personBrowser(t), "GET", base+"/portal/status/"+statusTok, nil)
	if code != 200 || !strings.Contains(body, "/audit?certificate=") {
		t.Errorf("status page = %d without the certificate link", code)
	}

	// Staff: the console lists the request after sign-in.
	s := personBrowser(t)
	_, body, _ = page(t, s, "GET", base+"/console/login", nil)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no form token on the sign-in page")
	}
	if code, _, _ := page(t, s, "POST", base+"/console/login", url.Values{"csrf": {m[1]}, "name": {"ada"}, "password": {"wrong password!!"}}); code != 401 {
		t.Errorf("wrong password = %d", code)
	}
	_, body, _ = page(t, s, "GET", base+"/console/login", nil)
	m = csrfField.FindStringSubmatch(body)
	if code, _, _ := page(t, s, "POST", base+"/console/login", url.Values{"csrf": {m[1]}, "name": {"ada"}, "password": {"correct horse battery"}}); code != 303 {
		t.Fatalf("sign-in = %d", code)
	}
	code, body, _ = page(t, s, "GET", base+"/console/requests/"+requestID, nil)
	if code != 200 || !strings.Contains(body, "certificate") {
		t.Errorf("console request page = %d", code)
	}
	// The address, the code and the proof never reach the logs.
	for _, secret := range []string{email, emailed, proof[1], "correct horse battery"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("logs contain %q", secret)
		}
	}
}

var certLink = regexp.MustCompile(`/audit\?certificate=([A-Za-z0-9_-]+)`)

func certificateID(t *testing.T, text string) string {
	t.Helper()
	m := certLink.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no certificate link in %q", text)
	}
	return m[1]
}

// fixPublicURL fills in the address newInstance chose.
func fixPublicURL(t *testing.T, in *instance) {
	t.Helper()
	b, err := os.ReadFile(in.configPath)
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.Replace(string(b), `public_url: "http://"`, `public_url: "http://`+in.addr+`"`, 1))
	if err := os.WriteFile(in.configPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestPasswd(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("correct horse battery\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errs strings.Builder
	if code := app.Run(context.Background(), []string{"lethe", "passwd", "--password-file", pw}, os.Getenv, &out, &errs); code != 0 {
		t.Fatalf("passwd exited %d: %s", code, errs.String())
	}
	hash := strings.TrimSpace(out.String())
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte("correct horse battery")) != nil || strings.Contains(hash, "horse") {
		t.Errorf("passwd printed %q, not a bcrypt hash of the password", hash)
	}
	if err := os.WriteFile(pw, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	errs.Reset()
	if code := app.Run(context.Background(), []string{"lethe", "passwd", "--password-file", pw}, os.Getenv, io.Discard, &errs); code != 1 || strings.Contains(errs.String(), "short") {
		t.Errorf("a short password: exit %d, %q", code, errs.String())
	}
	if code := app.Run(context.Background(), []string{"lethe", "passwd"}, os.Getenv, io.Discard, io.Discard); code != 2 {
		t.Errorf("no --password-file: exit %d", code)
	}
}
