package app_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/certificate"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// TestManualTaskCompletedByAPerson: a manual connector's task waits until
// staff complete it with evidence; the request then completes, and the
// certificate says who did it.
func TestManualTaskCompletedByAPerson(t *testing.T) {
	ns := testenv.NATS(t)
	in := newInstance(t, ns.ClientURL(), `
  - {name: paper-archive, type: manual, config: {instructions: "Shred the paper file; note the box number."}}
  - {name: crm, type: test_script, config: {}}`, "")
	in.serve(t)
	base := "http://" + in.addr
	r := fileRequest(t, base, in.agentToken, "paper@example.com")
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := waitStatus(t, base, in.agentToken, r.ID, 20*time.Second, "in_progress")
		if got.Tasks[1].Status == "running" || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	url := base + "/v1/requests/" + r.ID + "/tasks/paper-archive/complete"
	var e apiError
	for body, want := range map[string]int{
		`{"outcome":"erased","records":1,"reason":"done"}`:                       403, // auditor
		`{"outcome":"shredded","records":1,"reason":"done"}`:                     400,
		`{"outcome":"erased","records":0,"reason":"done"}`:                       400,
		`{"outcome":"erased","records":1,"reason":""}`:                           400,
		`{"outcome":"erased","records":1,"reason":"x","evidence":[{"kind":""}]}`: 400,
	} {
		token := in.agentToken
		if want == 403 {
			token = in.auditToken
		}
		if code := call(t, "POST", url, token, body, &e); code != want {
			t.Errorf("%s = %d, want %d (%+v)", body, code, want, e)
		}
	}
	if code := call(t, "POST", base+"/v1/requests/"+r.ID+"/tasks/nope/complete", in.agentToken, `{"outcome":"erased","records":1,"reason":"x"}`, nil); code != 404 {
		t.Errorf("unknown connector = %d", code)
	}
	body := `{"outcome":"erased","records":1,"reason":"shredded box 17","evidence":[{"kind":"archive box","value":"17, shredded by PAPER@example.com"}]}`
	if code := call(t, "POST", url, in.agentToken, body, nil); code != 200 {
		t.Fatalf("complete = %d", code)
	}
	waitStatus(t, base, in.agentToken, r.ID, 20*time.Second, "completed")
	var keys certificate.JWKS
	call(t, "GET", base+"/v1/keys", "", "", &keys)
	v, err := certificate.Verify(getCertificate(t, base, in.agentToken, r.ID), keys)
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for _, s := range v.Payload.Systems {
		if s.Connector == "paper-archive" {
			for _, ev := range s.Evidence {
				line += ev.Kind + "=" + ev.Value + ";"
			}
		}
	}
	if !strings.Contains(line, "completed_by=api:agent") || !strings.Contains(line, "archive box=17, shredded by [redacted]") {
		t.Errorf("certificate evidence for the manual task: %s", line)
	}
	if code := call(t, "POST", url, in.agentToken, body, nil); code != 409 {
		t.Errorf("completing a finished request again = %d, want 409", code)
	}
}

// TestSignedCallbacks: a vendor reports a job by calling back; unsigned or
// tampered callbacks are refused, a signed one completes the task.
func TestSignedCallbacks(t *testing.T) {
	ns := testenv.NATS(t)
	in := newInstance(t, ns.ClientURL(), `
  - {name: processor, type: test_callback, config: {secret: s3cret}}`, "")
	in.serve(t)
	base := "http://" + in.addr
	r := fileRequest(t, base, in.agentToken, "callback@example.com")
	deadline := time.Now().Add(20 * time.Second)
	for waitStatus(t, base, in.agentToken, r.ID, 20*time.Second, "in_progress").Tasks[0].Status != "running" {
		if time.Now().After(deadline) {
			t.Fatal("the task never started its job")
		}
		time.Sleep(50 * time.Millisecond)
	}
	callbackers.Lock()
	job := callbackers.m["processor"].lastJob()
	callbackers.Unlock()
	postTo := func(base, body, sig string) int {
		req, _ := http.NewRequest("POST", base+"/v1/connectors/processor/callback", strings.NewReader(body))
		req.Header.Set("X-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	post := func(body, sig string) int { return postTo(base, body, sig) }
	sign := func(body string) string {
		m := hmac.New(sha256.New, []byte("s3cret"))
		m.Write([]byte(body))
		return hex.EncodeToString(m.Sum(nil))
	}
	// A signed callback about a job no task has recorded yet (it came
	// back before the report that the job started was applied) is to be
	// sent again, and is not taken as received: sent again, it is not a
	// replay.
	early := `{"job":"job-not-recorded","status":"done"}`
	for i := range 2 {
		if code := post(early, sign(early)); code != http.StatusServiceUnavailable {
			t.Errorf("a callback before its job is recorded (%d) = %d, want 503", i+1, code)
		}
	}
	done := `{"job":"` + job + `","status":"done"}`
	if code := post(done, "nope"); code != 403 {
		t.Errorf("unsigned callback = %d, want 403", code)
	}
	if code := post(strings.Replace(done, "done", "dome", 1), sign(done)); code != 403 {
		t.Errorf("tampered callback = %d, want 403", code)
	}
	if code := post(done, sign(done)); code != 202 {
		t.Fatalf("signed callback = %d, want 202", code)
	}
	got := waitStatus(t, base, in.agentToken, r.ID, 20*time.Second, "completed")
	if got.Tasks[0].RecordsErased != 2 {
		t.Errorf("task after the callback: %+v", got.Tasks[0])
	}
	// The attack: a captured signed callback sent again, to this replica
	// or another, is refused and changes nothing. Replicas share what was
	// received through the store.
	if code := post(done, sign(done)); code != 409 {
		t.Errorf("a replayed callback = %d, want 409", code)
	}
	other := in.replica(t)
	other.serve(t)
	if code := postTo("http://"+other.addr, done, sign(done)); code != 409 {
		t.Errorf("the callback replayed to another replica = %d, want 409", code)
	}
	running := `{"job":"` + job + `","status":"running"}`
	if code := postTo("http://"+other.addr, running, sign(running)); code != 202 {
		t.Errorf("a new signed callback to the other replica = %d, want 202", code)
	}
	if got := waitStatus(t, base, in.agentToken, r.ID, 20*time.Second, "completed"); got.Tasks[0].RecordsErased != 2 {
		t.Errorf("after the replays the task is %+v", got.Tasks[0])
	}
	if req, _ := http.NewRequest("POST", base+"/v1/connectors/nope/callback", nil); req != nil {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 404 {
				t.Errorf("callback for an unknown connector = %d", resp.StatusCode)
			}
		}
	}
}

// TestExternalConnectorProcess runs the example connector of
// connectors/external/example as its own process, speaking only the NATS
// contract, next to `lethe serve`.
func TestExternalConnectorProcess(t *testing.T) {
	ns := testenv.NATS(t)
	in := newInstance(t, ns.ClientURL(), `
  - {name: legacy-crm, type: external}`, "")
	in.serve(t)
	base := "http://" + in.addr

	bin := filepath.Join(t.TempDir(), "example")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/lethe-dev/lethe/connectors/external/example").CombinedOutput(); err != nil {
		t.Fatalf("build the example: %v\n%s", err, out)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "ext@example.com.json"), []byte(`{"name":"Ext"}`))
	writeFile(t, filepath.Join(dir, "other@example.com.json"), []byte(`{"name":"Other"}`))
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--nats", ns.ClientURL(), "--connector", "legacy-crm", "--dir", dir)
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	r := fileRequest(t, base, in.agentToken, "ext@example.com")
	got := waitStatus(t, base, in.agentToken, r.ID, 30*time.Second, "completed")
	if got.Tasks[0].Status != "erased" || got.Tasks[0].RecordsErased != 1 {
		t.Errorf("external task = %+v", got.Tasks[0])
	}
	if _, err := os.Stat(filepath.Join(dir, "ext@example.com.json")); !os.IsNotExist(err) {
		t.Error("the external connector did not erase the file")
	}
	if _, err := os.Stat(filepath.Join(dir, "other@example.com.json")); err != nil {
		t.Error("the external connector erased someone else")
	}
	unknown := fileRequest(t, base, in.agentToken, "nobody@example.com")
	if got := waitStatus(t, base, in.agentToken, unknown.ID, 30*time.Second, "completed"); got.Tasks[0].Status != "not_found" {
		t.Errorf("unknown subject = %+v", got.Tasks[0])
	}
	if strings.Contains(logs.String(), "example.com") {
		t.Errorf("the example logged an identifier: %s", logs.String())
	}
}

// TestStaffActionsOverHTTP: extend the deadline, exempt a system on a legal
// basis; the certificate lists what was retained and why.
func TestStaffActionsOverHTTP(t *testing.T) {
	ns := testenv.NATS(t)
	in := newInstance(t, ns.ClientURL(), `
  - {name: paper, type: manual, config: {instructions: "Shred it."}}
  - {name: crm, type: test_script, config: {}}`, "")
	in.serve(t)
	base := "http://" + in.addr
	r := fileRequest(t, base, in.agentToken, "staff@example.com")
	var got apiRequest
	var e apiError
	newDue := time.Now().UTC().AddDate(0, 2, 0).Format(time.RFC3339)
	if code := call(t, "POST", base+"/v1/requests/"+r.ID+"/extend", in.auditToken, `{"reason":"x","due_at":"`+newDue+`"}`, nil); code != 403 {
		t.Errorf("auditor extend = %d", code)
	}
	if code := call(t, "POST", base+"/v1/requests/"+r.ID+"/extend", in.agentToken, `{"reason":"many systems"}`, &e); code != 400 || e.Error.Field != "due_at" {
		t.Errorf("extend without a date = %d %+v", code, e)
	}
	if code := call(t, "POST", base+"/v1/requests/"+r.ID+"/extend", in.agentToken, `{"reason":"many systems","category":"complexity","due_at":"`+newDue+`"}`, &got); code != 200 || got.DueAt[:10] != newDue[:10] {
		t.Errorf("extend = %d, due %s", code, got.DueAt)
	}
	if code := call(t, "POST", base+"/v1/requests/"+r.ID+"/tasks/paper/exempt", in.agentToken, `{"reason":"tax law","basis":"nope"}`, &e); code != 400 || e.Error.Field != "basis" {
		t.Errorf("exempt with a bad basis = %d %+v", code, e)
	}
	if code := call(t, "POST", base+"/v1/requests/"+r.ID+"/tasks/paper/exempt", in.agentToken, `{"reason":"invoices must be kept 10 years","basis":"art17-3-b"}`, nil); code != 200 {
		t.Fatalf("exempt = %d", code)
	}
	waitStatus(t, base, in.agentToken, r.ID, 20*time.Second, "completed_with_exemptions")
	var keys certificate.JWKS
	call(t, "GET", base+"/v1/keys", "", "", &keys)
	v, err := certificate.Verify(getCertificate(t, base, in.agentToken, r.ID), keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Payload.Retained) != 1 || v.Payload.Retained[0].Connector != "paper" || !strings.Contains(v.Payload.Retained[0].Basis, "Art. 17(3)(b)") ||
		!strings.Contains(v.Payload.Statement, "listed under retained") || v.Payload.Outcome != "completed_with_exemptions" {
		t.Errorf("certificate retained %+v, statement %q", v.Payload.Retained, v.Payload.Statement)
	}
	if !strings.Contains(v.Summary(), "kept under Art. 17(3)(b)") {
		t.Errorf("summary:\n%s", v.Summary())
	}
}
