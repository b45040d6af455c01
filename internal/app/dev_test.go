package app_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/certificate"
	"github.com/lethe-dev/lethe/internal/demo"
	"github.com/lethe-dev/lethe/internal/erasure"
	_ "modernc.org/sqlite"
)

// runDev starts `lethe dev` on dir and returns its stdout and a stop func.
func runDev(t *testing.T, dir string, flags ...string) (base string, stdout *syncBuffer, stop func()) {
	t.Helper()
	addr := freeAddr(t)
	stdout = &syncBuffer{}
	stop = runInProcess(t, append([]string{"lethe", "dev", "--addr", addr, "--data-dir", dir}, flags...), stdout, &syncBuffer{}, "http://"+addr)
	return "http://" + addr, stdout, stop
}

// TestDevMode is the README's quick start: `lethe dev` with no setup, the
// printed curl for a demo customer, the customer's rows and files gone, a
// certificate that verifies; and a restart keeps everything.
func TestDevMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	base, stdout, stop := runDev(t, dir)
	tokenBytes, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatalf("admin token not written: %v", err)
	}
	token := strings.TrimSpace(string(tokenBytes))
	banner := stdout.String()
	for _, want := range []string{base, token, "curl -s -X POST " + base + "/v1/requests", "alice@example.com"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}

	shop, err := sql.Open("sqlite", filepath.Join(dir, "shop.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer shop.Close()
	count := func(q string, args ...any) int {
		var n int
		if err := shop.QueryRow(q, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const personal = `SELECT (SELECT count(*) FROM customers WHERE email = ?) + (SELECT count(*) FROM orders WHERE email = ?) + (SELECT count(*) FROM newsletter_signups WHERE email = ?)`
	if n := count(personal, "alice@example.com", "alice@example.com", "alice@example.com"); n == 0 {
		t.Fatal("demo data has no rows for alice")
	}
	others := count(`SELECT count(*) FROM customers`) - 1

	// The data map shows the demo's real finding: the shop's delivery
	// notes, which no statement erases (discovery runs at start-up).
	var dataMap struct {
		Connectors []dataMapRow `json:"connectors"`
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		call(t, "GET", base+"/v1/coverage", token, "", &dataMap)
		if len(dataMap.Connectors) > 0 && dataMap.Connectors[0].Status != "not_run" || time.Now().After(deadline) {
			break
		}
	}
	if got := statuses(dataMap.Connectors); got != "shop-db=uncovered customer-files=covered analytics=covered" ||
		dataMap.Connectors[0].Findings[0]["place"] != "orders.delivery_note" {
		t.Errorf("dev data map: %s, %v", got, dataMap.Connectors)
	}
	r := fileRequest(t, base, token, "alice@example.com")
	r = waitStatus(t, base, token, r.ID, 30*time.Second, "completed")
	if n := count(personal, "alice@example.com", "alice@example.com", "alice@example.com"); n != 0 {
		t.Errorf("%d rows about alice remain", n)
	}
	if n := count(`SELECT count(*) FROM customers`); n != others {
		t.Errorf("%d customers left, want %d", n, others)
	}
	for _, p := range []string{"files/exports/alice@example.com.csv", "files/uploads/alice@example.com"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("%s still exists", p)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "files/uploads/bob@example.com")); err != nil {
		t.Errorf("bob's files are gone: %v", err)
	}
	// The analytics store knows alice only by the app user id the shop
	// keeps: Lethe found it there, erased by it, and says so.
	analytics, err := sql.Open("sqlite", filepath.Join(dir, "analytics.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer analytics.Close()
	var left, bobs int
	_ = analytics.QueryRow(`SELECT count(*) FROM events WHERE app_user_id = ?`, demo.Customers[0].AppUserID()).Scan(&left)
	_ = analytics.QueryRow(`SELECT count(*) FROM events WHERE app_user_id = ?`, demo.Customers[1].AppUserID()).Scan(&bobs)
	if left != 0 || bobs == 0 {
		t.Errorf("analytics events: alice %d (want 0), bob %d (want some)", left, bobs)
	}
	var keys certificate.JWKS
	call(t, "GET", base+"/v1/keys", "", "", &keys)
	v, err := certificate.Verify(getCertificate(t, base, token, r.ID), keys)
	if err != nil {
		t.Fatalf("dev certificate does not verify: %v", err)
	}
	systems := map[string]certificate.System{}
	for _, s := range v.Payload.Systems {
		systems[s.Connector] = s
	}
	an := systems["analytics"]
	if an.Outcome != "erased" || len(an.SearchedBy) != 1 || an.SearchedBy[0] != (erasure.Source{Kind: "user_ids.app", From: "shop-db"}) {
		t.Errorf("certificate line for analytics: %+v", an)
	}
	if len(v.Payload.Resolution) != 1 || v.Payload.Resolution[0].Connector != "shop-db" || len(v.Payload.Resolution[0].Found) != 3 {
		t.Errorf("certificate resolution: %+v", v.Payload.Resolution)
	}
	if sum := v.Summary(); !strings.Contains(sum, "searched by user_ids.app (shop-db)") {
		t.Errorf("summary does not show the resolved id's kind and source:\n%s", sum)
	}
	stop()

	// Restart on the same data: same token, the request and its
	// certificate are still there, erased data stays erased.
	base, _, _ = runDev(t, dir)
	again := waitStatus(t, base, token, r.ID, 5*time.Second, "completed")
	if again.ID != r.ID {
		t.Fatal("request lost across restart")
	}
	if _, err := certificate.Verify(getCertificate(t, base, token, r.ID), keys); err != nil {
		t.Errorf("certificate after restart: %v", err)
	}
	bob := fileRequest(t, base, token, "bob@example.com")
	waitStatus(t, base, token, bob.ID, 30*time.Second, "completed")
}

// TestDevStaffActions: `lethe dev --require-approval --manual` lets every
// staff action be tried from the quick start: portal requests wait for
// approval (one approved, one denied), and the paper archive's task waits
// for a person to complete it.
func TestDevStaffActions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	base, _, _ := runDev(t, dir, "--require-approval", "--manual")
	tokenBytes, err := os.ReadFile(filepath.Join(dir, "agent.token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tokenBytes))
	approved, _, _ := portalRequest(t, base, devInbox(base), demo.Customers[2].Email, nil)
	denied, _, _ := portalRequest(t, base, devInbox(base), demo.Customers[3].Email, nil)
	waitStatus(t, base, token, approved, 10*time.Second, "pending_approval")
	waitStatus(t, base, token, denied, 10*time.Second, "pending_approval")
	if code := call(t, "POST", base+"/v1/requests/"+denied+"/deny", token, `{"reason":"not a customer of ours"}`, nil); code != 200 {
		t.Errorf("deny = %d", code)
	}
	if code := call(t, "POST", base+"/v1/requests/"+approved+"/approve", token, `{"reason":"identity checked"}`, nil); code != 200 {
		t.Fatalf("approve = %d", code)
	}
	// Every other system finishes; the paper archive waits for a person.
	var r apiRequest
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		r = waitStatus(t, base, token, approved, 10*time.Second, "in_progress")
		waiting := 0
		for _, task := range r.Tasks {
			if task.Connector == "paper-archive" && task.Status == "running" {
				waiting++
			} else if !erasure.TaskStatus(task.Status).Done() {
				waiting = -100
			}
		}
		if waiting == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tasks = %+v; want all done but the paper archive, waiting for a person", r.Tasks)
		}
	}
	if code := call(t, "POST", base+"/v1/requests/"+approved+"/tasks/paper-archive/complete", token,
		`{"outcome":"erased","records":1,"reason":"folder shredded, box 12"}`, nil); code != 200 {
		t.Fatalf("complete = %d", code)
	}
	waitStatus(t, base, token, approved, 30*time.Second, "completed")
	waitStatus(t, base, token, denied, time.Second, "denied")
}
