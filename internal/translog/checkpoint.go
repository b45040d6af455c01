package translog

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is a signed statement of the log's size and root hash at a
// time, in the C2SP tlog-checkpoint format:
//
//	<origin>
//	<tree size>
//	<base64 root hash>
//	time <unix seconds>
//
//	— <origin> <base64 key hash || Ed25519 signature>
type Checkpoint struct {
	Origin string
	Size   int64
	Root   Hash
	Time   time.Time
}

// Body is the checkpoint's note text (what is signed).
func (c Checkpoint) Body() string {
	return fmt.Sprintf("%s\n%d\n%s\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root[:]), timeLine(c.Time))
}

// ParseBody reads a checkpoint's note text.
func ParseBody(text string) (Checkpoint, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 || !strings.HasSuffix(text, "\n") {
		return Checkpoint{}, errors.New("not a checkpoint: want origin, size and root hash lines")
	}
	var c Checkpoint
	c.Origin = lines[0]
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || lines[1] != strconv.FormatInt(size, 10) {
		return c, errors.New("not a checkpoint: the size line is not a decimal number")
	}
	c.Size = size
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != len(c.Root) {
		return c, errors.New("not a checkpoint: the root hash is not a base64 SHA-256")
	}
	copy(c.Root[:], root)
	for _, l := range lines[3:] {
		if ts, ok := strings.CutPrefix(l, "time "); ok {
			sec, err := strconv.ParseInt(ts, 10, 64)
			if err != nil {
				return c, errors.New("not a checkpoint: bad time line")
			}
			c.Time = time.Unix(sec, 0).UTC()
		}
	}
	return c, nil
}

// canonicalSignatures refuses signature lines whose base64 is not in its
// one canonical form (stray low bits in the last character), so that every
// byte of a checkpoint matters.
func canonicalSignatures(signed []byte) error {
	_, sigs, ok := strings.Cut(string(signed), "\n\n")
	if !ok {
		return errors.New("not a signed checkpoint")
	}
	for _, line := range strings.Split(strings.TrimSuffix(sigs, "\n"), "\n") {
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue // note.Open reports malformed lines
		}
		if _, err := base64.StdEncoding.Strict().DecodeString(line[i+1:]); err != nil {
			return errors.New("the checkpoint has a signature line that is not canonical base64")
		}
	}
	return nil
}

// LogSigner signs checkpoints with an Ed25519 key under the log's origin.
// It implements note.Signer.
type LogSigner struct {
	origin string
	key    ed25519.PrivateKey
	hash   uint32
}

// NewLogSigner returns a checkpoint signer for origin.
func NewLogSigner(origin string, key ed25519.PrivateKey) (*LogSigner, error) {
	v, err := LogVerifier(origin, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	return &LogSigner{origin: origin, key: key, hash: v.KeyHash()}, nil
}

// Name implements note.Signer.
func (s *LogSigner) Name() string { return s.origin }

// KeyHash implements note.Signer.
func (s *LogSigner) KeyHash() uint32 { return s.hash }

// Sign implements note.Signer.
func (s *LogSigner) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.key, msg), nil }

// SignCheckpoint returns the signed checkpoint note.
func (s *LogSigner) SignCheckpoint(c Checkpoint) ([]byte, error) {
	if c.Origin != s.origin {
		return nil, fmt.Errorf("checkpoint origin %q is not the signer's %q", c.Origin, s.origin)
	}
	return note.Sign(&note.Note{Text: c.Body()}, s)
}

// LogVerifier returns the note verifier of a log key (signed-note
// algorithm 0x01, Ed25519).
func LogVerifier(origin string, pub ed25519.PublicKey) (note.Verifier, error) {
	vkey, err := note.NewEd25519VerifierKey(origin, pub)
	if err != nil {
		return nil, err
	}
	return note.NewVerifier(vkey)
}

// VerifierKey returns the text form of a log key ("origin+hash+key"), as
// witnesses and other note tools take it.
func VerifierKey(origin string, pub ed25519.PublicKey) (string, error) {
	return note.NewEd25519VerifierKey(origin, pub)
}

// OpenCheckpoint verifies a signed checkpoint against the log's public keys
// (any one of them may have signed it, since keys rotate) and returns it,
// with the cosignatures of the given witnesses that verified.
func OpenCheckpoint(signed []byte, origin string, keys []ed25519.PublicKey, witnesses ...*CosignatureVerifier) (Checkpoint, []Cosignature, error) {
	var vs []note.Verifier
	logHashes := map[uint32]bool{}
	for _, k := range keys {
		v, err := LogVerifier(origin, k)
		if err != nil {
			return Checkpoint{}, nil, err
		}
		vs = append(vs, v)
		logHashes[v.KeyHash()] = true
	}
	for _, w := range witnesses {
		vs = append(vs, w)
	}
	if err := canonicalSignatures(signed); err != nil {
		return Checkpoint{}, nil, err
	}
	n, err := note.Open(signed, note.VerifierList(vs...))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unverified) {
			return Checkpoint{}, nil, errors.New("the checkpoint is not signed by any key in the key set")
		}
		return Checkpoint{}, nil, fmt.Errorf("the checkpoint's signature does not verify: %w", err)
	}
	byLog := false
	var cosigs []Cosignature
	for _, sig := range n.Sigs {
		if sig.Name == origin && logHashes[sig.Hash] {
			byLog = true
			continue
		}
		raw, _ := base64.StdEncoding.DecodeString(sig.Base64)
		if len(raw) >= 12 {
			cosigs = append(cosigs, Cosignature{Name: sig.Name, Time: time.Unix(int64(binary.BigEndian.Uint64(raw[4:12])), 0).UTC()})
		}
	}
	if !byLog {
		return Checkpoint{}, nil, errors.New("the checkpoint is not signed by the log")
	}
	c, err := ParseBody(n.Text)
	if err != nil {
		return c, nil, err
	}
	if c.Origin != origin {
		return c, nil, fmt.Errorf("the checkpoint is for log %q, not %q", c.Origin, origin)
	}
	return c, cosigs, nil
}
