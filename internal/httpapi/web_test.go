package httpapi

import (
	"bytes"
	"context"
	"crypto/ed25519"
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
	"github.com/lethe-dev/lethe/internal/store"
	"github.com/lethe-dev/lethe/internal/store/sqlite"
	"github.com/lethe-dev/lethe/internal/translog"
)

// issueForTest issues a real certificate (signature and log proof) and
// returns it with its key set and the commitment nonce.
func issueForTest(t *testing.T) (doc []byte, jwks []byte, nonce []byte, priv ed25519.PrivateKey) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "lethe.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	priv, _ = certificate.GenerateKey()
	signer := certificate.NewSigner(priv)
	ls, _ := translog.NewLogSigner("test.example/log", priv)
	iss := &certificate.Issuer{Signer: signer, Log: translog.NewLog("test.example/log", ls), Options: certificate.Options{Issuer: "Example Ltd"}}
	h, _ := erasure.NewHasher(bytes.Repeat([]byte{3}, 32))
	nonce = bytes.Repeat([]byte{7}, 32)
	subject := erasure.Subject{Email: "alice@example.com"}
	ref := h.Ref(subject)
	ref.Commitment = erasure.Commit(nonce, subject.Email)
	at := time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)
	req := erasure.Request{ID: erasure.NewID(), Status: erasure.RequestCompleted, Jurisdiction: erasure.GDPR, SubjectRef: ref,
		ReceivedAt: at, DueAt: erasure.GDPR.DueDate(at).AddDate(0, 1, 0), OriginalDueAt: erasure.GDPR.DueDate(at),
		ExtendedAt: at.Add(time.Minute), ExtensionCategory: "complexity", CompletedAt: at.Add(time.Hour),
		Sources: erasure.Sources{erasure.Email: erasure.SourceRequest, "user_ids.app": "shop-db"}}
	tasks := []erasure.Task{
		{Connector: "shop-db", ConnectorType: "sql", Phase: erasure.PhaseResolve, Status: erasure.TaskResolved, Attempt: 1,
			SearchedBy: []erasure.Kind{erasure.Email}, Found: []erasure.Kind{"user_ids.app"},
			Evidence: []erasure.Evidence{{Kind: "resolve", Value: "customers: 1 row"}}, CompletedAt: at.Add(time.Minute)},
		{Connector: "shop-db", ConnectorType: "sql", Status: erasure.TaskErased, Attempt: 1, RecordsErased: 3, SearchedBy: []erasure.Kind{erasure.Email},
			Verified: "clean", Evidence: []erasure.Evidence{{Kind: "statement", Value: "customers: 1 row ünïcödé €"}}, CompletedAt: at.Add(time.Hour)},
		{Connector: "analytics", ConnectorType: "segment", Status: erasure.TaskErased, Attempt: 1, RecordsUnknown: true,
			SearchedBy: []erasure.Kind{"user_ids.app"}, CompletedAt: at.Add(time.Hour)},
		{Connector: "legacy", ConnectorType: "sql", Status: erasure.TaskNotApplicable, Attempt: 1, Reason: "not a customer before 2019",
			CompletedAt: at.Add(time.Hour)},
	}
	// A few leaves before ours, so the proof is not trivial.
	for i := range 5 {
		_ = st.InTx(context.Background(), func(tx store.Tx) error {
			_, err := iss.Log.Append(context.Background(), tx, translog.KindCertificate, erasure.NewID(), []byte{byte(i)}, at)
			return err
		})
	}
	var c store.Certificate
	err = st.InTx(context.Background(), func(tx store.Tx) error {
		var err error
		c, err = iss.Issue(context.Background(), tx, req, tasks, strings.Repeat("0", 64), at.Add(time.Hour))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ = json.Marshal(certificate.JWKS{Keys: []certificate.JWK{signer.PublicJWK()}})
	return c.Document, jwks, nonce, priv
}

// TestBrowserVerifierInNode runs web/verify.js, the code the auditor page
// runs, under Node.js against certificates made by the Go side.
func TestBrowserVerifierInNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("Node.js is required to test the in-browser verifier (apt-get install nodejs); .ci/run installs it")
	}
	doc, jwks, nonce, priv := issueForTest(t)
	var d map[string]any
	_ = json.Unmarshal(doc, &d)
	tamper := func(f func(map[string]any)) []byte {
		var c map[string]any
		_ = json.Unmarshal(doc, &c)
		f(c)
		b, _ := json.Marshal(c)
		return b
	}
	payload, _ := base64.RawURLEncoding.DecodeString(d["payload"].(string))
	if !bytes.Contains(payload, []byte(`"records_erased":"unknown"`)) || !bytes.Contains(payload, []byte(`"resolution":[`)) {
		t.Fatalf("the test certificate is not a v2 one with an unknown count and a look-up: %s", payload)
	}
	// A certificate issued before version 2, and the keys it was signed with.
	v1doc, err := os.ReadFile("../certificate/testdata/v1-certificate.json")
	if err != nil {
		t.Fatal(err)
	}
	v1keys, _ := os.ReadFile("../certificate/testdata/v1-keys.json")
	cases := map[string]struct {
		doc      []byte
		valid    bool
		failedAt string
	}{
		"good": {doc, true, ""},
		"payload edited": {tamper(func(c map[string]any) {
			c["payload"] = base64.RawURLEncoding.EncodeToString(bytes.Replace(payload, []byte(`"records_erased":3`), []byte(`"records_erased":4`), 1))
		}), false, "signature"},
		"version 1": {v1doc, true, ""},
		"version 3": {tamper(func(c map[string]any) {
			var p map[string]any
			_ = json.Unmarshal(payload, &p)
			p["schema"] = "https://lethe.dev/schemas/certificate/v3"
			b, _ := json.Marshal(p)
			canon, _ := certificate.Canonicalize(b)
			c["payload"] = base64.RawURLEncoding.EncodeToString(canon)
			delete(c, "certificate")
			c["signature"] = base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, []byte(c["protected"].(string)+"."+c["payload"].(string))))
		}), false, "schema"},
		"readable edited": {tamper(func(c map[string]any) { c["certificate"].(map[string]any)["issuer"] = "Other" }), false, "copy"},
		"proof edited":    {tamper(func(c map[string]any) { c["log"].(map[string]any)["index"] = 2 }), false, "log"},
		"checkpoint edited": {tamper(func(c map[string]any) {
			l := c["log"].(map[string]any)
			l["checkpoint"] = strings.Replace(l["checkpoint"].(string), "\n6\n", "\n7\n", 1)
		}), false, "log"},
		"unknown key": {tamper(func(c map[string]any) {
			c["protected"] = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","kid":"nope","typ":"lethe-certificate+jws"}`))
		}), false, "key"},
		"not a certificate": {[]byte("hello"), false, "format"},
	}
	dir := t.TempDir()
	webDir, _ := filepath.Abs("web")
	runner := `import { verifyCertificate, verifyCommitment } from ` + jsonString("file://"+webDir+"/verify.js") + `;
import { readFileSync } from "node:fs";
const [doc, jwks, email, nonce] = process.argv.slice(2);
const r = await verifyCertificate(readFileSync(doc, "utf8"), JSON.parse(readFileSync(jwks, "utf8")));
r.mine = r.payload ? await verifyCommitment(r.payload, email, nonce) : false;
console.log(JSON.stringify(r));`
	writeTestFile(t, filepath.Join(dir, "run.mjs"), []byte(runner))
	writeTestFile(t, filepath.Join(dir, "jwks.json"), jwks)
	writeTestFile(t, filepath.Join(dir, "v1keys.json"), v1keys)
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			docPath := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".json")
			writeTestFile(t, docPath, tc.doc)
			keys := "jwks.json"
			if name == "version 1" {
				keys = "v1keys.json"
			}
			out, err := exec.Command(node, filepath.Join(dir, "run.mjs"), docPath, filepath.Join(dir, keys),
				"Alice@Example.com", base64.RawURLEncoding.EncodeToString(nonce)).CombinedOutput()
			if err != nil {
				t.Fatalf("node: %v\n%s", err, out)
			}
			var r struct {
				Valid  bool   `json:"valid"`
				Reason string `json:"reason"`
				Mine   bool   `json:"mine"`
				Checks []struct {
					ID string `json:"id"`
					OK bool   `json:"ok"`
				} `json:"checks"`
				Log struct {
					Index    int64 `json:"index"`
					TreeSize int64 `json:"treeSize"`
				} `json:"log"`
			}
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatalf("output: %s", out)
			}
			if r.Valid != tc.valid {
				t.Fatalf("valid = %v (%s), want %v", r.Valid, r.Reason, tc.valid)
			}
			if tc.valid && name == "version 1" {
				return // its own log and person
			}
			if tc.valid {
				if r.Log.Index != 5 || r.Log.TreeSize != 6 || !r.Mine {
					t.Errorf("log position %+v, commitment opened %v", r.Log, r.Mine)
				}
				return
			}
			last := r.Checks[len(r.Checks)-1]
			if last.OK || last.ID != tc.failedAt {
				t.Errorf("failed at %+v, want %s (%s)", last, tc.failedAt, r.Reason)
			}
		})
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func writeTestFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
