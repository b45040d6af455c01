package sqlstore

import (
	"context"
	"fmt"

	"github.com/lethe-dev/lethe/internal/store"
)

const logEntryCols = `idx, kind, ref, data, created_at`

// LogSize implements store.Store.
func (s *Store) LogSize(ctx context.Context) (int64, error) {
	var n int
	if err := s.scanInt(ctx, &n, `SELECT size FROM log_head WHERE id = 1`); err != nil {
		return 0, err
	}
	return int64(n), nil
}

// LogHashes implements store.Store.
func (s *Store) LogHashes(ctx context.Context, ids []int64) ([][]byte, error) {
	return logHashes(ctx, s.conn, s.rw, ids)
}

func logHashes(ctx context.Context, q Querier, rw *rewriter, ids []int64) ([][]byte, error) {
	byID := make(map[int64][]byte, len(ids))
	for start := 0; start < len(ids); start += 500 {
		ph, args := placeholders(ids[start:min(start+500, len(ids))])
		rows, err := q.Query(ctx, rw.q(`SELECT id, hash FROM log_hashes WHERE id IN (`+ph+`)`), args...)
		if err != nil {
			return nil, fmt.Errorf("read log hashes: %w", err)
		}
		for rows.Next() {
			var id int64
			var h []byte
			if err := rows.Scan(&id, &h); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read log hashes: %w", err)
			}
			byID[id] = h
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read log hashes: %w", err)
		}
	}
	out := make([][]byte, len(ids))
	for i, id := range ids {
		h, ok := byID[id]
		if !ok {
			return nil, fmt.Errorf("log hash %d: %w", id, store.ErrNotFound)
		}
		out[i] = h
	}
	return out, nil
}

// LogEntries implements store.Store.
func (s *Store) LogEntries(ctx context.Context, start, end int64) ([]store.LogEntry, error) {
	return s.queryLogEntries(ctx, s.conn, `SELECT `+logEntryCols+` FROM log_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx`, start, end)
}

// LogEntriesByRef implements store.Store.
func (s *Store) LogEntriesByRef(ctx context.Context, kind, ref string) ([]store.LogEntry, error) {
	return s.queryLogEntries(ctx, s.conn, `SELECT `+logEntryCols+` FROM log_entries WHERE kind = $1 AND ref = $2 ORDER BY idx`, kind, ref)
}

// LogEntryByRef implements store.Store.
func (s *Store) LogEntryByRef(ctx context.Context, kind, ref string) (store.LogEntry, error) {
	return s.oneLogEntry(ctx, s.conn, kind, ref)
}

func (s *Store) oneLogEntry(ctx context.Context, q Querier, kind, ref string) (store.LogEntry, error) {
	es, err := s.queryLogEntries(ctx, q, `SELECT `+logEntryCols+` FROM log_entries WHERE kind = $1 AND ref = $2 ORDER BY idx LIMIT 1`, kind, ref)
	if err != nil {
		return store.LogEntry{}, err
	}
	if len(es) == 0 {
		return store.LogEntry{}, fmt.Errorf("log entry: %w", store.ErrNotFound)
	}
	return es[0], nil
}

func (s *Store) queryLogEntries(ctx context.Context, q Querier, query string, args ...any) ([]store.LogEntry, error) {
	rows, err := q.Query(ctx, s.rw.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("query log entries: %w", err)
	}
	defer rows.Close()
	var out []store.LogEntry
	for rows.Next() {
		var e store.LogEntry
		if err := rows.Scan(&e.Index, &e.Kind, &e.Ref, &e.Data, timeCol{&e.CreatedAt}); err != nil {
			return nil, fmt.Errorf("scan log entry: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// LatestCheckpoint implements store.Store.
func (s *Store) LatestCheckpoint(ctx context.Context) (store.Checkpoint, error) {
	rows, err := s.conn.Query(ctx, `SELECT size, root, note, created_at FROM log_checkpoints ORDER BY size DESC LIMIT 1`)
	if err != nil {
		return store.Checkpoint{}, fmt.Errorf("query checkpoint: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return store.Checkpoint{}, fmt.Errorf("query checkpoint: %w", err)
		}
		return store.Checkpoint{}, fmt.Errorf("checkpoint: %w", store.ErrNotFound)
	}
	var c store.Checkpoint
	if err := rows.Scan(&c.Size, &c.Root, &c.Note, timeCol{&c.CreatedAt}); err != nil {
		return c, fmt.Errorf("scan checkpoint: %w", err)
	}
	return c, nil
}

func (t *tx) LockLog(ctx context.Context) (int64, error) {
	rows, err := t.q.Query(ctx, `SELECT size FROM log_head WHERE id = 1`+t.s.d.ForUpdate)
	if err != nil {
		return 0, fmt.Errorf("lock log: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		return 0, fmt.Errorf("lock log: no log head (migrations not applied?): %w", rows.Err())
	}
	var n int64
	if err := rows.Scan(&n); err != nil {
		return 0, fmt.Errorf("lock log: %w", err)
	}
	return n, nil
}

func (t *tx) LogHashes(ctx context.Context, ids []int64) ([][]byte, error) {
	return logHashes(ctx, t.q, t.s.rw, ids)
}

func (t *tx) AppendLog(ctx context.Context, e store.LogEntry, firstHash int64, hashes [][]byte) error {
	n, err := t.exec(ctx, `UPDATE log_head SET size = $1 WHERE id = 1 AND size = $2`, e.Index+1, e.Index)
	if err != nil {
		return fmt.Errorf("append log: %w", err)
	}
	if n != 1 {
		return fmt.Errorf("append log: leaf %d is not at the end of the log", e.Index)
	}
	if _, err := t.exec(ctx, `INSERT INTO log_entries (`+logEntryCols+`) VALUES ($1, $2, $3, $4, $5)`,
		e.Index, e.Kind, e.Ref, e.Data, t.time(e.CreatedAt)); err != nil {
		return fmt.Errorf("append log: %w", err)
	}
	for i, h := range hashes {
		if _, err := t.exec(ctx, `INSERT INTO log_hashes (id, hash) VALUES ($1, $2)`, firstHash+int64(i), h); err != nil {
			return fmt.Errorf("append log hash: %w", err)
		}
	}
	return nil
}

func (t *tx) LogEntryByRef(ctx context.Context, kind, ref string) (store.LogEntry, error) {
	return t.s.oneLogEntry(ctx, t.q, kind, ref)
}

func (t *tx) InsertCheckpoint(ctx context.Context, c store.Checkpoint) error {
	if _, err := t.exec(ctx, `INSERT INTO log_checkpoints (size, root, note, created_at) VALUES ($1, $2, $3, $4)`,
		c.Size, c.Root, c.Note, t.time(c.CreatedAt)); err != nil {
		return fmt.Errorf("insert checkpoint: %w", err)
	}
	return nil
}
