package translog_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/store"
	"github.com/lethe-dev/lethe/internal/store/sqlite"
	"github.com/lethe-dev/lethe/internal/translog"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"
)

// memTree is an in-memory tlog hash store.
type memTree struct{ hashes []tlog.Hash }

func (m *memTree) ReadHashes(ids []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(ids))
	for i, id := range ids {
		if id >= int64(len(m.hashes)) {
			return nil, fmt.Errorf("hash %d not stored", id)
		}
		out[i] = m.hashes[id]
	}
	return out, nil
}

func (m *memTree) add(t *testing.T, n int64, data []byte) {
	hs, err := tlog.StoredHashes(n, data, m)
	if err != nil {
		t.Fatal(err)
	}
	m.hashes = append(m.hashes, hs...)
}

func decode(t *testing.T, ss []string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// TestProofsAgreeWithAnIndependentImplementation checks our proofs (tlog's)
// with github.com/transparency-dev/merkle, on trees of many sizes.
func TestProofsAgreeWithAnIndependentImplementation(t *testing.T) {
	t.Parallel()
	h := rfc6962.DefaultHasher
	m := &memTree{}
	var leaves [][]byte
	roots := map[int64]translog.Hash{}
	const max = 70
	for n := int64(0); n < max; n++ {
		leaf := []byte(fmt.Sprintf("leaf %d", n))
		leaves = append(leaves, leaf)
		m.add(t, n, leaf)
		root, err := translog.TreeRoot(n+1, m)
		if err != nil {
			t.Fatal(err)
		}
		roots[n+1] = root
	}
	if lh := translog.LeafHash(leaves[3]); !bytes.Equal(lh[:], h.HashLeaf(leaves[3])) {
		t.Fatal("leaf hashes differ from RFC 6962")
	}
	empty, _ := translog.TreeRoot(0, m)
	if !bytes.Equal(empty[:], h.EmptyRoot()) {
		t.Error("empty root differs")
	}
	for size := int64(1); size <= max; size++ {
		root := roots[size]
		for idx := int64(0); idx < size; idx++ {
			p, err := translog.ProveInclusion(idx, size, m)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyInclusion(h, uint64(idx), uint64(size), h.HashLeaf(leaves[idx]), decode(t, p.Hashes), root[:]); err != nil {
				t.Fatalf("inclusion %d/%d rejected by transparency-dev: %v", idx, size, err)
			}
			if err := translog.VerifyInclusion(p, leaves[idx], root); err != nil {
				t.Fatalf("inclusion %d/%d rejected by us: %v", idx, size, err)
			}
		}
		for from := int64(1); from <= size; from++ {
			p, err := translog.ProveConsistency(from, size, m)
			if err != nil {
				t.Fatal(err)
			}
			old := roots[from]
			if err := proof.VerifyConsistency(h, uint64(from), uint64(size), decode(t, p.Hashes), old[:], root[:]); err != nil {
				t.Fatalf("consistency %d→%d rejected by transparency-dev: %v", from, size, err)
			}
			if err := translog.VerifyConsistency(p, roots[from], root); err != nil {
				t.Fatalf("consistency %d→%d rejected by us: %v", from, size, err)
			}
		}
	}
	// A proof with one wrong hash, or for another leaf, fails.
	p, _ := translog.ProveInclusion(5, 13, m)
	p.Hashes[0] = base64.StdEncoding.EncodeToString(make([]byte, 32))
	if translog.VerifyInclusion(p, leaves[5], roots[13]) == nil {
		t.Error("a proof with a wrong hash verifies")
	}
	if translog.VerifyInclusion(p, leaves[6], roots[13]) == nil {
		t.Error("a proof verifies for another leaf")
	}
}

func key(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

func TestCheckpointSignAndOpen(t *testing.T) {
	t.Parallel()
	k := key(t)
	s, err := translog.NewLogSigner("lethe.example/log", k)
	if err != nil {
		t.Fatal(err)
	}
	cp := translog.Checkpoint{Origin: "lethe.example/log", Size: 42, Root: translog.Hash(sha256.Sum256([]byte("x"))), Time: time.Unix(1767225600, 0).UTC()}
	signed, err := s.SignCheckpoint(cp)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(signed), "\n")
	if lines[0] != "lethe.example/log" || lines[1] != "42" || lines[3] != "time 1767225600" || lines[4] != "" || !strings.HasPrefix(lines[5], "— lethe.example/log ") {
		t.Fatalf("not C2SP checkpoint form:\n%s", signed)
	}
	got, _, err := translog.OpenCheckpoint(signed, "lethe.example/log", []ed25519.PublicKey{pub(key(t)), pub(k)})
	if err != nil || got != cp {
		t.Fatalf("open = %+v, %v", got, err)
	}
	// Every byte of the body and of the signature matters.
	for i := range len(signed) - 1 {
		bad := bytes.Clone(signed)
		bad[i] ^= 0x01
		if _, _, err := translog.OpenCheckpoint(bad, "lethe.example/log", []ed25519.PublicKey{pub(k)}); err == nil {
			t.Fatalf("a checkpoint with byte %d flipped opens", i)
		}
	}
	if _, _, err := translog.OpenCheckpoint(signed, "lethe.example/log", []ed25519.PublicKey{pub(key(t))}); err == nil {
		t.Error("opened with the wrong key")
	}
	if _, _, err := translog.OpenCheckpoint(signed, "other.example/log", []ed25519.PublicKey{pub(k)}); err == nil {
		t.Error("opened as another log")
	}
	if _, err := s.SignCheckpoint(translog.Checkpoint{Origin: "other"}); err == nil {
		t.Error("signed another log's checkpoint")
	}
}

func TestCosignature(t *testing.T) {
	t.Parallel()
	logKey, wKey := key(t), key(t)
	s, _ := translog.NewLogSigner("lethe.example/log", logKey)
	signed, _ := s.SignCheckpoint(translog.Checkpoint{Origin: "lethe.example/log", Size: 3, Time: time.Unix(100, 0)})
	at := time.Unix(1700000000, 0)
	w := translog.NewCosigner("witness.example/w1", wKey, func() time.Time { return at })
	cosigned, err := w.Cosign(signed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(cosigned, signed[:len(signed)-1]) {
		// note.Sign puts new signatures first; both lines must be there.
		if !bytes.Contains(cosigned, []byte("— lethe.example/log ")) {
			t.Fatalf("the log's signature was lost:\n%s", cosigned)
		}
	}
	v := translog.NewCosignatureVerifier("witness.example/w1", pub(wKey))
	_, cosigs, err := translog.OpenCheckpoint(cosigned, "lethe.example/log", []ed25519.PublicKey{pub(logKey)}, v)
	if err != nil || len(cosigs) != 1 || cosigs[0].Name != "witness.example/w1" || !cosigs[0].Time.Equal(at) {
		t.Fatalf("cosignatures = %+v, %v\n%s", cosigs, err, cosigned)
	}
	// The cosignature line is keyID(4) || timestamp(8) || signature(64).
	for _, l := range strings.Split(string(cosigned), "\n") {
		if name, sig, ok := strings.Cut(strings.TrimPrefix(l, "— "), " "); ok && name == "witness.example/w1" {
			raw, _ := base64.StdEncoding.DecodeString(sig)
			if len(raw) != 76 {
				t.Errorf("cosignature is %d bytes, want 76", len(raw))
			}
			id := sha256.Sum256(append([]byte("witness.example/w1\n\x04"), pub(wKey)...))
			if !bytes.Equal(raw[:4], id[:4]) {
				t.Error("key ID is not SHA-256(name || \\n || 0x04 || key)[:4]")
			}
			msg := append([]byte("cosignature/v1\ntime 1700000000\n"), []byte(strings.SplitN(string(signed), "\n\n", 2)[0]+"\n")...)
			if !ed25519.Verify(pub(wKey), msg, raw[12:]) {
				t.Error("the cosignature does not cover cosignature/v1, the time and the checkpoint body")
			}
		}
	}
	// A cosignature from another key under the same name does not verify.
	other := translog.NewCosignatureVerifier("witness.example/w1", pub(key(t)))
	if _, cosigs, _ := translog.OpenCheckpoint(cosigned, "lethe.example/log", []ed25519.PublicKey{pub(logKey)}, other); len(cosigs) != 0 {
		t.Error("a cosignature verified with the wrong witness key")
	}
}

func newLog(t *testing.T) (*translog.Log, store.Store, ed25519.PrivateKey) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "lethe.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	k := key(t)
	s, err := translog.NewLogSigner("test/log", k)
	if err != nil {
		t.Fatal(err)
	}
	return translog.NewLog("test/log", s), st, k
}

func appendLeaf(t *testing.T, l *translog.Log, st store.Store, data string) translog.Appended {
	t.Helper()
	var a translog.Appended
	err := st.InTx(context.Background(), func(tx store.Tx) error {
		var err error
		a, err = l.Append(context.Background(), tx, translog.KindCertificate, data, []byte(data), time.Unix(1000, 0))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestLogAppendProveAndDetectRewrites(t *testing.T) {
	t.Parallel()
	l, st, k := newLog(t)
	ctx := context.Background()
	var checkpoints []translog.Checkpoint
	for i := range 20 {
		a := appendLeaf(t, l, st, fmt.Sprintf("cert-%d", i))
		cp, _, err := translog.OpenCheckpoint(a.Checkpoint, "test/log", []ed25519.PublicKey{pub(k)})
		if err != nil {
			t.Fatal(err)
		}
		if a.Index != int64(i) || cp.Size != int64(i+1) {
			t.Fatalf("append %d: index %d, checkpoint size %d", i, a.Index, cp.Size)
		}
		if err := translog.VerifyInclusion(a.Proof, []byte(fmt.Sprintf("cert-%d", i)), cp.Root); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		checkpoints = append(checkpoints, cp)
	}
	r := translog.NewReader(st)
	latest := checkpoints[len(checkpoints)-1]
	for i, old := range checkpoints {
		p, err := r.Consistency(ctx, old.Size, latest.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := translog.VerifyConsistency(p, old.Root, latest.Root); err != nil {
			t.Errorf("checkpoint %d not consistent with the latest: %v", i, err)
		}
		p2, _ := r.Inclusion(ctx, int64(i), latest.Size)
		if err := translog.VerifyInclusion(p2, []byte(fmt.Sprintf("cert-%d", i)), latest.Root); err != nil {
			t.Errorf("leaf %d not in the latest tree: %v", i, err)
		}
	}
	if _, err := r.Inclusion(ctx, 3, 99); err == nil {
		t.Error("a proof for a tree larger than the log")
	}

	// The operator rewrites history: the same leaves without cert-7 (a
	// withdrawn certificate), or with a back-dated certificate slipped in
	// before it. An auditor holding checkpoint 10 notices either way.
	for name, leaves := range map[string][]string{
		"removed":     without(20, 7),
		"back-dated":  inserted(20, 5, "backdated"),
		"edited leaf": replaced(20, 3, "cert-3-edited"),
	} {
		l2, st2, _ := newLog(t)
		for _, d := range leaves {
			appendLeaf(t, l2, st2, d)
		}
		r2 := translog.NewReader(st2)
		size := int64(len(leaves))
		root2, _ := r2.Root(ctx, size)
		p, err := r2.Consistency(ctx, checkpoints[9].Size, size)
		if err != nil {
			t.Fatal(err)
		}
		if translog.VerifyConsistency(p, checkpoints[9].Root, root2) == nil {
			t.Errorf("%s: the rewritten log passes a consistency check against an older checkpoint", name)
		}
		if name == "edited leaf" {
			if old, _ := r2.Root(ctx, 20); translog.VerifyConsistency(translog.ConsistencyProof{From: 20, To: 20}, latest.Root, old) == nil {
				t.Errorf("%s: two roots for one size are not noticed", name)
			}
		}
	}
}

func without(n, skip int) []string {
	var out []string
	for i := range n {
		if i != skip {
			out = append(out, fmt.Sprintf("cert-%d", i))
		}
	}
	return out
}

func inserted(n, at int, leaf string) []string {
	var out []string
	for i := range n {
		if i == at {
			out = append(out, leaf)
		}
		out = append(out, fmt.Sprintf("cert-%d", i))
	}
	return out
}

func replaced(n, at int, leaf string) []string {
	out := without(n, -1)
	out[at] = leaf
	return out
}

func TestRecordKeysOnceEvenConcurrently(t *testing.T) {
	t.Parallel()
	l, st, _ := newLog(t)
	active := translog.KeyEvent{Event: translog.KindKeyActivated, Kid: "new", X: "xn"}
	retired := []translog.KeyEvent{{Event: translog.KindKeyRetired, Kid: "old", X: "xo"}}
	var wg sync.WaitGroup
	total := make(chan int, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := l.RecordKeys(context.Background(), st, active, retired, time.Unix(2000, 0))
			if err != nil {
				t.Error(err)
			}
			total <- n
		}()
	}
	wg.Wait()
	close(total)
	sum := 0
	for n := range total {
		sum += n
	}
	if sum != 2 {
		t.Errorf("%d key entries added, want 2", sum)
	}
	es, _ := st.LogEntries(context.Background(), 0, 10)
	if len(es) != 2 {
		t.Fatalf("%d entries", len(es))
	}
	ev, err := translog.ParseKeyLeaf(es[0].Data)
	if err != nil || ev.Kid != "new" || ev.Event != translog.KindKeyActivated || ev.At != "1970-01-01T00:33:20Z" {
		t.Errorf("key leaf = %+v, %v", ev, err)
	}
}
