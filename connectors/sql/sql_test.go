package sqlconn

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/connectors/connectortest"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// backend is one real database with the shop schema, and the test's own
// path to its data.
type backend struct {
	driver string
	dsn    string  // what the connector connects with
	db     *sql.DB // how the test seeds and counts, bypassing the connector
	next   atomic.Int64
}

var drivers = []string{driverPostgres, driverMySQL, driverSQLite}

// forEachDriver runs f in parallel against a fresh database of each driver.
func forEachDriver(t *testing.T, f func(t *testing.T, b *backend)) {
	for _, d := range drivers {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			f(t, newBackend(t, d))
		})
	}
}

func newBackend(t *testing.T, drv string) *backend {
	t.Helper()
	b := &backend{driver: drv}
	var err error
	switch drv {
	case driverPostgres:
		b.dsn = testenv.PostgresSchema(t)
		b.db, err = sql.Open("pgx", b.dsn)
	case driverMySQL:
		b.dsn = testenv.MySQLDatabase(t)
		b.db, err = sql.Open("mysql", b.dsn)
	case driverSQLite:
		path := filepath.Join(t.TempDir(), "shop.db")
		b.dsn = path + "?_pragma=foreign_keys(1)"
		b.db, err = sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)")
	}
	testenv.Must(t, err)
	t.Cleanup(func() { b.db.Close() })
	// deleted_at marks a soft-deleted row: the application hides it and
	// can restore it, so it is still held.
	timestamp := map[string]string{driverPostgres: "TIMESTAMPTZ", driverMySQL: "DATETIME", driverSQLite: "TEXT"}[drv]
	for _, stmt := range []string{
		`CREATE TABLE customers (id INTEGER PRIMARY KEY, email VARCHAR(254) NOT NULL, phone VARCHAR(32),
			app_user_id VARCHAR(64), legacy_no BIGINT, deleted_at ` + timestamp + ` NULL)`,
		`CREATE INDEX customers_email ON customers (email)`,
		`CREATE INDEX customers_app_user_id ON customers (app_user_id)`,
		`CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, email VARCHAR(254), shipping_address VARCHAR(200),
			deleted_at ` + timestamp + ` NULL,
			FOREIGN KEY (customer_id) REFERENCES customers (id))`,
		`CREATE INDEX orders_email ON orders (email)`,
		`CREATE TABLE newsletter_signups (id INTEGER PRIMARY KEY, email VARCHAR(254) NOT NULL)`,
		`CREATE INDEX newsletter_email ON newsletter_signups (email)`,
	} {
		if _, err := b.db.Exec(stmt); err != nil {
			t.Fatalf("create schema: %v", err)
		}
	}
	return b
}

// q writes ? parameters the way the driver wants them.
func (b *backend) q(query string) string {
	if b.driver != driverPostgres {
		return query
	}
	for n := 1; strings.Contains(query, "?"); n++ {
		query = strings.Replace(query, "?", "$"+strconv.Itoa(n), 1)
	}
	return query
}

func (b *backend) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	if _, err := b.db.Exec(b.q(query), args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func (b *backend) count(t *testing.T, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := b.db.QueryRow(b.q(query), args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// seed stores a customer with two orders and a newsletter signup, and
// returns the customer id and the rows the standard statements touch. The
// customer's app user id is s.UserIDs["app"], or appUserID(s); its legacy
// number is legacyNo(s).
func (b *backend) seed(t *testing.T, s connectors.Subject) (id int64, rows int64) {
	t.Helper()
	id = b.insertCustomer(t, s, false)
	b.exec(t, "INSERT INTO orders (id, customer_id, email, shipping_address) VALUES (?, ?, ?, '1 High Street'), (?, ?, ?, '2 Low Road')",
		1000+2*id, id, s.Email, 1001+2*id, id, s.Email)
	b.exec(t, "INSERT INTO newsletter_signups (id, email) VALUES (?, ?)", id, s.Email)
	return id, 4
}

// seedSoftDeleted stores a customer and an order that the application
// has soft-deleted (deleted_at set): hidden from its users, restorable by
// clearing deleted_at. It returns the rows.
// sqliteShop is a SQLite shop database holding the rows of a subject
// known by email: the database, the subject and how many rows.
func sqliteShop(t *testing.T, email string) (*backend, connectors.Subject, int64) {
	b := newBackend(t, driverSQLite)
	s := connectors.Subject{Email: email}
	_, rows := b.seed(t, s)
	return b, s, rows
}

func (b *backend) seedSoftDeleted(t *testing.T, s connectors.Subject) int64 {
	t.Helper()
	id := b.insertCustomer(t, s, true)
	b.exec(t, "INSERT INTO orders (id, customer_id, email, shipping_address, deleted_at) VALUES (?, ?, ?, '3 Old Lane', CURRENT_TIMESTAMP)",
		1000+2*id, id, s.Email)
	return 2
}

func (b *backend) insertCustomer(t *testing.T, s connectors.Subject, deleted bool) int64 {
	t.Helper()
	id := b.next.Add(1) - 1 // customer ids 0, 1, 2, …
	var phone any
	if s.Phone != "" {
		phone = s.Phone
	}
	deletedAt := "NULL"
	if deleted {
		deletedAt = "CURRENT_TIMESTAMP"
	}
	b.exec(t, "INSERT INTO customers (id, email, phone, app_user_id, legacy_no, deleted_at) VALUES (?, ?, ?, ?, ?, "+deletedAt+")",
		id, s.Email, phone, appUserID(s), legacyNo(s))
	return id
}

// appUserID is the app user id seed stores for s.
func appUserID(s connectors.Subject) string {
	if id := s.UserIDs["app"]; id != "" {
		return id
	}
	return fmt.Sprintf("app-%08x", crc32.ChecksumIEEE([]byte(s.Email)))
}

// legacyNo is the integer customer number seed stores for s.
func legacyNo(s connectors.Subject) int64 {
	return int64(crc32.ChecksumIEEE([]byte("legacy " + s.Email)))
}

// held counts rows still holding the subject's email; anonymised orders
// do not.
func (b *backend) held(t *testing.T, s connectors.Subject) int64 {
	t.Helper()
	return b.count(t, "SELECT count(*) FROM customers WHERE email = ?", s.Email) +
		b.count(t, "SELECT count(*) FROM orders WHERE email = ?", s.Email) +
		b.count(t, "SELECT count(*) FROM newsletter_signups WHERE email = ?", s.Email)
}

func (b *backend) total(t *testing.T) int64 {
	t.Helper()
	return b.count(t, "SELECT count(*) FROM customers") +
		b.count(t, "SELECT count(*) FROM orders WHERE email IS NOT NULL") +
		b.count(t, "SELECT count(*) FROM newsletter_signups")
}

// config returns connector YAML for this backend, with the DSN in a secret
// file.
func (b *backend) config(t *testing.T, dsn, rest string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dsn")
	testenv.Must(t, os.WriteFile(path, []byte(dsn+"\n"), 0o600))
	return fmt.Sprintf("driver: %s\ndsn: {file: %q}\n%s", b.driver, path, rest)
}

// build builds a connector through the registry and closes it at the end.
func (b *backend) build(t *testing.T, name, dsn, rest string) connectors.Connector {
	t.Helper()
	c := connectortest.Build(t, "sql", name, b.config(t, dsn, rest))
	closer, ok := c.(io.Closer)
	if !ok {
		t.Fatal("the sql connector does not implement io.Closer")
	}
	t.Cleanup(func() { closer.Close() })
	return c
}

const shopStatements = `
statements:
  - name: newsletter
    sql: DELETE FROM newsletter_signups WHERE email = :email
  - name: orders
    sql: |
      UPDATE orders SET email = NULL, shipping_address = NULL, customer_id = NULL
      WHERE email = :email OR customer_id IN (SELECT id FROM customers WHERE email = :email)
  - name: customers
    sql: DELETE FROM customers WHERE email = :email
`

const shopVerify = `
verify:
  - name: customers
    sql: SELECT count(*) FROM customers WHERE email = :email
  - name: orders
    sql: SELECT count(*) FROM orders WHERE email = :email
`

// faulty returns a connector that will meet f, or nil when the database
// cannot produce it.
func (b *backend) faulty(t *testing.T, f connectortest.Fault) connectors.Connector {
	dsn := b.dsn
	switch {
	case f == connectortest.FaultMisconfigured:
		return b.build(t, "shop", dsn, "statements:\n  - sql: DELETE FROM no_such_table WHERE email = :email\n")
	case f == connectortest.FaultRateLimited, b.driver == driverSQLite:
		return nil // no rate limits; SQLite has no server and no users
	case b.driver == driverPostgres:
		u, err := url.Parse(dsn)
		testenv.Must(t, err)
		if f == connectortest.FaultUnavailable {
			u.Host = "127.0.0.1:1"
		} else {
			u.User = url.User("lethe_no_such_role") // trust auth accepts any password of a real role
		}
		dsn = u.String()
	case b.driver == driverMySQL:
		cfg, err := mysql.ParseDSN(dsn)
		testenv.Must(t, err)
		if f == connectortest.FaultUnavailable {
			cfg.Addr = "127.0.0.1:1"
		} else {
			cfg.User, cfg.Passwd = "lethe_no_such_user", "wrong"
		}
		dsn = cfg.FormatDSN()
	}
	return b.build(t, "shop", dsn, shopStatements)
}

// unreachable is a DSN that fails if the connector ever connects.
func (b *backend) unreachable(t *testing.T) string {
	switch b.driver {
	case driverPostgres:
		return "postgres://postgres@127.0.0.1:1/test?sslmode=disable"
	case driverMySQL:
		return "root@tcp(127.0.0.1:1)/test"
	}
	return filepath.Join(t.TempDir(), "no-such-dir", "shop.db") + "?mode=rw"
}

// shopResolve finds the ids the shop keeps beside the email; its second
// query runs only for a subject whose app user id is known.
const shopResolve = `
resolve:
  - name: customer ids
    sql: SELECT app_user_id, legacy_no, phone FROM customers WHERE email = :email
    kinds: {app_user_id: user_ids.app, legacy_no: user_ids.legacy, phone: phone}
  - name: customer by app id
    sql: SELECT id FROM customers WHERE app_user_id = :user_ids.app
    kinds: {id: user_ids.customer}
`

// harness runs the conformance suite on b with the given statements and
// queries. Soft-deleted rows are the database's recoverable state: the
// shop statements and verify queries do not filter on deleted_at, so they
// erase and count them.
func (b *backend) harness(rest string) connectortest.Harness {
	return connectortest.Harness{
		New: func(t *testing.T) connectors.Connector { return b.build(t, "shop", b.dsn, rest) },
		Seed: func(t *testing.T, s connectors.Subject) int64 {
			_, n := b.seed(t, s)
			return n
		},
		Count:           b.held,
		Faulty:          b.faulty,
		SeedRecoverable: b.seedSoftDeleted,
	}
}

func TestConformance(t *testing.T) {
	forEachDriver(t, func(t *testing.T, b *backend) {
		connectortest.Run(t, b.harness(shopStatements+shopVerify))
	})
}

func TestConformanceResolver(t *testing.T) {
	forEachDriver(t, func(t *testing.T, b *backend) {
		h := b.harness(shopStatements + shopVerify + shopResolve)
		// Seeded subjects have an email only: the phone column is NULL
		// and the look-up by app id does not run.
		h.Resolves = func(s connectors.Subject) map[connectors.Kind][]string {
			return map[connectors.Kind][]string{
				connectors.UserIDKind("app"):    {appUserID(s)},
				connectors.UserIDKind("legacy"): {strconv.FormatInt(legacyNo(s), 10)},
			}
		}
		connectortest.Run(t, h)
	})
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func values(ev []connectors.Evidence) []string {
	var out []string
	for _, e := range ev {
		out = append(out, e.Kind+" "+e.Value)
	}
	return out
}

func TestEraseReportsEachStatement(t *testing.T) {
	forEachDriver(t, func(t *testing.T, b *backend) {
		s := connectors.Subject{Email: "ada@example.com"}
		b.seed(t, s)
		out, err := b.build(t, "shop", b.dsn, shopStatements).Erase(ctxFor(t), s)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"statement newsletter: 1 row", "statement orders: 2 rows", "statement customers: 1 row"}
		if out.Status != connectors.StatusErased || out.Records != 4 || !slices.Equal(values(out.Evidence), want) {
			t.Errorf("Erase = %s, %d records, %q; want erased, 4, %q", out.Status, out.Records, values(out.Evidence), want)
		}
	})
}

func TestVerifierOnlyWithVerifyQueries(t *testing.T) {
	t.Parallel()
	b := &backend{driver: driverSQLite}
	dsn := filepath.Join(t.TempDir(), "x.db")
	if _, ok := b.build(t, "shop", dsn, shopStatements).(connectors.Verifier); ok {
		t.Error("a connector without verify queries implements Verifier; the runtime would trust an empty lookup")
	}
	if _, ok := b.build(t, "shop", dsn, shopStatements+shopVerify).(connectors.Verifier); !ok {
		t.Error("a connector with verify queries does not implement Verifier")
	}
}

func TestFailedStatementRollsBackTheTransaction(t *testing.T) {
	forEachDriver(t, func(t *testing.T, b *backend) {
		tests := []struct {
			name, second string
		}{
			{"missing column", "UPDATE orders SET no_such_column = NULL WHERE email = :email"},
			// orders still point at the customer: a foreign key refuses.
			{"integrity violation", "DELETE FROM customers WHERE email = :email"},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := connectors.Subject{Email: fmt.Sprintf("atomic%d@example.com", i)}
				_, seeded := b.seed(t, s)
				c := b.build(t, "shop", b.dsn, fmt.Sprintf(`
statements:
  - name: newsletter
    sql: DELETE FROM newsletter_signups WHERE email = :email
  - name: second
    sql: %s
`, tt.second))
				_, err := c.Erase(ctxFor(t), s)
				if err == nil {
					t.Fatal("Erase succeeded; the second statement should fail")
				}
				if perm, _ := connectors.Classify(err); !perm {
					t.Errorf("a %s was classified retryable: %v", tt.name, err)
				}
				if !strings.Contains(err.Error(), "statement second") {
					t.Errorf("error does not name the failing statement: %v", err)
				}
				if n := b.held(t, s); n != seeded {
					t.Errorf("%d of %d rows left: the first statement was not rolled back", n, seeded)
				}
			})
		}
	})
}

func TestCancelDuringEraseRollsBack(t *testing.T) {
	sleep := map[string]string{
		driverPostgres: "(SELECT pg_sleep(3)) IS NOT NULL",
		driverMySQL:    "SLEEP(3) = 0",
	}
	for drv, cond := range sleep {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			b := newBackend(t, drv)
			s := connectors.Subject{Email: "slow@example.com"}
			_, seeded := b.seed(t, s)
			c := b.build(t, "shop", b.dsn, `
statements:
  - name: newsletter
    sql: DELETE FROM newsletter_signups WHERE email = :email
  - name: slow
    sql: DELETE FROM customers WHERE email = :email AND `+cond+"\n")
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := c.Erase(ctx, s)
			if err == nil {
				t.Fatal("Erase succeeded after its context ended")
			}
			if time.Since(start) > 2*time.Second {
				t.Errorf("Erase took %s; it did not stop when the context ended", time.Since(start))
			}
			if perm, _ := connectors.Classify(err); perm {
				t.Errorf("an ended context was classified permanent: %v", err)
			}
			if n := b.held(t, s); n != seeded {
				t.Errorf("%d of %d rows left after a cancelled erase", n, seeded)
			}
		})
	}
}

func TestStatementsWithoutTheIdentifierAreSkipped(t *testing.T) {
	forEachDriver(t, func(t *testing.T, b *backend) {
		// :user_id binds to the instance name by default.
		c := b.build(t, "shop-db", b.dsn, `
statements:
  - name: by phone
    sql: DELETE FROM customers WHERE phone = :phone
  - name: by id
    sql: DELETE FROM orders WHERE customer_id = :user_id
  - name: newsletter
    sql: DELETE FROM newsletter_signups WHERE email = :email
`)
		withEmail := connectors.Subject{Email: "grace@example.com"}
		id, _ := b.seed(t, withEmail)
		withEmail.UserIDs = map[string]string{"crm": strconv.FormatInt(id, 10)} // another system's id
		out, err := c.Erase(ctxFor(t), withEmail)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{
			"statement by phone: skipped, the subject has no phone",
			"statement by id: skipped, the subject has no user_ids.shop-db",
			"statement newsletter: 1 row",
		}
		if out.Records != 1 || !slices.Equal(values(out.Evidence), want) {
			t.Errorf("Erase = %d records, %q; want 1, %q", out.Records, values(out.Evidence), want)
		}
		if fmt.Sprint(out.SearchedBy) != "[email]" {
			t.Errorf("SearchedBy = %v, want [email]: the only kind a statement was bound to", out.SearchedBy)
		}
		if n := b.count(t, "SELECT count(*) FROM orders WHERE customer_id = ?", id); n != 2 {
			t.Errorf("the :user_id statement ran for another system's id: %d orders left of 2", n)
		}

		withID := connectors.Subject{UserIDs: map[string]string{"shop-db": strconv.FormatInt(id, 10)}}
		out, err = c.Erase(ctxFor(t), withID)
		if err != nil || out.Records != 2 {
			t.Errorf("Erase by user id = %d records, %v; want the 2 orders", out.Records, err)
		}

		// No statement can run: not_found would claim a search that never
		// happened. The database is not touched.
		phoneOnly := connectors.Subject{Phone: "+447700900123"}
		out, err = b.build(t, "shop", b.unreachable(t), shopStatements).Erase(ctxFor(t), phoneOnly)
		if perm, _ := connectors.Classify(err); err == nil || !perm || !strings.Contains(err.Error(), "no statement can run") ||
			!strings.Contains(err.Error(), "(email)") || strings.Contains(err.Error(), phoneOnly.Phone) {
			t.Errorf("Erase with no usable identifier = %q, %v; want a permanent error naming the kind the statements need", out.Status, err)
		}
	})
}

func TestHostileIdentifiersEraseNothingElse(t *testing.T) {
	forEachDriver(t, func(t *testing.T, b *backend) {
		var bystanders []connectors.Subject
		for i := range 3 { // customer ids 0, 1, 2: what numeric coercion would hit
			s := connectors.Subject{Email: fmt.Sprintf("bystander%d@example.com", i)}
			b.seed(t, s)
			bystanders = append(bystanders, s)
		}
		before := b.total(t)
		c := b.build(t, "shop", b.dsn, `
user_id_system: shop
statements:
  - name: newsletter
    sql: DELETE FROM newsletter_signups WHERE email = :email
  - name: orders
    sql: UPDATE orders SET email = NULL, shipping_address = NULL, customer_id = NULL WHERE customer_id = :user_id OR email = :email
  - name: customers
    sql: DELETE FROM customers WHERE id = :user_id OR email = :email
`)
		emails := []string{"o'brien'--@example.com", "x'or'1'='1@example.com", `a\'; DELETE FROM customers; --@example.com`, "%@example.com"}
		ids := []string{"1 OR 1=1", "0 OR 1=1", "abc", "1x", "2; DROP TABLE customers; --", "' OR '1'='1"}
		for i, id := range ids {
			s := connectors.Subject{Email: emails[i%len(emails)], UserIDs: map[string]string{"shop": id}}
			out, err := c.Erase(ctxFor(t), s)
			if err != nil {
				if perm, _ := connectors.Classify(err); !perm {
					t.Errorf("user id %q refused with a retryable error: %v", id, err)
				}
				for _, v := range s.Values() {
					if strings.Contains(err.Error(), v) {
						t.Errorf("error echoes an identifier: %v", err)
					}
				}
				continue
			}
			if out.Status != connectors.StatusNotFound {
				t.Errorf("user id %q: Erase = %s with %d records; nothing was seeded for it", id, out.Status, out.Records)
			}
		}
		if after := b.total(t); after != before {
			t.Errorf("hostile identifiers removed data: %d rows of %d left", after, before)
		}
		for _, s := range bystanders {
			if n := b.held(t, s); n != 4 {
				t.Errorf("a bystander lost data: %d of 4 rows left", n)
			}
		}
	})
}

func TestSQLiteBusyIsRetryable(t *testing.T) {
	t.Parallel()
	b, s, seeded := sqliteShop(t, "busy@example.com")
	// Another writer holds the lock; with no busy timeout SQLite says BUSY.
	conn, err := b.db.Conn(ctxFor(t))
	testenv.Must(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctxFor(t), "BEGIN IMMEDIATE")
	testenv.Must(t, err)
	defer conn.ExecContext(context.Background(), "ROLLBACK") //nolint:errcheck

	_, err = b.build(t, "shop", b.dsn+"&_busy_timeout=0", shopStatements).Erase(ctxFor(t), s)
	if err == nil {
		t.Fatal("Erase succeeded while another writer held the lock")
	}
	if perm, _ := connectors.Classify(err); perm {
		t.Errorf("SQLITE_BUSY classified permanent: %v", err)
	}
	if _, err := conn.ExecContext(ctxFor(t), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if n := b.held(t, s); n != seeded {
		t.Errorf("%d of %d rows left", n, seeded)
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	const secret = "1 OR 1=1"
	s := connectors.Subject{UserIDs: map[string]string{"shop": secret}}
	tests := []struct {
		name      string
		err       error
		permanent bool
		says      string
	}{
		{"pg connection", &pgconn.PgError{Code: "08006", Message: "connection failure"}, false, "08006"},
		{"pg serialization", &pgconn.PgError{Code: "40001", Message: "could not serialize access"}, false, "40001"},
		{"pg deadlock", &pgconn.PgError{Code: "40P01", Message: "deadlock detected"}, false, "40P01"},
		{"pg too many connections", &pgconn.PgError{Code: "53300"}, false, "53300"},
		{"pg shutdown", &pgconn.PgError{Code: "57P01"}, false, "57P01"},
		{"pg io", &pgconn.PgError{Code: "58030"}, false, "58030"},
		{"pg auth", &pgconn.PgError{Code: "28P01", Message: `password authentication failed for user "lethe"`}, true, "user and password"},
		{"pg missing table", &pgconn.PgError{Code: "42P01", Message: `relation "orders" does not exist`}, true, `relation "orders" does not exist`},
		{"pg privilege", &pgconn.PgError{Code: "42501", Message: "permission denied for table orders"}, true, "grant"},
		{"pg foreign key", &pgconn.PgError{Code: "23503", Message: "update or delete violates foreign key constraint"}, true, "dependent rows"},
		{"pg bad value is not echoed", &pgconn.PgError{Code: "22P02", Message: `invalid input syntax for type integer: "` + secret + `"`}, true, "22P02"},
		{"mysql lock wait", &mysql.MySQLError{Number: 1205, Message: "Lock wait timeout exceeded"}, false, "1205"},
		{"mysql deadlock", &mysql.MySQLError{Number: 1213, Message: "Deadlock found"}, false, "1213"},
		{"mysql access denied", &mysql.MySQLError{Number: 1045, Message: "Access denied for user 'x'"}, true, "user and password"},
		{"mysql db access denied", &mysql.MySQLError{Number: 1044}, true, "1044"},
		{"mysql missing table", &mysql.MySQLError{Number: 1146, Message: "Table 'shop.orders' doesn't exist"}, true, "shop.orders"},
		{"mysql unknown column", &mysql.MySQLError{Number: 1054}, true, "1054"},
		{"mysql syntax", &mysql.MySQLError{Number: 1064}, true, "syntax"},
		{"mysql command denied", &mysql.MySQLError{Number: 1142}, true, "grant"},
		{"mysql column denied", &mysql.MySQLError{Number: 1143}, true, "grant"},
		{"mysql foreign key parent", &mysql.MySQLError{Number: 1451}, true, "dependent rows"},
		{"mysql foreign key child", &mysql.MySQLError{Number: 1452}, true, "dependent rows"},
		{"mysql bad value is not echoed", &mysql.MySQLError{Number: 1292, Message: "Truncated incorrect DECIMAL value: '" + secret + "'"}, true, "1292"},
		{"mysql conversion warning", fmt.Errorf("MySQL warning 1292: %w", errConversion), true, "rolled back"},
		{"bad connection", driver.ErrBadConn, false, "connection"},
		{"mysql invalid connection", mysql.ErrInvalidConn, false, "connection"},
		{"network", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, false, "cannot reach"},
		{"cancelled", context.Canceled, false, "cancelled"},
		{"timeout", fmt.Errorf("query: %w", context.DeadlineExceeded), false, "timed out"},
		{"unknown driver text is not echoed", errors.New("cannot encode " + secret), false, "driver error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classify(tt.err, "statement customers", s)
			perm, _ := connectors.Classify(err)
			if perm != tt.permanent {
				t.Errorf("permanent = %v, want %v: %v", perm, tt.permanent, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "statement customers") || !strings.Contains(msg, tt.says) {
				t.Errorf("message %q should name the statement and say %q", msg, tt.says)
			}
			if strings.Contains(msg, secret) {
				t.Errorf("message echoes the identifier: %q", msg)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("the driver error is not wrapped")
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	secretFile := filepath.Join(t.TempDir(), "dsn")
	testenv.Must(t, os.WriteFile(secretFile, []byte("postgres://lethe@127.0.0.1:1/shop?default_query_exec_mode=simple_protocol\n"), 0o600))
	runRefusals(t, "", refusals{
		{"empty", ``, []string{"driver: required", "dsn: required", "statements: at least one"}},
		{"unknown driver", "driver: oracle\ndsn: x\nstatements:\n  - sql: DELETE FROM t WHERE e = :email\n",
			[]string{`driver: "oracle" is not one of`}},
		{"unknown key", "driver: sqlite\ndsn: x\nstatement:\n  - sql: DELETE FROM t WHERE e = :email\n",
			[]string{"statement"}},
		{"no placeholder", "driver: postgres\ndsn: x\nstatements:\n  - sql: DELETE FROM t WHERE e = :email\n  - sql: DELETE FROM sessions\n",
			[]string{"statements[1].sql: has no :email, :phone, :user_id or :user_ids.<namespace> placeholder"}},
		{"placeholder only in a literal", "driver: mysql\ndsn: x\nstatements:\n  - sql: DELETE FROM t WHERE note = ':email'\n",
			[]string{"statements[0].sql: has no"}},
		{"empty sql", "driver: mysql\ndsn: x\nstatements:\n  - name: a\n", []string{"statements[0].sql: required"}},
		{"duplicate names", "driver: sqlite\ndsn: x\nstatements:\n  - name: a\n    sql: DELETE FROM t WHERE e = :email\n  - name: a\n    sql: DELETE FROM u WHERE e = :email\n",
			[]string{`statements[1].name: "a" is used twice`}},
		{"default name clash", "driver: sqlite\ndsn: x\nstatements:\n  - sql: DELETE FROM t WHERE e = :email\n  - name: statement 1\n    sql: DELETE FROM u WHERE e = :email\n",
			[]string{`statements[1].name: "statement 1" is used twice`}},
		{"positional parameter", "driver: mysql\ndsn: x\nstatements:\n  - sql: DELETE FROM t WHERE e = ?\n",
			[]string{"statements[0].sql: positional"}},
		{"verify without placeholder", "driver: sqlite\ndsn: x\nstatements:\n  - sql: DELETE FROM t WHERE e = :email\nverify:\n  - sql: SELECT count(*) FROM t\n",
			[]string{"verify[0].sql: has no"}},
		{"bad user_id_system", "driver: sqlite\ndsn: x\nuser_id_system: Shop DB\nstatements:\n  - sql: DELETE FROM t WHERE e = :email\n",
			[]string{"user_id_system: must be"}},
		{"bad secret", "driver: sqlite\ndsn: {env: A, file: B}\nstatements:\n  - sql: DELETE FROM t WHERE e = :email\n",
			[]string{"a secret is a string"}},
		{"unset env", "driver: postgres\ndsn: {env: SHOP_DATABASE_URL}\nstatements:\n  - sql: DELETE FROM t WHERE e = :email\n",
			[]string{"dsn: environment variable SHOP_DATABASE_URL is empty or unset"}},
		{"pgx simple protocol", fmt.Sprintf("driver: postgres\ndsn: {file: %q}\nstatements:\n  - sql: DELETE FROM t WHERE e = :email\n", secretFile),
			[]string{"simple_protocol makes the driver write values into the SQL text"}},
		{"mysql interpolation", "driver: mysql\ndsn: root@tcp(127.0.0.1:1)/shop?interpolateParams=true\nstatements:\n  - sql: DELETE FROM t WHERE e = :email\n",
			[]string{"interpolateParams=true"}},
	})
}

// refusals are configs the connector must refuse, its error saying each
// of want.
type refusals []struct {
	name, yaml string
	want       []string
}

// runRefusals builds an instance from base and each case's yaml, as
// subtests.
func runRefusals(t *testing.T, base string, cases refusals) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			_, err := connectortest.TryBuild("sql", "shop", base+tt.yaml)
			if err == nil {
				t.Fatal("the config was accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestBuildDoesNotConnect(t *testing.T) {
	t.Parallel()
	for _, dsn := range []string{"postgres://lethe@127.0.0.1:1/shop", "lethe@tcp(127.0.0.1:1)/shop"} {
		drv := driverPostgres
		if !strings.HasPrefix(dsn, "postgres") {
			drv = driverMySQL
		}
		c, err := connectortest.TryBuild("sql", "shop", fmt.Sprintf("driver: %s\ndsn: %q\nstatements:\n  - sql: DELETE FROM t WHERE e = :email\n", drv, dsn))
		if err != nil {
			t.Errorf("%s: a database that is down stopped the connector from being built: %v", drv, err)
			continue
		}
		testenv.Must(t, c.(io.Closer).Close())
	}
}

func TestScanListsIdentifiers(t *testing.T) {
	forEachDriver(t, func(t *testing.T, b *backend) {
		a := connectors.Subject{Email: "scan-a@example.com", Phone: "+447700900111"}
		c := connectors.Subject{Email: "scan-c@example.com"}
		b.seed(t, a)
		b.seed(t, c)
		conn := b.build(t, "shop", b.dsn, `statements: [{sql: "DELETE FROM newsletter_signups WHERE email = :email"}]
scan:
  - {name: customers, sql: "SELECT email FROM customers", kind: email}
  - {name: phones, sql: "SELECT phone FROM customers", kind: phone}
  - {name: ids, sql: "SELECT id FROM customers", kind: user_id}
  - {name: app ids, sql: "SELECT app_user_id FROM customers", kind: user_ids.app}`)
		sc, ok := conn.(connectors.Scanner)
		if !ok {
			t.Fatal("the sql connector is not a Scanner")
		}
		var got []string
		err := sc.Scan(ctxFor(t), func(s connectors.Subject) error {
			got = append(got, fmt.Sprintf("%s|%s|%s|%s", s.Email, s.Phone, s.UserIDs["shop"], s.UserIDs["app"]))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		joined := strings.Join(got, " ")
		for _, want := range []string{"scan-a@example.com|||", "scan-c@example.com|||", "|+447700900111||", "||0|", "||1|", "|||" + appUserID(a), "|||" + appUserID(c)} {
			if !strings.Contains(joined, want) {
				t.Errorf("scan found %q, missing %q", joined, want)
			}
		}
		if len(got) != 7 { // two emails, one phone (NULL skipped), two ids, two app ids
			t.Errorf("scan found %d identifiers, want 7: %v", len(got), got)
		}
		plain := b.build(t, "shop", b.dsn, `statements: [{sql: "DELETE FROM customers WHERE email = :email"}]`)
		if err := plain.(connectors.Scanner).Scan(ctxFor(t), func(connectors.Subject) error { return nil }); !errors.Is(err, connectors.ErrCannotScan) {
			t.Errorf("scan without scan queries: %v", err)
		}
	})
}

func TestScanConfigValidation(t *testing.T) {
	_, err := connectortest.TryBuild("sql", "shop", `driver: sqlite
dsn: /tmp/x.db
statements: [{sql: "DELETE FROM t WHERE email = :email"}]
scan: [{sql: "SELECT email FROM t", kind: name}, {kind: email}]`)
	if err == nil || !strings.Contains(err.Error(), "scan[0].kind") || !strings.Contains(err.Error(), "scan[1].sql") {
		t.Errorf("bad scan config: %v", err)
	}
}
