// Package translog is Lethe's transparency log: an append-only Merkle tree
// (RFC 6962 / RFC 9162 hashing, through golang.org/x/mod/sumdb/tlog) of every
// certificate and every signing-key activation and retirement, with signed
// checkpoints in the C2SP tlog-checkpoint format, inclusion and consistency
// proofs, and witness cosignatures (C2SP tlog-cosignature).
//
// Leaves hold no personal data: a certificate's leaf is a domain-separated
// digest of its signed JWS, a key's leaf its public key and validity event.
package translog

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Entry kinds.
const (
	KindCertificate   = "certificate"
	KindKeyActivated  = "key_activated"
	KindKeyRetired    = "key_retired"
	certificatePrefix = "lethe-log/v1 certificate "
	keyPrefix         = "lethe-log/v1 key "
)

// Hash is a node or leaf hash.
type Hash = tlog.Hash

// CertificateLeaf is the leaf data for a certificate: a domain-separated
// SHA-256 of its compact JWS (protected "." payload "." signature). Anyone
// holding the certificate can recompute it.
func CertificateLeaf(protected, payload, signature string) []byte {
	sum := sha256.Sum256([]byte(protected + "." + payload + "." + signature))
	return []byte(certificatePrefix + base64.RawURLEncoding.EncodeToString(sum[:]) + "\n")
}

// KeyEvent records that a signing key became valid or stopped being valid.
type KeyEvent struct {
	Event string `json:"event"` // KindKeyActivated or KindKeyRetired
	Kid   string `json:"kid"`
	// X is the Ed25519 public key, base64url (the JWK "x").
	X  string `json:"x"`
	At string `json:"at"` // RFC 3339
}

// KeyLeaf is the leaf data for a key event: canonical JSON behind a prefix.
// Its fields are fixed, ASCII and sorted, so encoding/json's output is the
// canonical form.
func KeyLeaf(e KeyEvent) ([]byte, error) {
	if e.Event != KindKeyActivated && e.Event != KindKeyRetired {
		return nil, fmt.Errorf("translog: unknown key event %q", e.Event)
	}
	b, err := json.Marshal(struct {
		At    string `json:"at"`
		Event string `json:"event"`
		Kid   string `json:"kid"`
		X     string `json:"x"`
	}{e.At, e.Event, e.Kid, e.X})
	if err != nil {
		return nil, err
	}
	return append(append([]byte(keyPrefix), b...), '\n'), nil
}

// ParseKeyLeaf reads a key event back from its leaf data.
func ParseKeyLeaf(data []byte) (KeyEvent, error) {
	var e KeyEvent
	if len(data) < len(keyPrefix) || string(data[:len(keyPrefix)]) != keyPrefix {
		return e, errors.New("translog: not a key leaf")
	}
	err := json.Unmarshal(data[len(keyPrefix):], &e)
	return e, err
}

// LeafHash is the RFC 6962 hash of leaf data: SHA-256(0x00 || data).
func LeafHash(data []byte) Hash { return tlog.RecordHash(data) }

// InclusionProof proves that the leaf at Index is in the tree of TreeSize
// leaves.
type InclusionProof struct {
	Index    int64    `json:"index"`
	TreeSize int64    `json:"tree_size"`
	Hashes   []string `json:"hashes"` // base64, bottom-up, as RFC 9162 §2.1.3
}

// ConsistencyProof proves that the tree of From leaves is a prefix of the
// tree of To leaves.
type ConsistencyProof struct {
	From   int64    `json:"from"`
	To     int64    `json:"to"`
	Hashes []string `json:"hashes"`
}

func encodeHashes(hs []Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return out
}

func decodeHashes(ss []string) ([]Hash, error) {
	out := make([]Hash, len(ss))
	for i, s := range ss {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != tlog.HashSize {
			return nil, fmt.Errorf("proof hash %d is not a base64 SHA-256", i)
		}
		copy(out[i][:], b)
	}
	return out, nil
}

// VerifyInclusion checks that leaf data is at p.Index in a tree whose root
// is root and size p.TreeSize.
func VerifyInclusion(p InclusionProof, leafData []byte, root Hash) error {
	hs, err := decodeHashes(p.Hashes)
	if err != nil {
		return err
	}
	if p.Index < 0 || p.Index >= p.TreeSize {
		return fmt.Errorf("leaf index %d is outside a tree of %d", p.Index, p.TreeSize)
	}
	if err := tlog.CheckRecord(hs, p.TreeSize, root, p.Index, LeafHash(leafData)); err != nil {
		return fmt.Errorf("the inclusion proof does not lead to the checkpoint's root: %w", err)
	}
	return nil
}

// VerifyConsistency checks that the tree oldRoot of p.From leaves is a
// prefix of the tree newRoot of p.To leaves: nothing was removed, changed
// or inserted before p.From.
func VerifyConsistency(p ConsistencyProof, oldRoot, newRoot Hash) error {
	hs, err := decodeHashes(p.Hashes)
	if err != nil {
		return err
	}
	if p.From > p.To || p.From < 0 {
		return fmt.Errorf("a tree of %d cannot grow into a tree of %d", p.From, p.To)
	}
	if p.From == p.To {
		if oldRoot != newRoot {
			return errors.New("two different roots for the same tree size: the log shows different histories")
		}
		return nil
	}
	if p.From == 0 {
		return nil // the empty tree is a prefix of every tree
	}
	if err := tlog.CheckTree(hs, p.To, newRoot, p.From, oldRoot); err != nil {
		return fmt.Errorf("the log's history changed: the tree of %d is not a prefix of the tree of %d: %w", p.From, p.To, err)
	}
	return nil
}

// ProveInclusion builds an inclusion proof from stored hashes.
func ProveInclusion(index, size int64, r tlog.HashReader) (InclusionProof, error) {
	hs, err := tlog.ProveRecord(size, index, r)
	if err != nil {
		return InclusionProof{}, fmt.Errorf("inclusion proof: %w", err)
	}
	return InclusionProof{Index: index, TreeSize: size, Hashes: encodeHashes(hs)}, nil
}

// ProveConsistency builds a consistency proof from stored hashes.
func ProveConsistency(from, to int64, r tlog.HashReader) (ConsistencyProof, error) {
	if from == 0 || from == to {
		return ConsistencyProof{From: from, To: to, Hashes: []string{}}, nil
	}
	hs, err := tlog.ProveTree(to, from, r)
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("consistency proof: %w", err)
	}
	return ConsistencyProof{From: from, To: to, Hashes: encodeHashes(hs)}, nil
}

// TreeRoot computes the root of the tree of size leaves; the empty tree's
// root is SHA-256 of nothing.
func TreeRoot(size int64, r tlog.HashReader) (Hash, error) {
	if size == 0 {
		return Hash(sha256.Sum256(nil)), nil
	}
	return tlog.TreeHash(size, r)
}

func timeLine(t time.Time) string { return fmt.Sprintf("time %d", t.Unix()) }
