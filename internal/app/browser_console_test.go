package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lethe-dev/lethe/internal/testenv"
)

// axeScript is axe-core, from tools/axe, installed from the npm registry
// if needed (.ci/run installs it beforehand).
func axeScript(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../../tools/axe")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "node_modules", "axe-core", "axe.min.js")
	if _, err := os.Stat(path); err != nil {
		if _, err := exec.LookPath("npm"); err != nil {
			t.Fatal("npm is required to install axe-core for the accessibility checks (apt-get install npm); .ci/run installs it")
		}
		out, err := exec.Command("npm", "ci", "--prefix", dir, "--no-audit", "--no-fund").CombinedOutput()
		if err != nil {
			t.Fatalf("npm ci in tools/axe: %v\n%s", err, out)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("axe-core: %v", err)
	}
	return string(b)
}

// pageCheck looks at the page open in ctx as a person would: axe-core
// finds no WCAG 2.1 A/AA violation, the page does not scroll sideways (a
// wide table scrolls inside its own region), and a full screenshot is
// kept under name.
func pageCheck(t *testing.T, ctx context.Context, axe, shots, name string, width int) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](axe+";true")); err != nil {
		t.Fatalf("%s: load axe-core: %v", name, err)
	}
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](`axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}})
		.then(r => JSON.stringify(r.violations.map(v => ({id: v.id, help: v.help, nodes: v.nodes.map(n => n.target.join(" "))}))))`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: run axe-core: %v", name, err)
	}
	var violations []struct {
		ID, Help string
		Nodes    []string
	}
	if err := json.Unmarshal([]byte(out), &violations); err != nil {
		t.Fatalf("%s: axe-core said %q: %v", name, out, err)
	}
	for _, v := range violations {
		t.Errorf("%s: accessibility: %s (%s) at %v", name, v.ID, v.Help, v.Nodes)
	}
	wide, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if wide > width+1 {
		// Name the innermost elements that stick out, to say what to fix.
		culprits, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll("body *")]
			.filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && ![...e.children].some(c => c.getBoundingClientRect().right > window.innerWidth + 1))
			.filter(e => !e.closest(".scroll, [role=region]"))
			.slice(0, 6).map(e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className ? "." + String(e.className).replace(/ /g, ".") : "") + " " + Math.round(e.getBoundingClientRect().right) + "px").join(", ")`))
		t.Errorf("%s: the page is %d px wide in a %d px window: it scrolls sideways (%s)", name, wide, width, culprits)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("%s: screenshot: %v", name, err)
	}
	writeFile(t, filepath.Join(shots, name), png)
}

// TestConsoleInBrowser signs an agent in to the console in Chromium and
// opens the request list and a request waiting for a person, on a desktop
// and on a 390 px phone: the list shows progress and days left, the
// timeline reads as sentences, the manual task shows its instructions,
// axe-core finds nothing, and no page scrolls sideways. The portal form is
// checked the same way in English and Hebrew.
func TestConsoleInBrowser(t *testing.T) {
	ns := testenv.NATS(t)
	tg := newTarget(t)
	connectors := tg.connectorsYAML() + `
  - name: paper-archive
    type: manual
    display_name: Paper archive
    config:
      instructions: Shred the paper file in the Leeds archive and note the box number.
`
	in, mail := portalInstance(t, ns.ClientURL(), connectors, "{enabled: true}")
	in.serve(t)
	base := "http://" + in.addr
	tg.seed(t, "alice@example.com")
	tg.seed(t, "bob@example.com")
	// Bob asked on the portal; once his paper file is shredded too, his
	// status page reads him the certificate.
	bob, bobTok, _ := portalRequest(t, base, smtpInbox(mail), "bob@example.com", nil)
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code := call(t, "POST", base+"/v1/requests/"+bob+"/tasks/paper-archive/complete", in.agentToken,
			`{"outcome":"erased","records":1,"reason":"Shredded box 12."}`, nil)
		if code == 200 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("completing bob's paper file: %d", code)
		}
	}
	waitStatus(t, base, in.agentToken, bob, 30*time.Second, "completed")
	var bobCert string
	if doc := string(getCertificate(t, base, in.agentToken, bob)); strings.Contains(doc, `"certificate_id": "`) {
		fmt.Sscanf(doc[strings.Index(doc, `"certificate_id": "`)+len(`"certificate_id": "`):], "%36s", &bobCert)
	}
	if len(bobCert) != 36 {
		t.Fatalf("no certificate id for bob's request: %q", bobCert)
	}
	var f filed
	call(t, "POST", base+"/v1/requests", in.agentToken, `{"subject":{"email":"alice@example.com"},"jurisdiction":"gdpr"}`, &f)
	// shop-db and files finish; the paper archive waits for staff.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got struct {
			Tasks []struct{ Connector, Status string } `json:"tasks"`
		}
		call(t, "GET", base+"/v1/requests/"+f.ID, in.agentToken, "", &got)
		running := 0
		for _, k := range got.Tasks {
			if k.Status == "erased" || k.Status == "not_found" || (k.Connector == "paper-archive" && k.Status == "running") {
				running++
			}
		}
		if running == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tasks did not settle: %+v", got.Tasks)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A batch of one, to show the batch pages.
	if code := call(t, "POST", base+"/v1/requests/batch", in.agentToken,
		`{"batch":"winter-cleanup","requests":[{"subject":{"email":"carol@example.com"},"jurisdiction":"gdpr","idempotency_key":"w-1"}]}`, nil); code != 200 {
		t.Fatalf("batch: %d", code)
	}

	ctx := browser(t)
	axe := axeScript(t)
	shots := screenshotDir(t)
	do, text := tab{t, ctx}.do, tab{t, ctx}.text
	do(chromedp.Navigate(base+"/console/login"), chromedp.WaitVisible(chromedp.CSS("#name")),
		chromedp.SendKeys(chromedp.CSS("#name"), "ada"),
		chromedp.SendKeys(chromedp.CSS("#password"), "correct horse battery"),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS("#requests-caption")))

	for _, w := range []struct {
		name          string
		width, height int64
	}{{"desktop", 1100, 900}, {"phone", 390, 844}} {
		do(chromedp.EmulateViewport(w.width, w.height))
		do(chromedp.Navigate(base+"/console?waiting=1"), chromedp.WaitVisible(chromedp.CSS("#requests-caption")))
		list := text("main")
		for _, want := range []string{"2 of 3 systems done", "Waiting for a person", "days left"} {
			if !strings.Contains(list, want) {
				t.Errorf("%s: the list lacks %q:\n%s", w.name, want, list)
			}
		}
		pageCheck(t, ctx, axe, shots, "console-list-"+w.name+".png", int(w.width))

		do(chromedp.Navigate(base+"/console/batches"), chromedp.WaitVisible(chromedp.CSS("#batches-caption")))
		if got := text("main"); !strings.Contains(got, "winter-cleanup") || !strings.Contains(got, "of 1 request") {
			t.Errorf("%s: the batches page lacks the batch:\n%s", w.name, got)
		}
		pageCheck(t, ctx, axe, shots, "console-batches-"+w.name+".png", int(w.width))
		do(chromedp.Navigate(base+"/console?batch=winter-cleanup"), chromedp.WaitVisible(chromedp.CSS("#batch-h")))
		if got := text("main"); !strings.Contains(got, "Batch winter-cleanup") || !strings.Contains(got, "Requests over") {
			t.Errorf("%s: the batch's page lacks its progress:\n%s", w.name, got)
		}
		pageCheck(t, ctx, axe, shots, "console-batch-"+w.name+".png", int(w.width))

		do(chromedp.Navigate(base+"/console/requests/"+f.ID), chromedp.WaitVisible(chromedp.CSS("#events-caption")))
		req := text("main")
		for _, want := range []string{"waiting for a person", "Instructions: Shred the paper file", "The request was received.", "erased"} {
			if !strings.Contains(req, want) {
				t.Errorf("%s: the request page lacks %q", w.name, want)
			}
		}
		if strings.Contains(req, "…") || strings.Contains(req, "instructions: Shred") {
			t.Errorf("%s: the request page cuts data or shows instructions as evidence", w.name)
		}
		pageCheck(t, ctx, axe, shots, "console-request-"+w.name+".png", int(w.width))

		for _, lang := range []string{"en", "he"} {
			do(chromedp.Navigate(base+"/portal?lang="+lang), chromedp.WaitVisible(chromedp.CSS("form")))
			pageCheck(t, ctx, axe, shots, "portal-form-"+lang+"-"+w.name+".png", int(w.width))
			do(chromedp.Navigate(base+"/portal/status/"+bobTok+"?lang="+lang), chromedp.WaitVisible(chromedp.CSS("#cert-h")))
			if c := text(".certificate"); !strings.Contains(c, map[string]string{"en": "Paper archive: erased on", "he": "Paper archive: נמחק ב־"}[lang]) {
				t.Errorf("%s %s: the person's certificate view says:\n%s", w.name, lang, c)
			}
			pageCheck(t, ctx, axe, shots, "portal-certificate-"+lang+"-"+w.name+".png", int(w.width))
		}
		do(chromedp.Navigate(base+"/audit"), chromedp.WaitVisible(chromedp.CSS("#cert-id")))
		pageCheck(t, ctx, axe, shots, "audit-"+w.name+".png", int(w.width))
		// The person's "technical details" link: the auditor page with
		// their certificate verified, on their phone too.
		do(chromedp.Navigate(base+"/audit?certificate="+bobCert), chromedp.WaitVisible(chromedp.CSS("#details table")))
		pageCheck(t, ctx, axe, shots, "audit-certificate-"+w.name+".png", int(w.width))
	}
}
