// Package sqlite is the embedded SQLite store (pure Go, modernc.org/sqlite)
// that `lethe dev` and single-machine installs use.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/lethe-dev/lethe/internal/seal"
	"github.com/lethe-dev/lethe/internal/store/sqlstore"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

var dialect = &sqlstore.Dialect{
	Name:    "sqlite",
	TimeArg: sqlstore.SQLiteTime,
	IsUniqueViolation: func(err error) bool {
		c := code(err)
		return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	},
	IsRetryable: func(err error) bool {
		c := code(err) & 0xff
		return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
	},
}

func code(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

// Open opens (creating if needed) the database file at path and applies the
// embedded migrations. keys wrap the data keys of request identifiers.
func Open(ctx context.Context, path string, keys seal.Wrapper) (*sqlstore.Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: store path %q must be a plain file path", path)
	}
	// WAL lets readers run beside the one writer; immediate transactions
	// take the write lock up front so two writers queue instead of failing
	// half-way; the busy timeout is how long they queue.
	// secure_delete zeroes deleted content, so a shredded data key does not
	// linger in free pages.
	dsn := "file:" + path + "?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=secure_delete(1)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	db.SetMaxOpenConns(4)
	conn := sqlstore.SQLDB{DB: db}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		db.Close()
		return nil, err
	}
	if _, err := sqlstore.Migrate(ctx, conn, dialect, sub); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return sqlstore.New(conn, dialect, keys), nil
}
