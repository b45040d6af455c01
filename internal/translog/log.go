package translog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lethe-dev/lethe/internal/store"
	"golang.org/x/mod/sumdb/tlog"
)

// Log appends to and proves from the transparency log kept in the store.
// Appends run inside the caller's transaction, holding the log head's lock,
// so a certificate and its leaf are committed together or not at all.
type Log struct {
	origin string
	signer *LogSigner
}

// NewLog returns the log named origin, signing checkpoints with signer.
func NewLog(origin string, signer *LogSigner) *Log {
	return &Log{origin: origin, signer: signer}
}

// Origin is the log's name, the first line of its checkpoints.
func (l *Log) Origin() string { return l.origin }

// Appended is the result of an append: the leaf's index, the signed
// checkpoint of the tree that first contains it, and the proof.
type Appended struct {
	Index      int64
	Checkpoint []byte
	Proof      InclusionProof
}

// hashReader reads stored tree hashes through fn.
func hashReader(ctx context.Context, read func(context.Context, []int64) ([][]byte, error)) tlog.HashReader {
	return tlog.HashReaderFunc(func(ids []int64) ([]Hash, error) {
		raw, err := read(ctx, ids)
		if err != nil {
			return nil, err
		}
		out := make([]Hash, len(raw))
		for i, b := range raw {
			if len(b) != tlog.HashSize {
				return nil, fmt.Errorf("stored hash %d has %d bytes", ids[i], len(b))
			}
			copy(out[i][:], b)
		}
		return out, nil
	})
}

// Append adds a leaf, stores its tree hashes and a new signed checkpoint,
// and returns the proof of inclusion against that checkpoint.
func (l *Log) Append(ctx context.Context, tx store.Tx, kind, ref string, data []byte, at time.Time) (Appended, error) {
	size, err := tx.LockLog(ctx)
	if err != nil {
		return Appended{}, err
	}
	r := hashReader(ctx, tx.LogHashes)
	hashes, err := tlog.StoredHashes(size, data, r)
	if err != nil {
		return Appended{}, fmt.Errorf("log: %w", err)
	}
	raw := make([][]byte, len(hashes))
	for i := range hashes {
		raw[i] = hashes[i][:]
	}
	entry := store.LogEntry{Index: size, Kind: kind, Ref: ref, Data: data, CreatedAt: at}
	if err := tx.AppendLog(ctx, entry, tlog.StoredHashIndex(0, size), raw); err != nil {
		return Appended{}, err
	}
	newSize := size + 1
	root, err := TreeRoot(newSize, r)
	if err != nil {
		return Appended{}, fmt.Errorf("log: %w", err)
	}
	signed, err := l.signer.SignCheckpoint(Checkpoint{Origin: l.origin, Size: newSize, Root: root, Time: at})
	if err != nil {
		return Appended{}, err
	}
	if err := tx.InsertCheckpoint(ctx, store.Checkpoint{Size: newSize, Root: root[:], Note: signed, CreatedAt: at}); err != nil {
		return Appended{}, err
	}
	proof, err := ProveInclusion(size, newSize, r)
	if err != nil {
		return Appended{}, err
	}
	return Appended{Index: size, Checkpoint: signed, Proof: proof}, nil
}

// RecordKeys makes sure the log holds the activation of the active key and
// the retirement of every retired one, each once. Several processes may run
// it at once: the log lock serialises them.
func (l *Log) RecordKeys(ctx context.Context, st store.Store, active KeyEvent, retired []KeyEvent, at time.Time) (added int, err error) {
	err = st.InTx(ctx, func(tx store.Tx) error {
		added = 0
		if _, err := tx.LockLog(ctx); err != nil {
			return err
		}
		events := append([]KeyEvent{active}, retired...)
		for _, e := range events {
			if _, err := tx.LogEntryByRef(ctx, e.Event, e.Kid); err == nil {
				continue
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			e.At = at.UTC().Format(time.RFC3339)
			data, err := KeyLeaf(e)
			if err != nil {
				return err
			}
			if _, err := l.Append(ctx, tx, e.Event, e.Kid, data, at); err != nil {
				return err
			}
			added++
		}
		return nil
	})
	return added, err
}

// Reader answers proofs from the committed log.
type Reader struct {
	st store.Store
}

// NewReader returns a proof reader over st.
func NewReader(st store.Store) *Reader { return &Reader{st: st} }

// Inclusion proves leaf index in the tree of size leaves.
func (r *Reader) Inclusion(ctx context.Context, index, size int64) (InclusionProof, error) {
	if err := r.checkSize(ctx, size); err != nil {
		return InclusionProof{}, err
	}
	if index < 0 || index >= size {
		return InclusionProof{}, fmt.Errorf("leaf %d is not in a tree of %d", index, size)
	}
	return ProveInclusion(index, size, hashReader(ctx, r.st.LogHashes))
}

// Consistency proves the tree of from leaves a prefix of the tree of to.
func (r *Reader) Consistency(ctx context.Context, from, to int64) (ConsistencyProof, error) {
	if err := r.checkSize(ctx, to); err != nil {
		return ConsistencyProof{}, err
	}
	if from < 0 || from > to {
		return ConsistencyProof{}, fmt.Errorf("a tree of %d cannot be a prefix of a tree of %d", from, to)
	}
	return ProveConsistency(from, to, hashReader(ctx, r.st.LogHashes))
}

// Root computes the root of the tree of size leaves.
func (r *Reader) Root(ctx context.Context, size int64) (Hash, error) {
	if err := r.checkSize(ctx, size); err != nil {
		return Hash{}, err
	}
	return TreeRoot(size, hashReader(ctx, r.st.LogHashes))
}

func (r *Reader) checkSize(ctx context.Context, size int64) error {
	n, err := r.st.LogSize(ctx)
	if err != nil {
		return err
	}
	if size < 0 || size > n {
		return fmt.Errorf("the log has %d leaves, not %d", n, size)
	}
	return nil
}
