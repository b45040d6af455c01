package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/app"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// staff runs `lethe request ARGS…` against base with env as the
// environment (LETHE_TOKEN, LETHE_URL).
func staff(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = app.Run(context.Background(), append([]string{"lethe", "request"}, args...), func(k string) string { return env[k] }, &out, &errb)
	return code, out.String(), errb.String()
}

// flat is s with every run of spaces one space, for tables.
func flat(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

// TestStaffCLI: every `lethe request` verb against a running Lethe, as
// staff would use it from a terminal: tables for people, --json for
// scripts, the token from a flag, a file or LETHE_TOKEN, and a clear
// error for a wrong token, a missing request, a refused action or a
// mistake in the command.
func TestStaffCLI(t *testing.T) {
	ns := testenv.NATS(t)
	tg := newTarget(t)
	in, mail := portalInstance(t, ns.ClientURL(), tg.connectorsYAML()+`
  - {name: paper, type: manual, config: {instructions: "Shred the paper file."}}`, "{enabled: true, require_approval: true}")
	in.serve(t)
	base := "http://" + in.addr
	env := map[string]string{"LETHE_URL": base, "LETHE_TOKEN": in.agentToken}

	// file, with --json for scripts; the same idempotency key files once.
	tg.seed(t, "carol@example.com")
	code, out, errs := staff(t, env, "file", "--email", "carol@example.com", "--user-id", "shop-db=42", "--jurisdiction", "gdpr", "--idempotency-key", "cli-1", "--json")
	var filed struct{ ID, Status string }
	if code != 0 || json.Unmarshal([]byte(out), &filed) != nil || filed.ID == "" {
		t.Fatalf("file --json = %d %q %q", code, out, errs)
	}
	if code, out, _ = staff(t, env, "file", "--email", "carol@example.com", "--idempotency-key", "cli-1"); code != 0 || !strings.Contains(flat(out), "request "+filed.ID) {
		t.Errorf("filing again with the same key = %d:\n%s; want request %s", code, out, filed.ID)
	}

	// show: a table with the systems and progress; the manual system
	// waits for a person, so the request stays in progress.
	waitStatus(t, base, in.agentToken, filed.ID, 30*time.Second, "in_progress")
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, out, errs = staff(t, env, "show", filed.ID)
		if code != 0 {
			t.Fatalf("show = %d %q", code, errs)
		}
		if strings.Contains(out, "2 of 3 systems finished") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, want := range []string{"status in_progress (erase phase)", "person carol@example.com, shop-db=42", " days left)",
		"SYSTEM PHASE STATUS RECORDS TRIES NOTE", "shop-db erase erased 4 1 verified: clean", "paper erase running 0 1 waiting for a person: Shred the paper file.",
		"2 of 3 systems finished"} {
		if !strings.Contains(flat(out), want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}

	// extend, exempt (the request then completes), and the list.
	if code, out, errs = staff(t, env, "extend", filed.ID, "--due", time.Now().AddDate(0, 2, 0).Format(time.DateOnly), "--category", "complexity", "--reason", "paper archive in storage"); code != 0 {
		t.Errorf("extend = %d %q %q", code, out, errs)
	}
	if code, out, errs = staff(t, env, "exempt", filed.ID, "paper", "--basis", "art17-3-e", "--reason", "pending litigation"); code != 0 {
		t.Errorf("exempt = %d %q %q", code, out, errs)
	}
	waitStatus(t, base, in.agentToken, filed.ID, 30*time.Second, "completed_with_exemptions")
	code, out, _ = staff(t, env, "list", "--status", "completed_with_exemptions")
	if code != 0 || !strings.Contains(out, filed.ID) || !strings.HasPrefix(out, "ID") {
		t.Errorf("list --status completed_with_exemptions = %d:\n%s", code, out)
	}
	if code, out, _ = staff(t, env, "show", filed.ID); code != 0 || !strings.Contains(flat(out), "certificate /v1/requests/"+filed.ID+"/certificate") ||
		!strings.Contains(flat(out), "completed ") || strings.Contains(out, "days left") || strings.Contains(out, "phase)") {
		t.Errorf("show of a completed request: want its certificate and completion, no deadline running or phase:\n%s", out)
	}

	// approve and deny portal requests waiting for approval; cancel one
	// in progress. The token from --token-file, the address from --url.
	tokenFile := filepath.Join(t.TempDir(), "token")
	writeFile(t, tokenFile, []byte(in.agentToken+"\n"))
	flags := []string{"--url", base, "--token-file", tokenFile}
	approveID, _, _ := portalRequest(t, base, smtpInbox(mail), "approve.me@example.com", nil)
	denyID, _, _ := portalRequest(t, base, smtpInbox(mail), "deny.me@example.com", nil)
	waitStatus(t, base, in.agentToken, denyID, 30*time.Second, "pending_approval")
	if code, out, errs = staff(t, nil, append([]string{"approve", approveID, "--reason", "identity checked"}, flags...)...); code != 0 || !strings.Contains(out, "in_progress") {
		t.Errorf("approve = %d %q %q", code, out, errs)
	}
	if code, out, errs = staff(t, nil, append([]string{"deny", denyID, "--reason", "not our customer"}, flags...)...); code != 0 || !strings.Contains(flat(out), "status denied") {
		t.Errorf("deny = %d %q %q", code, out, errs)
	}
	if code, out, errs = staff(t, nil, append([]string{"cancel", approveID, "--reason", "asked by mistake", "--json"}, flags...)...); code != 0 || !strings.Contains(out, `"status": "cancelled"`) {
		t.Errorf("cancel --json = %d %q %q", code, out, errs)
	}
	// Each email says the true state: confirmed and waiting for review
	// (nothing started), then started once approved, or denied.
	for _, who := range []string{"approve.me@example.com", "deny.me@example.com"} {
		subject, text := mailTo(t, mail, who, 2)
		if !strings.Contains(subject, "our team reviews it first") || !strings.Contains(text, "Nothing has been erased yet") || strings.Contains(text, "We have started") {
			t.Errorf("%s: the mail on confirmation = %q:\n%s\nwant: waiting for review", who, subject, text)
		}
	}
	if subject, text := mailTo(t, mail, "approve.me@example.com", 3); subject != "We have started on your erasure request" || !strings.Contains(text, "reviewed your request and we have started") {
		t.Errorf("the mail on approval = %q:\n%s", subject, text)
	}
	if subject, text := mailTo(t, mail, "deny.me@example.com", 3); !strings.Contains(subject, "could not act") || !strings.Contains(text, "not our customer") {
		t.Errorf("the mail on denial = %q:\n%s", subject, text)
	}

	// Refusals: exit 1 and Lethe's reason in one line, nothing on stdout.
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"wrong token", map[string]string{"LETHE_URL": base, "LETHE_TOKEN": "not-a-token-0123456789"}, []string{"show", filed.ID}, "the token was refused (401 Unauthorized): unknown API token"},
		{"auditor acting", map[string]string{"LETHE_URL": base, "LETHE_TOKEN": in.auditToken}, []string{"cancel", filed.ID, "--reason", "x"}, "the token may not do this (403 Forbidden)"},
		{"missing request", env, []string{"show", "01JZZZZZZZZZZZZZZZZZZZZZZZ"}, `no request with id "01JZZZZZZZZZZZZZZZZZZZZZZZ" (404 Not Found, not_found)`},
		{"malformed id", env, []string{"approve", "../../x", "--reason", "r"}, "no request with id"},
		{"approve twice", env, []string{"approve", denyID, "--reason", "r"}, "only a request pending approval can be approved; this one is denied (409 Conflict, conflict)"},
		{"retry an erased task", env, []string{"retry", filed.ID, "shop-db", "--reason", "r"}, "(409 Conflict, conflict)"},
		{"bad status filter", env, []string{"list", "--status", "done"}, `status: unknown status "done" (400 Bad Request, invalid)`},
		{"bad category", env, []string{"extend", filed.ID, "--due", "2099-01-01", "--category", "boredom", "--reason", "r"}, "(4"},
		{"nobody there", map[string]string{"LETHE_URL": "http://" + freeAddr(t), "LETHE_TOKEN": "t"}, []string{"list"}, "cannot reach Lethe at http://"},
	} {
		code, out, errs := staff(t, tc.env, tc.args...)
		if code != 1 || out != "" || !strings.Contains(errs, tc.want) || strings.Count(errs, "\n") != 1 {
			t.Errorf("%s: %v = %d, stdout %q, stderr %q; want 1 and %q", tc.name, tc.args, code, out, errs, tc.want)
		}
	}

	// Mistakes in the command: exit 2 before anything is sent.
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"show", filed.ID}, "no API token: pass --token or --token-file, or set LETHE_TOKEN"},
		{env, []string{"show"}, "want ID, got 0 argument(s)"},
		{env, []string{"retry", filed.ID}, "want ID SYSTEM, got 1 argument(s)"},
		{env, []string{"file"}, "say who: --email, --phone or --user-id SYSTEM=ID"},
		{env, []string{"file", "--user-id", "42"}, "want SYSTEM=ID"},
		{env, []string{"deny", filed.ID}, "deny needs --reason"},
		{env, []string{"extend", filed.ID, "--due", "next week", "--category", "complexity", "--reason", "r"}, `--due: "next week" is neither a date`},
		{env, []string{"list", "--url", "ftp://x"}, "is not an http(s) address"},
		{env, []string{"list", "--token", "a", "--token-file", tokenFile}, "alternatives"},
		{env, []string{"frobnicate"}, `unknown verb "frobnicate"`},
		{env, nil, "lethe request file"},
	} {
		code, _, errs := staff(t, tc.env, tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v = %d, %q; want 2 and %q", tc.args, code, errs, tc.want)
		}
	}
	// --help answers on stdout and exits 0.
	if code, out, _ := staff(t, nil, "--help"); code != 0 || !strings.Contains(out, "lethe request exempt  ID SYSTEM --basis B --reason R") {
		t.Errorf("request --help = %d %q", code, out)
	}
	if code, out, _ := staff(t, nil, "extend", "--help"); code != 0 || !strings.Contains(out, "usage: lethe request extend ID --due DATE --category C --reason R\n\nmove the deadline") ||
		!strings.Contains(out, "  -json\n") {
		t.Errorf("request extend --help = %d %q", code, out)
	}
}
