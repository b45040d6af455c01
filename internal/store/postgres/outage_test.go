package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/lethe-dev/lethe/internal/erasure"
	"github.com/lethe-dev/lethe/internal/store"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// TestOutageClassifiesRealErrors makes pgx fail for real in each way a
// database outage shows, and in ways that are not outages, and checks
// which ones the store calls unavailable.
func TestOutageClassifiesRealErrors(t *testing.T) {
	t.Parallel()
	url := testenv.PostgresSchema(t)
	ctx := context.Background()

	refused := func(t *testing.T) error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close() // nothing listens there now
		_, err = pgconn.Connect(ctx, "postgres://postgres@"+addr+"/test?sslmode=disable")
		return err
	}
	// A server that accepts and never answers: the caller's deadline
	// runs out while connecting.
	silent := func(t *testing.T) error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { _ = c.Close() })
			}
		}()
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		pool, err := pgxpool.New(ctx, "postgres://postgres@"+ln.Addr().String()+"/test?sslmode=disable")
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		_, err = pool.Exec(ctx, "SELECT 1")
		return err
	}
	// The server ends the session (57P01 admin_shutdown), as it does to
	// every session when PostgreSQL stops.
	terminated := func(t *testing.T) error {
		victim, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer victim.Close(ctx)
		killer, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer killer.Close(ctx)
		if _, err := killer.Exec(ctx, "SELECT pg_terminate_backend($1)", victim.PgConn().PID()); err != nil {
			t.Fatal(err)
		}
		for range 50 { // the FATAL arrives with the next statement
			if _, err = victim.Exec(ctx, "SELECT 1"); err != nil {
				return err
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatal("the terminated session still answers")
		return nil
	}
	closedPool := func(t *testing.T) error {
		pool, err := pgxpool.New(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		pool.Close()
		_, err = pool.Exec(ctx, "SELECT 1")
		return err
	}
	sqlErr := func(sql string) func(t *testing.T) error {
		return func(t *testing.T) error {
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			_, err = conn.Exec(ctx, sql)
			return err
		}
	}
	cancelled := func(t *testing.T) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(100*time.Millisecond, cancel)
		_, err = conn.Exec(cctx, "SELECT pg_sleep(5)")
		return err
	}
	state := func(code string) func(*testing.T) error {
		return func(*testing.T) error {
			return fmt.Errorf("failed to connect: %w", &pgconn.PgError{Severity: "FATAL", Code: code})
		}
	}
	for _, tc := range []struct {
		name        string
		fail        func(t *testing.T) error
		ctx         func() context.Context
		unavailable bool
	}{
		{"connection refused", refused, nil, true},
		{"no connection before the deadline", silent, nil, true},
		{"57P01 admin_shutdown", terminated, nil, true},
		{"closed pool", closedPool, nil, true},
		// States a server sends while it restarts; hard to cause on a
		// server others share, so made here as pgx would decode them.
		{"57P02 crash_shutdown", state("57P02"), nil, true},
		{"57P03 cannot_connect_now", state("57P03"), nil, true},
		{"08006 connection_failure", state("08006"), nil, true},
		{"53300 too_many_connections", state("53300"), nil, true},
		{"23503 foreign_key_violation", state("23503"), nil, false},
		{"unique violation", sqlErr("CREATE TEMP TABLE u (k int PRIMARY KEY); INSERT INTO u VALUES (1), (1)"), nil, false},
		{"syntax error", sqlErr("SELEC 1"), nil, false},
		{"wrong database", func(t *testing.T) error {
			_, err := pgconn.Connect(ctx, "postgres://postgres@127.0.0.1:5432/no_such_db_lethe?sslmode=disable")
			return err
		}, nil, false},
		{"the caller cancelled", cancelled, nil, false},
		{"refused, but the caller had cancelled", refused, func() context.Context {
			c, cancel := context.WithCancel(ctx)
			cancel()
			return c
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.fail(t)
			if err == nil {
				t.Fatal("no error to classify")
			}
			callerCtx := ctx
			if tc.ctx != nil {
				callerCtx = tc.ctx()
			}
			got := outage(callerCtx, err)
			if !errors.Is(got, err) {
				t.Errorf("the cause %v is lost: %v", err, got)
			}
			if is := erasure.ErrorCode(got) == erasure.EUnavailable; is != tc.unavailable {
				t.Errorf("%v: unavailable = %v, want %v (code %q)", err, is, tc.unavailable, erasure.ErrorCode(got))
			}
			if !tc.unavailable && got != err {
				t.Errorf("a non-outage error was changed: %v -> %v", err, got)
			}
			if tc.unavailable && !errors.Is(got, store.ErrUnavailable) {
				t.Errorf("%v does not match store.ErrUnavailable", got)
			}
		})
	}
}
