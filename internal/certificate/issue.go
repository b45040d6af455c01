package certificate

import (
	"context"
	"time"

	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
	"github.com/lethe-dev/lethe/internal/translog"
)

// Issuer makes certificates: payload, signature, and a leaf in the
// transparency log with its proof, all inside the transaction that
// completes the request.
type Issuer struct {
	Signer  *Signer
	Log     *translog.Log
	Options Options
}

// LogRecheck appends a re-check of a certificate to the log within tx
// and returns its leaf's index.
func (i *Issuer) LogRecheck(ctx context.Context, tx store.Tx, e translog.RecheckEvent, at time.Time) (int64, error) {
	leaf, err := translog.RecheckLeaf(e)
	if err != nil {
		return -1, err
	}
	a, err := i.Log.Append(ctx, tx, translog.KindRecheck, e.CertificateID, leaf, at)
	if err != nil {
		return -1, err
	}
	return a.Index, nil
}

// Issue signs a certificate for a completed request and appends it to the
// log within tx.
func (i *Issuer) Issue(ctx context.Context, tx store.Tx, req erasure.Request, tasks []erasure.Task, eventHead string, at time.Time) (store.Certificate, error) {
	p, err := NewPayload(req, tasks, i.Options, eventHead, at)
	if err != nil {
		return store.Certificate{}, err
	}
	d, err := i.Signer.Sign(p)
	if err != nil {
		return store.Certificate{}, err
	}
	leaf := translog.CertificateLeaf(d.Protected, d.Payload, d.Signature)
	a, err := i.Log.Append(ctx, tx, translog.KindCertificate, p.CertificateID, leaf, at)
	if err != nil {
		return store.Certificate{}, err
	}
	d.Log = &LogProof{Origin: i.Log.Origin(), Index: a.Index, TreeSize: a.Proof.TreeSize, Proof: a.Proof.Hashes, Checkpoint: string(a.Checkpoint)}
	return store.Certificate{RequestID: req.ID, ID: p.CertificateID, KeyID: i.Signer.KeyID(), Document: d.JSON(), IssuedAt: at, LogIndex: a.Index}, nil
}
