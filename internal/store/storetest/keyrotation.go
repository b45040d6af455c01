package storetest

import (
	"bytes"
	"testing"

	"github.com/lethe-dev/lethe/internal/seal"
	"github.com/lethe-dev/lethe/internal/store"
)

// KeyRotation checks that the key-encryption key can be rotated without
// losing access to live requests: open must open the same database each
// time, with the given keys.
func KeyRotation(t *testing.T, open func(t *testing.T, keys seal.Wrapper) store.Store) {
	oldKEK := seal.KEK{ID: "2025", Key: bytes.Repeat([]byte{1}, 32)}
	newKEK := seal.KEK{ID: "2026", Key: bytes.Repeat([]byte{2}, 32)}
	ring := func(keys ...seal.KEK) seal.Wrapper {
		r, err := seal.NewKeyRing(keys...)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	s := open(t, ring(oldKEK))
	a, b := newRequest(1), newRequest(2)
	insert(t, s, a)
	insert(t, s, b)
	s.Close()

	// The new KEK goes first; the old one stays until keys are re-wrapped.
	s = open(t, ring(newKEK, oldKEK))
	c := newRequest(3)
	insert(t, s, c)
	done, remaining, err := s.RewrapDataKeys(ctx(t), 1)
	if err != nil || done != 1 || remaining != 1 {
		t.Fatalf("first rewrap batch: %d done, %d remaining, %v", done, remaining, err)
	}
	if done, remaining, err = s.RewrapDataKeys(ctx(t), 10); err != nil || done != 1 || remaining != 0 {
		t.Fatalf("second rewrap batch: %d done, %d remaining, %v", done, remaining, err)
	}
	s.Close()

	// With the old KEK gone, every live request still opens.
	s = open(t, ring(newKEK))
	defer s.Close()
	for _, r := range []struct{ id, email string }{{a.ID, a.Subject.Email}, {b.ID, b.Subject.Email}, {c.ID, c.Subject.Email}} {
		got, err := s.Request(ctx(t), r.id)
		if err != nil || got.Subject.Email != r.email {
			t.Errorf("after retiring the old KEK: %q, %v", got.Subject.Email, err)
		}
	}
	// Without the KEK a request cannot be opened at all.
	other := open(t, ring(seal.KEK{ID: "2026", Key: bytes.Repeat([]byte{3}, 32)}))
	defer other.Close()
	if _, err := other.Request(ctx(t), a.ID); err == nil {
		t.Error("a request opened with the wrong key-encryption key")
	}
}
