package webhook

import (
	"crypto/ed25519"
	"crypto/rand"
	"strconv"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/internal/receipt"
)

// TestCompletionCallbackKeepsTheReceipt: a signed callback that completes
// the request leaves the processor's receipt in the evidence (Ed25519 and
// RSA), one that checks offline; a body with identifier-shaped text is
// not embedded, only its digest, saying so; a callback that does not
// complete (in progress) leaves none.
func TestCompletionCallbackKeepsTheReceipt(t *testing.T) {
	t.Parallel()
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	rk := testRSAKey(t)
	for _, tt := range []struct {
		name string
		key  string
		sign func([]byte) []byte
	}{
		{"ed25519", inlinePEM("PUBLIC KEY", mustPKIX(t, edPub)), signEd(edPriv)},
		{"rsa", inlinePEM("PUBLIC KEY", mustPKIX(t, &rk.PublicKey)), signRSA(t, rk)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cb := cbConnector(t, tt.key)
			body := statusJSON("completed", `,"records":2`)
			_, out, err := callback(connectortest.Ctx(t), cb, headers(tt.sign(stamped(body))), body)
			if err != nil {
				t.Fatal(err)
			}
			v, ok := evidenceOf(out, receipt.Kind)
			if !ok {
				t.Fatalf("no receipt in %v", out.Evidence)
			}
			a, err := receipt.Check(v)
			if err != nil || a.RequestID != cbID || a.Status != "completed" || strconv.FormatInt(a.SignedAt.Unix(), 10) != stampNow {
				t.Errorf("receipt %+v, %v", a, err)
			}

			body = statusJSON("completed", `,"records":1,"note":"erased ann@example.com"`)
			_, out, err = callback(connectortest.Ctx(t), cb, headers(tt.sign(stamped(body))), body)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := evidenceOf(out, receipt.Kind); ok {
				t.Error("a body naming an email was embedded")
			}
			if w, ok := evidenceOf(out, receipt.Withheld); !ok || strings.Contains(w, "ann@") || !strings.Contains(w, "not embedded") {
				t.Errorf("withheld receipt %q, %v", w, ok)
			}

			body = statusJSON("in_progress", "")
			_, out, _ = callback(connectortest.Ctx(t), cb, headers(tt.sign(stamped(body))), body)
			if _, ok := evidenceOf(out, receipt.Kind); ok {
				t.Error("a callback that completes nothing left a receipt")
			}
		})
	}
}

func evidenceOf(out connectors.Outcome, kind string) (string, bool) {
	for _, ev := range out.Evidence {
		if ev.Kind == kind {
			return ev.Value, true
		}
	}
	return "", false
}
