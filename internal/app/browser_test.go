package app_test

import (
	"context"
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

// screenshotDir is where browser tests leave screenshots of the pages they
// visit (README, "Screenshots").
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("LETHE_SCREENSHOTS")
	if dir == "" {
		dir, _ = filepath.Abs("../../screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts headless Chromium (Debian's chromium package).
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("Chromium is required for the browser tests (apt-get install chromium); .ci/run installs it")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.WindowSize(1100, 1400))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// tab runs steps in one browser tab for a test, failing it on an error.
type tab struct {
	t   *testing.T
	ctx context.Context
}

func (b tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatal(err)
	}
}

// text is the text of the element sel.
func (b tab) text(sel string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return v
}

// TestAuditPageInBrowser opens a certificate on the auditor page in a real
// browser, by link and by upload, and checks the verdict the page reaches
// with WebCrypto, and the "is this about me?" check.
func TestAuditPageInBrowser(t *testing.T) {
	ns := testenv.NATS(t)
	tg := newTarget(t)
	in := newInstance(t, ns.ClientURL(), tg.connectorsYAML(), "certificates: {backup_retention: 720h}")
	in.serve(t)
	base := "http://" + in.addr
	tg.seed(t, "alice@example.com")
	var f filed
	call(t, "POST", base+"/v1/requests", in.agentToken, `{"subject":{"email":"alice@example.com"},"jurisdiction":"gdpr"}`, &f)
	waitStatus(t, base, in.agentToken, f.ID, 30*time.Second, "completed")
	doc := getCertificate(t, base, in.agentToken, f.ID)
	var certID string
	fmt.Sscanf(string(doc[strings.Index(string(doc), `"certificate_id": "`)+len(`"certificate_id": "`):]), "%36s", &certID)

	ctx := browser(t)
	shots := screenshotDir(t)
	screenshot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		writeFile(t, filepath.Join(shots, name), png)
	}
	do, text := tab{t, ctx}.do, tab{t, ctx}.text

	do(chromedp.Navigate(base+"/audit?certificate="+certID), chromedp.WaitVisible(chromedp.CSS("#details table")))
	verdict, checks, details := text("#verdict"), text("#checks"), text("#details")
	screenshot("audit-certificate.png")
	if !strings.HasPrefix(verdict, "Valid") {
		t.Errorf("verdict %q", verdict)
	}
	for _, want := range []string{"signature is valid", "published keys", "transparency log", "evidence matches"} {
		if !strings.Contains(checks, want) {
			t.Errorf("checks lack %q:\n%s", want, checks)
		}
	}
	for _, want := range []string{"shop-db (sql)", "erased 4 records", "deadline met", "purged by", "when the last backup taken before the erasure expires"} {
		if !strings.Contains(details, want) {
			t.Errorf("details lack %q:\n%s", want, details)
		}
	}
	if strings.Contains(details, "GMT") || strings.Contains(checks, ".000Z") || !strings.Contains(details, " UTC") {
		t.Errorf("dates are not all in one format:\n%s\n%s", checks, details)
	}
	if strings.Contains(details, "alice") {
		t.Error("the page shows the person's email")
	}
	// Nothing re-checks this certificate (no recheck_after): the page
	// says so once it has the log's latest checkpoint.
	do(chromedp.WaitVisible(chromedp.CSS("#details .rechecks p")))
	if r := text("#details .rechecks"); !strings.Contains(r, "Re-checked later") || !strings.Contains(r, "Not re-checked yet") {
		t.Errorf("re-checks of a certificate with none:\n%s", r)
	}

	// Is it mine? The person's email and proof code open the commitment.
	do(chromedp.Click(chromedp.CSS("#mine summary")),
		chromedp.SendKeys(chromedp.CSS("#c-email"), "alice@example.com"),
		chromedp.SendKeys(chromedp.CSS("#c-nonce"), f.CommitmentNonce),
		chromedp.Click(chromedp.CSS("#commitment button")),
		chromedp.Sleep(500*time.Millisecond))
	if mine := text("#c-result"); !strings.HasPrefix(mine, "Yes") {
		t.Errorf("commitment check = %q", mine)
	}

	// Upload a tampered copy: the page says it is not valid, and why.
	tampered := filepath.Join(t.TempDir(), "tampered.json")
	writeFile(t, tampered, tamperPayload(t, doc))
	do(chromedp.Navigate(base+"/audit"),
		chromedp.SetUploadFiles(chromedp.CSS("#cert-file"), []string{tampered}),
		chromedp.WaitVisible(chromedp.CSS("#verdict.bad")))
	screenshot("audit-tampered.png")
	if v := text("#verdict"); !strings.Contains(v, "altered") {
		t.Errorf("tampered verdict %q", v)
	}
	// No green tick on a tampered certificate: what passed before the
	// failure is shown as not to be trusted.
	ticks, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#checks li.ok").length`))
	if err != nil {
		t.Fatal(err)
	}
	if c := text("#checks"); ticks != 0 || !strings.Contains(c, "not to be trusted") {
		t.Errorf("a tampered certificate shows %d ticks:\n%s", ticks, c)
	}

	// A certificate link pasted into the id field opens it.
	do(chromedp.Navigate(base+"/audit"), chromedp.WaitVisible(chromedp.CSS("#cert-id")),
		chromedp.SendKeys(chromedp.CSS("#cert-id"), "  "+base+"/audit?certificate="+certID+" "),
		chromedp.Click(chromedp.CSS("#by-id button")),
		chromedp.WaitVisible(chromedp.CSS("#details table")))
	if v := text("#verdict"); !strings.HasPrefix(v, "Valid") {
		t.Errorf("verdict for a pasted link %q", v)
	}
	do(chromedp.Navigate(base+"/audit"), chromedp.WaitVisible(chromedp.CSS("#cert-id")),
		chromedp.SendKeys(chromedp.CSS("#cert-id"), base+"/v1/certificates/"+certID),
		chromedp.Click(chromedp.CSS("#by-id button")),
		chromedp.WaitVisible(chromedp.CSS("#details table")))
	if v := text("#verdict"); !strings.HasPrefix(v, "Valid") {
		t.Errorf("verdict for a pasted API link %q", v)
	}
}
