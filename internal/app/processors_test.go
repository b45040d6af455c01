package app_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/hubspot/hubspotfake"
	"github.com/lethe-dev/lethe/connectors/mixpanel/mixpanelfake"
	"github.com/lethe-dev/lethe/internal/certificate"
	"github.com/lethe-dev/lethe/internal/notify/smtptest"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// description is a file of connectors/httpapi/descriptions as a config
// block under an entry (indented), with replacements made.
func description(t *testing.T, name string, replace ...string) string {
	t.Helper()
	b, err := os.ReadFile("../../connectors/httpapi/descriptions/" + name)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer(replace...).Replace(string(b))
	var out strings.Builder
	for l := range strings.SplitSeq(strings.TrimRight(s, "\n"), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") || strings.TrimSpace(l) == "" {
			continue
		}
		out.WriteString("      " + l + "\n")
	}
	return out.String()
}

// describedAndEmailed is the connectors[] entries of HubSpot and Mixpanel
// described for the http connector (against the fakes hs and mp, named
// crm and analytics) and the processor acme-support reached by email
// through mail, its links pointing at addr.
func describedAndEmailed(t *testing.T, crm, analytics string, hs *hubspotfake.Fake, mp *mixpanelfake.Fake, addr string, mail *smtptest.Server) string {
	t.Helper()
	project, token := mp.Tokens()
	return fmt.Sprintf(`
  - name: %s
    type: http
    config:
%s  - name: %s
    type: http
    config:
%s  - name: acme-support
    type: email
    config:
      processor: Acme Support Ltd
      to: privacy@acme.example
      public_url: http://%s
      link_key: 0123456789abcdef0123456789abcdef
      smtp: {host: %s, port: %d, tls: none, from: "Test Org Privacy <privacy@test.example>"}
`,
		crm, description(t, "hubspot.yaml", "https://api.hubapi.com", hs.URL(), "{env: HUBSPOT_TOKEN}", hs.Token()),
		analytics, description(t, "mixpanel.yaml", "https://mixpanel.com", mp.URL(), "{env: MIXPANEL_GDPR_TOKEN}", token,
			"{env: MIXPANEL_PROJECT_TOKEN}", project, "poll_interval: 12h", "poll_interval: 200ms"),
		addr, mail.Host(), mail.Port())
}

var confirmLinkRe = regexp.MustCompile(`http://[0-9.:]+/processors/acme-support/confirm/[A-Za-z0-9_.-]+`)

// TestNewConnectorsEndToEnd: one request fans out to HubSpot and Mixpanel
// described for the http connector and to a processor reached by email.
// HubSpot's lookup resolves the app user id Mixpanel erases by; the
// processor is emailed only the email address and confirms through its
// one-time link; one certificate lists all three, each as it was done.
func TestNewConnectorsEndToEnd(t *testing.T) {
	ns := testenv.NATS(t)
	hs := hubspotfake.Start(t, hubspotfake.Options{})
	mp := mixpanelfake.Start(t, mixpanelfake.Options{})
	mail := smtptest.Start(t, smtptest.Options{TLS: "none"})
	subject := connectors.Subject{Email: "dana@example.com", UserIDs: map[string]string{"app": "u-42"}}
	hs.Seed(subject)
	mp.Seed(subject)
	hs.Seed(connectors.Subject{Email: "erin@example.com", UserIDs: map[string]string{"app": "u-43"}})

	in := newInstance(t, ns.ClientURL(), "", "")
	cfg := describedAndEmailed(t, "crm", "analytics", hs, mp, in.addr, mail)
	b, err := os.ReadFile(in.configPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in.configPath, append(b, cfg...), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := in.serve(t)
	base := "http://" + in.addr

	r := fileRequest(t, base, in.agentToken, subject.Email)
	link := emailedLink(t, mail, subject.Email)
	if link == "" {
		t.Fatalf("the processor was not emailed a link; request %+v", waitStatus(t, base, in.agentToken, r.ID, time.Second, "in_progress", "completed"))
	}
	// The other systems finish; the request waits for the processor.
	got := waitStatus(t, base, in.agentToken, r.ID, 20*time.Second, "in_progress")
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		got = waitStatus(t, base, in.agentToken, r.ID, time.Second, "in_progress")
		if doneExcept(got, "acme-support") {
			break
		}
	}
	if !doneExcept(got, "acme-support") {
		t.Fatalf("crm and analytics did not finish: %+v", got.Tasks)
	}

	// An altered link is refused; the real one shows the form.
	if code, _ := get(t, link+"x"); code != http.StatusForbidden {
		t.Errorf("an altered link = %d, want 403", code)
	}
	code, page := get(t, link)
	if code != http.StatusOK || !strings.Contains(page, "Acme Support Ltd") || !strings.Contains(page, `name="evidence"`) || strings.Contains(page, subject.Email) {
		t.Fatalf("confirmation page = %d:\n%s", code, page)
	}
	if code, page := post(t, link, url.Values{"outcome": {"erased"}, "evidence": {" "}}); code != http.StatusBadRequest || !strings.Contains(page, "say what you erased") {
		t.Errorf("a confirmation without evidence = %d:\n%s", code, page)
	}
	// The processor confirms in a browser: the page as a person sees it,
	// on a desktop and a phone (axe-core, no sideways scrolling).
	ctx := browser(t)
	axe, shots := axeScript(t), screenshotDir(t)
	do, text := tab{t, ctx}.do, tab{t, ctx}.text
	for _, w := range []struct {
		name          string
		width, height int64
	}{{"desktop", 1100, 900}, {"phone", 390, 844}} {
		do(chromedp.EmulateViewport(w.width, w.height), chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#evidence")))
		pageCheck(t, ctx, axe, shots, "processor-confirm-"+w.name+".png", int(w.width))
	}
	do(chromedp.Click(chromedp.CSS("#erased")), chromedp.SendKeys(chromedp.CSS("#records"), "4"),
		chromedp.SendKeys(chromedp.CSS("#evidence"), "Deleted the customer profile and 3 support tickets"),
		chromedp.Submit(chromedp.CSS("#evidence")), chromedp.WaitVisible(chromedp.CSS(".verdict")))
	if v := text(".verdict"); !strings.Contains(v, "your confirmation is recorded") {
		t.Fatalf("after confirming, the page says: %s", v)
	}
	pageCheck(t, ctx, axe, shots, "processor-confirmed-phone.png", 390)
	if code, page := post(t, link, url.Values{"outcome": {"not_found"}, "evidence": {"again"}}); code != http.StatusConflict || !strings.Contains(page, "used already") {
		t.Errorf("the link used twice = %d:\n%s", code, page)
	}
	waitStatus(t, base, in.agentToken, r.ID, 20*time.Second, "completed")

	var keys certificate.JWKS
	call(t, "GET", base+"/v1/keys", "", "", &keys)
	v, err := certificate.Verify(getCertificate(t, base, in.agentToken, r.ID), keys)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, s := range v.Payload.Systems {
		var ev []string
		for _, e := range s.Evidence {
			ev = append(ev, e.Kind+"="+e.Value)
		}
		lines = append(lines, fmt.Sprintf("%s %s %s verification=%s %s", s.Connector, s.Outcome, s.RecordsErased, s.Verification, strings.Join(ev, "; ")))
	}
	sort.Strings(lines)
	all := strings.Join(lines, "\n")
	for _, want := range []string{
		"acme-support erased 4 records verification=not_available",
		"Acme Support Ltd confirmed erasure for LETHE-",
		"analytics erased an unknown number of records",
		"crm erased 1 record verification=clean",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("the certificate does not say %q:\n%s", want, all)
		}
	}
	if hs.Count(subject) != 0 || mp.Count(subject) != 0 || hs.CountEmail("erin@example.com") != 1 {
		t.Errorf("left: HubSpot %d, Mixpanel %d; bystander %d", hs.Count(subject), mp.Count(subject), hs.CountEmail("erin@example.com"))
	}
	// Erin's request is completed by hand while the processor's link is
	// out: a confirmation through it afterwards changes nothing, and the
	// page says it was not recorded.
	erin := fileRequest(t, base, in.agentToken, "erin@example.com")
	erinLink := emailedLink(t, mail, "erin@example.com")
	if erinLink == "" {
		t.Fatal("the processor was not emailed a link for Erin")
	}
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code := call(t, "POST", base+"/v1/requests/"+erin.ID+"/tasks/acme-support/complete", in.agentToken,
			`{"outcome":"not_found","reason":"Acme confirmed by phone"}`, nil)
		if code == http.StatusOK {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("completing Erin's acme-support task by hand: %d", code)
		}
	}
	waitStatus(t, base, in.agentToken, erin.ID, 20*time.Second, "completed")
	code, page = post(t, erinLink, url.Values{"outcome": {"erased"}, "evidence": {"deleted her tickets"}})
	if code != http.StatusOK || !strings.Contains(page, "was not recorded") || strings.Contains(page, "is recorded") {
		t.Errorf("a confirmation after the task was completed by hand = %d:\n%s", code, page)
	}
	if doc := string(getCertificate(t, base, in.agentToken, erin.ID)); strings.Contains(doc, "deleted her tickets") {
		t.Errorf("the stale confirmation reached Erin's certificate:\n%s", doc)
	}

	linkToken := link[strings.LastIndex(link, "/")+1:]
	if strings.Contains(logs.String(), subject.Email) || strings.Contains(logs.String(), "u-42") || strings.Contains(logs.String(), linkToken[:20]) {
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, subject.Email) || strings.Contains(l, "u-42") || strings.Contains(l, linkToken[:20]) {
				t.Errorf("the log holds the person's identifiers or a confirmation link: %s", l)
			}
		}
	}
}

// emailedLink waits for the processor's email naming who and returns its
// confirmation link ("" if none came), checking that no email carries
// the app user id (identifiers lists only the email).
func emailedLink(t *testing.T, mail *smtptest.Server, who string) string {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, m := range mail.Messages() {
			p, err := m.Parse()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(p.Text, "u-42") || strings.Contains(p.Text, "u-43") {
				t.Fatal("the processor was emailed an app user id; identifiers lists only the email")
			}
			if strings.Contains(p.Text, who) {
				if link := confirmLinkRe.FindString(p.Text); link != "" {
					return link
				}
			}
		}
	}
	return ""
}

// doneExcept reports whether every erase task but the one of connector
// has ended, of the three systems.
func doneExcept(r apiRequest, connector string) bool {
	erase, done := 0, 0
	for _, task := range r.Tasks {
		if task.Phase != "erase" {
			continue
		}
		erase++
		if task.Connector != connector && (task.Status == "erased" || task.Status == "not_found") {
			done++
		}
	}
	return erase == 3 && done == 2
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("%s: Referrer-Policy %q: the token in the path would leak", resp.Request.Method, resp.Header.Get("Referrer-Policy"))
	}
	return resp.StatusCode, string(b)
}

func post(t *testing.T, u string, form url.Values) (int, string) {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
