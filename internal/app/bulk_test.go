package app_test

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lethe-dev/lethe/internal/testenv"
)

// batchAnswer is the answer of POST /v1/requests/batch.
type batchAnswer struct {
	Batch                    string
	Filed, Existing, Refused int
	NotAttempted             int `json:"not_attempted"`
	Results                  []struct {
		Index         int
		Outcome       string
		RequestID     string `json:"request_id"`
		RequestStatus string `json:"request_status"`
		Error         *struct{ Code, Message, Field string }
	}
}

// batchSummary is GET /v1/batches/{name}.
type batchSummary struct {
	Name             string
	Requests, Final  int
	ByStatus         map[string]int `json:"by_status"`
	Systems          int
	SystemsDone      int    `json:"systems_done"`
	RequestsURL      string `json:"requests_url"`
	WaitingForPerson int    `json:"waiting_for_person"`
}

// requestCount is how many requests Lethe holds, and how many of them
// were filed for email.
func requestCount(t *testing.T, base, token, email string) (all, of int) {
	t.Helper()
	for before := ""; ; {
		var page struct {
			Requests []struct{ Subject *struct{ Email string } }
			Next     string
		}
		call(t, "GET", base+"/v1/requests?limit=500&before="+before, token, "", &page)
		for _, r := range page.Requests {
			all++
			if r.Subject != nil && r.Subject.Email == email {
				of++
			}
		}
		if page.Next == "" {
			return all, of
		}
		before = page.Next
	}
}

// TestBatchIntake: POST /v1/requests/batch files each item on its own
// (a wrong item is refused with its field, the others are filed), sending
// the batch again files nobody twice, and a failure of Lethe's own stops
// the batch with the rest marked not_attempted, to be sent again.
func TestBatchIntake(t *testing.T) {
	ns := testenv.NATS(t)
	tg := newTarget(t)
	in := newInstance(t, ns.ClientURL(), tg.connectorsYAML(), "")
	in.serve(t)
	base := "http://" + in.addr

	body := `{"requests":[
	  {"subject":{"email":"bulk.one@example.com"},"jurisdiction":"gdpr","idempotency_key":"b-1"},
	  {"subject":{"email":"not an address"},"jurisdiction":"gdpr","idempotency_key":"b-2"},
	  {"subject":{"email":"bulk.three@example.com"},"jurisdiction":"gdpr"},
	  {"subject":{"email":"bulk.four@example.com"},"jurisdiction":"gdpr","idempotency_key":"b-1"},
	  {"subject":{"email":"bulk.five@example.com"},"jurisdiction":"mars","idempotency_key":"b-5"},
	  {"jurisdiction":"gdpr","idempotency_key":"b-6"},
	  {"subject":{"email":"bulk.seven@example.com","user_ids":{"shop-db":"7"}},"jurisdiction":"ccpa","idempotency_key":"b-7"}
	]}`
	var a batchAnswer
	if code := call(t, "POST", base+"/v1/requests/batch", in.agentToken, body, &a); code != http.StatusOK {
		t.Fatalf("batch = %d %+v", code, a)
	}
	want := []struct{ outcome, field string }{
		{"filed", ""}, {"refused", "requests[1].subject.email"}, {"refused", "requests[2].idempotency_key"},
		{"refused", "requests[3].idempotency_key"}, {"refused", "requests[4].jurisdiction"},
		{"refused", "requests[5].subject"}, {"filed", ""},
	}
	if len(a.Results) != len(want) || a.Filed != 2 || a.Refused != 5 || a.Existing != 0 || a.NotAttempted != 0 {
		t.Fatalf("batch answered %+v", a)
	}
	for i, w := range want {
		r := a.Results[i]
		field := ""
		if r.Error != nil {
			field = r.Error.Field
			if strings.Contains(r.Error.Message, "not an address") {
				t.Errorf("item %d: the error quotes the value: %s", i, r.Error.Message)
			}
		}
		if r.Index != i || r.Outcome != w.outcome || field != w.field || (w.outcome == "filed") != (r.RequestID != "") {
			t.Errorf("item %d = %+v %+v, want %s %q", i, r, r.Error, w.outcome, w.field)
		}
	}
	first := a.Results[0].RequestID

	// Sent again (a client that timed out): the same requests, none new.
	var again batchAnswer
	call(t, "POST", base+"/v1/requests/batch", in.agentToken, body, &again)
	if again.Filed != 0 || again.Existing != 2 || again.Results[0].Outcome != "existing" || again.Results[0].RequestID != first {
		t.Errorf("the batch sent again = %+v, want the two requests existing", again)
	}
	if all, _ := requestCount(t, base, in.adminToken, ""); all != 2 {
		t.Errorf("Lethe holds %d requests, want 2", all)
	}

	// Lethe named the batch (a batch sent again without a name is named
	// anew; its requests stay in the first); the requests carry it and
	// the batch sums them up.
	if !strings.HasPrefix(a.Batch, "batch-") || again.Batch == a.Batch {
		t.Errorf("batch names %q then %q, want two made by Lethe", a.Batch, again.Batch)
	}
	var one struct{ Batch string }
	call(t, "GET", base+"/v1/requests/"+first, in.auditToken, "", &one)
	var sum batchSummary
	if code := call(t, "GET", base+"/v1/batches/"+a.Batch, in.auditToken, "", &sum); code != 200 || one.Batch != a.Batch ||
		sum.Requests != 2 || sum.Systems != 4 || sum.RequestsURL != "/v1/requests?batch="+a.Batch {
		t.Errorf("the request is in batch %q; the batch = %d %+v, want 2 requests, 4 systems", one.Batch, code, sum)
	}
	named := `{"batch":"shutdown-2026","requests":[{"subject":{"email":"bulk.ten@example.com"},"jurisdiction":"gdpr","idempotency_key":"b-10"}]}`
	var n batchAnswer
	call(t, "POST", base+"/v1/requests/batch", in.agentToken, named, &n)
	var list struct{ Requests []struct{ ID, Batch string } }
	call(t, "GET", base+"/v1/requests?batch=shutdown-2026", in.auditToken, "", &list)
	if n.Batch != "shutdown-2026" || n.Filed != 1 || len(list.Requests) != 1 || list.Requests[0].ID != n.Results[0].RequestID {
		t.Errorf("a named batch = %+v; its requests %+v", n, list)
	}
	var batches struct{ Batches []batchSummary }
	call(t, "GET", base+"/v1/batches?limit=5", in.auditToken, "", &batches)
	if len(batches.Batches) != 2 || batches.Batches[0].Name != "shutdown-2026" || batches.Batches[1].Name != a.Batch {
		t.Errorf("batches = %+v, want shutdown-2026 then %s", batches, a.Batch)
	}
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/v1/requests/batch", `{"batch":"ada@example.com","requests":[{"subject":{"email":"a@example.com"},"jurisdiction":"gdpr","idempotency_key":"k"}]}`, 400, "batch"},
		{"GET", "/v1/batches/never-filed", "", 404, "never-filed"},
		{"GET", "/v1/batches/bad%20name", "", 400, "batch"},
		{"GET", "/v1/requests?batch=bad%20name", "", 400, "batch"},
		{"GET", "/v1/batches?limit=0", "", 400, "limit"},
	} {
		var e struct {
			Error struct{ Message, Field string }
		}
		if code := call(t, tc.method, base+tc.path, in.agentToken, tc.body, &e); code != tc.code || !strings.Contains(e.Error.Field+" "+e.Error.Message, tc.want) {
			t.Errorf("%s %s: %d %+v, want %d %q", tc.method, tc.path, code, e, tc.code, tc.want)
		}
	}

	for _, tc := range []struct {
		name, token, body string
		code              int
		want              string
	}{
		{"empty", in.agentToken, `{"requests":[]}`, 400, "is empty"},
		{"too many", in.agentToken, `{"requests":[` + strings.Repeat(`{"subject":{"email":"a@example.com"},"jurisdiction":"gdpr","idempotency_key":"k"},`, 1000) +
			`{"subject":{"email":"a@example.com"},"jurisdiction":"gdpr","idempotency_key":"k"}]}`, 400, "at most 1000"},
		{"unknown member", in.agentToken, `{"requests":[{"subject":{"email":"a@example.com"},"jurisdiction":"gdpr","idempotency_key":"k","extra":1}]}`, 400, "extra"},
		{"not json", in.agentToken, `requests`, 400, ""},
		{"auditor", in.auditToken, `{"requests":[{"subject":{"email":"a@example.com"},"jurisdiction":"gdpr","idempotency_key":"k"}]}`, 403, ""},
		{"no token", "", `{"requests":[]}`, 401, ""},
	} {
		var e struct {
			Error struct{ Message, Field string }
		}
		if code := call(t, "POST", base+"/v1/requests/batch", tc.token, tc.body, &e); code != tc.code || !strings.Contains(e.Error.Field+" "+e.Error.Message, tc.want) {
			t.Errorf("%s: %d %+v, want %d %q", tc.name, code, e, tc.code, tc.want)
		}
	}

	// Lethe's own failure (its requests table gone): nothing is filed,
	// the failing item and the rest are not_attempted.
	db, err := sql.Open("pgx", in.storeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`ALTER TABLE requests RENAME TO requests_away`); err != nil {
		t.Fatal(err)
	}
	var broken batchAnswer
	code := call(t, "POST", base+"/v1/requests/batch", in.agentToken, `{"requests":[
	  {"subject":{"email":"bulk.eight@example.com"},"jurisdiction":"gdpr","idempotency_key":"b-8"},
	  {"subject":{"email":"bulk.nine@example.com"},"jurisdiction":"gdpr","idempotency_key":"b-9"}]}`, &broken)
	if _, err := db.Exec(`ALTER TABLE requests_away RENAME TO requests`); err != nil {
		t.Fatal(err)
	}
	if code != http.StatusOK || broken.NotAttempted != 2 || broken.Filed != 0 || broken.Results[1].Error == nil ||
		!strings.Contains(broken.Results[1].Error.Message, "send this one again") {
		t.Errorf("a batch while the store fails = %d %+v", code, broken)
	}
}

// TestImportCSV: `lethe request import` files every row in batches with
// progress, lists the refused rows by line (never their values), and when
// interrupted — by an answer lost on the way back, or Lethe going away —
// goes on where it stopped when run again, filing nobody twice.
func TestImportCSV(t *testing.T) {
	ns := testenv.NATS(t)
	tg := newTarget(t)
	in := newInstance(t, ns.ClientURL(), tg.connectorsYAML(), "")
	in.serve(t)
	base := "http://" + in.addr

	// A proxy in front of Lethe that, once armed, lets one batch through
	// to Lethe but loses its answer, then refuses everything: the worst
	// interruption, where the client cannot know what was filed.
	target, _ := url.Parse(base)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var batches, lostAfter atomic.Int32
	lostAfter.Store(-1)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := batches.Add(1)
		switch after := lostAfter.Load(); {
		case after >= 0 && n == after+1:
			proxy.ServeHTTP(httptest.NewRecorder(), r) // filed, answer lost
			http.Error(w, "gateway timeout", http.StatusGatewayTimeout)
		case after >= 0 && n > after+1:
			http.Error(w, "bad gateway", http.StatusBadGateway)
		default:
			proxy.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(front.Close)

	dir := t.TempDir()
	csvPath := filepath.Join(dir, "closed-accounts.csv")
	var b strings.Builder
	b.WriteString("\ufeffEmail,user_id:shop-db,jurisdiction\n")
	for i := 1; i <= 11; i++ {
		switch i {
		case 4:
			b.WriteString("not-an-address,4,gdpr\n")
		case 9:
			b.WriteString(",,\n") // nobody
		default:
			fmt.Fprintf(&b, "import.%d@example.com,%d,\n", i, i)
		}
	}
	b.WriteString("\"import.12@example.com\",12,ccpa\n")
	if err := os.WriteFile(csvPath, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"LETHE_URL": front.URL, "LETHE_TOKEN": in.agentToken}

	// The first run is cut off: batch 1 answered, batch 2 filed but its
	// answer lost, then Lethe unreachable.
	lostAfter.Store(1)
	code, out, errs := staff(t, env, "import", csvPath, "--batch", "3")
	if code != 1 || !strings.Contains(errs, "import stopped at row 3 of 12") || !strings.Contains(errs, "run the same command again") {
		t.Fatalf("interrupted import = %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(errs, "[#######") || !strings.Contains(errs, "3/12 rows (25%)") {
		t.Errorf("no progress shown:\n%s", errs)
	}

	// Run again: it resumes at row 3, sends batch 2 again (its rows are
	// found filed), and finishes.
	lostAfter.Store(-1)
	code, out, errs = staff(t, env, "import", csvPath, "--batch", "3")
	if code != 1 || !strings.Contains(errs, "resuming: 3 of 12 rows were done before") {
		t.Fatalf("resumed import = %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{
		"12 rows: 8 filed, 2 filed before (same file and line), 2 refused",
		"line 5 refused: subject.email: not a valid email address",
		"line 10 refused: subject: at least one identifier",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the summary does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+errs, "not-an-address") || strings.Contains(out+errs, "import.5@") {
		t.Errorf("the output quotes a row's values:\n%s\n%s", out, errs)
	}
	all, _ := requestCount(t, base, in.adminToken, "")
	if _, one := requestCount(t, base, in.adminToken, "import.5@example.com"); all != 10 || one != 1 {
		t.Errorf("Lethe holds %d requests (%d for row 6), want 10 and 1", all, one)
	}

	// Both runs filed into one batch, named after the file, that the
	// summary names; resuming under another name is refused.
	sum256 := sha256.Sum256([]byte(b.String()))
	batch := "import-" + hex.EncodeToString(sum256[:])[:12]
	var s batchSummary
	if code := call(t, "GET", base+"/v1/batches/"+batch, in.adminToken, "", &s); code != 200 || s.Requests != 10 ||
		!strings.Contains(out, "batch "+batch+": follow it in the console (/console?batch="+batch+")") {
		t.Errorf("batch %s = %d %+v; the summary:\n%s", batch, code, s, out)
	}
	if code, _, errs := staff(t, env, "import", csvPath, "--name", "other"); code != 2 || !strings.Contains(errs, "began as batch "+batch) {
		t.Errorf("resumed under another name: %d %s", code, errs)
	}
	direct := map[string]string{"LETHE_URL": base, "LETHE_TOKEN": in.agentToken}
	if code, out, errs := staff(t, direct, "batch", batch); code != 0 || !strings.Contains(out, "batch "+batch+": ") || !strings.Contains(out, "of 10 requests over") ||
		!strings.Contains(out, "lethe request list --batch "+batch) {
		t.Errorf("lethe request batch = %d\n%s%s", code, out, errs)
	}
	if code, out, _ := staff(t, direct, "list", "--batch", batch, "--limit", "500"); code != 0 || strings.Count(out, "\n") != 11 {
		t.Errorf("lethe request list --batch = %d, want a header and 10 rows:\n%s", code, out)
	}
	if code, _, errs := staff(t, direct, "batch", "never-filed"); code != 1 || !strings.Contains(errs, "never-filed") {
		t.Errorf("an unknown batch = %d %s", code, errs)
	}

	// A third run changes nothing; a changed file is refused, naming the
	// progress file to remove.
	if code, out, _ = staff(t, env, "import", csvPath); code != 1 || !strings.Contains(out, "12 rows: 8 filed, 2 filed before") {
		t.Errorf("an import run again = %d\n%s", code, out)
	}
	if err := os.WriteFile(csvPath, []byte(b.String()+"import.13@example.com,13,\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs = staff(t, env, "import", csvPath); code != 2 || !strings.Contains(errs, "the file changed since the import") {
		t.Errorf("a changed file = %d\n%s", code, errs)
	}
	if all2, _ := requestCount(t, base, in.adminToken, ""); all2 != all {
		t.Errorf("requests %d → %d after refused imports", all, all2)
	}

	for _, tc := range []struct {
		name, csv string
		args      []string
		want      string
	}{
		{"unknown column", "email,name\na@example.com,Ada\n", nil, `unknown column "name"`},
		{"empty", "", nil, "the file is empty"},
		{"header only", "email\n", nil, "no rows after the header"},
		{"bad quoting", "email\n\"a@example.com\n", nil, "line 2"},
		{"batch size", "email\na@example.com\n", []string{"--batch", "5000"}, "--batch 5000"},
		{"batch name", "email\na@example.com\n", []string{"--name", "ada@example.com"}, "--name: name a batch"},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".csv")
		if err := os.WriteFile(p, []byte(tc.csv), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, errs := staff(t, env, append([]string{"import", p}, tc.args...)...)
		if code != 2 || !strings.Contains(errs, tc.want) || strings.Contains(errs, "Ada") {
			t.Errorf("%s: %d %q, want 2 and %q", tc.name, code, errs, tc.want)
		}
	}
	if code, _, errs := staff(t, env, "import", filepath.Join(dir, "missing.csv")); code != 2 || !strings.Contains(errs, "no such file") {
		t.Errorf("a missing file: %d %q", code, errs)
	}
}
