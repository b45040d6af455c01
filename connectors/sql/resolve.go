package sqlconn

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lethe-dev/lethe/connectors"
)

// maxResolveRows bounds what one resolve query may return for one subject:
// more means its WHERE clause does not single a person out.
const maxResolveRows = 10_000

// resolveNow runs every resolve query the subject's identifiers allow, in
// one read-only transaction, and reports each non-NULL value of the mapped
// columns of every row. Finding nothing is not an error.
func (c *conn) resolveNow(ctx context.Context, s connectors.Subject) (connectors.Resolution, error) {
	var r connectors.Resolution
	if err := ctx.Err(); err != nil {
		return r, classify(err, "resolve", s)
	}
	type run struct {
		resolveQuery
		args []any
		at   int // its evidence, in config order
	}
	var runs []run
	r.Evidence = make([]connectors.Evidence, len(c.resolve))
	for i, q := range c.resolve {
		args, missing := bind(q.stmt, s)
		if missing != "" {
			r.Evidence[i] = connectors.Evidence{Kind: "resolve", Value: q.name + ": not run, no " + string(missing)}
			continue
		}
		runs = append(runs, run{q, args, i})
	}
	if len(runs) == 0 {
		return r, nil
	}
	// Read-only: PostgreSQL and MySQL refuse a write hidden in a resolve
	// query. The transaction is rolled back, never committed, so on SQLite
	// (whose read-only transactions are not enforced) such a write is
	// undone. On MySQL it also keeps SHOW WARNINGS on our connection.
	tx, err := c.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return connectors.Resolution{}, classify(err, "resolve", s)
	}
	defer tx.Rollback() //nolint:errcheck // never committed: nothing to keep
	for _, q := range runs {
		n, err := c.resolveOne(ctx, tx, q.resolveQuery, q.args, &r)
		if err != nil {
			return connectors.Resolution{}, resolveError(err, "resolve "+q.name, s, r)
		}
		r.Evidence[q.at] = connectors.Evidence{Kind: "resolve", Value: q.name + ": " + rows(n)}
	}
	return r, nil
}

// resolveOne runs q and adds what it found to r; it returns the rows read.
func (c *conn) resolveOne(ctx context.Context, tx *sql.Tx, q resolveQuery, args []any, r *connectors.Resolution) (int64, error) {
	rs, err := tx.QueryContext(ctx, q.query, args...)
	if err != nil {
		return 0, err
	}
	defer rs.Close()
	names, err := rs.Columns()
	if err != nil {
		return 0, err
	}
	at, err := columnIndexes(q, names)
	if err != nil {
		return 0, err
	}
	dest := make([]any, len(names))
	for i := range dest {
		dest[i] = new(any)
	}
	var n int64
	for rs.Next() {
		if n++; n > maxResolveRows {
			return 0, connectors.Permanentf("the query returned more than %d rows for one subject; narrow its WHERE clause (SELECT DISTINCT helps)", maxResolveRows)
		}
		if err := rs.Scan(dest...); err != nil {
			return 0, err
		}
		for i, col := range q.columns {
			v, err := identifierText(*dest[at[i]].(*any))
			if err != nil {
				return 0, connectors.Permanentf("column %q: %w", col.name, err)
			}
			r.Add(col.kind, strings.TrimSpace(v))
		}
	}
	if err := rs.Err(); err != nil {
		return 0, err
	}
	if err := rs.Close(); err != nil {
		return 0, err
	}
	return n, c.checkConversions(ctx, tx)
}

// columnIndexes finds each mapped column in the result, ignoring case
// (PostgreSQL folds unquoted names to lower case, MySQL keeps them).
func columnIndexes(q resolveQuery, names []string) ([]int, error) {
	at := make([]int, len(q.columns))
	for i, col := range q.columns {
		at[i] = -1
		for j, name := range names {
			if !strings.EqualFold(name, col.name) {
				continue
			}
			if at[i] >= 0 {
				return nil, connectors.Permanentf("the result has two columns named %q: rename one with AS", col.name)
			}
			at[i] = j
		}
		if at[i] < 0 {
			return nil, connectors.Permanentf("kinds names column %q, which is not in the query's result (%s): fix kinds or add the column to the SELECT", col.name, strings.Join(names, ", "))
		}
	}
	return at, nil
}

// identifierText turns a column value into an identifier: text as it is,
// integers in decimal, NULL as "" (skipped).
func identifierText(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case []byte:
		if !utf8.Valid(v) {
			return "", errors.New("holds bytes that are not text; convert it in the query (hex(), encode(…, 'hex'), a cast to text)")
		}
		return string(v), nil
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(rv.Uint(), 10), nil
	}
	return "", fmt.Errorf("holds values of type %T, which are not identifiers; cast it to text in the query", v)
}

// resolveError classifies err like an erase error, with the values found
// so far redacted as well as the subject's; writes refused by the
// read-only transaction get a hint of their own.
func resolveError(err error, what string, s connectors.Subject, r connectors.Resolution) error {
	red := s
	for i, v := range r.Values() {
		red = red.With(connectors.UserIDKind(fmt.Sprintf("found-%d", i)), v)
	}
	var (
		ce    *connectors.Error
		pgErr *pgconn.PgError
		myErr *mysql.MySQLError
	)
	switch {
	case errors.As(err, &ce):
		// Our own message (a missing column, too many rows): no values.
		return connectors.Permanent(&dbError{msg: red.Redact(what + ": " + ce.Err.Error()), err: err})
	case errors.As(err, &pgErr) && pgErr.Code == "25006", errors.As(err, &myErr) && myErr.Number == 1792:
		return connectors.Permanent(&dbError{msg: what + ": the query tried to write; resolve queries run read-only and must only SELECT", err: err})
	}
	return classify(err, what, red)
}
