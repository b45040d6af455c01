package webhook

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/connectors/webhook/webhookfake"
)

const cbID = "0b9d6f1e-8a2c-4f3b-9c7d-1e2f3a4b5c6d"

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

// testRSAKey is generated once: 2048-bit generation is the slow part.
func testRSAKey(t testing.TB) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return rsaKey
}

func weakRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustPKIX(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func x509MarshalPKCS8(k any) ([]byte, error) { return x509.MarshalPKCS8PrivateKey(k) }

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// cbConnector builds an instance that takes callbacks verified with the
// key in keyConfig (a processor_public_key YAML value).
func cbConnector(t testing.TB, keyConfig string) connectors.Callbacker {
	t.Helper()
	c := connectortest.Build(t, "webhook", "billing", strings.Join([]string{
		"base_url: https://dsr.billing.example",
		"callback_url: https://lethe.example.com/v1/connectors/billing/callback",
		"processor_domain: " + webhookfake.Domain,
		"processor_public_key: " + keyConfig,
	}, "\n"))
	cb, ok := c.(connectors.Callbacker)
	if !ok {
		t.Fatal("webhook must implement connectors.Callbacker")
	}
	return cb
}

// inlinePEM is a YAML block holding a PEM block of typ for each der.
func inlinePEM(typ string, ders ...[]byte) string {
	var b []byte
	for _, der := range ders {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})...)
	}
	return "|\n  " + strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "\n  ")
}

func signEd(priv ed25519.PrivateKey) func([]byte) []byte {
	return func(b []byte) []byte { return ed25519.Sign(priv, b) }
}

func signRSA(t testing.TB, k *rsa.PrivateKey) func([]byte) []byte {
	return func(b []byte) []byte {
		sum := sha256.Sum256(b)
		sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
}

// stampNow is the X-Lethe-Timestamp of the test callbacks; stamped is what
// a processor signs with it.
var stampNow = strconv.FormatInt(time.Now().Unix(), 10)

func stamped(body []byte) []byte { return append([]byte(stampNow+"."), body...) }

// callback calls cb and returns the job and outcome, as the tests that
// predate callback IDs read them.
func callback(ctx context.Context, cb connectors.Callbacker, h http.Header, body []byte) (string, connectors.Outcome, error) {
	got, err := cb.Callback(ctx, h, body)
	return got.JobRef, got.Outcome, err
}

func headers(sig []byte) http.Header {
	h := http.Header{}
	h.Set("X-Lethe-Timestamp", stampNow)
	h.Set("X-OpenDSR-Processor-Domain", webhookfake.Domain)
	h.Set("X-OpenDSR-Signature", base64.StdEncoding.EncodeToString(sig))
	return h
}

func statusJSON(status string, extra string) []byte {
	return []byte(`{"controller_id":"c1","expected_completion_time":"2030-01-01T00:00:00Z","status_callback_url":"https://lethe.example.com/cb","subject_request_id":"` +
		cbID + `","request_status":"` + status + `"` + extra + `}`)
}

func TestCallbackSignatures(t *testing.T) {
	t.Parallel()
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	rk := testRSAKey(t)
	rsaFile := filepath.Join(t.TempDir(), "processor.pem")
	writePEM(t, rsaFile, "PUBLIC KEY", mustPKIX(t, &rk.PublicKey))
	pkcs1File := filepath.Join(t.TempDir(), "processor-pkcs1.pem")
	writePEM(t, pkcs1File, "RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&rk.PublicKey))
	// A self-signed certificate, as OpenDSR discovery publishes.
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: webhookfake.Domain},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, edPub, edPriv)
	if err != nil {
		t.Fatal(err)
	}
	// Two keys: the old one still verifies while the processor rotates.
	_, oldPriv, _ := ed25519.GenerateKey(rand.Reader)
	rotating := inlinePEM("PUBLIC KEY", mustPKIX(t, oldPriv.Public()), mustPKIX(t, edPub))

	for _, tt := range []struct {
		name string
		key  string
		sign func([]byte) []byte
	}{
		{"ed25519 inline", inlinePEM("PUBLIC KEY", mustPKIX(t, edPub)), signEd(edPriv)},
		{"ed25519 certificate", inlinePEM("CERTIFICATE", certDER), signEd(edPriv)},
		{"ed25519 second of two keys", rotating, signEd(edPriv)},
		{"rsa from {file:}", "{file: " + rsaFile + "}", signRSA(t, rk)},
		{"rsa pkcs1 from a path", pkcs1File, signRSA(t, rk)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cb := cbConnector(t, tt.key)
			body := statusJSON("completed", `,"records":2`)
			ref, out, err := callback(connectortest.Ctx(t), cb, headers(tt.sign(stamped(body))), body)
			if err != nil {
				t.Fatalf("valid callback refused: %v", err)
			}
			if ref != cbID || out.Status != connectors.StatusErased || out.Records != 2 {
				t.Errorf("callback = %q %+v, want %s erased with 2", ref, out, cbID)
			}
		})
	}
}

func TestCallbackRefusals(t *testing.T) {
	t.Parallel()
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	cb := cbConnector(t, inlinePEM("PUBLIC KEY", mustPKIX(t, edPub)))
	body := statusJSON("completed", "")
	good := headers(ed25519.Sign(edPriv, stamped(body)))
	// edited is good with the header name set to v, or left out when v is "".
	edited := func(name, v string) func() http.Header {
		return func() http.Header {
			h := good.Clone()
			if v == "" {
				h.Del(name)
			} else {
				h.Set(name, v)
			}
			return h
		}
	}

	for _, tt := range []struct {
		name   string
		header func() http.Header
		body   []byte
		want   string
	}{
		{"tampered body", func() http.Header { return good.Clone() }, statusJSON("completed", `,"records":9`), "does not verify"},
		{"wrong domain", edited("X-OpenDSR-Processor-Domain", "evil.example"), body, "processor domain"},
		{"no domain", edited("X-OpenDSR-Processor-Domain", ""), body, "unsigned"},
		{"unsigned", edited("X-OpenDSR-Signature", ""), body, "unsigned"},
		{"signature not base64", edited("X-OpenDSR-Signature", "%%%"), body, "not base64"},
		{"wrong key", func() http.Header { return headers(ed25519.Sign(otherPriv, stamped(body))) }, body, "does not verify"},
		{"rsa signature for an ed25519 key", func() http.Header { return headers(signRSA(t, testRSAKey(t))(stamped(body))) }, body, "does not verify"},
		{"signed garbage", func() http.Header { return headers(ed25519.Sign(edPriv, stamped([]byte("not json")))) }, []byte("not json"), "not a JSON object"},
		{"signed but no id", func() http.Header {
			return headers(ed25519.Sign(edPriv, stamped([]byte(`{"request_status":"completed"}`))))
		}, []byte(`{"request_status":"completed"}`), "subject_request_id"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := callback(connectortest.Ctx(t), cb, tt.header(), tt.body)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}

	t.Run("instance without a key", func(t *testing.T) {
		t.Parallel()
		c := connectortest.Build(t, "webhook", "billing", "base_url: https://dsr.billing.example")
		if _, _, err := callback(connectortest.Ctx(t), c.(connectors.Callbacker), good, body); err == nil {
			t.Fatal("a callback was taken without a key to check it")
		}
	})
}

func TestCallbackStatuses(t *testing.T) {
	t.Parallel()
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	cb := cbConnector(t, inlinePEM("PUBLIC KEY", mustPKIX(t, edPub)))
	for _, tt := range []struct {
		status, extra string
		want          connectors.Status
		records       int64
		uncounted     bool
	}{
		{"pending", "", connectors.StatusRunning, 0, false},
		{"in_progress", "", connectors.StatusRunning, 0, false},
		{"completed", "", connectors.StatusErased, 0, true},
		{"completed", `,"records":0`, connectors.StatusNotFound, 0, false},
		{"completed", `,"records":5`, connectors.StatusErased, 5, false},
		// Callbacker has no failure outcome: the next Poll reports it.
		{"cancelled", "", connectors.StatusRunning, 0, false},
		{"weird", "", connectors.StatusRunning, 0, false},
	} {
		body := statusJSON(tt.status, tt.extra)
		ref, out, err := callback(connectortest.Ctx(t), cb, headers(ed25519.Sign(edPriv, stamped(body))), body)
		if err != nil {
			t.Errorf("%s%s: %v", tt.status, tt.extra, err)
			continue
		}
		if ref != cbID || out.Status != tt.want || out.Records != tt.records || out.Uncounted != tt.uncounted {
			t.Errorf("%s%s = %q %s/%d (uncounted %v), want %s/%d (uncounted %v)", tt.status, tt.extra, ref, out.Status, out.Records, out.Uncounted,
				tt.want, tt.records, tt.uncounted)
		}
		if out.Status == connectors.StatusRunning && out.JobRef != cbID {
			t.Errorf("%s: running without the job ref", tt.status)
		}
	}
}

// TestCallbacksFromTheFakeProcessor runs the whole loop: the processor
// signs and POSTs its status changes to Lethe's callback URL, where the
// connector checks them.
func TestCallbacksFromTheFakeProcessor(t *testing.T) {
	t.Parallel()
	p := webhookfake.Start(t, webhookfake.Options{Polls: 2})
	var (
		mu   sync.Mutex
		got  []connectors.Outcome
		refs []string
		c    connectors.Connector
	)
	lethe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ref, out, err := callback(r.Context(), c.(connectors.Callbacker), r.Header, body)
		if err != nil {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		mu.Lock()
		got, refs = append(got, out), append(refs, ref)
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(lethe.Close)
	c = newConnector(t, p, "callback_url: "+lethe.URL+"/v1/connectors/billing/callback")

	s := connectors.Subject{Email: "pat@example.com"}
	p.Seed(s)
	out, err := connectortest.EraseAndWait(connectortest.Ctx(t), c, s, 5*time.Second)
	if err != nil || out.Status != connectors.StatusErased {
		t.Fatalf("erase = %+v, %v", out, err)
	}
	jobRef := created(t, p)[0].SubjectRequestID
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("%d callbacks taken, want in_progress and completed", len(got))
	}
	if got[0].Status != connectors.StatusRunning || got[1].Status != connectors.StatusErased || got[1].Records != webhookfake.Records {
		t.Errorf("callbacks = %+v", got)
	}
	for _, r := range refs {
		if r != jobRef {
			t.Errorf("callback job ref %q, want %q", r, jobRef)
		}
	}
}

// TestCallbackTimestamps is the replay attack as far as the connector can
// stop it: a signed timestamp outside callback_max_age, a timestamp changed
// after signing and a callback with no timestamp are refused; the ID names
// exactly what was signed, for Lethe to remember.
func TestCallbackTimestamps(t *testing.T) {
	t.Parallel()
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	key := inlinePEM("PUBLIC KEY", mustPKIX(t, edPub))
	cb := cbConnector(t, key)
	body := statusJSON("completed", `,"records":1`)
	at := func(ts string, signed []byte) http.Header {
		h := headers(ed25519.Sign(edPriv, signed))
		if ts == "" {
			h.Del("X-Lethe-Timestamp")
		} else {
			h.Set("X-Lethe-Timestamp", ts)
		}
		return h
	}
	unix := func(d time.Duration) string { return strconv.FormatInt(time.Now().Add(d).Unix(), 10) }
	stale, ahead := unix(-6*time.Minute), unix(6*time.Minute)
	for _, tt := range []struct {
		name   string
		header http.Header
		want   string
	}{
		{"captured six minutes ago", at(stale, []byte(stale+"."+string(body))), "outside callback_max_age"},
		{"six minutes ahead", at(ahead, []byte(ahead+"."+string(body))), "outside callback_max_age"},
		{"timestamp changed after signing", at(unix(time.Second), stamped(body)), "does not verify"},
		{"no timestamp, body signed", at("", body), "no X-Lethe-Timestamp"},
		{"timestamp not a number", at("yesterday", []byte("yesterday."+string(body))), "not a Unix time"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := cb.Callback(connectortest.Ctx(t), tt.header, body); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}

	first, err := cb.Callback(connectortest.Ctx(t), headers(ed25519.Sign(edPriv, stamped(body))), body)
	if err != nil || first.ID == "" {
		t.Fatalf("a fresh callback = %+v, %v", first, err)
	}
	again, _ := cb.Callback(connectortest.Ctx(t), headers(ed25519.Sign(edPriv, stamped(body))), body)
	later := unix(time.Second)
	other, err := cb.Callback(connectortest.Ctx(t), at(later, []byte(later+"."+string(body))), body)
	if again.ID != first.ID || err != nil || (later != stampNow && other.ID == first.ID) {
		t.Errorf("IDs: %q, again %q, another timestamp %q (%v): the same signed message must have one ID, another message another", first.ID, again.ID, other.ID, err)
	}

	// A plain OpenDSR 2.0 processor signs the body alone.
	plain := connectortest.Build(t, "webhook", "billing", strings.Join([]string{
		"base_url: https://dsr.billing.example",
		"processor_domain: " + webhookfake.Domain,
		"processor_public_key: " + key,
		"body_only_signatures: true",
	}, "\n")).(connectors.Callbacker)
	if got, err := plain.Callback(connectortest.Ctx(t), at("", body), body); err != nil || got.JobRef != cbID || got.ID == "" {
		t.Errorf("body-only signature with body_only_signatures = %+v, %v", got, err)
	}
	if _, err := plain.Callback(connectortest.Ctx(t), at(stale, []byte(stale+"."+string(body))), body); err == nil {
		t.Error("a stale timestamp was taken because body-only signatures are allowed")
	}
}
