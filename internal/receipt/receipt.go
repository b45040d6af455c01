// Package receipt is a processor's signed word that it finished an
// erasure: the completion callback an OpenDSR processor signed, kept
// whole (the signed bytes, the signature and the public key) as evidence
// in the certificate, so anyone can check offline that the processor
// itself attested completion. A receipt never holds the person's
// identifiers: the webhook connector embeds one only when the signed
// body has nothing identifier-shaped in it.
package receipt

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// Kind is the evidence kind of an embedded receipt; its value is the
// receipt as JSON. Withheld is the kind of a receipt not embedded (its
// body held identifier-shaped text); its value says so and names the
// digest and key, and proves nothing offline.
const (
	Kind     = "processor_receipt"
	Withheld = "processor_receipt_withheld"
)

// Receipt is the evidence value of Kind.
type Receipt struct {
	V int `json:"v"`
	// Alg is Ed25519 or RS256 (RSASSA-PKCS1-v1_5 with SHA-256).
	Alg string `json:"alg"`
	// Kid is "sha256:" and the hex SHA-256 of Key's bytes.
	Kid string `json:"kid"`
	// Key is the processor's public key, SubjectPublicKeyInfo DER, base64.
	Key string `json:"key"`
	// Signed is exactly what the processor signed, base64:
	// "<unix time>.<body>", or the body alone (plain OpenDSR 2.0).
	Signed string `json:"signed"`
	// Sig is the processor's signature, base64.
	Sig string `json:"sig"`
}

// Attested is what a receipt that verifies says.
type Attested struct {
	Kid       string
	RequestID string
	Status    string
	// SignedAt is the signed timestamp (zero for a body-only signature).
	SignedAt time.Time
}

var (
	emailish = regexp.MustCompile(`[^\s"@]+@[^\s"@]+\.[A-Za-z]{2,}`)
	longNum  = regexp.MustCompile(`[0-9]{8,}`)
)

// HoldsIdentifiers reports whether a callback body has text shaped like
// an email address or a phone number: such a body is not embedded.
func HoldsIdentifiers(body []byte) bool { return emailish.Match(body) || longNum.Match(body) }

// Kid is the key id of a public key: "sha256:" and the hex SHA-256 of its
// SubjectPublicKeyInfo DER.
func Kid(der []byte) string {
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Make writes the receipt of a verified callback: pub signed sig over
// signed.
func Make(pub crypto.PublicKey, signed, sig []byte) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("receipt: %w", err)
	}
	r := Receipt{V: 1, Kid: Kid(der), Key: base64.StdEncoding.EncodeToString(der),
		Signed: base64.StdEncoding.EncodeToString(signed), Sig: base64.StdEncoding.EncodeToString(sig)}
	switch pub.(type) {
	case ed25519.PublicKey:
		r.Alg = "Ed25519"
	case *rsa.PublicKey:
		r.Alg = "RS256"
	default:
		return "", fmt.Errorf("receipt: a %T key", pub)
	}
	b, err := json.Marshal(r)
	return string(b), err
}

// Check verifies a receipt: the key is the one its kid names, the
// signature verifies over the signed bytes, and the signed body is an
// OpenDSR status naming a request and a status.
func Check(value string) (Attested, error) {
	var r Receipt
	dec := json.NewDecoder(bytes.NewReader([]byte(value)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil || r.V != 1 {
		return Attested{}, errors.New("the receipt is not a version 1 receipt")
	}
	der, err1 := base64.StdEncoding.DecodeString(r.Key)
	signed, err2 := base64.StdEncoding.DecodeString(r.Signed)
	sig, err3 := base64.StdEncoding.DecodeString(r.Sig)
	if err := errors.Join(err1, err2, err3); err != nil {
		return Attested{}, errors.New("the receipt's key, signed bytes or signature is not base64")
	}
	if Kid(der) != r.Kid {
		return Attested{}, errors.New("the receipt's key is not the one its key id names")
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return Attested{}, errors.New("the receipt's key is not a public key")
	}
	ok := false
	switch k := pub.(type) {
	case ed25519.PublicKey:
		ok = r.Alg == "Ed25519" && ed25519.Verify(k, signed, sig)
	case *rsa.PublicKey:
		sum := sha256.Sum256(signed)
		ok = r.Alg == "RS256" && k.N.BitLen() >= 2048 && rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig) == nil
	}
	if !ok {
		return Attested{}, errors.New("the processor's signature does not verify over the receipt")
	}
	a := Attested{Kid: r.Kid}
	body := signed
	if len(signed) > 0 && signed[0] != '{' {
		ts, rest, found := bytes.Cut(signed, []byte("."))
		sec, err := strconv.ParseInt(string(ts), 10, 64)
		if !found || err != nil {
			return Attested{}, errors.New("the receipt's signed bytes are neither a body nor a timestamp and a body")
		}
		a.SignedAt, body = time.Unix(sec, 0).UTC(), rest
	}
	var st struct {
		ID     string `json:"subject_request_id"`
		Status string `json:"request_status"`
	}
	if err := json.Unmarshal(body, &st); err != nil || st.ID == "" {
		return Attested{}, errors.New("the receipt's signed body is not an OpenDSR status naming a request")
	}
	a.RequestID, a.Status = st.ID, st.Status
	return a, nil
}
