package webhook

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"testing"

	"github.com/lethe-dev/lethe/connectors/webhook/webhookfake"
)

// FuzzCallbackVerifier: whatever the headers and body, Callback never
// panics, and it accepts a callback only when the processor's key signed
// exactly that timestamp and body. The seeds are a valid callback, the same body
// tampered, a signature of another body, and garbage.
func FuzzCallbackVerifier(f *testing.F) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	cb := cbConnector(f, inlinePEM("PUBLIC KEY", mustPKIX(f, pub)))
	good := statusJSON("completed", `,"records":2`)
	sign := func(b []byte) string { return base64.StdEncoding.EncodeToString(ed25519.Sign(priv, stamped(b))) }
	f.Add(webhookfake.Domain, sign(good), good)
	f.Add(webhookfake.Domain, sign(good), bytes.Replace(good, []byte(`"records":2`), []byte(`"records":9`), 1))
	f.Add(webhookfake.Domain, sign([]byte("{}")), good)
	f.Add("evil.example", sign(good), good)
	f.Add(webhookfake.Domain, "%%%not base64", []byte("\x00\xff{"))
	f.Add(webhookfake.Domain, sign([]byte(`{"subject_request_id":"x"}`)), []byte(`{"subject_request_id":"x"}`))
	f.Fuzz(func(t *testing.T, domain, sig string, body []byte) {
		h := http.Header{}
		h.Set("X-OpenDSR-Processor-Domain", domain)
		h.Set("X-OpenDSR-Signature", sig)
		h.Set("X-Lethe-Timestamp", stampNow)
		ref, _, err := callback(context.Background(), cb, h, body)
		if err != nil {
			return
		}
		raw, derr := decodeSignature(sig)
		if derr != nil || !ed25519.Verify(pub, stamped(body), raw) {
			t.Fatalf("accepted a callback the key did not sign (ref %q)", ref)
		}
		if ref == "" {
			t.Fatal("accepted a callback without naming its request")
		}
	})
}
