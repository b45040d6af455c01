package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/lethe-dev/lethe/internal/app"
	"github.com/lethe-dev/lethe/internal/testenv"
)

type followUp struct {
	Connector string `json:"connector"`
	Kind      string `json:"kind"`
	After     string `json:"after"`
	Status    string `json:"status"`
	Records   int64  `json:"records"`
}

type flaggedRequest struct {
	Status    string     `json:"status"`
	Flag      string     `json:"flag"`
	FlaggedAt *time.Time `json:"flagged_at"`
	Rechecks  []followUp `json:"rechecks"`
}

// TestRecheckCatchesAPersonReinserted: the shop database is re-checked 3
// seconds after a request completes (and again at 600h). The person is
// put back in between (an import re-creating them); the first re-check
// finds them, counts a resurrection, erases them again on its own and
// flags the request for staff; the certificate's re-check leaves verify
// against the transparency log with `lethe cert verify --log`, and a log
// that alters one is refused.
func TestRecheckCatchesAPersonReinserted(t *testing.T) {
	ns := testenv.NATS(t)
	tg := newTarget(t)
	conns := strings.Replace(tg.connectorsYAML(), "  - name: shop-db\n    type: sql\n", "  - name: shop-db\n    type: sql\n    recheck_after: [3s, 600h]\n", 1)
	in := newInstance(t, ns.ClientURL(), conns, "")
	in.serve(t)
	base := "http://" + in.addr
	const email = "back-again@example.com"

	tg.seed(t, email)
	r := fileRequest(t, base, in.adminToken, email)
	waitStatus(t, base, in.adminToken, r.ID, 30*time.Second, "completed")
	// The import runs again and re-creates them before the 3s re-check
	// (which counts customers and orders: 1 record).
	if _, err := tg.db.Exec(`INSERT INTO customers (email, name) VALUES ($1, 'Test Person')`, email); err != nil {
		t.Fatal(err)
	}
	if _, err := tg.db.Exec(`INSERT INTO newsletter (email) VALUES ($1)`, email); err != nil {
		t.Fatal(err)
	}

	var got flaggedRequest
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		got = flaggedRequest{}
		call(t, "GET", base+"/v1/requests/"+r.ID, in.agentToken, "", &got)
		if reerased(got) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !reerased(got) {
		t.Fatalf("no re-erasure after the first re-check: %+v", got)
	}
	byPhase := map[string]followUp{}
	for _, f := range got.Rechecks {
		byPhase[f.Kind+" "+f.After] = f
	}
	if f := byPhase["recheck 3s"]; f.Status != "found_again" || f.Records != 1 || f.Connector != "shop-db" {
		t.Errorf("first re-check: %+v", f)
	}
	if f := byPhase["recheck 600h"]; f.Status != "scheduled" {
		t.Errorf("second re-check: %+v", f)
	}
	if f := byPhase["reerase 3s"]; f.Status != "erased" || f.Records != 2 {
		t.Errorf("re-erasure: %+v", f)
	}
	if got.Status != "completed" || got.Flag == "" || got.FlaggedAt == nil || !strings.Contains(got.Flag, "shop-db held the person again") {
		t.Errorf("request after the resurrection: %+v", got)
	}
	if strings.Contains(got.Flag, email) {
		t.Error("the flag names the person")
	}
	if rows, _ := tg.remaining(t, email); rows != 0 {
		t.Errorf("%d rows of the person left after the re-erasure", rows)
	}

	_, metrics, _ := getBody(t, base+"/metrics", "")
	for _, want := range []string{`lethe_resurrections_total{connector="shop-db"} 1`, `lethe_rechecks_total{connector="shop-db",outcome="found"} 1`,
		`lethe_rechecks_total{connector="shop-db",outcome="re_erased"} 1`} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(string(metrics), "lethe_re"))
		}
	}
	flagged, chainValid := countEvents(t, base, in.agentToken, r.ID, "request.flagged", "")
	if flagged != 1 || !chainValid {
		t.Errorf("%d request.flagged events, chain valid %v", flagged, chainValid)
	}
	var list struct {
		Requests []struct {
			ID string `json:"id"`
		} `json:"requests"`
	}
	if call(t, "GET", base+"/v1/requests?flagged=true", in.agentToken, "", &list); len(list.Requests) != 1 || list.Requests[0].ID != r.ID {
		t.Errorf("flagged list: %+v", list)
	}
	if code := call(t, "GET", base+"/v1/requests?flagged=yes", in.agentToken, "", nil); code != 400 {
		t.Errorf("flagged=yes: %d", code)
	}

	// The certificate's re-checks verify against the log.
	dir := t.TempDir()
	certFile := filepath.Join(dir, "cert.json")
	writeFile(t, certFile, getCertificate(t, base, in.auditToken, r.ID))
	verify := func(logURL string) (int, string) {
		var out bytes.Buffer
		code := app.Run(context.Background(), []string{"lethe", "cert", "verify", certFile, "--jwks", base + "/v1/keys", "--log", logURL}, os.Getenv, &out, &out)
		return code, out.String()
	}
	code, out := verify(base)
	if code != 0 || !strings.Contains(out, "Re-checked later (2, each in the log)") ||
		!strings.Contains(out, "shop-db at 3s") || !strings.Contains(out, "FOUND AGAIN: held 1 record;") ||
		!strings.Contains(out, "erased again: 2 records") {
		t.Errorf("cert verify --log = %d:\n%s", code, out)
	}
	// A log that alters a re-check (found → clean) is caught.
	code, out = verify(alteredRechecks(t, base).URL)
	if code != 1 || !strings.Contains(out, "re-checks of this certificate do not verify") || strings.HasPrefix(out, "VALID") {
		t.Errorf("cert verify against an altered re-check = %d:\n%s", code, out)
	}

	// The auditor page shows them, proven in the browser; through the
	// altering log it shows the altered one as failing.
	certID := docCertificateID(t, mustRead(t, certFile))
	ctx := browser(t)
	pageText := func(url, sel string) string {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(url+"/audit?certificate="+certID), chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
			t.Fatalf("%s on %s: %v", sel, url, err)
		}
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#details .rechecks")))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	shown := pageText(base, "#details .rechecks ul")
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(screenshotDir(t), "audit-rechecks.png"), png)
	for _, want := range []string{"shop-db at 3s", "found again: held 1 record; Lethe started erasing them again", "erased again: 2 records", "latest signed checkpoint"} {
		if !strings.Contains(shown, want) {
			t.Errorf("the auditor page's re-checks lack %q:\n%s", want, shown)
		}
	}
	if strings.Contains(shown, "does not verify") {
		t.Errorf("a genuine re-check fails on the auditor page:\n%s", shown)
	}
	// Through the altering log (found → clean), that leaf fails, in red and
	// in words, and its altered outcome is not shown as a result.
	altered := pageText(alteredRechecks(t, base).URL, "#details .rechecks li.bad")
	if !strings.Contains(altered, "does not verify, so it cannot be trusted: it is not in the log's signed tree") ||
		!strings.Contains(altered, "1 of 2 re-checks does not verify") || strings.Contains(altered, "clean: looked up again") ||
		!strings.Contains(altered, "erased again: 2 records") {
		t.Errorf("the altered re-check on the auditor page:\n%s", altered)
	}
	png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(screenshotDir(t), "audit-rechecks-altered.png"), png)
	color, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector("#details .rechecks li.bad")).color`))
	if err != nil {
		t.Fatal(err)
	}
	if ticks, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#details .rechecks li.ok").length`)); err != nil || ticks != 0 || color != "rgb(164, 14, 38)" {
		t.Errorf("the altered re-check shows %d ticks (%v), its text is %s, not red", ticks, err, color)
	}

	// Staff clear the flag once they know why the person came back.
	if code := call(t, "POST", base+"/v1/requests/"+r.ID+"/flag/clear", in.agentToken, `{"reason":""}`, nil); code != 400 {
		t.Errorf("clearing without a reason: %d", code)
	}
	if code := call(t, "POST", base+"/v1/requests/"+r.ID+"/flag/clear", in.auditToken, `{"reason":"x"}`, nil); code != 403 {
		t.Errorf("an auditor cleared a flag: %d", code)
	}
	got = flaggedRequest{}
	if code := call(t, "POST", base+"/v1/requests/"+r.ID+"/flag/clear", in.agentToken, `{"reason":"the nightly CRM import re-created them; fixed"}`, &got); code != 200 || got.Flag != "" {
		t.Errorf("clear flag: %d %+v", code, got)
	}
	if code := call(t, "POST", base+"/v1/requests/"+r.ID+"/flag/clear", in.agentToken, `{"reason":"again"}`, nil); code != 409 {
		t.Errorf("clearing twice: %d", code)
	}
}

func reerased(r flaggedRequest) bool {
	for _, f := range r.Rechecks {
		if f.Kind == "reerase" && f.Status == "erased" {
			return true
		}
	}
	return false
}

// alteredRechecks proxies Lethe but turns a found re-check into a clean
// one, the way a log operator hiding a resurrection would.
func alteredRechecks(t *testing.T, base string) *httptest.Server {
	t.Helper()
	target, _ := url.Parse(base)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(target.String() + r.URL.RequestURI())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if strings.HasSuffix(r.URL.Path, "/rechecks") {
			var doc map[string]any
			_ = json.Unmarshal(b, &doc)
			for _, rc := range doc["rechecks"].([]any) {
				m := rc.(map[string]any)
				leaf, _ := base64.StdEncoding.DecodeString(m["leaf_data"].(string))
				leaf = bytes.Replace(leaf, []byte(`"outcome":"found"`), []byte(`"outcome":"clean"`), 1)
				m["leaf_data"] = base64.StdEncoding.EncodeToString(leaf)
			}
			b, _ = json.Marshal(doc)
		}
		for _, h := range []string{"Content-Type", "Content-Security-Policy"} {
			w.Header().Set(h, resp.Header.Get(h))
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestSweepCatchesAPersonReimportedAfterShredding: with
// suppression_sweep.interval,
// lethe serve scans the shop database against the suppression list on its
// own. A person erased and shredded long ago whom an import re-creates is
// erased again, counted, flagged, and the sweep is a leaf naming the
// certificate.
func TestSweepCatchesAPersonReimportedAfterShredding(t *testing.T) {
	ns := testenv.NATS(t)
	tg := newTarget(t)
	scan := tg.scanningYAML()
	in := newInstance(t, ns.ClientURL(), scan, "suppression_sweep: {interval: 2s}")
	logs := in.serve(t)
	base := "http://" + in.addr
	const email = "imported-again@example.com"

	tg.seed(t, email)
	tg.seed(t, "never-erased@example.com")
	r := fileRequest(t, base, in.adminToken, email)
	waitStatus(t, base, in.adminToken, r.ID, 30*time.Second, "completed")
	if code := call(t, "POST", base+"/v1/requests/"+r.ID+"/shred", in.adminToken, `{"reason":"test"}`, nil); code != 200 {
		t.Fatalf("shred: %d", code)
	}
	if _, err := tg.db.Exec(`INSERT INTO customers (email, name) VALUES ($1, 'Test Person')`, email); err != nil {
		t.Fatal(err)
	}

	var got flaggedRequest
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && got.Flag == "" {
		time.Sleep(200 * time.Millisecond)
		call(t, "GET", base+"/v1/requests/"+r.ID, in.agentToken, "", &got)
	}
	if !strings.Contains(got.Flag, "shop-db held the person again at a scheduled sweep") || got.Status != "completed" {
		t.Fatalf("after the sweep: %+v\n%s", got, grepLines(logs.String(), `{"level`))
	}
	if rows, _ := tg.remaining(t, email); rows != 0 {
		t.Errorf("%d rows of the re-imported person left", rows)
	}
	if rows, files := tg.remaining(t, "never-erased@example.com"); rows != 4 || files != 2 {
		t.Errorf("the sweep erased someone never erased: %d rows, %d files left", rows, files)
	}
	_, metrics, _ := getBody(t, base+"/metrics", "")
	if !bytes.Contains(metrics, []byte(`lethe_resurrections_total{connector="shop-db"} 1`)) {
		t.Errorf("metrics:\n%s", grepLines(string(metrics), "lethe_re"))
	}
	swept, chainValid := countEvents(t, base, in.agentToken, r.ID, "replay.erased", "sweep")
	if swept != 1 || !chainValid {
		t.Errorf("%d sweep events (want 1), chain valid %v", swept, chainValid)
	}
	certFile := filepath.Join(t.TempDir(), "cert.json")
	writeFile(t, certFile, getCertificate(t, base, in.auditToken, r.ID))
	var out bytes.Buffer
	code := app.Run(context.Background(), []string{"lethe", "cert", "verify", certFile, "--jwks", base + "/v1/keys", "--log", base}, os.Getenv, &out, &out)
	if code != 0 || !strings.Contains(out.String(), "shop-db at a scheduled sweep") || !strings.Contains(out.String(), "erased again: 1 record") {
		t.Errorf("cert verify --log = %d:\n%s", code, out.String())
	}
	// Later sweeps find nothing more.
	time.Sleep(3 * time.Second)
	again, _ := countEvents(t, base, in.agentToken, r.ID, "replay.erased", "")
	if again != 1 {
		t.Errorf("%d sweep events after more sweeps", again)
	}
}

// countEvents counts a request's events of a type (by actor, unless
// actor is ""), and says whether its chain verifies.
func countEvents(t *testing.T, base, token, id, typ, actor string) (int, bool) {
	t.Helper()
	var ev struct {
		Events []struct {
			Type  string `json:"type"`
			Actor string `json:"actor"`
		} `json:"events"`
		ChainValid bool `json:"chain_valid"`
	}
	call(t, "GET", base+"/v1/requests/"+id+"/events", token, "", &ev)
	n := 0
	for _, e := range ev.Events {
		if e.Type == typ && (actor == "" || e.Actor == actor) {
			n++
		}
	}
	return n, ev.ChainValid
}

// docCertificateID reads a certificate document's own id.
func docCertificateID(t *testing.T, doc []byte) string {
	t.Helper()
	var d struct {
		Certificate struct {
			ID string `json:"certificate_id"`
		} `json:"certificate"`
	}
	if err := json.Unmarshal(doc, &d); err != nil || d.Certificate.ID == "" {
		t.Fatalf("no certificate id in %s (%v)", doc, err)
	}
	return d.Certificate.ID
}
