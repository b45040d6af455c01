package translog

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Cosignature is a witness's verified statement about a checkpoint.
type Cosignature struct {
	Name string
	Time time.Time
}

// cosignedMessage is what a C2SP cosignature/v1 signs.
func cosignedMessage(body []byte, ts uint64) []byte {
	return append([]byte("cosignature/v1\ntime "+strconv.FormatUint(ts, 10)+"\n"), body...)
}

// cosignatureKeyID is SHA-256(name || "\n" || 0x04 || public key)[:4].
func cosignatureKeyID(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write([]byte{0x04})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// Cosigner is a witness key producing C2SP tlog-cosignature/v1 signatures.
// It implements note.Signer, so note.Sign adds its line to a checkpoint.
type Cosigner struct {
	name  string
	key   ed25519.PrivateKey
	id    uint32
	clock func() time.Time
}

// NewCosigner returns a cosigner named name (a schema-less URL such as
// "witness.example.com/w1").
func NewCosigner(name string, key ed25519.PrivateKey, clock func() time.Time) *Cosigner {
	if clock == nil {
		clock = time.Now
	}
	return &Cosigner{name: name, key: key, id: cosignatureKeyID(name, key.Public().(ed25519.PublicKey)), clock: clock}
}

// Name implements note.Signer.
func (c *Cosigner) Name() string { return c.name }

// KeyHash implements note.Signer.
func (c *Cosigner) KeyHash() uint32 { return c.id }

// Sign implements note.Signer: timestamp || Ed25519 signature.
func (c *Cosigner) Sign(body []byte) ([]byte, error) {
	ts := uint64(c.clock().Unix())
	out := binary.BigEndian.AppendUint64(nil, ts)
	return append(out, ed25519.Sign(c.key, cosignedMessage(body, ts))...), nil
}

// Cosign adds this witness's cosignature to a signed checkpoint, keeping the
// signatures already there.
func (c *Cosigner) Cosign(signed []byte) ([]byte, error) {
	// Opened with no verifiers, every signature is kept as unverified and
	// written back after ours.
	_, err := note.Open(signed, note.VerifierList())
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		return nil, fmt.Errorf("cosign: not a signed checkpoint: %w", err)
	}
	return note.Sign(unverified.Note, c)
}

// CosignatureVerifier checks one witness's cosignatures; it implements
// note.Verifier.
type CosignatureVerifier struct {
	name string
	pub  ed25519.PublicKey
	id   uint32
}

// NewCosignatureVerifier returns a verifier for the witness name and key.
func NewCosignatureVerifier(name string, pub ed25519.PublicKey) *CosignatureVerifier {
	return &CosignatureVerifier{name: name, pub: pub, id: cosignatureKeyID(name, pub)}
}

// Name implements note.Verifier.
func (v *CosignatureVerifier) Name() string { return v.name }

// KeyHash implements note.Verifier.
func (v *CosignatureVerifier) KeyHash() uint32 { return v.id }

// Verify implements note.Verifier.
func (v *CosignatureVerifier) Verify(body, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	ts := binary.BigEndian.Uint64(sig[:8])
	return ts < 1<<63 && ed25519.Verify(v.pub, cosignedMessage(body, ts), sig[8:])
}
