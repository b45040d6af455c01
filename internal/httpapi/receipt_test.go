package httpapi

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/certificate"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/receipt"
	"github.com/lethe-dev/lethe/internal/store"
	"github.com/lethe-dev/lethe/internal/store/sqlite"
	"github.com/lethe-dev/lethe/internal/translog"
)

const processorRequest = "5f0c7a3e-2b1d-4c8e-9a6f-0123456789ab"

// TestProcessorReceiptsInEveryVerifier: a certificate whose processor
// system carries the processor's signed completion verifies in Go, in the
// auditor page's verify.js and in the standalone tools/verify-certificate
// (both under Node), each saying the processor attested it; each
// tampering of the receipt is refused by all three. The tampered
// certificates are genuinely signed and logged (as a Lethe that wrote a
// bad receipt would issue them), so only the receipt check can refuse them.
func TestProcessorReceiptsInEveryVerifier(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("Node.js is required (apt-get install nodejs); .ci/run installs it")
	}
	standalone, _ := filepath.Abs("../../tools/verify-certificate/verify.mjs")
	if _, err := os.Stat(filepath.Join(filepath.Dir(standalone), "node_modules", "jose")); err != nil {
		out, err := exec.Command("npm", "ci", "--prefix", filepath.Dir(standalone), "--no-audit", "--no-fund").CombinedOutput()
		if err != nil {
			t.Fatalf("npm ci in tools/verify-certificate: %v\n%s", err, out)
		}
	}
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	body := func(id, status string) []byte {
		return []byte(`{"subject_request_id":"` + id + `","request_status":"` + status + `","api_version":"2.0"}`)
	}
	const ts = "1777777777"
	edReceipt := func(msg []byte) string {
		v, _ := receipt.Make(edPriv.Public(), msg, ed25519.Sign(edPriv, msg))
		return v
	}
	rsaReceipt := func(msg []byte) string {
		sum := sha256.Sum256(msg)
		sig, _ := rsa.SignPKCS1v15(rand.Reader, rk, crypto.SHA256, sum[:])
		v, _ := receipt.Make(&rk.PublicKey, msg, sig)
		return v
	}
	good := edReceipt(append([]byte(ts+"."), body(processorRequest, "completed")...))
	edit := func(v string, f func(r *receipt.Receipt)) string {
		var r receipt.Receipt
		_ = json.Unmarshal([]byte(v), &r)
		f(&r)
		b, _ := json.Marshal(r)
		return string(b)
	}
	b64 := base64.StdEncoding
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherDER, _ := x509.MarshalPKIXPublicKey(other.Public())
	cases := []struct {
		name, value string
		valid       bool
		onShop      bool // the receipt moved to another system
	}{
		{"ed25519", good, true, false},
		{"rsa, body only", rsaReceipt(body(processorRequest, "completed")), true, false},
		{"signature flipped", edit(good, func(r *receipt.Receipt) {
			sig, _ := b64.DecodeString(r.Sig)
			sig[0] ^= 0x80
			r.Sig = b64.EncodeToString(sig)
		}), false, false},
		{"status changed", edit(good, func(r *receipt.Receipt) {
			r.Signed = b64.EncodeToString(append([]byte(ts+"."), body(processorRequest, "cancelled")...))
		}), false, false},
		{"timestamp changed", edit(good, func(r *receipt.Receipt) {
			r.Signed = b64.EncodeToString(append([]byte("1777777999."), body(processorRequest, "completed")...))
		}), false, false},
		{"key swapped", edit(good, func(r *receipt.Receipt) { r.Key, r.Kid = b64.EncodeToString(otherDER), receipt.Kid(otherDER) }), false, false},
		{"kid of another key", edit(good, func(r *receipt.Receipt) { r.Kid = receipt.Kid(otherDER) }), false, false},
		{"signed, but cancelled", edReceipt(append([]byte(ts+"."), body(processorRequest, "cancelled")...)), false, false},
		{"signed, for another request", edReceipt(append([]byte(ts+"."), body("00000000-0000-4000-8000-000000000000", "completed")...)), false, false},
		{"moved to another system", good, false, true},
	}
	dir := t.TempDir()
	webDir, _ := filepath.Abs("web")
	runner := `import { verifyCertificate } from ` + jsonString("file://"+webDir+"/verify.js") + `;
import { readFileSync } from "node:fs";
const [doc, jwks] = process.argv.slice(2);
const r = await verifyCertificate(readFileSync(doc, "utf8"), JSON.parse(readFileSync(jwks, "utf8")));
console.log(JSON.stringify({ valid: r.valid, reason: r.reason, checks: r.checks }));`
	writeTestFile(t, filepath.Join(dir, "run.mjs"), []byte(runner))
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc, jwks, keys := issueWithReceipt(t, tc.value, tc.onShop)
			docPath, jwksPath := filepath.Join(dir, "c"+string(rune('a'+i))+".json"), filepath.Join(dir, "k"+string(rune('a'+i))+".json")
			writeTestFile(t, docPath, doc)
			writeTestFile(t, jwksPath, jwks)

			v, goErr := certificate.Verify(doc, keys)
			out, _ := exec.Command(node, filepath.Join(dir, "run.mjs"), docPath, jwksPath).CombinedOutput()
			var page struct {
				Valid  bool   `json:"valid"`
				Reason string `json:"reason"`
				Checks []struct {
					ID   string `json:"id"`
					Text string `json:"text"`
				} `json:"checks"`
			}
			if err := json.Unmarshal(out, &page); err != nil {
				t.Fatalf("verify.js output: %s", out)
			}
			std, stdErr := exec.Command(node, standalone, docPath, jwksPath).CombinedOutput()
			if tc.valid {
				if goErr != nil || !page.Valid || stdErr != nil {
					t.Fatalf("refused a good receipt: Go %v; verify.js %s; standalone %v %s", goErr, page.Reason, stdErr, std)
				}
				kid := v.Receipts["processor"].Kid
				if !strings.Contains(v.Summary(), "the processor itself attested completion (key "+kid) {
					t.Errorf("Go summary:\n%s", v.Summary())
				}
				last := page.Checks[len(page.Checks)-1]
				if !slicesHasText(page.Checks, "processor: the processor itself attested completion (key "+kid) || last.ID != "log" {
					t.Errorf("verify.js checks %+v", page.Checks)
				}
				if !bytes.Contains(std, []byte("the processor itself attested completion (key "+kid)) {
					t.Errorf("standalone output:\n%s", std)
				}
				return
			}
			if goErr == nil || !strings.Contains(goErr.Error(), "receipt") {
				t.Errorf("Go: %v, want a refused receipt", goErr)
			}
			if page.Valid || page.Checks[len(page.Checks)-1].ID != "receipt" {
				t.Errorf("verify.js: valid %v, %s", page.Valid, page.Reason)
			}
			if stdErr == nil || !bytes.Contains(std, []byte("INVALID")) || bytes.Contains(std, []byte("VALID: certificate")) {
				t.Errorf("standalone: %v\n%s", stdErr, std)
			}
		})
	}
}

func slicesHasText(checks []struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}, s string) bool {
	for _, c := range checks {
		if strings.Contains(c.Text, s) {
			return true
		}
	}
	return false
}

// issueWithReceipt issues a signed, logged certificate whose processor
// system (or, onShop, the shop's) carries a receipt of value v.
func issueWithReceipt(t *testing.T, v string, onShop bool) (doc, jwks []byte, keys certificate.JWKS) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "lethe.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	priv, _ := certificate.GenerateKey()
	signer := certificate.NewSigner(priv)
	ls, _ := translog.NewLogSigner("test.example/log", priv)
	iss := &certificate.Issuer{Signer: signer, Log: translog.NewLog("test.example/log", ls), Options: certificate.Options{Issuer: "Example Ltd"}}
	h, _ := erasure.NewHasher(bytes.Repeat([]byte{3}, 32))
	at := time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)
	req := erasure.Request{ID: erasure.NewID(), Status: erasure.RequestCompleted, Jurisdiction: erasure.GDPR,
		SubjectRef: h.Ref(erasure.Subject{Email: "alice@example.com"}), ReceivedAt: at, DueAt: erasure.GDPR.DueDate(at),
		OriginalDueAt: erasure.GDPR.DueDate(at), CompletedAt: at.Add(time.Hour), Sources: erasure.Sources{erasure.Email: erasure.SourceRequest}}
	rec := erasure.Evidence{Kind: receipt.Kind, Value: v}
	shopEv := []erasure.Evidence{{Kind: "statement", Value: "customers: 1 row"}}
	procEv := []erasure.Evidence{{Kind: "subject_request_id", Value: processorRequest}, {Kind: "request_status", Value: "completed"}}
	if onShop {
		shopEv = append(shopEv, rec)
	} else {
		procEv = append(procEv, rec)
	}
	tasks := []erasure.Task{
		{Connector: "shop-db", ConnectorType: "sql", Status: erasure.TaskErased, Attempt: 1, RecordsErased: 1,
			SearchedBy: []erasure.Kind{erasure.Email}, Evidence: shopEv, CompletedAt: at.Add(time.Hour)},
		{Connector: "processor", ConnectorType: "webhook", Status: erasure.TaskErased, Attempt: 1, RecordsUnknown: true,
			SearchedBy: []erasure.Kind{erasure.Email}, Evidence: procEv, CompletedAt: at.Add(time.Hour)},
	}
	var c store.Certificate
	if err := st.InTx(context.Background(), func(tx store.Tx) error {
		var err error
		c, err = iss.Issue(context.Background(), tx, req, tasks, strings.Repeat("0", 64), at.Add(time.Hour))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	keys = certificate.JWKS{Keys: []certificate.JWK{signer.PublicJWK()}}
	jwks, _ = json.Marshal(keys)
	return c.Document, jwks, keys
}
