package app_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/app"
	"github.com/lethe-dev/lethe/internal/certificate"
	"github.com/lethe-dev/lethe/internal/store"
	"github.com/lethe-dev/lethe/internal/store/sqlite"
	"github.com/lethe-dev/lethe/internal/testenv"
	"github.com/lethe-dev/lethe/internal/translog"
)

type filed struct {
	ID              string `json:"id"`
	CommitmentNonce string `json:"commitment_nonce"`
}

func getBody(t *testing.T, url, token string) (int, []byte, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// TestTransparency: certificates are published in the log with proofs an
// outsider can check, publicly and without personal data; auditors can find
// a person's certificates and export deadlines; a witness countersigns and
// catches a rewritten history.
func TestTransparency(t *testing.T) {
	ns := testenv.NATS(t)
	tg := newTarget(t)
	in := newInstance(t, ns.ClientURL(), tg.connectorsYAML(), "certificates: {log_origin: test.lethe/log, backup_retention: 720h}")
	logs := in.serve(t)
	base := "http://" + in.addr

	emails := []string{"alice@example.com", "bob@example.com", "carol@example.com"}
	var reqs []filed
	for _, e := range emails {
		tg.seed(t, e)
		var f filed
		if code := call(t, "POST", base+"/v1/requests", in.agentToken, fmt.Sprintf(`{"subject":{"email":%q},"jurisdiction":"gdpr"}`, e), &f); code != 201 || f.CommitmentNonce == "" {
			t.Fatalf("file: %d %+v", code, f)
		}
		waitStatus(t, base, in.agentToken, f.ID, 30*time.Second, "completed")
		reqs = append(reqs, f)
	}
	var keys certificate.JWKS
	call(t, "GET", base+"/v1/keys", "", "", &keys)

	var positions []certificate.LogPosition
	var certIDs []string
	for i, f := range reqs {
		doc := getCertificate(t, base, in.auditToken, f.ID)
		v, err := certificate.VerifyFor(doc, keys, "test.lethe/log")
		if err != nil {
			t.Fatalf("certificate %d: %v", i, err)
		}
		if v.Payload.BackupPurgeBy == "" || !strings.Contains(v.Payload.Statement, "Backups were not altered") {
			t.Errorf("certificate %d states no backup purge date: %q", i, v.Payload.Statement)
		}
		// The public endpoint serves the same bytes, without a token.
		code, pub, hdr := getBody(t, base+"/v1/certificates/"+v.Payload.CertificateID, "")
		if code != 200 || !bytes.Equal(pub, doc) || hdr.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("public certificate %d: %d", i, code)
		}
		positions = append(positions, v.Log)
		certIDs = append(certIDs, v.Payload.CertificateID)
	}
	// The key activation is entry 0; certificates follow in order.
	for i, p := range positions {
		if p.Index != int64(i+1) || p.Checkpoint.Size != int64(i+2) {
			t.Errorf("certificate %d at index %d in a checkpoint of %d", i, p.Index, p.Checkpoint.Size)
		}
	}

	// The latest checkpoint; every certificate is provably in it, and every
	// older checkpoint is a prefix of it.
	code, signed, _ := getBody(t, base+"/v1/log/checkpoint", "")
	latest, _, err := translog.OpenCheckpoint(signed, "test.lethe/log", keys.PublicKeys())
	if code != 200 || err != nil || latest.Size != 4 {
		t.Fatalf("checkpoint: %d %v %+v", code, err, latest)
	}
	for i, p := range positions {
		var ip translog.InclusionProof
		call(t, "GET", fmt.Sprintf("%s/v1/log/proof/inclusion?certificate_id=%s&size=%d", base, certIDs[i], latest.Size), "", "", &ip)
		doc := getCertificate(t, base, in.auditToken, reqs[i].ID)
		var d certificate.Document
		_ = json.Unmarshal(doc, &d)
		if err := translog.VerifyInclusion(ip, translog.CertificateLeaf(d.Protected, d.Payload, d.Signature), latest.Root); err != nil {
			t.Errorf("certificate %d not in the latest tree: %v", i, err)
		}
		var cp translog.ConsistencyProof
		call(t, "GET", fmt.Sprintf("%s/v1/log/proof/consistency?from=%d&to=%d", base, p.Checkpoint.Size, latest.Size), "", "", &cp)
		if err := translog.VerifyConsistency(cp, p.Checkpoint.Root, latest.Root); err != nil {
			t.Errorf("checkpoint of certificate %d not a prefix of the latest: %v", i, err)
		}
	}
	var bad apiError
	if code := call(t, "GET", base+"/v1/log/proof/consistency?from=3&to=99", "", "", &bad); code != 400 || bad.Error.Message == "" {
		t.Errorf("proof beyond the log: %d", code)
	}

	// Log entries carry no personal data and do not name certificates.
	code, entries, _ := getBody(t, base+"/v1/log/entries?start=0&end=10", "")
	if code != 200 || !bytes.Contains(entries, []byte(`"kind": "key_activated"`)) {
		t.Errorf("entries: %d %s", code, entries)
	}
	for _, id := range certIDs {
		if bytes.Contains(entries, []byte(id)) {
			t.Error("log entries name a certificate")
		}
	}
	checkNoIdentifiers(t, string(entries), emails)

	// The CLI: verified offline, still in the log, about alice.
	dir := t.TempDir()
	certFile := filepath.Join(dir, "alice.json")
	writeFile(t, certFile, getCertificate(t, base, in.auditToken, reqs[0].ID))
	var out bytes.Buffer
	code = app.Run(context.Background(), []string{"lethe", "cert", "verify", certFile, "--jwks", base + "/v1/keys", "--log", base,
		"--email", "Alice@Example.com", "--nonce", reqs[0].CommitmentNonce}, os.Getenv, &out, &out)
	if code != 0 || !strings.Contains(out.String(), "Still in the log") || !strings.Contains(out.String(), "is about that email") ||
		!strings.Contains(out.String(), "leaf 1 of log test.lethe/log") {
		t.Errorf("cert verify = %d:\n%s", code, out.String())
	}
	out.Reset()
	code = app.Run(context.Background(), []string{"lethe", "cert", "verify", certFile, "--jwks", base + "/v1/keys",
		"--email", "alice@example.com", "--nonce", reqs[1].CommitmentNonce}, os.Getenv, &out, &out)
	if code != 1 || !strings.HasPrefix(out.String(), "NOT THEIRS") || strings.Contains(out.String(), "VALID") {
		t.Errorf("cert verify with another person's code = %d:\n%s", code, out.String())
	}

	// The same certificate verifies with standard tools and no Lethe code
	// (docs/verify-without-lethe.md); tampered copies do not.
	verifier := standaloneVerifier(t)
	jwksFile := filepath.Join(dir, "keys.json")
	_, jwksBody, _ := getBody(t, base+"/v1/keys", "")
	writeFile(t, jwksFile, jwksBody)
	if out, err := exec.Command("node", verifier, certFile, jwksFile).CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "VALID") {
		t.Errorf("standalone verifier on a good certificate: %v\n%s", err, out)
	}
	good := mustRead(t, certFile)
	for name, bad := range map[string][]byte{
		"payload":    tamperPayload(t, good),
		"checkpoint": bytes.Replace(good, []byte(`\n2\n`), []byte(`\n3\n`), 1),
	} {
		path := filepath.Join(dir, "tampered-"+name+".json")
		writeFile(t, path, bad)
		out, err := exec.Command("node", verifier, path, jwksFile).CombinedOutput()
		if err == nil || !strings.HasPrefix(string(out), "INVALID") {
			t.Errorf("standalone verifier accepted a tampered %s: %s", name, out)
		}
	}

	// Auditors find a person's certificates from the email, hashed on the fly.
	var found struct {
		Results []struct {
			RequestID     string `json:"request_id"`
			CertificateID string `json:"certificate_id"`
			Deadline      string `json:"deadline"`
		} `json:"results"`
	}
	if code := call(t, "POST", base+"/v1/audit/search", in.auditToken, `{"email":"BOB@example.com"}`, &found); code != 200 ||
		len(found.Results) != 1 || found.Results[0].RequestID != reqs[1].ID || found.Results[0].CertificateID != certIDs[1] || found.Results[0].Deadline != "met" {
		t.Errorf("search = %d %+v", code, found)
	}
	found.Results = nil
	if call(t, "POST", base+"/v1/audit/search", in.auditToken, `{"email":"nobody@example.com"}`, &found); len(found.Results) != 0 {
		t.Errorf("search for an unknown person found %+v", found)
	}
	if code := call(t, "POST", base+"/v1/audit/search", in.auditToken, `{"email":"not an email"}`, &bad); code != 400 || bad.Error.Field != "subject.email" {
		t.Errorf("search with a bad email = %d %+v", code, bad)
	}
	if code := call(t, "POST", base+"/v1/audit/search", "", `{"email":"bob@example.com"}`, nil); code != 401 {
		t.Errorf("search without a token = %d", code)
	}

	// Export of the day's requests, JSON and CSV.
	today := time.Now().UTC().Format(time.DateOnly)
	var export struct {
		Requests []struct {
			RequestID string `json:"request_id"`
			Deadline  string `json:"deadline"`
			LogIndex  *int64 `json:"log_index"`
		} `json:"requests"`
	}
	if code := call(t, "GET", base+"/v1/audit/requests?from="+today+"&to="+today, in.auditToken, "", &export); code != 200 || len(export.Requests) != 3 {
		t.Fatalf("export = %d, %d rows", code, len(export.Requests))
	}
	for _, r := range export.Requests {
		if r.Deadline != "met" || r.LogIndex == nil {
			t.Errorf("export row %+v", r)
		}
	}
	code, csvBody, hdr := getBody(t, base+"/v1/audit/requests?format=csv&from="+today+"&to="+today, in.auditToken)
	rows, err := csv.NewReader(bytes.NewReader(csvBody)).ReadAll()
	if code != 200 || err != nil || len(rows) != 4 || rows[0][0] != "request_id" || !strings.Contains(hdr.Get("Content-Disposition"), ".csv") {
		t.Errorf("csv export = %d %v %d rows", code, err, len(rows))
	}
	if code := call(t, "GET", base+"/v1/audit/requests?from=2026-13-01&to="+today, in.auditToken, "", &bad); code != 400 || bad.Error.Field != "from" {
		t.Errorf("export with a bad date = %d %+v", code, bad)
	}

	// The auditor page and its assets.
	code, page, hdr := getBody(t, base+"/audit", "")
	if code != 200 || !bytes.Contains(page, []byte("Verify an erasure certificate")) || !strings.Contains(hdr.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Errorf("audit page: %d", code)
	}
	if code, js, hdr := getBody(t, base+"/audit/verify.js", ""); code != 200 || !bytes.Contains(js, []byte("export async function verifyCertificate")) || !strings.Contains(hdr.Get("Content-Type"), "javascript") {
		t.Errorf("verify.js: %d %s", code, hdr.Get("Content-Type"))
	}
	if code, _, _ := getBody(t, base+"/audit/audit.html", ""); code != 404 {
		t.Errorf("audit.html served as an asset: %d", code)
	}

	// A witness countersigns; later, after more certificates, it checks the
	// log only grew.
	witnessKey := filepath.Join(dir, "witness")
	if c := app.Run(context.Background(), []string{"lethe", "keygen", "--out", witnessKey}, os.Getenv, io.Discard, io.Discard); c != 0 {
		t.Fatal("keygen for the witness")
	}
	state := filepath.Join(dir, "witness-state.json")
	witnessArgs := []string{"lethe", "witness", "--log", base, "--name", "witness.test/w1", "--key", filepath.Join(witnessKey, "signing.key"), "--state", state, "--out", filepath.Join(dir, "cosigned.txt")}
	out.Reset()
	if code := app.Run(context.Background(), witnessArgs, os.Getenv, &out, &out); code != 0 || !strings.Contains(out.String(), "first checkpoint seen") {
		t.Fatalf("witness = %d: %s", code, out.String())
	}
	tg.seed(t, "dave@example.com")
	r := fileRequest(t, base, in.agentToken, "dave@example.com")
	waitStatus(t, base, in.agentToken, r.ID, 30*time.Second, "completed")
	out.Reset()
	if code := app.Run(context.Background(), witnessArgs, os.Getenv, &out, &out); code != 0 || !strings.Contains(out.String(), "consistent with the 4 entries seen before") {
		t.Fatalf("second witness round = %d: %s", code, out.String())
	}
	witnessPub, _ := certificate.ParseKeySet(mustRead(t, filepath.Join(witnessKey, "signing.pub.pem")))
	wk := witnessPub.PublicKeys()[0]
	_, cosigs, err := translog.OpenCheckpoint(mustRead(t, filepath.Join(dir, "cosigned.txt")), "test.lethe/log", keys.PublicKeys(),
		translog.NewCosignatureVerifier("witness.test/w1", wk))
	if err != nil || len(cosigs) != 1 {
		t.Errorf("the cosigned checkpoint: %v, %d cosignatures", err, len(cosigs))
	}

	// The operator rewrites history (drops a certificate, keeps signing
	// with the real key): the witness refuses and says so.
	fake := rewrittenLog(t, in, 6)
	out.Reset()
	fakeArgs := append([]string(nil), witnessArgs...)
	fakeArgs[3] = fake.URL
	fakeArgs = append(fakeArgs, "--jwks", base+"/v1/keys")
	if code := app.Run(context.Background(), fakeArgs, os.Getenv, &out, &out); code != 1 || !strings.Contains(out.String(), "ALERT") {
		t.Errorf("witness against a rewritten log = %d: %s", code, out.String())
	}
	checkNoIdentifiers(t, logs.String(), append(emails, "nobody@example.com"))
}

// standaloneVerifier returns the path of tools/verify-certificate/verify.mjs,
// installing its one dependency (jose, from the npm registry) if needed.
func standaloneVerifier(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../../tools/verify-certificate")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("Node.js is required to test verification without Lethe (apt-get install nodejs npm); .ci/run installs it")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "jose")); err != nil {
		out, err := exec.Command("npm", "ci", "--prefix", dir, "--no-audit", "--no-fund").CombinedOutput()
		if err != nil {
			t.Fatalf("npm ci in tools/verify-certificate: %v\n%s", err, out)
		}
	}
	return filepath.Join(dir, "verify.mjs")
}

// rewrittenLog serves a log signed with the instance's real key and origin
// but built from different leaves: what a dishonest operator could show.
func rewrittenLog(t *testing.T, in *instance, size int) *httptest.Server {
	t.Helper()
	priv, err := certificate.ParsePrivateKeyPEM(mustRead(t, filepath.Join(in.dir, "keys", "signing.key")))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "fake.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	ls, _ := translog.NewLogSigner("test.lethe/log", priv)
	l := translog.NewLog("test.lethe/log", ls)
	for i := range size {
		_ = st.InTx(context.Background(), func(tx store.Tx) error {
			_, err := l.Append(context.Background(), tx, translog.KindCertificate, fmt.Sprint(i), []byte(fmt.Sprintf("forged %d", i)), time.Now())
			return err
		})
	}
	reader := translog.NewReader(st)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/log/checkpoint":
			cp, _ := st.LatestCheckpoint(r.Context())
			_, _ = w.Write(cp.Note)
		case "/v1/log/proof/consistency":
			var from, to int64
			fmt.Sscan(r.URL.Query().Get("from"), &from)
			fmt.Sscan(r.URL.Query().Get("to"), &to)
			p, err := reader.Consistency(r.Context(), from, to)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			_ = json.NewEncoder(w).Encode(p)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestKeyRotation: a new signing key replaces the old one, the old one is
// retired; both are published, both activations and the retirement are in
// the log, and certificates signed by either key verify.
func TestKeyRotation(t *testing.T) {
	ns := testenv.NATS(t)
	tg := newTarget(t)
	in := newInstance(t, ns.ClientURL(), tg.connectorsYAML(), "")
	base := "http://" + in.addr

	// Serve with the first key, complete a request, stop.
	first := in.serveArgs(t)
	tg.seed(t, "old@example.com")
	r1 := fileRequest(t, base, in.adminToken, "old@example.com")
	waitStatus(t, base, in.adminToken, r1.ID, 30*time.Second, "completed")
	stopServe(t, first)

	// Rotate: a new key is active, the old one's public half is retired.
	newKeys := filepath.Join(in.dir, "keys2")
	if code := app.Run(context.Background(), []string{"lethe", "keygen", "--out", newKeys}, os.Getenv, io.Discard, io.Discard); code != 0 {
		t.Fatal("keygen")
	}
	cfg := strings.Replace(string(mustRead(t, in.configPath)), filepath.Join(in.dir, "keys", "signing.key"), filepath.Join(newKeys, "signing.key"), 1)
	cfg = strings.Replace(cfg, "signing: {key: {file:", "signing: {public_keys: ["+fmt.Sprintf("%q", filepath.Join(in.dir, "keys", "signing.pub.pem"))+"], key: {file:", 1)
	writeFile(t, in.configPath, []byte(cfg))
	in.serveArgs(t)

	tg.seed(t, "new@example.com")
	r2 := fileRequest(t, base, in.adminToken, "new@example.com")
	waitStatus(t, base, in.adminToken, r2.ID, 30*time.Second, "completed")

	var keys certificate.JWKS
	call(t, "GET", base+"/v1/keys", "", "", &keys)
	if len(keys.Keys) != 2 {
		t.Fatalf("%d published keys, want the new and the retired one", len(keys.Keys))
	}
	v1, err1 := certificate.Verify(getCertificate(t, base, in.adminToken, r1.ID), keys)
	v2, err2 := certificate.Verify(getCertificate(t, base, in.adminToken, r2.ID), keys)
	if err1 != nil || err2 != nil || v1.KeyID == v2.KeyID {
		t.Fatalf("after rotation: %v, %v (keys %s, %s)", err1, err2, v1.KeyID, v2.KeyID)
	}
	var entries struct {
		Entries []struct {
			Kind string `json:"kind"`
			Kid  string `json:"kid"`
		} `json:"entries"`
	}
	call(t, "GET", base+"/v1/log/entries?start=0&end=100", "", "", &entries)
	var kinds []string
	for _, e := range entries.Entries {
		kinds = append(kinds, e.Kind+":"+e.Kid)
	}
	want := []string{"key_activated:" + v1.KeyID, "certificate:", "key_activated:" + v2.KeyID, "key_retired:" + v1.KeyID, "certificate:"}
	if strings.Join(kinds, " ") != strings.Join(want, " ") {
		t.Errorf("log entries\n%v\nwant\n%v", kinds, want)
	}
	// The old certificate's checkpoint (signed by the old key) is a prefix
	// of the log as it is now (signed by the new one).
	var out bytes.Buffer
	certFile := filepath.Join(t.TempDir(), "old.json")
	writeFile(t, certFile, getCertificate(t, base, in.adminToken, r1.ID))
	if code := app.Run(context.Background(), []string{"lethe", "cert", "verify", certFile, "--jwks", base + "/v1/keys", "--log", base}, os.Getenv, &out, &out); code != 0 {
		t.Errorf("old certificate after rotation: %d\n%s", code, out.String())
	}
}
