package seal_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/internal/seal"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestEnvelope(t *testing.T) {
	ctx := context.Background()
	ring, err := seal.NewKeyRing(seal.KEK{ID: "a", Key: key(1)})
	if err != nil {
		t.Fatal(err)
	}
	dek, wrapped, err := seal.NewDataKey(ctx, ring)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(wrapped, dek) || !strings.HasPrefix(string(wrapped), "v1:a:") {
		t.Fatalf("wrapped key %q", wrapped)
	}
	sealed, err := seal.Seal(dek, []byte("alice@example.com"), []byte("req-1"))
	if err != nil || bytes.Contains(sealed, []byte("alice")) {
		t.Fatalf("sealed %q, %v", sealed, err)
	}
	back, _ := ring.Unwrap(ctx, wrapped)
	pt, err := seal.Open(back, sealed, []byte("req-1"))
	if err != nil || string(pt) != "alice@example.com" {
		t.Fatalf("open = %q, %v", pt, err)
	}
	if _, err := seal.Open(back, sealed, []byte("req-2")); err == nil {
		t.Error("a ciphertext opened under another request's id")
	}
	other, _, _ := seal.NewDataKey(ctx, ring)
	if _, err := seal.Open(other, sealed, []byte("req-1")); err == nil {
		t.Error("a ciphertext opened with another data key")
	}
	tampered := bytes.Clone(wrapped)
	tampered[len(tampered)-3] ^= 1
	if _, err := ring.Unwrap(ctx, tampered); err == nil {
		t.Error("a tampered wrapped key unwrapped")
	}
	relabelled := []byte(strings.Replace(string(wrapped), "v1:a:", "v1:b:", 1))
	ring2, _ := seal.NewKeyRing(seal.KEK{ID: "b", Key: key(1)})
	if _, err := ring2.Unwrap(ctx, relabelled); err == nil {
		t.Error("a wrapped key relabelled with another KEK id unwrapped (id not authenticated)")
	}
}

func TestRotation(t *testing.T) {
	ctx := context.Background()
	old, _ := seal.NewKeyRing(seal.KEK{ID: "2025", Key: key(1)})
	_, wrapped, _ := seal.NewDataKey(ctx, old)
	// The new KEK goes first; the old one stays until keys are re-wrapped.
	rotated, err := seal.NewKeyRing(seal.KEK{ID: "2026", Key: key(2)}, seal.KEK{ID: "2025", Key: key(1)})
	if err != nil {
		t.Fatal(err)
	}
	if rotated.Current(wrapped) {
		t.Error("a key under the old KEK reported current")
	}
	dek, err := rotated.Unwrap(ctx, wrapped)
	if err != nil {
		t.Fatal(err)
	}
	rewrapped, _ := rotated.Wrap(ctx, dek)
	if !rotated.Current(rewrapped) {
		t.Error("a re-wrapped key is not current")
	}
	retired, _ := seal.NewKeyRing(seal.KEK{ID: "2026", Key: key(2)})
	if got, err := retired.Unwrap(ctx, rewrapped); err != nil || !bytes.Equal(got, dek) {
		t.Errorf("after retiring the old KEK: %v", err)
	}
	if _, err := retired.Unwrap(ctx, wrapped); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Errorf("a key under a retired KEK: %v", err)
	}
}

func TestKeyRingValidation(t *testing.T) {
	for _, keys := range [][]seal.KEK{
		nil,
		{{ID: "a", Key: key(1)[:16]}},
		{{ID: "", Key: key(1)}},
		{{ID: "a:b", Key: key(1)}},
		{{ID: "a", Key: key(1)}, {ID: "a", Key: key(2)}},
	} {
		if _, err := seal.NewKeyRing(keys...); err == nil {
			t.Errorf("NewKeyRing(%v) accepted", keys)
		}
	}

}
