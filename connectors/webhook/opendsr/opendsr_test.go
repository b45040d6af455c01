package opendsr_test

import (
	"testing"

	"github.com/lethe-dev/lethe/connectors/webhook/opendsr"
)

func TestIsRequestID(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]bool{
		"6f1c1a3e-3c5d-4b8e-9a0f-2d7c5b9e8a11":   true,
		"6F1C1A3E-3C5D-4B8E-9A0F-2D7C5B9E8A11":   false, // upper case
		"6f1c1a3e-3c5d-1b8e-9a0f-2d7c5b9e8a11":   false, // version 1
		"6f1c1a3e-3c5d-4b8e-7a0f-2d7c5b9e8a11":   false, // not the RFC 4122 variant
		"6f1c1a3e-3c5d-4b8e-9a0f-2d7c5b9e8a11/x": false,
		"":                                       false,
	} {
		if got := opendsr.IsRequestID(id); got != want {
			t.Errorf("IsRequestID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestSHA256(t *testing.T) {
	t.Parallel()
	if got := opendsr.SHA256("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("SHA256(abc) = %s", got)
	}
}
