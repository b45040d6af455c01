package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/lethe-dev/lethe/internal/store"
)

const portalCols = `request_id, lang, code_hash, code_expires_at, code_attempts, verified_at`

func (s *Store) queryPortal(ctx context.Context, q Querier, query string, args ...any) (store.PortalRequest, error) {
	rows, err := q.Query(ctx, s.rw.q(query), args...)
	if err != nil {
		return store.PortalRequest{}, fmt.Errorf("query portal request: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return store.PortalRequest{}, err
		}
		return store.PortalRequest{}, fmt.Errorf("portal request: %w", store.ErrNotFound)
	}
	var p store.PortalRequest
	err = rows.Scan(&p.RequestID, &p.Lang, &p.CodeHash, timeCol{&p.CodeExpiresAt}, &p.CodeAttempts, timeCol{&p.VerifiedAt})
	return p, err
}

// PortalRequest implements store.Store.
func (s *Store) PortalRequest(ctx context.Context, requestID string) (store.PortalRequest, error) {
	return s.queryPortal(ctx, s.conn, `SELECT `+portalCols+` FROM portal_requests WHERE request_id = $1`, requestID)
}

func (t *tx) InsertPortalRequest(ctx context.Context, p store.PortalRequest) error {
	_, err := t.exec(ctx, `INSERT INTO portal_requests (`+portalCols+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		p.RequestID, p.Lang, p.CodeHash, t.time(p.CodeExpiresAt), p.CodeAttempts, t.time(p.VerifiedAt))
	if err != nil {
		return fmt.Errorf("insert portal request: %w", err)
	}
	return nil
}

func (t *tx) LockPortal(ctx context.Context, requestID string) (store.PortalRequest, error) {
	return t.s.queryPortal(ctx, t.q, `SELECT `+portalCols+` FROM portal_requests WHERE request_id = $1`+t.s.d.ForUpdate, requestID)
}

func (t *tx) UpdatePortalRequest(ctx context.Context, p store.PortalRequest) error {
	n, err := t.exec(ctx, `UPDATE portal_requests SET code_hash = $2, code_expires_at = $3, code_attempts = $4, verified_at = $5 WHERE request_id = $1`,
		p.RequestID, p.CodeHash, t.time(p.CodeExpiresAt), p.CodeAttempts, t.time(p.VerifiedAt))
	if err != nil {
		return fmt.Errorf("update portal request: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("update portal request: %w", store.ErrNotFound)
	}
	return nil
}

// CreateSession implements store.Store.
func (s *Store) CreateSession(ctx context.Context, x store.Session) error {
	_, err := s.conn.Exec(ctx, s.rw.q(`INSERT INTO sessions (id_hash, user_name, role, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)`),
		x.IDHash, x.User, x.Role, x.CSRF, s.d.TimeArg(x.CreatedAt), s.d.TimeArg(x.ExpiresAt))
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// Session implements store.Store: a session that has not expired.
func (s *Store) Session(ctx context.Context, idHash string, now time.Time) (store.Session, error) {
	rows, err := s.conn.Query(ctx, s.rw.q(`SELECT id_hash, user_name, role, csrf, created_at, expires_at FROM sessions WHERE id_hash = $1 AND expires_at > $2`),
		idHash, s.d.TimeArg(now))
	if err != nil {
		return store.Session{}, fmt.Errorf("query session: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return store.Session{}, err
		}
		return store.Session{}, fmt.Errorf("session: %w", store.ErrNotFound)
	}
	var x store.Session
	err = rows.Scan(&x.IDHash, &x.User, &x.Role, &x.CSRF, timeCol{&x.CreatedAt}, timeCol{&x.ExpiresAt})
	return x, err
}

// DeleteSession implements store.Store.
func (s *Store) DeleteSession(ctx context.Context, idHash string) error {
	_, err := s.conn.Exec(ctx, s.rw.q(`DELETE FROM sessions WHERE id_hash = $1`), idHash)
	return err
}

// DeleteExpiredSessions implements store.Store.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error) {
	return s.conn.Exec(ctx, s.rw.q(`DELETE FROM sessions WHERE expires_at <= $1`), s.d.TimeArg(now))
}
