package sqlstore

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Migrate applies the numbered migrations in dir of fsys (files named
// "0001_name.sql") that the database has not seen, each in its own
// transaction, and returns how many it applied. Several processes may run it
// at once: the dialect's MigrateLock makes them take turns.
func Migrate(ctx context.Context, conn Conn, d *Dialect, fsys fs.FS) (int, error) {
	rw := &rewriter{d: d}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	type migration struct {
		version int
		name    string
	}
	var ms []migration
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".sql") {
			continue
		}
		v, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil {
			return 0, fmt.Errorf("migrate: %s: name must start with a number", name)
		}
		ms = append(ms, migration{v, name})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	applied := 0
	for _, m := range ms {
		body, err := fs.ReadFile(fsys, m.name)
		if err != nil {
			return applied, fmt.Errorf("migrate: %w", err)
		}
		did, err := migrateOne(ctx, conn, d, rw, m.version, m.name, string(body))
		if err != nil {
			return applied, fmt.Errorf("migrate %s: %w", m.name, err)
		}
		if did {
			applied++
		}
	}
	return applied, nil
}

func migrateOne(ctx context.Context, conn Conn, d *Dialect, rw *rewriter, version int, name, body string) (done bool, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil || !done {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if d.MigrateLock != "" {
		if _, err := tx.Exec(ctx, d.MigrateLock); err != nil {
			return false, err
		}
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		return false, err
	}
	rows, err := tx.Query(ctx, rw.q(`SELECT count(*) FROM schema_migrations WHERE version = $1`), version)
	if err != nil {
		return false, err
	}
	var n int
	if rows.Next() {
		err = rows.Scan(&n)
	}
	rows.Close()
	if err != nil {
		return false, err
	}
	if n > 0 {
		return false, nil
	}
	if _, err := tx.Exec(ctx, body); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, rw.q(`INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`),
		version, name, time.Now().UTC().Format(time.RFC3339)); err != nil {
		return false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return false, err
	}
	return true, nil
}
