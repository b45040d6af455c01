package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/seal"
	"github.com/lethe-dev/lethe/internal/store"
)

// sealedSubject is what a request's data key encrypts.
type sealedSubject struct {
	Subject         erasure.Subject `json:"subject"`
	CommitmentNonce []byte          `json:"commitment_nonce,omitempty"`
}

// seal encrypts r's identifiers under a fresh data key, bound to r's id.
func (s *Store) seal(ctx context.Context, r erasure.Request) (sealed, wrapped []byte, err error) {
	if s.keys == nil {
		return nil, nil, errors.New("store: no key-encryption key configured; cannot store identifiers")
	}
	plain, err := json.Marshal(sealedSubject{Subject: r.Subject, CommitmentNonce: r.CommitmentNonce})
	if err != nil {
		return nil, nil, fmt.Errorf("encode subject: %w", err)
	}
	dek, wrapped, err := seal.NewDataKey(ctx, s.keys)
	if err != nil {
		return nil, nil, fmt.Errorf("data key: %w", err)
	}
	sealed, err = seal.Seal(dek, plain, []byte(r.ID))
	if err != nil {
		return nil, nil, fmt.Errorf("encrypt subject: %w", err)
	}
	return sealed, wrapped, nil
}

// UpdateSubject implements store.Tx: it encrypts r's identifiers again under
// the request's own data key, so shredding that key still destroys them.
func (t *tx) UpdateSubject(ctx context.Context, r erasure.Request) error {
	if t.s.keys == nil {
		return errors.New("store: no key-encryption key configured; cannot store identifiers")
	}
	rows, err := t.q.Query(ctx, t.s.rw.q(`SELECT data_key FROM requests WHERE id = $1`), r.ID)
	if err != nil {
		return fmt.Errorf("update subject: %w", err)
	}
	var wrapped []byte
	found := rows.Next()
	if found {
		err = rows.Scan(&wrapped)
	}
	rows.Close()
	switch {
	case err != nil:
		return fmt.Errorf("update subject: %w", err)
	case !found:
		return fmt.Errorf("update subject: %w", store.ErrNotFound)
	case wrapped == nil:
		return erasure.Errorf(erasure.EConflict, "the request's identifiers were shredded")
	}
	dek, err := t.s.keys.Unwrap(ctx, wrapped)
	if err != nil {
		return fmt.Errorf("request %s: %w", r.ID, err)
	}
	plain, err := json.Marshal(sealedSubject{Subject: r.Subject, CommitmentNonce: r.CommitmentNonce})
	if err != nil {
		return fmt.Errorf("encode subject: %w", err)
	}
	sealed, err := seal.Seal(dek, plain, []byte(r.ID))
	if err != nil {
		return fmt.Errorf("encrypt subject: %w", err)
	}
	if _, err := t.exec(ctx, `UPDATE requests SET subject_enc = $2 WHERE id = $1`, r.ID, sealed); err != nil {
		return fmt.Errorf("update subject: %w", err)
	}
	return nil
}

// open decrypts a request's identifiers into r.
func (s *Store) open(ctx context.Context, r *erasure.Request, sealed, wrapped []byte) error {
	if s.keys == nil {
		return errors.New("store: no key-encryption key configured; cannot read identifiers")
	}
	dek, err := s.keys.Unwrap(ctx, wrapped)
	if err != nil {
		return fmt.Errorf("request %s: %w", r.ID, err)
	}
	plain, err := seal.Open(dek, sealed, []byte(r.ID))
	if err != nil {
		return fmt.Errorf("request %s: decrypt subject: %w", r.ID, err)
	}
	var ss sealedSubject
	if err := json.Unmarshal(plain, &ss); err != nil {
		return fmt.Errorf("request %s: subject: %w", r.ID, err)
	}
	r.Subject, r.CommitmentNonce = ss.Subject, ss.CommitmentNonce
	return nil
}

func (t *tx) ShredRequest(ctx context.Context, id string, at time.Time) error {
	n, err := t.exec(ctx, `UPDATE requests SET subject_enc = NULL, data_key = NULL, shredded_at = $2 WHERE id = $1`, id, t.time(at))
	if err != nil {
		return fmt.Errorf("shred request: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("shred request: %w", store.ErrNotFound)
	}
	return nil
}

func (t *tx) AddSuppressions(ctx context.Context, requestID string, ids []erasure.IdentifierHash, at time.Time) error {
	for _, id := range ids {
		if _, err := t.exec(ctx, `INSERT INTO suppressions (hash, kind, request_id, created_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (hash, request_id) DO NOTHING`, id.Hash, id.Kind, requestID, t.time(at)); err != nil {
			return fmt.Errorf("add suppression: %w", err)
		}
	}
	return nil
}

func (t *tx) PurgeRequest(ctx context.Context, p store.Purge) error {
	var logIndex any
	if p.LogIndex >= 0 {
		logIndex = p.LogIndex
	}
	if _, err := t.exec(ctx, `INSERT INTO purges (request_id, status, jurisdiction, received_at, due_at, completed_at, certificate_id, log_index, purged_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, p.RequestID, string(p.Status), string(p.Jurisdiction), t.time(p.ReceivedAt),
		t.time(p.DueAt), t.time(p.CompletedAt), p.CertificateID, logIndex, t.time(p.PurgedAt)); err != nil {
		return fmt.Errorf("purge: %w", err)
	}
	// purge_mode lets the events trigger allow these deletes; it is
	// removed again before the transaction commits.
	if _, err := t.exec(ctx, `INSERT INTO purge_mode (on_purpose) VALUES ($1)`, true); err != nil {
		return fmt.Errorf("purge: %w", err)
	}
	for _, q := range []string{
		`DELETE FROM events WHERE request_id = $1`,
		`DELETE FROM task_job_refs WHERE task_id IN (SELECT id FROM tasks WHERE request_id = $1)`,
		`DELETE FROM tasks WHERE request_id = $1`,
		`DELETE FROM certificates WHERE request_id = $1`,
		`DELETE FROM subject_hashes WHERE request_id = $1`,
		`DELETE FROM portal_requests WHERE request_id = $1`,
		`DELETE FROM outbox WHERE request_id = $1`,
		`DELETE FROM requests WHERE id = $1`,
	} {
		if _, err := t.exec(ctx, q, p.RequestID); err != nil {
			return fmt.Errorf("purge: %w", err)
		}
	}
	if _, err := t.exec(ctx, `DELETE FROM purge_mode`); err != nil {
		return fmt.Errorf("purge: %w", err)
	}
	return nil
}

// Suppressed implements store.Store.
func (s *Store) Suppressed(ctx context.Context, hashes []string) ([]store.Suppression, error) {
	if len(hashes) == 0 {
		return nil, nil
	}
	ph, args := placeholders(hashes)
	return s.querySuppressions(ctx, `SELECT hash, kind, request_id, created_at FROM suppressions WHERE hash IN (`+ph+`) ORDER BY created_at`, args...)
}

// SuppressionsSince implements store.Store.
func (s *Store) SuppressionsSince(ctx context.Context, since time.Time) ([]store.Suppression, error) {
	return s.querySuppressions(ctx, `SELECT hash, kind, request_id, created_at FROM suppressions WHERE created_at >= $1 ORDER BY created_at`, s.d.TimeArg(since))
}

func (s *Store) querySuppressions(ctx context.Context, query string, args ...any) ([]store.Suppression, error) {
	rows, err := s.conn.Query(ctx, s.rw.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("query suppressions: %w", err)
	}
	defer rows.Close()
	var out []store.Suppression
	for rows.Next() {
		var x store.Suppression
		if err := rows.Scan(&x.Hash, &x.Kind, &x.RequestID, timeCol{&x.CreatedAt}); err != nil {
			return nil, fmt.Errorf("scan suppression: %w", err)
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

// RewrapDataKeys implements store.Store.
func (s *Store) RewrapDataKeys(ctx context.Context, limit int) (done, remaining int, err error) {
	if s.keys == nil {
		return 0, 0, errors.New("store: no key-encryption key configured")
	}
	rows, err := s.conn.Query(ctx, `SELECT id, data_key FROM requests WHERE data_key IS NOT NULL`)
	if err != nil {
		return 0, 0, fmt.Errorf("rewrap: %w", err)
	}
	var stale []string
	for rows.Next() {
		var id string
		var wrapped []byte
		if err := rows.Scan(&id, &wrapped); err != nil {
			rows.Close()
			return 0, 0, fmt.Errorf("rewrap: %w", err)
		}
		if !s.keys.Current(wrapped) {
			stale = append(stale, id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("rewrap: %w", err)
	}
	// Another replica may re-wrap or shred a key between the scan and the
	// lock: only keys re-wrapped here count as done, and every key looked
	// at is no longer remaining.
	seen := 0
	for _, id := range stale {
		if done == limit {
			break
		}
		seen++
		did := false
		err := s.InTx(ctx, func(txi store.Tx) error {
			did = false
			t := txi.(*tx)
			rows, err := t.q.Query(ctx, s.rw.q(`SELECT data_key FROM requests WHERE id = $1 AND data_key IS NOT NULL`+s.d.ForUpdate), id)
			if err != nil {
				return err
			}
			var wrapped []byte
			found := rows.Next()
			if found {
				err = rows.Scan(&wrapped)
			}
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
			if err != nil || !found || s.keys.Current(wrapped) {
				return err // shredded or re-wrapped meanwhile
			}
			dek, err := s.keys.Unwrap(ctx, wrapped)
			if err != nil {
				return err
			}
			fresh, err := s.keys.Wrap(ctx, dek)
			if err != nil {
				return err
			}
			_, err = t.exec(ctx, `UPDATE requests SET data_key = $2 WHERE id = $1`, id, fresh)
			did = err == nil
			return err
		})
		if err != nil {
			return done, len(stale) - seen + 1, fmt.Errorf("rewrap request %s: %w", id, err)
		}
		if did {
			done++
		}
	}
	return done, len(stale) - seen, nil
}

// Purge implements store.Store.
func (s *Store) Purge(ctx context.Context, requestID string) (store.Purge, error) {
	rows, err := s.conn.Query(ctx, s.rw.q(`SELECT request_id, status, jurisdiction, received_at, due_at, completed_at, certificate_id,
		COALESCE(log_index, -1), purged_at FROM purges WHERE request_id = $1`), requestID)
	if err != nil {
		return store.Purge{}, fmt.Errorf("query purge: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return store.Purge{}, err
		}
		return store.Purge{}, fmt.Errorf("purge: %w", store.ErrNotFound)
	}
	var p store.Purge
	err = rows.Scan(&p.RequestID, &p.Status, &p.Jurisdiction, timeCol{&p.ReceivedAt}, timeCol{&p.DueAt}, timeCol{&p.CompletedAt},
		&p.CertificateID, &p.LogIndex, timeCol{&p.PurgedAt})
	return p, err
}
