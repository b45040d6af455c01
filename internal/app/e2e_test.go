package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/app"
	"github.com/lethe-dev/lethe/internal/certificate"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// TestEndToEnd runs the real `lethe serve` against PostgreSQL and an
// in-process NATS server: requests fan out to a SQL database and a file
// tree, the data really disappears, certificates verify and tampered ones
// do not, and the logs never hold a subject's identifier.
func TestEndToEnd(t *testing.T) {
	ns := testenv.NATS(t)
	tg := newTarget(t)
	in := newInstance(t, ns.ClientURL(), tg.connectorsYAML(), "")
	logs := in.serve(t)
	base := "http://" + in.addr

	subjects := []string{"alice@example.com", "bob.o'brien@example.com", "carol+tag@example.com"}
	bystander := "dave@example.com"
	for _, s := range append(subjects, bystander) {
		tg.seed(t, s)
	}
	ids := map[string]string{}
	for _, s := range subjects {
		r := fileRequest(t, base, in.agentToken, s)
		if r.Status != "in_progress" || r.DueAt == "" || len(r.Tasks) != 2 {
			t.Fatalf("filed request = %+v", r)
		}
		ids[s] = r.ID
	}
	unknown := fileRequest(t, base, in.adminToken, "nobody@example.com")

	for _, s := range subjects {
		r := waitStatus(t, base, in.auditToken, ids[s], 30*time.Second, "completed")
		for _, task := range r.Tasks {
			if task.Status != "erased" || task.Verification != "clean" || task.Attempts != 1 {
				t.Errorf("%s task %s = %+v", s, task.Connector, task)
			}
		}
		if rows, files := tg.remaining(t, s); rows != 0 || files != 0 {
			t.Errorf("%s: %d rows and %d files remain after completion", s, rows, files)
		}
	}
	r := waitStatus(t, base, in.auditToken, unknown.ID, 30*time.Second, "completed")
	for _, task := range r.Tasks {
		if task.Status != "not_found" {
			t.Errorf("unknown subject task %s = %s, want not_found", task.Connector, task.Status)
		}
	}
	if rows, files := tg.remaining(t, bystander); rows != 4 || files != 2 {
		t.Errorf("the bystander lost data: %d rows, %d files left of 4 and 2", rows, files)
	}

	// Certificates: fetch, verify with the served JWKS, in-process and
	// through the CLI; tampered copies fail.
	var keys certificate.JWKS
	if code := call(t, "GET", base+"/v1/keys", "", "", &keys); code != 200 || len(keys.Keys) != 1 {
		t.Fatalf("GET /v1/keys = %d, %+v", code, keys)
	}
	doc := getCertificate(t, base, in.auditToken, ids["alice@example.com"])
	v, err := certificate.Verify(doc, keys)
	if err != nil {
		t.Fatalf("certificate does not verify: %v", err)
	}
	if v.Payload.RequestID != ids["alice@example.com"] || len(v.Payload.Systems) != 2 || v.Payload.Issuer != "Test Org" {
		t.Errorf("certificate payload = %+v", v.Payload)
	}
	var erased int64
	for _, s := range v.Payload.Systems {
		erased += s.RecordsErased.N
	}
	if erased != 6 { // 4 rows + 2 files
		t.Errorf("certificate counts %d records erased, want 6", erased)
	}
	for _, s := range subjects {
		if bytes.Contains(doc, []byte(strings.Split(s, "@")[0])) {
			t.Errorf("the certificate contains the identifier %s", s)
		}
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "cert.json")
	tampered := filepath.Join(dir, "tampered.json")
	writeFile(t, good, doc)
	writeFile(t, tampered, tamperPayload(t, doc))
	var out bytes.Buffer
	if code := app.Run(context.Background(), []string{"lethe", "cert", "verify", good, "--jwks", base + "/v1/keys"}, os.Getenv, &out, io.Discard); code != 0 {
		t.Errorf("cert verify of a good certificate exited %d: %s", code, out.String())
	}
	if !strings.Contains(out.String(), "VALID") || !strings.Contains(out.String(), "shop-db (sql): erased 4 records (searched by email (request))") {
		t.Errorf("cert verify summary:\n%s", out.String())
	}
	out.Reset()
	if code := app.Run(context.Background(), []string{"lethe", "cert", "verify", tampered, "--key", filepath.Join(in.dir, "keys", "signing.pub.pem")}, os.Getenv, &out, io.Discard); code != 1 {
		t.Errorf("cert verify of a tampered certificate exited %d, want 1: %s", code, out.String())
	}
	if !strings.Contains(out.String(), "INVALID") {
		t.Errorf("tampered verify output: %s", out.String())
	}

	// The event log chains and records every step.
	var events struct {
		Events []struct {
			Type string `json:"type"`
		} `json:"events"`
		ChainValid bool `json:"chain_valid"`
	}
	call(t, "GET", base+"/v1/requests/"+ids["alice@example.com"]+"/events", in.auditToken, "", &events)
	if !events.ChainValid {
		t.Error("event chain does not verify")
	}
	var types []string
	for _, e := range events.Events {
		types = append(types, e.Type)
	}
	joined := strings.Join(types, ",")
	for _, want := range []string{"request.received", "task.created", "task.dispatched", "task.result", "certificate.issued"} {
		if !strings.Contains(joined, want) {
			t.Errorf("event log lacks %s: %s", want, joined)
		}
	}

	// Metrics are exposed and carry no identifiers.
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(metrics, []byte("lethe_certificates_issued_total 4")) || !bytes.Contains(metrics, []byte(`lethe_requests{status="completed"} 4`)) {
		t.Errorf("metrics lack the expected counts:\n%s", grepLines(string(metrics), "lethe_"))
	}

	// No identifier in logs or metrics, ever.
	checkNoIdentifiers(t, logs.String(), append(subjects, "nobody@example.com"))
	checkNoIdentifiers(t, string(metrics), append(subjects, "nobody@example.com"))
}

func getCertificate(t *testing.T, base, token, id string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/v1/requests/"+id+"/certificate", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET certificate = %d: %s", resp.StatusCode, b)
	}
	return b
}

// tamperPayload raises a record count inside the signed payload.
func tamperPayload(t *testing.T, doc []byte) []byte {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	p, _ := base64.RawURLEncoding.DecodeString(d["payload"].(string))
	p2 := bytes.Replace(p, []byte(`"records_erased":4`), []byte(`"records_erased":40`), 1)
	if bytes.Equal(p, p2) {
		t.Fatal("tamper found nothing to change")
	}
	d["payload"] = base64.RawURLEncoding.EncodeToString(p2)
	b, _ := json.Marshal(d)
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkNoIdentifiers fails if text holds any identifier or its local part.
func checkNoIdentifiers(t *testing.T, text string, emails []string) {
	t.Helper()
	lower := strings.ToLower(text)
	for _, e := range emails {
		if strings.Contains(lower, strings.ToLower(e)) {
			t.Errorf("found the identifier %s in output", e)
		}
	}
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
