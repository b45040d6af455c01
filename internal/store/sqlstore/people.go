package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/lethe-dev/lethe/internal/store"
)

const portalCols = `request_id, lang, code_hash, code_expires_at, code_attempts, verified_at, code_sent_at`

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
	err = rows.Scan(&p.RequestID, &p.Lang, &p.CodeHash, timeCol{&p.CodeExpiresAt}, &p.CodeAttempts, timeCol{&p.VerifiedAt}, timeCol{&p.CodeSentAt})
	return p, err
}

// PortalRequest implements store.Store.
func (s *Store) PortalRequest(ctx context.Context, requestID string) (store.PortalRequest, error) {
	return s.queryPortal(ctx, s.conn, `SELECT `+portalCols+` FROM portal_requests WHERE request_id = $1`, requestID)
}

func (t *tx) InsertPortalRequest(ctx context.Context, p store.PortalRequest) error {
	_, err := t.exec(ctx, `INSERT INTO portal_requests (`+portalCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		p.RequestID, p.Lang, p.CodeHash, t.time(p.CodeExpiresAt), p.CodeAttempts, t.time(p.VerifiedAt), t.time(p.CodeSentAt))
	if err != nil {
		return fmt.Errorf("insert portal request: %w", err)
	}
	return nil
}

func (t *tx) LockPortal(ctx context.Context, requestID string) (store.PortalRequest, error) {
	return t.s.queryPortal(ctx, t.q, `SELECT `+portalCols+` FROM portal_requests WHERE request_id = $1`+t.s.d.ForUpdate, requestID)
}

func (t *tx) UpdatePortalRequest(ctx context.Context, p store.PortalRequest) error {
	n, err := t.exec(ctx, `UPDATE portal_requests SET code_hash = $2, code_expires_at = $3, code_attempts = $4, verified_at = $5, code_sent_at = $6 WHERE request_id = $1`,
		p.RequestID, p.CodeHash, t.time(p.CodeExpiresAt), p.CodeAttempts, t.time(p.VerifiedAt), t.time(p.CodeSentAt))
	if err != nil {
		return fmt.Errorf("update portal request: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("update portal request: %w", store.ErrNotFound)
	}
	return nil
}

const throttleCols = `key, failures, last_at, ref, updated_at`

func (s *Store) queryThrottle(ctx context.Context, q Querier, query, key string) (store.Throttle, bool, error) {
	rows, err := q.Query(ctx, s.rw.q(query), key)
	if err != nil {
		return store.Throttle{}, false, fmt.Errorf("query throttle: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		return store.Throttle{Key: key}, false, rows.Err()
	}
	var t store.Throttle
	err = rows.Scan(&t.Key, &t.Failures, timeCol{&t.LastAt}, &t.Ref, timeCol{&t.UpdatedAt})
	return t, true, err
}

// Throttle implements store.Store.
func (s *Store) Throttle(ctx context.Context, key string) (store.Throttle, error) {
	t, _, err := s.queryThrottle(ctx, s.conn, `SELECT `+throttleCols+` FROM throttles WHERE key = $1`, key)
	return t, err
}

// DeleteThrottles implements store.Store.
func (s *Store) DeleteThrottles(ctx context.Context, before time.Time) (int64, error) {
	n, err := s.conn.Exec(ctx, s.rw.q(`DELETE FROM throttles WHERE updated_at IS NULL OR updated_at < $1`), s.d.TimeArg(before))
	if err != nil {
		return 0, fmt.Errorf("delete throttles: %w", err)
	}
	return n, nil
}

// LockThrottle implements store.Tx. A row is made first when there is
// none, so that there is something to lock: two replicas counting the
// first failure of a key then take turns too.
func (t *tx) LockThrottle(ctx context.Context, key string) (store.Throttle, error) {
	for range 3 {
		if _, err := t.exec(ctx, `INSERT INTO throttles (key) VALUES ($1) ON CONFLICT (key) DO NOTHING`, key); err != nil {
			return store.Throttle{}, fmt.Errorf("lock throttle: %w", err)
		}
		th, found, err := t.s.queryThrottle(ctx, t.q, `SELECT `+throttleCols+` FROM throttles WHERE key = $1`+t.s.d.ForUpdate, key)
		if err != nil || found {
			return th, err
		}
		// Housekeeping deleted it in between: make it again.
	}
	return store.Throttle{}, fmt.Errorf("lock throttle: the row keeps disappearing")
}

// UpdateThrottle implements store.Tx.
func (t *tx) UpdateThrottle(ctx context.Context, th store.Throttle) error {
	_, err := t.exec(ctx, `INSERT INTO throttles (`+throttleCols+`) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, last_at = excluded.last_at, ref = excluded.ref, updated_at = excluded.updated_at`,
		th.Key, th.Failures, t.time(th.LastAt), th.Ref, t.time(th.UpdatedAt))
	if err != nil {
		return fmt.Errorf("update throttle: %w", err)
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
