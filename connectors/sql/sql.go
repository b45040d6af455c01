// Package sqlconn is the sql connector: it deletes or anonymises a data
// subject's rows in the organisation's own PostgreSQL, MySQL/MariaDB or
// SQLite databases with parameterised statements from config, all of one
// erase in a single transaction.
package sqlconn

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"

	"github.com/lethe-dev/lethe/connectors"
)

// Drivers the connector speaks.
const (
	driverPostgres = "postgres"
	driverMySQL    = "mysql"
	driverSQLite   = "sqlite"
)

func init() {
	connectors.Register("sql", "Rows in your own PostgreSQL, MySQL/MariaDB or SQLite databases, by configured statements",
		connectors.Limits{Concurrency: 4}, build, connectors.Discovers())
}

// conn is a connector instance: it erases and scans. The types that
// embed it add Verify and Resolve only when the config has verify or
// resolve queries, so the runtime's type assertions tell the truth about
// what the instance can do.
type conn struct {
	db         *sql.DB
	driver     string
	userSystem string
	statements []stmt
	verify     []stmt
	resolve    []resolveQuery
	scan       []ScanQuery
	ignore     []connectors.Ignore
}

// verifyingConn adds Verify: built only with verify queries, so the
// runtime knows when no post-erasure lookup is possible.
type verifyingConn struct{ *conn }

// resolvingConn adds Resolve: built only with resolve queries.
type resolvingConn struct{ *conn }

// verifyingResolvingConn has both.
type verifyingResolvingConn struct{ *conn }

// Verify implements connectors.Verifier.
func (c verifyingConn) Verify(ctx context.Context, s connectors.Subject) (connectors.Verification, error) {
	return c.conn.verifyNow(ctx, s)
}

// Resolve implements connectors.Resolver.
func (c resolvingConn) Resolve(ctx context.Context, s connectors.Subject) (connectors.Resolution, error) {
	return c.conn.resolveNow(ctx, s)
}

// Verify implements connectors.Verifier.
func (c verifyingResolvingConn) Verify(ctx context.Context, s connectors.Subject) (connectors.Verification, error) {
	return c.conn.verifyNow(ctx, s)
}

// Resolve implements connectors.Resolver.
func (c verifyingResolvingConn) Resolve(ctx context.Context, s connectors.Subject) (connectors.Resolution, error) {
	return c.conn.resolveNow(ctx, s)
}

func build(_ context.Context, name string, cfg Config, deps connectors.Deps) (connectors.Connector, error) {
	getenv := deps.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	dsn, err := cfg.DSN.Reveal(getenv)
	if err != nil {
		return nil, fmt.Errorf("dsn: %w", err)
	}
	sys := cfg.userSystem(name)
	statements, err := compile(cfg.Driver, sys, "statements", "statement", cfg.Statements)
	if err != nil {
		return nil, err
	}
	verify, err := compile(cfg.Driver, sys, "verify", "verify", cfg.Verify)
	if err != nil {
		return nil, err
	}
	resolve, err := compileResolve(cfg.Driver, sys, cfg.Resolve)
	if err != nil {
		return nil, err
	}
	db, err := open(cfg.Driver, dsn)
	if err != nil {
		return nil, err
	}
	c := &conn{db: db, driver: cfg.Driver, userSystem: sys, statements: statements, verify: verify, resolve: resolve, scan: cfg.Scan, ignore: cfg.Ignore}
	switch {
	case len(verify) > 0 && len(resolve) > 0:
		return verifyingResolvingConn{c}, nil
	case len(verify) > 0:
		return verifyingConn{c}, nil
	case len(resolve) > 0:
		return resolvingConn{c}, nil
	}
	return c, nil
}

// open prepares a connection pool without connecting: a database that is
// briefly down must not stop Lethe from starting.
func open(drv, dsn string) (*sql.DB, error) {
	var db *sql.DB
	switch drv {
	case driverPostgres:
		pc, err := pgx.ParseConfig(dsn)
		if err != nil {
			return nil, fmt.Errorf("dsn: %w", err)
		}
		if pc.DefaultQueryExecMode == pgx.QueryExecModeSimpleProtocol {
			return nil, errors.New("dsn: default_query_exec_mode=simple_protocol makes the driver write values into the SQL text; use exec (it works behind PgBouncer too)")
		}
		if pc.ConnectTimeout == 0 {
			pc.ConnectTimeout = 10 * time.Second
		}
		db = stdlib.OpenDB(*pc)
	case driverMySQL:
		mc, err := mysql.ParseDSN(dsn)
		if err != nil {
			return nil, fmt.Errorf("dsn: %w", err)
		}
		if mc.InterpolateParams {
			return nil, errors.New("dsn: interpolateParams=true makes the driver write values into the SQL text; remove it")
		}
		if mc.Timeout == 0 {
			mc.Timeout = 10 * time.Second
		}
		connector, err := mysql.NewConnector(mc)
		if err != nil {
			return nil, fmt.Errorf("dsn: %w", err)
		}
		db = sql.OpenDB(connector)
	case driverSQLite:
		var err error
		if db, err = sql.Open("sqlite", sqliteDSN(dsn)); err != nil {
			return nil, fmt.Errorf("dsn: %w", err)
		}
		// SQLite has one writer; queueing here beats SQLITE_BUSY.
		db.SetMaxOpenConns(1)
	default:
		return nil, fmt.Errorf("driver: %q is not one of postgres, mysql, sqlite", drv)
	}
	if drv != driverSQLite {
		db.SetMaxOpenConns(8)
	}
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(30 * time.Minute)
	return db, nil
}

// sqliteDSN makes transactions take the write lock when they begin and wait
// for other writers, unless the DSN says otherwise.
func sqliteDSN(dsn string) string {
	add := func(dsn, key, param string) string {
		if strings.Contains(dsn, key) {
			return dsn
		}
		if strings.Contains(dsn, "?") {
			return dsn + "&" + param
		}
		return dsn + "?" + param
	}
	dsn = add(dsn, "_txlock", "_txlock=immediate")
	return add(dsn, "busy_timeout", "_busy_timeout=5000")
}

// Close closes the connection pool.
func (c *conn) Close() error { return c.db.Close() }

// bind returns the arguments of st for s, or the kind of identifier it
// needs and s lacks.
func bind(st stmt, s connectors.Subject) (args []any, missing connectors.Kind) {
	for _, k := range st.kinds {
		v := s.Get(k)
		if v == "" {
			return nil, k
		}
		args = append(args, v)
	}
	return args, ""
}

// Erase runs every statement the subject's identifiers allow, in one
// transaction, and reports the rows they affected and the kinds of
// identifier they were bound to.
func (c *conn) Erase(ctx context.Context, s connectors.Subject) (connectors.Outcome, error) {
	if err := ctx.Err(); err != nil {
		return connectors.Outcome{}, classify(err, "erase", s)
	}
	type run struct {
		stmt
		args []any
		at   int // its evidence, in config order
	}
	var (
		runs    []run
		ev      = make([]connectors.Evidence, len(c.statements))
		lacking []connectors.Kind
	)
	for i, st := range c.statements {
		args, missing := bind(st, s)
		if missing != "" {
			ev[i] = connectors.Evidence{Kind: "statement", Value: st.name + ": skipped, the subject has no " + string(missing)}
			lacking = append(lacking, missing)
			continue
		}
		runs = append(runs, run{st, args, i})
	}
	if len(runs) == 0 {
		// Nothing was searched: not_found would claim a search.
		return connectors.Outcome{}, connectors.Permanentf("no statement can run: each needs an identifier the subject lacks (%s); "+
			"the instance's keys must require what its statements use", kindList(lacking))
	}

	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return connectors.Outcome{}, classify(err, "begin transaction", s)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	var (
		total int64
		bound []stmt
	)
	for _, r := range runs {
		res, err := tx.ExecContext(ctx, r.query, r.args...)
		if err != nil {
			return connectors.Outcome{}, classify(err, "statement "+r.name, s)
		}
		n, err := res.RowsAffected()
		if err == nil {
			err = c.checkConversions(ctx, tx)
		}
		if err != nil {
			return connectors.Outcome{}, classify(err, "statement "+r.name, s)
		}
		total += n
		bound = append(bound, r.stmt)
		ev[r.at] = connectors.Evidence{Kind: "statement", Value: r.name + ": " + rows(n)}
	}
	if err := tx.Commit(); err != nil {
		return connectors.Outcome{}, classify(err, "commit", s)
	}
	out := connectors.Erased(total, ev...)
	out.SearchedBy = kindsOf(bound)
	return out, nil
}

// kindList names kinds for a message: "email, phone".
func kindList(ks []connectors.Kind) string {
	ks = kindsOf([]stmt{{kinds: ks}})
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// verifyNow runs the verify queries and sums their counts.
func (c *conn) verifyNow(ctx context.Context, s connectors.Subject) (connectors.Verification, error) {
	var v connectors.Verification
	if err := ctx.Err(); err != nil {
		return v, classify(err, "verify", s)
	}
	var lacking []connectors.Kind
	ran := 0
	// One connection, so that MySQL's warnings belong to our query.
	db, err := c.db.Conn(ctx)
	if err != nil {
		return v, classify(err, "verify", s)
	}
	defer db.Close()
	for _, st := range c.verify {
		args, missing := bind(st, s)
		if missing != "" {
			v.Evidence = append(v.Evidence, connectors.Evidence{Kind: "verify", Value: st.name + ": skipped, the subject has no " + string(missing)})
			lacking = append(lacking, missing)
			continue
		}
		var n sql.NullInt64
		err := db.QueryRowContext(ctx, st.query, args...).Scan(&n)
		if err == nil {
			err = c.checkConversions(ctx, db)
		}
		if err != nil {
			return connectors.Verification{}, classify(err, "verify "+st.name, s)
		}
		ran++
		v.Remaining += n.Int64
		v.Evidence = append(v.Evidence, connectors.Evidence{Kind: "verify", Value: st.name + ": " + rows(n.Int64)})
	}
	if ran == 0 {
		// Zero remaining would certify a lookup that never happened.
		return connectors.Verification{}, connectors.Permanentf("verify: no verify query can run: each needs an identifier the subject lacks (%s)", kindList(lacking))
	}
	return v, nil
}

// errConversion reports that MySQL converted a bound value lossily.
var errConversion = errors.New("MySQL converted a value to compare it with a column of another type " +
	"(e.g. a non-numeric user id with an integer id), so the statement could match other rows; " +
	"the transaction was rolled back. Compare placeholders with columns of their type")

// checkConversions fails when the last MySQL statement on q converted a
// value lossily. MySQL compares '1 OR 1=1' with an integer column as 1 and
// only warns; erasing customer 1 on that warning would be a disaster.
func (c *conn) checkConversions(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) error {
	if c.driver != driverMySQL {
		return nil
	}
	rs, err := q.QueryContext(ctx, "SHOW WARNINGS")
	if err != nil {
		return err
	}
	defer rs.Close()
	for rs.Next() {
		var level, msg string // msg may quote the value: never use it
		var code int
		if err := rs.Scan(&level, &code, &msg); err != nil {
			return err
		}
		switch code {
		case 1264, 1265, 1292, 1366: // out of range, truncated, incorrect value
			return fmt.Errorf("MySQL warning %d: %w", code, errConversion)
		}
	}
	return rs.Err()
}

func rows(n int64) string {
	if n == 1 {
		return "1 row"
	}
	return fmt.Sprintf("%d rows", n)
}

// dbError carries a driver error under a message of our own: driver text can
// echo a bound value (PostgreSQL's `invalid input syntax for type integer:
// "…"`, MySQL's `Truncated incorrect DOUBLE value: '…'`), so only text from
// errors known not to carry values reaches Error(). Unwrap still gives the
// driver error to code that inspects it.
type dbError struct {
	msg string
	err error
}

func (e *dbError) Error() string { return e.msg }
func (e *dbError) Unwrap() error { return e.err }

// classify wraps err as a permanent or retryable connectors.Error whose
// message names what failed and what staff can do about it.
func classify(err error, what string, s connectors.Subject) error {
	permanent, detail := diagnose(err)
	e := &dbError{msg: s.Redact(what + ": " + detail), err: err}
	if permanent {
		return connectors.Permanent(e)
	}
	return connectors.Retryable(e, 0)
}

func diagnose(err error) (permanent bool, detail string) {
	var (
		pgErr   *pgconn.PgError
		myErr   *mysql.MySQLError
		liteErr *sqlite.Error
		netErr  net.Error
		connErr *pgconn.ConnectError
	)
	switch {
	case errors.Is(err, context.Canceled):
		return false, "cancelled"
	case errors.Is(err, context.DeadlineExceeded):
		return false, "timed out"
	case errors.Is(err, errConversion):
		return true, err.Error()
	case errors.As(err, &pgErr):
		return diagnosePostgres(pgErr)
	case errors.As(err, &myErr):
		return diagnoseMySQL(myErr)
	case errors.As(err, &liteErr):
		return diagnoseSQLite(liteErr)
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, mysql.ErrInvalidConn),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return false, "the connection to the database broke"
	case errors.As(err, &connErr), errors.As(err, &netErr):
		// Dial and connect errors carry addresses and user names, never
		// subject data.
		return false, "cannot reach the database: " + err.Error()
	}
	// Unknown errors come from the driver converting or sending a value; a
	// retry may help and the task's attempts bound it.
	return false, fmt.Sprintf("driver error (%T)", err)
}

// diagnosePostgres classifies by SQLSTATE class
// (https://www.postgresql.org/docs/current/errcodes-appendix.html).
func diagnosePostgres(e *pgconn.PgError) (bool, string) {
	with := func(hint string) string {
		return fmt.Sprintf("PostgreSQL error %s: %s (%s)", e.Code, e.Message, hint)
	}
	code := e.Code
	switch class := code[:min(2, len(code))]; {
	case code == "55P03":
		return false, with("a lock was not available")
	case class == "08", class == "53", class == "57", class == "58":
		return false, with("the server is unavailable or overloaded")
	case class == "XX":
		return false, fmt.Sprintf("PostgreSQL error %s: internal server error", code)
	case class == "40":
		return false, with("the transaction was rolled back by a conflict; it will be retried")
	case class == "28":
		return true, with("check the user and password in dsn")
	case class == "3D", class == "3F":
		return true, with("check the database and search_path in dsn")
	case code == "42501":
		return true, with("grant the database user what the statements need")
	case class == "42":
		return true, with("check the table and column names and the syntax of the statement")
	case class == "23":
		return true, with("an integrity constraint refused the change; erase dependent rows first or detach them")
	case class == "25":
		return true, with("the database refused to write; is dsn pointing at a read-only replica?")
	case class == "22":
		// The message may quote the value: leave it out.
		return true, fmt.Sprintf("PostgreSQL error %s: a value did not fit the column it is compared with (cast the placeholder or bind it to a column of the right type)", code)
	}
	return true, fmt.Sprintf("PostgreSQL error %s", code)
}

// diagnoseMySQL classifies by MySQL/MariaDB error number.
func diagnoseMySQL(e *mysql.MySQLError) (bool, string) {
	with := func(hint string) string {
		return fmt.Sprintf("MySQL error %d: %s (%s)", e.Number, e.Message, hint)
	}
	switch e.Number {
	case 1205, 1213:
		return false, with("lock conflict; it will be retried")
	case 1040, 1053, 1152, 1158, 1159, 1160, 1161, 1317, 1927, 1969, 3024, 4031:
		return false, with("the server is unavailable, overloaded or interrupted the query")
	case 1044, 1045, 1698:
		return true, with("check the user and password in dsn")
	case 1046, 1049:
		return true, with("check the database name in dsn")
	case 1142, 1143, 1227:
		return true, with("grant the database user what the statements need")
	case 1054, 1064, 1109, 1146, 1149:
		return true, with("check the table and column names and the syntax of the statement")
	case 1048, 1062, 1451, 1452, 3819:
		return true, with("an integrity constraint refused the change; erase dependent rows first or detach them")
	case 1290, 1792:
		return true, with("the database refused to write; is dsn pointing at a read-only server?")
	}
	// Other messages (e.g. 1292 Truncated incorrect value) may quote the value.
	return true, fmt.Sprintf("MySQL error %d (SQLSTATE %s)", e.Number, e.SQLState[:])
}

// diagnoseSQLite classifies by primary result code
// (https://www.sqlite.org/rescode.html).
func diagnoseSQLite(e *sqlite.Error) (bool, string) {
	with := func(hint string) string {
		return fmt.Sprintf("SQLite error %d: %s (%s)", e.Code(), e.Error(), hint)
	}
	switch e.Code() & 0xff {
	case 5, 6: // BUSY, LOCKED
		return false, with("another connection holds a lock; it will be retried")
	case 10: // IOERR
		return false, with("an I/O error")
	case 1: // ERROR
		return true, with("check the table and column names and the syntax of the statement")
	case 19: // CONSTRAINT
		return true, with("an integrity constraint refused the change; erase dependent rows first or detach them")
	case 3, 8, 14, 23, 26: // PERM, READONLY, CANTOPEN, AUTH, NOTADB
		return true, with("check the file in dsn and its permissions")
	}
	return true, fmt.Sprintf("SQLite error %d", e.Code())
}

// Scan implements connectors.Scanner with the configured scan queries.
func (c *conn) Scan(ctx context.Context, fn func(connectors.Subject) error) error {
	if len(c.scan) == 0 {
		return connectors.ErrCannotScan
	}
	for _, q := range c.scan {
		if err := c.scanOne(ctx, q, fn); err != nil {
			return err
		}
	}
	return nil
}

func (c *conn) scanOne(ctx context.Context, q ScanQuery, fn func(connectors.Subject) error) error {
	name := q.Name
	if name == "" {
		name = q.SQL
	}
	kind, err := scanKind(q.Kind, c.userSystem)
	if err != nil {
		return connectors.Permanent(fmt.Errorf("scan %s: kind: %w", name, err))
	}
	rows, err := c.db.QueryContext(ctx, q.SQL)
	if err != nil {
		return classify(err, "scan "+name, connectors.Subject{})
	}
	defer rows.Close()
	for rows.Next() {
		var v sql.NullString
		if err := rows.Scan(&v); err != nil {
			return classify(err, "scan "+name, connectors.Subject{})
		}
		if !v.Valid || v.String == "" {
			continue
		}
		s := connectors.Subject{}.With(kind, v.String)
		if err := fn(s); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return classify(err, "scan "+name, connectors.Subject{})
	}
	return nil
}
