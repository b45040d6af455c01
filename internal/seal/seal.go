// Package seal is Lethe's envelope encryption: every request's identifiers
// are encrypted (AES-256-GCM) with a data key of their own, and that data
// key is stored wrapped by a key-encryption key (KEK) from the config.
// Destroying a request's wrapped data key crypto-shreds its identifiers;
// retiring a KEK (after every live data key was re-wrapped with a newer
// one) makes any copy of data keys it wrapped (backups, database remnants)
// unrecoverable too.
//
// KEKs live behind the Wrapper interface so a KMS can take their place.
package seal

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// ErrShredded is returned for data whose key has been destroyed.
var ErrShredded = errors.New("seal: the data key was destroyed (crypto-shredded)")

// Wrapper wraps and unwraps data keys with key-encryption keys. A KMS
// implements it by calling its encrypt and decrypt operations.
type Wrapper interface {
	// Wrap encrypts a data key with the active KEK.
	Wrap(ctx context.Context, dek []byte) ([]byte, error)
	// Unwrap decrypts a wrapped data key with whichever KEK wrapped it.
	Unwrap(ctx context.Context, wrapped []byte) ([]byte, error)
	// Current reports whether wrapped is under the active KEK, so that
	// keys under older KEKs can be re-wrapped before those are retired.
	Current(wrapped []byte) bool
}

// KEK is one key-encryption key.
type KEK struct {
	ID  string
	Key []byte // 32 bytes
}

// KeyRing is a Wrapper over local KEKs: the first wraps, all unwrap.
type KeyRing struct {
	keys   []KEK
	byID   map[string]cipher.AEAD
	active string
}

// NewKeyRing returns a key ring whose first key is the active one.
func NewKeyRing(keys ...KEK) (*KeyRing, error) {
	if len(keys) == 0 {
		return nil, errors.New("seal: at least one key-encryption key is required")
	}
	r := &KeyRing{keys: keys, byID: map[string]cipher.AEAD{}, active: keys[0].ID}
	for _, k := range keys {
		if k.ID == "" || strings.ContainsAny(k.ID, ":\n ") {
			return nil, fmt.Errorf("seal: key id %q must be non-empty, without ':' or spaces", k.ID)
		}
		if _, dup := r.byID[k.ID]; dup {
			return nil, fmt.Errorf("seal: key id %q used twice", k.ID)
		}
		aead, err := newAEAD(k.Key)
		if err != nil {
			return nil, fmt.Errorf("seal: key %s: %w", k.ID, err)
		}
		r.byID[k.ID] = aead
	}
	return r, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("a key must be 32 bytes (AES-256), got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Active is the id of the KEK that wraps new data keys.
func (r *KeyRing) Active() string { return r.active }

// wrapped data keys are "v1:<kek id>:<base64 nonce||ciphertext>"; the kek id
// is authenticated as additional data.
const wrapPrefix = "v1:"

// Wrap implements Wrapper.
func (r *KeyRing) Wrap(_ context.Context, dek []byte) ([]byte, error) {
	ct, err := encrypt(r.byID[r.active], dek, []byte("lethe-dek:"+r.active))
	if err != nil {
		return nil, err
	}
	return []byte(wrapPrefix + r.active + ":" + base64.RawStdEncoding.EncodeToString(ct)), nil
}

// Unwrap implements Wrapper.
func (r *KeyRing) Unwrap(_ context.Context, wrapped []byte) ([]byte, error) {
	id, body, err := splitWrapped(wrapped)
	if err != nil {
		return nil, err
	}
	aead, ok := r.byID[id]
	if !ok {
		return nil, fmt.Errorf("seal: the data key is wrapped by key %q, which is not configured (retired?)", id)
	}
	dek, err := decrypt(aead, body, []byte("lethe-dek:"+id))
	if err != nil {
		return nil, fmt.Errorf("seal: unwrap with key %q: %w", id, err)
	}
	return dek, nil
}

// Current implements Wrapper.
func (r *KeyRing) Current(wrapped []byte) bool {
	id, _, err := splitWrapped(wrapped)
	return err == nil && id == r.active
}

func splitWrapped(w []byte) (id string, body []byte, err error) {
	s, ok := strings.CutPrefix(string(w), wrapPrefix)
	if !ok {
		return "", nil, errors.New("seal: not a wrapped data key")
	}
	id, b64, ok := strings.Cut(s, ":")
	if !ok {
		return "", nil, errors.New("seal: not a wrapped data key")
	}
	body, err = base64.RawStdEncoding.DecodeString(b64)
	if err != nil {
		return "", nil, errors.New("seal: not a wrapped data key")
	}
	return id, body, nil
}

// NewDataKey makes a fresh 256-bit data key and its wrapped form.
func NewDataKey(ctx context.Context, w Wrapper) (dek, wrapped []byte, err error) {
	dek = make([]byte, 32)
	if _, err := rand.Read(dek); err != nil {
		return nil, nil, err
	}
	wrapped, err = w.Wrap(ctx, dek)
	return dek, wrapped, err
}

// Seal encrypts plaintext with a data key. aad binds the ciphertext to its
// place (the request id), so it cannot be moved to another row.
func Seal(dek, plaintext, aad []byte) ([]byte, error) {
	aead, err := newAEAD(dek)
	if err != nil {
		return nil, err
	}
	return encrypt(aead, plaintext, aad)
}

// Open decrypts what Seal encrypted.
func Open(dek, sealed, aad []byte) ([]byte, error) {
	aead, err := newAEAD(dek)
	if err != nil {
		return nil, err
	}
	return decrypt(aead, sealed, aad)
}

func encrypt(aead cipher.AEAD, plaintext, aad []byte) ([]byte, error) {
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plaintext, aad), nil
}

func decrypt(aead cipher.AEAD, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("ciphertext too short")
	}
	n := aead.NonceSize()
	pt, err := aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, errors.New("ciphertext does not authenticate (wrong key or altered)")
	}
	return pt, nil
}
