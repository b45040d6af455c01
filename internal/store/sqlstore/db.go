// Package sqlstore implements store.Store once, over a small database
// abstraction that the postgres (pgx) and sqlite (database/sql) packages
// provide. The queries are shared; a Dialect covers what differs.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"
)

// Querier runs statements; both a pool and a transaction are one.
type Querier interface {
	Exec(ctx context.Context, query string, args ...any) (rowsAffected int64, err error)
	Query(ctx context.Context, query string, args ...any) (Rows, error)
}

// Rows is the subset of pgx.Rows and *sql.Rows the store uses.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Conn is a connection pool.
type Conn interface {
	Querier
	Begin(ctx context.Context) (TxConn, error)
	Ping(ctx context.Context) error
	Close()
}

// TxConn is an open transaction.
type TxConn interface {
	Querier
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// Dialect is what differs between databases.
type Dialect struct {
	Name string
	// NumberedArgs: true when the database takes $1 itself; otherwise
	// $N is rewritten to ?N.
	NumberedArgs bool
	// ForUpdate is appended to a SELECT that locks its row.
	ForUpdate string
	// SkipLocked is appended to a SELECT that claims rows other
	// transactions may hold.
	SkipLocked string
	// TimeArg encodes a time for a query argument; zero times are NULL.
	TimeArg func(time.Time) any
	// IsUniqueViolation reports a duplicate key.
	IsUniqueViolation func(error) bool
	// IsRetryable reports an error after which the transaction should be
	// run again (serialisation failure, deadlock, database busy).
	IsRetryable func(error) bool
	// MigrateLock is run first in each migration transaction so that
	// concurrent migrators take turns.
	MigrateLock string
}

var numberedArg = regexp.MustCompile(`\$(\d+)`)

type rewriter struct {
	d     *Dialect
	cache sync.Map
}

func (r *rewriter) q(query string) string {
	if r.d.NumberedArgs {
		return query
	}
	if v, ok := r.cache.Load(query); ok {
		return v.(string)
	}
	out := numberedArg.ReplaceAllString(query, "?$1")
	r.cache.Store(query, out)
	return out
}

// timeCol scans a timestamp column that is TIMESTAMPTZ in PostgreSQL and
// INTEGER microseconds in SQLite; NULL is the zero time.
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.t = time.Time{}
	case time.Time:
		*c.t = v.UTC()
	case int64:
		*c.t = time.UnixMicro(v).UTC()
	default:
		return fmt.Errorf("sqlstore: cannot scan %T into a time", src)
	}
	return nil
}

// SQLiteTime encodes t as microseconds since the epoch, NULL when zero.
func SQLiteTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// PostgresTime passes t through, NULL when zero.
func PostgresTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

// SQLDB adapts *sql.DB to Conn.
type SQLDB struct{ DB *sql.DB }

// Exec implements Querier.
func (d SQLDB) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	return execResult(d.DB.ExecContext(ctx, q, args...))
}

// Query implements Querier.
func (d SQLDB) Query(ctx context.Context, q string, args ...any) (Rows, error) {
	rows, err := d.DB.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

// Begin implements Conn.
func (d SQLDB) Begin(ctx context.Context) (TxConn, error) {
	tx, err := d.DB.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return sqlTx{tx}, nil
}

// Ping implements Conn.
func (d SQLDB) Ping(ctx context.Context) error { return d.DB.PingContext(ctx) }

// Close implements Conn.
func (d SQLDB) Close() { _ = d.DB.Close() }

type sqlTx struct{ tx *sql.Tx }

func (t sqlTx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	return execResult(t.tx.ExecContext(ctx, q, args...))
}

func (t sqlTx) Query(ctx context.Context, q string, args ...any) (Rows, error) {
	rows, err := t.tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (t sqlTx) Commit(context.Context) error { return t.tx.Commit() }

func (t sqlTx) Rollback(context.Context) error {
	err := t.tx.Rollback()
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

func execResult(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	return n, nil
}
