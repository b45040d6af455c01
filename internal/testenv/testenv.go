// Package testenv starts and reaches the real services Lethe's tests run
// against: a fresh PostgreSQL schema or MariaDB database per test, and an
// in-process NATS server with JetStream. A missing service fails the test
// with instructions; it never skips.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/lethe-dev/lethe/internal/seal"
	"github.com/nats-io/nats-server/v2/server"
)

// DefaultPostgresURL is used when LETHE_TEST_DATABASE_URL is unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// DefaultMySQLDSN is used when LETHE_TEST_MYSQL_DSN is unset.
const DefaultMySQLDSN = "root@tcp(127.0.0.1:3306)/test"

func randomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// PostgresURL returns the base URL of the test PostgreSQL server.
func PostgresURL() string {
	if u := os.Getenv("LETHE_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

// PostgresSchema creates an empty schema for this test and returns a
// connection URL whose search_path points at it. The schema is dropped when
// the test ends.
func PostgresSchema(t testing.TB) string {
	t.Helper()
	base := PostgresURL()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("PostgreSQL is required for this test and is not reachable at %s: %v\n"+
			"Start it (README, 'Running the tests') or set LETHE_TEST_DATABASE_URL.", redactURL(base), err)
	}
	defer conn.Close(context.Background())
	schema := randomName("lethe_t_")
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create test schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("drop test schema %s: %v", schema, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("drop test schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("LETHE_TEST_DATABASE_URL must be a URL (postgres://…): %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// MySQLDSN returns the DSN of the test MariaDB/MySQL server.
func MySQLDSN() string {
	if d := os.Getenv("LETHE_TEST_MYSQL_DSN"); d != "" {
		return d
	}
	return DefaultMySQLDSN
}

// MySQLDatabase creates an empty database for this test and returns a DSN
// for it. The database is dropped when the test ends.
func MySQLDatabase(t testing.TB) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(MySQLDSN())
	if err != nil {
		t.Fatalf("LETHE_TEST_MYSQL_DSN: %v", err)
	}
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatalf("open MariaDB: %v", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("MariaDB/MySQL is required for this test and is not reachable at %s: %v\n"+
			"Start it (README, 'Running the tests') or set LETHE_TEST_MYSQL_DSN.", cfg.Addr, err)
	}
	name := randomName("lethe_t_")
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("mysql", cfg.FormatDSN())
		if err != nil {
			return
		}
		defer db.Close()
		if _, err := db.Exec("DROP DATABASE " + name); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	cfg.DBName = name
	return cfg.FormatDSN()
}

// NATS starts an in-process NATS server with JetStream on a random port,
// storing under a temporary directory, and shuts it down when the test ends.
func NATS(t testing.TB) *server.Server {
	t.Helper()
	return NATSAt(t, t.TempDir())
}

// NATSAt is NATS with a given store directory, so a test can restart a
// server on the same data.
func NATSAt(t testing.TB, storeDir string) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: storeDir,
		NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatalf("nats server not ready")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Must fails the test on err; for terse setup code.
func Must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(fmt.Errorf("setup: %w", err))
	}
}

// KeyRing returns a key-encryption key ring with a fixed test key.
func KeyRing() *seal.KeyRing {
	r, err := seal.NewKeyRing(seal.KEK{ID: "test", Key: []byte("lethe-test-key-encryption-key-32")})
	if err != nil {
		panic(err)
	}
	return r
}

// Clock is a settable clock for tests: components take its Now as their
// clock, and the test moves it on with Advance. Safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock that reads t until advanced.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
