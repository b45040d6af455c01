// Package postgres is the PostgreSQL store (pgx/v5), for production and for
// several Lethe replicas sharing one database.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/lethe-dev/lethe/internal/seal"
	"github.com/lethe-dev/lethe/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Dialect is PostgreSQL's.
var dialect = &sqlstore.Dialect{
	Name:         "postgres",
	NumberedArgs: true,
	ForUpdate:    " FOR UPDATE",
	SkipLocked:   " FOR UPDATE SKIP LOCKED",
	TimeArg:      sqlstore.PostgresTime,
	IsUniqueViolation: func(err error) bool {
		return sqlState(err) == "23505"
	},
	IsRetryable: func(err error) bool {
		switch sqlState(err) {
		case "40001", "40P01": // serialization_failure, deadlock_detected
			return true
		}
		return false
	},
	// Any constant works; it only has to be the same in every process.
	MigrateLock: "SELECT pg_advisory_xact_lock(7408915530124211)",
}

func sqlState(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code
	}
	return ""
}

// Options tune the pool.
type Options struct {
	MaxConns int32
	// Keys wrap the data keys that encrypt request identifiers.
	Keys seal.Wrapper
}

// Open connects to PostgreSQL at url. It does not migrate; call Migrate.
func Open(ctx context.Context, url string, opt Options) (*sqlstore.Store, error) {
	pool, err := connect(ctx, url, opt)
	if err != nil {
		return nil, err
	}
	return sqlstore.New(pgConn{pool}, dialect, opt.Keys), nil
}

func connect(ctx context.Context, url string, opt Options) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The parse error may quote the URL, password included.
		return nil, errors.New("postgres: the store URL is not a valid PostgreSQL connection string")
	}
	if opt.MaxConns > 0 {
		cfg.MaxConns = opt.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: cannot reach the database: %w", err)
	}
	return pool, nil
}

// Migrate applies the embedded schema migrations to the database at url and
// returns how many were new.
func Migrate(ctx context.Context, url string) (int, error) {
	pool, err := connect(ctx, url, Options{MaxConns: 2})
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return 0, err
	}
	return sqlstore.Migrate(ctx, pgConn{pool}, dialect, sub)
}

// pgConn adapts a pgx pool to sqlstore.Conn. Every error passes through
// outage, so that a database that cannot be reached is store.ErrUnavailable
// to the layers above (and a 503 to clients), not an internal error.
type pgConn struct{ pool *pgxpool.Pool }

func (c pgConn) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := c.pool.Exec(ctx, q, args...)
	return tag.RowsAffected(), outage(ctx, err)
}

func (c pgConn) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	rows, err := c.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, outage(ctx, err)
	}
	return pgRows{rows, ctx}, nil
}

func (c pgConn) Begin(ctx context.Context) (sqlstore.TxConn, error) {
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return nil, outage(ctx, err)
	}
	return pgTx{tx}, nil
}

func (c pgConn) Ping(ctx context.Context) error { return outage(ctx, c.pool.Ping(ctx)) }
func (c pgConn) Close()                         { c.pool.Close() }

type pgTx struct{ tx pgx.Tx }

func (t pgTx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := t.tx.Exec(ctx, q, args...)
	return tag.RowsAffected(), outage(ctx, err)
}

func (t pgTx) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	rows, err := t.tx.Query(ctx, q, args...)
	if err != nil {
		return nil, outage(ctx, err)
	}
	return pgRows{rows, ctx}, nil
}

func (t pgTx) Commit(ctx context.Context) error   { return outage(ctx, t.tx.Commit(ctx)) }
func (t pgTx) Rollback(ctx context.Context) error { return outage(ctx, t.tx.Rollback(ctx)) }

// pgRows classifies the errors that surface while reading rows: the
// connection can drop half-way through a result.
type pgRows struct {
	pgx.Rows
	ctx context.Context
}

func (r pgRows) Err() error             { return outage(r.ctx, r.Rows.Err()) }
func (r pgRows) Scan(dest ...any) error { return outage(r.ctx, r.Rows.Scan(dest...)) }
