package certificate_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/certificate"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/receipt"
	"github.com/lethe-dev/lethe/internal/store"
	"github.com/lethe-dev/lethe/internal/translog"
)

const receiptRequestID = "5f0c7a3e-2b1d-4c8e-9a6f-0123456789ab"

// processorBody is an OpenDSR status a processor signs on completion.
func processorBody(id, status string) []byte {
	return []byte(`{"subject_request_id":"` + id + `","request_status":"` + status + `","api_version":"2.0"}`)
}

// signedReceipt is the receipt of body signed by priv at ts.
func signedReceipt(t testing.TB, priv ed25519.PrivateKey, ts string, body []byte) string {
	t.Helper()
	msg := append([]byte(ts+"."), body...)
	v, err := receipt.Make(priv.Public(), msg, ed25519.Sign(priv, msg))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// withReceipt is the fixture with a webhook processor that completed by
// a signed callback whose receipt is v.
func withReceipt(t testing.TB, v string) (erasure.Request, []erasure.Task) {
	req, tasks := fixture(t)
	tasks = append(tasks, erasure.Task{Connector: "processor", ConnectorType: "webhook", Status: erasure.TaskErased, Attempt: 1,
		RecordsUnknown: true, SearchedBy: []erasure.Kind{erasure.Email}, CompletedAt: req.CompletedAt,
		Evidence: []erasure.Evidence{{Kind: "subject_request_id", Value: receiptRequestID}, {Kind: "request_status", Value: "completed"},
			{Kind: receipt.Kind, Value: v}}})
	return req, tasks
}

// TestProcessorReceipt: a certificate carrying a processor's signed
// completion verifies and says the processor attested it; each tampering
// of the receipt is refused even when Lethe's own signature is made anew
// over the tampered payload, so the receipt check, not the outer
// signature, is what refuses it.
func TestProcessorReceipt(t *testing.T) {
	t.Parallel()
	_, proc, _ := ed25519.GenerateKey(rand.Reader)
	good := signedReceipt(t, proc, "1777777777", processorBody(receiptRequestID, "completed"))

	priv, _ := certificate.GenerateKey()
	s := certificate.NewSigner(priv)
	keys := certificate.JWKS{Keys: []certificate.JWK{s.PublicJWK()}}
	ls, _ := translog.NewLogSigner(testOrigin, priv)
	iss := &certificate.Issuer{Signer: s, Log: translog.NewLog(testOrigin, ls), Options: certificate.Options{Issuer: "Example Ltd"}}
	req, tasks := withReceipt(t, good)
	var c store.Certificate
	if err := openStore(t).InTx(context.Background(), func(tx store.Tx) error {
		var err error
		c, err = iss.Issue(context.Background(), tx, req, tasks, strings.Repeat("ab", 32), req.CompletedAt)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	v, err := certificate.Verify(c.Document, keys)
	if err != nil {
		t.Fatalf("a certificate with a good receipt: %v", err)
	}
	a, ok := v.Receipts["processor"]
	if !ok || a.RequestID != receiptRequestID || !a.SignedAt.Equal(time.Unix(1777777777, 0)) || !strings.HasPrefix(a.Kid, "sha256:") {
		t.Fatalf("receipts %+v", v.Receipts)
	}
	if sum := v.Summary(); !strings.Contains(sum, "processor (webhook): erased") ||
		!strings.Contains(sum, "the processor itself attested completion (key "+a.Kid+", signed 2026-05-03T03:09:37Z)") {
		t.Errorf("summary does not say the processor attested it:\n%s", sum)
	}

	// Tamperings, each re-signed by Lethe's key (without a log proof: a
	// payload that passes every other check fails on the missing proof).
	base, err := certificate.NewPayload(req, tasks, certificate.Options{Issuer: "X"}, "h", req.CompletedAt)
	if err != nil {
		t.Fatal(err)
	}
	var r receipt.Receipt
	_ = json.Unmarshal([]byte(good), &r)
	edit := func(f func(r *receipt.Receipt)) string {
		c := r
		f(&c)
		b, _ := json.Marshal(c)
		return string(b)
	}
	b64 := base64.StdEncoding
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	otherDER, _ := x509.MarshalPKIXPublicKey(other.Public())
	for _, tc := range []struct {
		name, value, want string
		moveTo            string // the system carrying it (default: the processor's)
	}{
		{"untouched", good, "no transparency log proof", ""},
		{"signature byte flipped", edit(func(r *receipt.Receipt) {
			sig, _ := b64.DecodeString(r.Sig)
			sig[3] ^= 1
			r.Sig = b64.EncodeToString(sig)
		}), "signature does not verify", ""},
		{"status changed", edit(func(r *receipt.Receipt) {
			r.Signed = b64.EncodeToString(append([]byte("1777777777."), processorBody(receiptRequestID, "cancelled")...))
		}), "signature does not verify", ""},
		{"timestamp changed", edit(func(r *receipt.Receipt) {
			r.Signed = b64.EncodeToString(append([]byte("1777777778."), processorBody(receiptRequestID, "completed")...))
		}), "signature does not verify", ""},
		{"key swapped, kid kept", edit(func(r *receipt.Receipt) { r.Key = b64.EncodeToString(otherDER) }), "not the one its key id names", ""},
		{"key and kid swapped", edit(func(r *receipt.Receipt) { r.Key, r.Kid = b64.EncodeToString(otherDER), receipt.Kid(otherDER) }), "signature does not verify", ""},
		{"algorithm relabelled", edit(func(r *receipt.Receipt) {
			r.Key, r.Kid, r.Alg = b64.EncodeToString(rsaDER), receipt.Kid(rsaDER), "RS256"
		}), "signature does not verify", ""},
		{"signed by the processor, but failed", signedReceipt(t, proc, "1777777777", processorBody(receiptRequestID, "cancelled")), `says "cancelled"`, ""},
		{"for another request", signedReceipt(t, proc, "1777777777", processorBody("00000000-0000-4000-8000-000000000000", "completed")), "another request", ""},
		{"moved to another system", good, "another request", "shop-db"},
		{"not a receipt", "verified", "not a version 1 receipt", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := base
			p.Systems = append([]certificate.System(nil), base.Systems...)
			at := func(name string) int {
				for i, sys := range p.Systems {
					if sys.Connector == name {
						return i
					}
				}
				t.Fatalf("no system %s", name)
				return -1
			}
			proc, target := at("processor"), at("processor")
			if tc.moveTo != "" {
				target = at(tc.moveTo)
			}
			var kept []erasure.Evidence
			for _, ev := range p.Systems[proc].Evidence {
				if ev.Kind != receipt.Kind {
					kept = append(kept, ev)
				}
			}
			p.Systems[proc].Evidence = kept
			p.Systems[target].Evidence = append(append([]erasure.Evidence(nil), p.Systems[target].Evidence...), erasure.Evidence{Kind: receipt.Kind, Value: tc.value})
			for _, i := range []int{proc, target} {
				p.Systems[i].EvidenceDigest = certificate.EvidenceDigest(p.Systems[i].Evidence)
			}
			d, err := s.Sign(p)
			if err != nil {
				t.Fatal(err)
			}
			_, err = certificate.Verify(d.JSON(), keys)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Verify = %v, want an error about %q", err, tc.want)
			}
		})
	}
}
