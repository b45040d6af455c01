package app_test

import (
	"encoding/csv"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/certificate"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// legacyYAML adds a system keyed by an id nothing supplies: only staff can
// find it (in an old ticket system, say).
func legacyYAML(tg *target) string {
	return fmt.Sprintf(`  - name: legacy
    type: sql
    config:
      driver: postgres
      dsn: %q
      statements:
        - {name: accounts, sql: "DELETE FROM legacy_accounts WHERE legacy_id = :user_ids.legacy"}
`, tg.url)
}

// TestNeedsIdentifierOverHTTP: a system keyed by an id the request does
// not have and no resolver supplies never completes on its own: the
// request needs attention, the task says what it needs. Staff add the id
// and it completes; or staff declare the system not applicable and the
// certificate says so.
func TestNeedsIdentifierOverHTTP(t *testing.T) {
	ns := testenv.NATS(t)
	tg := newTarget(t)
	tg.resolving = true
	if _, err := tg.db.Exec(`CREATE TABLE legacy_accounts (legacy_id text NOT NULL); INSERT INTO legacy_accounts VALUES ('L-1'), ('L-2')`); err != nil {
		t.Fatal(err)
	}
	in := newInstance(t, ns.ClientURL(), tg.resolvingYAML()+legacyYAML(tg), "")
	logs := in.serve(t)
	base := "http://" + in.addr
	tg.seed(t, "ann@example.com")
	tg.seed(t, "ben@example.com")

	r := fileRequest(t, base, in.agentToken, "ann@example.com")
	got := waitStatus(t, base, in.agentToken, r.ID, 30*time.Second, "needs_attention")
	var legacy string
	for _, task := range got.Tasks {
		if task.Connector == "legacy" {
			legacy = task.Status + ": " + task.Reason
		}
	}
	if !strings.HasPrefix(legacy, "needs_identifier: needs user_ids.legacy") {
		t.Fatalf("legacy task = %q", legacy)
	}
	time.Sleep(300 * time.Millisecond)
	if again := waitStatus(t, base, in.agentToken, r.ID, time.Second, "needs_attention"); again.CertificateURL != "" {
		t.Fatal("the request completed on its own with a system never searched")
	}

	// Bad input is refused, naming what is wrong.
	var e apiError
	for _, tc := range []struct {
		token, body string
		code        int
		field       string
	}{
		{in.auditToken, `{"identifiers":{"user_ids.legacy":"L-1"},"reason":"x"}`, 403, ""},
		{in.agentToken, `{"identifiers":{"user_ids.legacy":"L-1"}}`, 400, "reason"},
		{in.agentToken, `{"identifiers":{"user_id:legacy":"L-1"},"reason":"x"}`, 400, "identifiers"},
		{in.agentToken, `{"identifiers":{"email":"not an email"},"reason":"x"}`, 400, "identifiers.email"},
		{in.agentToken, `{"identifiers":{},"reason":"x"}`, 400, "identifiers"},
		{in.agentToken, `{"identifiers":{"user_ids.app":"app-other"},"reason":"x"}`, 409, ""},
		{in.agentToken, `{"identifiers":{"user_ids.legacy":"L-1"},"reason":"x","extra":1}`, 400, "extra"},
	} {
		e = apiError{}
		if code := call(t, "POST", base+"/v1/requests/"+r.ID+"/identifiers", tc.token, tc.body, &e); code != tc.code || e.Error.Field != tc.field {
			t.Errorf("POST identifiers %s = %d %+v, want %d %q", tc.body, code, e, tc.code, tc.field)
		}
	}
	if code := call(t, "POST", base+"/v1/requests/"+r.ID+"/identifiers", in.agentToken,
		`{"identifiers":{"user_ids.legacy":" L-1 "},"reason":"found in the old ticket system"}`, nil); code != 200 {
		t.Fatalf("add identifier = %d", code)
	}
	waitStatus(t, base, in.agentToken, r.ID, 30*time.Second, "completed")
	var n int
	_ = tg.db.QueryRow(`SELECT count(*) FROM legacy_accounts`).Scan(&n)
	if n != 1 {
		t.Errorf("%d legacy accounts left, want only the other person's", n)
	}
	v := verified(t, base, in, r.ID)
	lines := systems(v)
	if s := lines["legacy"]; s.Outcome != "erased" || s.RecordsErased.N != 1 || len(s.SearchedBy) != 1 ||
		s.SearchedBy[0] != (erasure.Source{Kind: "user_ids.legacy", From: "staff"}) {
		t.Errorf("legacy on the certificate: %+v", s)
	}
	if s := lines["app-events"]; s.Outcome != "erased" || s.SearchedBy[0] != (erasure.Source{Kind: "user_ids.app", From: "shop-db"}) {
		t.Errorf("app-events on the certificate: %+v", s)
	}

	// Ben: staff find no legacy account and say so.
	b := fileRequest(t, base, in.agentToken, "ben@example.com")
	waitStatus(t, base, in.agentToken, b.ID, 30*time.Second, "needs_attention")
	if code := call(t, "POST", base+"/v1/requests/"+b.ID+"/tasks/legacy/not-applicable", in.agentToken, `{}`, &e); code != 400 || e.Error.Field != "reason" {
		t.Errorf("not applicable without a reason = %d %+v", code, e)
	}
	if code := call(t, "POST", base+"/v1/requests/"+b.ID+"/tasks/files/not-applicable", in.agentToken, `{"reason":"x"}`, nil); code != 409 {
		t.Errorf("not applicable for a finished task = %d", code)
	}
	if code := call(t, "POST", base+"/v1/requests/"+b.ID+"/tasks/legacy/not-applicable", in.agentToken,
		`{"reason":"joined in 2024: no account in the legacy system"}`, nil); code != 200 {
		t.Fatalf("not applicable = %d", code)
	}
	waitStatus(t, base, in.agentToken, b.ID, 30*time.Second, "completed")
	v = verified(t, base, in, b.ID)
	if s := systems(v)["legacy"]; s.Outcome != "not_applicable" || s.NotApplicableReason != "joined in 2024: no account in the legacy system" {
		t.Errorf("legacy on the certificate: %+v", s)
	}
	if len(v.Payload.NotApplicable) != 1 || !strings.Contains(v.Summary(), "not applicable: joined in 2024") {
		t.Errorf("not applicable list %+v; summary:\n%s", v.Payload.NotApplicable, v.Summary())
	}
	checkNoIdentifiers(t, logs.String(), []string{"ann@example.com", "ben@example.com", appUserID("ann@example.com"), "L-1"})
}

func verified(t *testing.T, base string, in *instance, id string) certificate.Verified {
	t.Helper()
	var keys certificate.JWKS
	call(t, "GET", base+"/v1/keys", "", "", &keys)
	v, err := certificate.Verify(getCertificate(t, base, in.agentToken, id), keys)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func systems(v certificate.Verified) map[string]certificate.System {
	out := map[string]certificate.System{}
	for _, s := range v.Payload.Systems {
		out[s.Connector] = s
	}
	return out
}

// TestExtendedRequestShowsBothDeadlines: an extended request's certificate
// and the audit export record the deadline it was received with, the
// extended one and the kind of reason.
func TestExtendedRequestShowsBothDeadlines(t *testing.T) {
	ns := testenv.NATS(t)
	in := newInstance(t, ns.ClientURL(), `
  - {name: paper, type: manual, config: {instructions: "Shred it."}}`, "")
	in.serve(t)
	base := "http://" + in.addr
	r := fileRequest(t, base, in.agentToken, "slow@example.com")
	first := r.DueAt
	newDue := time.Now().UTC().AddDate(0, 2, 0).Format(time.RFC3339)
	var e apiError
	if code := call(t, "POST", base+"/v1/requests/"+r.ID+"/extend", in.agentToken, `{"reason":"many systems","due_at":"`+newDue+`"}`, &e); code != 400 || e.Error.Field != "category" {
		t.Errorf("extend without a category = %d %+v", code, e)
	}
	if code := call(t, "POST", base+"/v1/requests/"+r.ID+"/extend", in.agentToken, `{"reason":"many systems","category":"whim","due_at":"`+newDue+`"}`, &e); code != 400 || !strings.Contains(e.Error.Message, "number_of_requests") {
		t.Errorf("extend with an unknown category = %d %+v", code, e)
	}
	if code := call(t, "POST", base+"/v1/requests/"+r.ID+"/extend", in.agentToken, `{"reason":"forty systems","category":"complexity","due_at":"`+newDue+`"}`, nil); code != 200 {
		t.Fatalf("extend = %d", code)
	}
	if code := call(t, "POST", base+"/v1/requests/"+r.ID+"/tasks/paper/complete", in.agentToken, `{"outcome":"erased","records":1,"reason":"shredded"}`, nil); code != 200 {
		t.Fatalf("complete = %d", code)
	}
	waitStatus(t, base, in.agentToken, r.ID, 20*time.Second, "completed")
	p := verified(t, base, in, r.ID).Payload
	if p.OriginalDueAt[:16] != first[:16] || p.DueAt[:10] != newDue[:10] || p.Extension == nil || p.Extension.Category != "complexity" ||
		!strings.Contains(p.Extension.Basis, "complexity") || !p.DeadlineMet {
		t.Errorf("certificate: due %s, first %s, extension %+v", p.DueAt, p.OriginalDueAt, p.Extension)
	}
	day := time.Now().UTC().Format(time.DateOnly)
	code, body, _ := getBody(t, base+"/v1/audit/requests?from="+day+"&to="+day+"&format=csv", in.auditToken)
	rows, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if code != 200 || err != nil || len(rows) != 2 {
		t.Fatalf("export = %d, %v: %s", code, err, body)
	}
	col := map[string]string{}
	for i, h := range rows[0] {
		col[h] = rows[1][i]
	}
	if col["original_due_at"][:16] != first[:16] || col["due_at"][:10] != newDue[:10] || col["extension_category"] != "complexity" ||
		col["extended_at"] == "" || col["deadline"] != "met" {
		t.Errorf("export row: %v", col)
	}
}

// TestConfigCheckResolution: config check prints where each kind comes
// from and what every system erases by, and refuses keys nothing supplies
// unless the system is optional.
func TestConfigCheckResolution(t *testing.T) {
	ns := testenv.NATS(t)
	tg := newTarget(t)
	ok := newInstance(t, ns.ClientURL(), tg.resolvingYAML(), "")
	code, stdout, stderr := runCLI(t, "config", "check", "--config", ok.configPath)
	if code != 0 {
		t.Fatalf("config check = %d %s %s", code, stdout, stderr)
	}
	for _, want := range []string{"user_ids.app         from shop-db (by email)", "email                from the request",
		"app-events           erases by user_ids.app, after shop-db", "config ok"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("config check output lacks %q:\n%s", want, stdout)
		}
	}
	bad := newInstance(t, ns.ClientURL(), tg.connectorsYAML()+legacyYAML(tg), "")
	code, stdout, stderr = runCLI(t, "config", "check", "--config", bad.configPath)
	if code == 0 || !strings.Contains(stderr, "legacy) erases by user_ids.legacy, which nothing supplies") ||
		!strings.Contains(stdout, "user_ids.legacy      from NOTHING SUPPLIES IT") {
		t.Errorf("config check of unreachable keys = %d\n%s\n%s", code, stdout, stderr)
	}
	optional := newInstance(t, ns.ClientURL(), tg.connectorsYAML()+strings.Replace(legacyYAML(tg), "    type: sql\n",
		"    type: sql\n    optional: only accounts from before 2019 have one\n", 1), "")
	if code, stdout, stderr = runCLI(t, "config", "check", "--config", optional.configPath); code != 0 || !strings.Contains(stdout, "optional: only accounts") {
		t.Errorf("config check with the system optional = %d\n%s\n%s", code, stdout, stderr)
	}
	for _, tc := range []struct{ yaml, want string }{
		{strings.Replace(legacyYAML(tg), "    type: sql\n", "    type: sql\n    keys: [\"user_id:legacy\"]\n", 1), "keys[0]"},
		{strings.Replace(legacyYAML(tg), "    type: sql\n", "    type: sql\n    erase_after: [legacy]\n", 1), "cannot wait for itself"},
		{strings.Replace(legacyYAML(tg), "    type: sql\n", "    type: sql\n    erase_after: [nowhere]\n", 1), `no connector named "nowhere"`},
		{strings.Replace(legacyYAML(tg), "    type: sql\n", "    type: sql\n    authority_for: [user_ids.app]\n", 1), "legacy does not supply user_ids.app"},
	} {
		in := newInstance(t, ns.ClientURL(), tg.connectorsYAML()+tc.yaml, "")
		if code, _, stderr := runCLI(t, "config", "check", "--config", in.configPath); code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("config check = %d, %q; want an error about %q", code, stderr, tc.want)
		}
	}
	cycle := newInstance(t, ns.ClientURL(), strings.Replace(tg.connectorsYAML(), "    type: sql\n", "    type: sql\n    erase_after: [files]\n", 1), "")
	writeFile(t, cycle.configPath, []byte(strings.Replace(string(mustRead(t, cycle.configPath)), "    type: filesystem\n", "    type: filesystem\n    erase_after: [shop-db]\n", 1)))
	if code, _, stderr := runCLI(t, "config", "check", "--config", cycle.configPath); code == 0 || !strings.Contains(stderr, "goes round in a circle") {
		t.Errorf("config check of an erase_after cycle = %d %q", code, stderr)
	}
}
