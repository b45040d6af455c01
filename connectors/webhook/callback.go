package webhook

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/webhook/opendsr"
	"github.com/lethe-dev/lethe/internal/receipt"
)

// minRSABits refuses keys anyone could forge signatures for.
const minRSABits = 2048

// publicKey is an Ed25519 or RSA key callbacks are signed with.
type publicKey struct {
	ed  ed25519.PublicKey
	rsa *rsa.PublicKey
}

func (k publicKey) verify(msg, sig []byte) bool {
	if k.ed != nil {
		return ed25519.Verify(k.ed, msg, sig)
	}
	sum := sha256.Sum256(msg)
	return rsa.VerifyPKCS1v15(k.rsa, crypto.SHA256, sum[:], sig) == nil
}

// verifyAny reports whether any of keys verifies sig over msg; several
// keys let a processor rotate its key without refused callbacks.
func verifyAny(keys []publicKey, msg, sig []byte) bool {
	_, ok := signer(keys, msg, sig)
	return ok
}

// signer is the key of keys that verifies sig over msg.
func signer(keys []publicKey, msg, sig []byte) (publicKey, bool) {
	for _, k := range keys {
		if k.verify(msg, sig) {
			return k, true
		}
	}
	return publicKey{}, false
}

// public is k as a crypto.PublicKey.
func (k publicKey) public() crypto.PublicKey {
	if k.ed != nil {
		return k.ed
	}
	return k.rsa
}

// loadPublicKeys reads every key in s: PEM text, or the path of a PEM file.
func loadPublicKeys(s string) ([]publicKey, error) {
	data := []byte(s)
	if !strings.Contains(s, "-----BEGIN") {
		b, err := os.ReadFile(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("neither PEM text nor a readable PEM file: %w", err)
		}
		data = b
	}
	var keys []publicKey
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		k, err := parseKey(block)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM block found: expected -----BEGIN PUBLIC KEY-----")
	}
	return keys, nil
}

func parseKey(b *pem.Block) (publicKey, error) {
	var pub any
	var err error
	switch b.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(b.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(b.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(b.Bytes); err == nil {
			pub = cert.PublicKey
		}
	default:
		if strings.Contains(b.Type, "PRIVATE KEY") {
			return publicKey{}, errors.New("this is a private key: configure the processor's public key, and keep the private key with the processor")
		}
		return publicKey{}, fmt.Errorf("a %q PEM block is not a public key or certificate", b.Type)
	}
	if err != nil {
		return publicKey{}, fmt.Errorf("unreadable %s: %w", strings.ToLower(b.Type), err)
	}
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return publicKey{ed: k}, nil
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return publicKey{}, fmt.Errorf("the RSA key has %d bits; at least %d are required", k.N.BitLen(), minRSABits)
		}
		return publicKey{rsa: k}, nil
	}
	return publicKey{}, fmt.Errorf("a %T key is not supported: use Ed25519 or RSA (PKCS#1 v1.5, SHA-256)", pub)
}

// decodeSignature reads base64 in any of its common spellings.
func decodeSignature(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

// Callback takes a processor's signed status change. The signature is
// checked over "<X-Lethe-Timestamp>.<raw body>" (or, with
// body_only_signatures and no timestamp, the raw body) before any of the
// body is read, and the timestamp must lie within callback_max_age of
// now. The digest of what was signed is the callback's ID, so that Lethe
// refuses the same signed callback a second time.
//
// A "cancelled" callback (or any status Lethe cannot take as a result)
// reports the job still running: Callbacker has no failure outcome, so the
// next Poll confirms the cancellation and fails the task with the reason.
func (c *connector) Callback(_ context.Context, h http.Header, body []byte) (connectors.Callback, error) {
	var none connectors.Callback
	if c.keys == nil {
		return none, errors.New("this instance takes no callbacks: processor_domain and processor_public_key are not configured")
	}
	domain := strings.TrimSpace(h.Get(opendsr.HeaderDomain))
	if domain == "" {
		return none, errors.New("unsigned callback: no " + opendsr.HeaderDomain + " header")
	}
	if !strings.EqualFold(domain, c.domain) {
		return none, errors.New("callback from a processor domain other than processor_domain " + c.domain)
	}
	sigText := h.Get(opendsr.HeaderSignature)
	if sigText == "" {
		return none, errors.New("unsigned callback: no " + opendsr.HeaderSignature + " header")
	}
	sig, err := decodeSignature(sigText)
	if err != nil {
		return none, errors.New(opendsr.HeaderSignature + " is not base64")
	}
	signed, err := c.signedMessage(h.Get(opendsr.HeaderTimestamp), body)
	if err != nil {
		return none, err
	}
	key, ok := signer(c.keys, signed, sig)
	if !ok {
		return none, errors.New("the callback's signature does not verify with processor_public_key")
	}
	sum := sha256.Sum256(signed)
	cb := connectors.Callback{ID: hex.EncodeToString(sum[:])}
	var st statusResponse
	if err := json.Unmarshal(body, &st); err != nil {
		return none, errors.New("the signed callback is not a JSON object")
	}
	id, err := requestID(strings.ToLower(st.SubjectRequestID))
	if err != nil {
		return none, errors.New("the signed callback has no valid subject_request_id")
	}
	cb.JobRef = id
	if st.status() == "cancelled" {
		cb.Outcome = connectors.Running(id, 0, connectors.Evidence{Kind: "callback", Value: "processor reported cancelled"})
		return cb, nil
	}
	out, err := c.outcome(id, st)
	if err != nil {
		// Authentic but not a result Lethe can take (an unknown status,
		// a bad count): refusing it would tell the processor its signature
		// failed. The next Poll reports the problem instead.
		out = connectors.Running(id, 0)
	}
	if out.Status == connectors.StatusErased || out.Status == connectors.StatusNotFound {
		out.Evidence = append(out.Evidence, processorReceipt(key, signed, body, sig))
	}
	cb.Outcome = out
	return cb, nil
}

// processorReceipt keeps the processor's signed completion as evidence the
// certificate carries: whole, so that anyone can check the processor's
// signature offline, unless the body holds identifier-shaped text (then
// only its digest and the key, which prove nothing offline, and say so).
func processorReceipt(key publicKey, signed, body, sig []byte) connectors.Evidence {
	der, err := x509.MarshalPKIXPublicKey(key.public())
	if err != nil {
		return connectors.Evidence{Kind: receipt.Withheld, Value: "the processor's key could not be encoded"}
	}
	if receipt.HoldsIdentifiers(body) {
		sum := sha256.Sum256(signed)
		return connectors.Evidence{Kind: receipt.Withheld, Value: fmt.Sprintf(
			"signed completion sha256:%x verified with key %s; not embedded: its body holds identifier-shaped text", sum, receipt.Kid(der))}
	}
	v, err := receipt.Make(key.public(), signed, sig)
	if err != nil {
		return connectors.Evidence{Kind: receipt.Withheld, Value: "the processor's receipt could not be encoded"}
	}
	return connectors.Evidence{Kind: receipt.Kind, Value: v}
}

// signedMessage is what the processor signed: "<timestamp>.<body>" with a
// timestamp within maxAge of now, or the body alone if the instance takes
// plain OpenDSR 2.0 signatures and none was sent.
func (c *connector) signedMessage(ts string, body []byte) ([]byte, error) {
	ts = strings.TrimSpace(ts)
	if ts == "" {
		if c.bodyOnly {
			return body, nil
		}
		return nil, errors.New("no " + opendsr.HeaderTimestamp + " header: callbacks must sign a timestamp (or set body_only_signatures for a plain OpenDSR 2.0 processor)")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sec <= 0 {
		return nil, errors.New(opendsr.HeaderTimestamp + " is not a Unix time in seconds")
	}
	if age := c.now().Sub(time.Unix(sec, 0)); age > c.maxAge || age < -c.maxAge {
		return nil, fmt.Errorf("the callback's timestamp is %s away from now, outside callback_max_age %s (a replay, or a clock that is off)", age.Round(time.Second), c.maxAge)
	}
	return append([]byte(ts+"."), body...), nil
}
